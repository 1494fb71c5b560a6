"""One camera's frames -> plate reads: the motion gate, OCR and the pass tracker, with the
plate's region followed between frames to spare most of the OCR work.

Whole-frame OCR (detection over the whole picture, then recognition of every text line,
street signs included) is what an LPR camera costs. Once a plate is seen, the next frames
of its pass only need the part of the picture where the plate will be: ``FrameAnalyser``
reads the plate's *region* (its box moved by the plate's last displacement, with a margin for
the car's speed and the plate's ``BRASIL`` band) at the whole frame's scale, so characters
look the same to OCR at a fraction of the detection work and without reading the signs.
The whole frame is still read

- when nothing is followed (the first frame of a pass, a new car),
- on the next frame that moves after the region showed no plate (the car left, or was lost:
  following stops; a car still moving in the picture is read whole on the next frame),
- at least every ``full_every_s`` while a plate is followed *and something moves outside
  the followed car* (``car_zone``; ``MotionGate.moved_outside``): a second car entering the
  picture is not missed for longer than that, while a lone car costs one whole-frame read.

A still picture is not read at all unless a pass is open (``lpr.motion``).
"""

from __future__ import annotations

import numpy as np

from lpr.motion import MotionGate
from lpr.ocr import Candidate, PlateReader, Region, crop_jpeg
from lpr.tracker import PassRead, PlateTracker

FOLLOW_S = 1.2  # a plate not seen for this long is no longer followed
FULL_EVERY_S = 1.0
MARGIN_X = 0.5  # of the plate box's width, each side, plus half the last displacement
MARGIN_Y = 1.2  # of its height, each side (the band above, the car's bounce)
CAR_WIDTHS, CAR_ABOVE = 1.5, 2.5  # a car around its plate, in plate widths


def car_zone(
    box: tuple[int, int, int, int],
    previous: tuple[int, int, int, int] | None,
    frame_shape: tuple[int, ...],
) -> Region:
    """Where the followed plate's car moves: ``CAR_WIDTHS`` plate widths each side (and its
    displacement), ``CAR_ABOVE`` plate widths above the plate, to the bottom of the frame."""
    x, y, w, h = box
    dx, dy = (x - previous[0], y - previous[1]) if previous is not None else (0, 0)
    height, width = frame_shape[:2]
    return (
        max(0, round(x - CAR_WIDTHS * w - abs(dx))),
        max(0, round(y - CAR_ABOVE * w - abs(dy))),
        min(width, round(x + w + CAR_WIDTHS * w + abs(dx))),
        height,
    )


def region_around(
    box: tuple[int, int, int, int],
    previous: tuple[int, int, int, int] | None,
    frame_shape: tuple[int, ...],
) -> Region:
    """Where the plate seen at ``box`` (after ``previous``) will be in the next frame."""
    x, y, w, h = box
    dx, dy = (x - previous[0], y - previous[1]) if previous is not None else (0, 0)
    # Without a displacement yet, allow for a car moving a plate width per frame.
    mx = MARGIN_X * w + (abs(dx) / 2 if previous is not None else w)
    my = MARGIN_Y * h + abs(dy) / 2
    left, right = min(x, x + dx) - mx, max(x + w, x + w + dx) + mx
    top, bottom = min(y, y + dy) - my, max(y + h, y + h + dy) + my
    height, width = frame_shape[:2]
    return (
        max(0, round(left)),
        max(0, round(top)),
        min(width, round(right)),
        min(height, round(bottom)),
    )


class FrameAnalyser:
    """Per camera. ``analyse(taken_at, frame)`` returns the passes that closed; afterwards
    ``last_mode`` says what was read: ``None`` (nothing, a still picture), ``"full"`` or
    ``"region"``."""

    def __init__(
        self,
        reader: PlateReader,
        tracker: PlateTracker,
        gate: MotionGate,
        *,
        follow_s: float = FOLLOW_S,
        full_every_s: float = FULL_EVERY_S,
    ) -> None:
        self.reader = reader
        self.tracker = tracker
        self.gate = gate
        self.follow_s = follow_s
        self.full_every_s = full_every_s
        self.box: tuple[int, int, int, int] | None = None
        self.previous: tuple[int, int, int, int] | None = None
        self.seen_at = float("-inf")
        self.full_at = float("-inf")
        self.last_mode: str | None = None

    def analyse(self, taken_at: float, frame: np.ndarray) -> list[PassRead]:
        self.last_mode = None
        # A still picture is not read, unless a pass is open (its car may have stopped).
        if not self.gate.moved(frame) and not self.tracker.busy:
            return self.tracker.feed(taken_at, [])
        candidates = self._read(taken_at, frame)
        found = [(c, crop_jpeg(frame, c.bbox)) for c in candidates]
        return self.tracker.feed(taken_at, found)

    def _read(self, taken_at: float, frame: np.ndarray) -> list[Candidate]:
        following = self.box is not None and taken_at - self.seen_at <= self.follow_s
        refresh = following and taken_at - self.full_at >= self.full_every_s
        if refresh and not self.gate.moved_outside(
            car_zone(self.box, self.previous, frame.shape), frame.shape
        ):
            refresh = False  # nothing but the followed car moves: no second car to look for
        if following and not refresh:
            region = region_around(self.box, self.previous, frame.shape)
            candidates = self.reader.read(frame, region)
            self.last_mode = "region"
            if candidates:
                self._follow(taken_at, candidates)
            else:  # gone: the next frame that moves is read whole
                self.box = self.previous = None
            return candidates
        self.last_mode = "full"
        candidates = self.reader.read(frame)
        self.full_at = taken_at
        if candidates:
            self._follow(taken_at, candidates)
        else:
            self.box = self.previous = None
        return candidates

    def _follow(self, taken_at: float, candidates: list[Candidate]) -> None:
        """Follow the candidate nearest the followed plate (else the most confident)."""
        if self.box is not None and taken_at - self.seen_at <= self.follow_s:
            x, y = self.box[0], self.box[1]
            best = min(candidates, key=lambda c: abs(c.bbox[0] - x) + abs(c.bbox[1] - y))
            self.previous = self.box
        else:
            best = max(candidates, key=lambda c: c.confidence)
            self.previous = None
        self.box, self.seen_at = best.bbox, taken_at
