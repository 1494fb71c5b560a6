"""One read per vehicle pass: frames' plate candidates voted together, repeats suppressed.

A *pass* collects the candidates of consecutive frames whose plates are close to each other
(within ``PASS_DISTANCE`` edits of the pass's first plate key). It closes as soon as
``confirm_frames`` frames read the same plate or one frame reads it with
``instant_confidence`` (no correction, OCR sure: the read does not wait for the car to
leave), when no candidate has joined it for ``gap_s`` seconds, or once it is ``max_pass_s``
old (a parked car must not delay its read forever); then its candidates are voted per
character (``plates.vote``) and the pass yields one ``PassRead`` with the best frame's box
and crop. The same plate key on the same camera within ``cooldown_s`` of the previous read is
suppressed (a car waiting at a light is one pass).

Pure Python; time is passed in by the caller (seconds, any monotonic clock).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lpr import plates
from lpr.ocr import Candidate

PASS_DISTANCE = 2
DEFAULT_GAP_S = 1.2
DEFAULT_MAX_PASS_S = 3.0
DEFAULT_COOLDOWN_S = 60.0
DEFAULT_CONFIRM_FRAMES = 3
DEFAULT_INSTANT_CONFIDENCE = 0.98
MIN_CONFIDENCE = 0.5


@dataclass
class PassRead:
    """The outcome of one vehicle pass."""

    plate: str
    format: plates.Format
    confidence: float
    bbox: tuple[int, int, int, int]
    crop: bytes
    first_seen: float  # when the pass's first frame was taken (the caller's clock)
    frames: int


@dataclass
class _Pass:
    key: str
    first_seen: float
    last_seen: float
    readings: list[tuple[Candidate, bytes]] = field(default_factory=list)


class PlateTracker:
    """Per camera: feed it each analysed frame's candidates, collect closed passes."""

    def __init__(
        self,
        *,
        gap_s: float = DEFAULT_GAP_S,
        max_pass_s: float = DEFAULT_MAX_PASS_S,
        cooldown_s: float = DEFAULT_COOLDOWN_S,
        min_confidence: float = MIN_CONFIDENCE,
        confirm_frames: int = DEFAULT_CONFIRM_FRAMES,
        instant_confidence: float = DEFAULT_INSTANT_CONFIDENCE,
    ) -> None:
        self.gap_s = gap_s
        self.max_pass_s = max_pass_s
        self.cooldown_s = cooldown_s
        self.min_confidence = min_confidence
        self.confirm_frames = confirm_frames
        self.instant_confidence = instant_confidence
        self._open: list[_Pass] = []
        self._last_read: dict[str, float] = {}  # plate key -> when it was last read

    @property
    def busy(self) -> bool:
        """Whether a pass is open (its vehicle may still be in the picture)."""
        return bool(self._open)

    def feed(self, now: float, found: list[tuple[Candidate, bytes]]) -> list[PassRead]:
        """Add one frame's candidates (each with its JPEG crop) taken at ``now``; returns
        the passes that closed."""
        for candidate, crop in found:
            key = plates.plate_key(candidate.plate)
            target = next(
                (p for p in self._open if plates.distance(p.key, key) <= PASS_DISTANCE), None
            )
            if target is None:
                target = _Pass(key=key, first_seen=now, last_seen=now)
                self._open.append(target)
            target.readings.append((candidate, crop))
            target.last_seen = now
        return self.flush(now)

    def flush(self, now: float, *, force: bool = False) -> list[PassRead]:
        """Close the passes that are over (all of them with ``force``)."""
        closed = [
            p
            for p in self._open
            if force
            or now - p.last_seen >= self.gap_s
            or now - p.first_seen >= self.max_pass_s
            or self._confirmed(p)
        ]
        self._open = [p for p in self._open if p not in closed]
        reads = []
        for finished in closed:
            read = self._close(finished, now)
            if read is not None:
                reads.append(read)
        return reads

    def _confirmed(self, current: _Pass) -> bool:
        """Whether ``confirm_frames`` confident frames of the pass read the same plate key, or
        one read it with ``instant_confidence``."""
        counts: dict[str, int] = {}
        for candidate, _ in current.readings:
            if candidate.confidence >= self.instant_confidence:
                return True
            if candidate.confidence >= self.min_confidence:
                key = plates.plate_key(candidate.plate)
                counts[key] = counts.get(key, 0) + 1
        return max(counts.values(), default=0) >= self.confirm_frames

    def _close(self, finished: _Pass, now: float) -> PassRead | None:
        voted = plates.vote([(c.plate, c.confidence) for c, _ in finished.readings])
        if voted is None:
            return None
        plate, confidence = voted
        if confidence < self.min_confidence:
            return None
        key = plates.plate_key(plate)
        # Anything still open for the same vehicle would read it again: it is the same pass.
        self._last_read = {k: t for k, t in self._last_read.items() if now - t < self.cooldown_s}
        if key in self._last_read:
            self._last_read[key] = now
            return None
        self._last_read[key] = now
        agreeing = [(c, crop) for c, crop in finished.readings if plates.plate_key(c.plate) == key]
        best, crop = max(agreeing or finished.readings, key=lambda item: item[0].confidence)
        fmt = plates.plate_format(plate)
        assert fmt is not None
        return PassRead(
            plate=plate,
            format=fmt,
            confidence=confidence,
            bbox=best.bbox,
            crop=crop,
            first_seen=finished.first_seen,
            frames=len(finished.readings),
        )
