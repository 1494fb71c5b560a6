"""The clip export job: join the segments with the concat demuxer and cut with codec copy.

The cut starts at the last keyframe at or before ``start`` (read from the first segment's
packets, no decoding) and ends exactly at ``end``, so the MP4 covers at least the range and
at most one GOP more. Segments on the S3 tier are downloaded first (``segment_io``), so the
clip and its custody manifest are the same whichever tier held them. Any failure becomes a
FAILED clip with a readable error; one whose cause is an unreachable bucket can be exported
again once it is back.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from django.utils.translation import gettext as _

from recordings import media, segment_io, services, storage
from recordings.models import Clip, Segment
from streaming.ffmpeg import concat_list

logger = logging.getLogger(__name__)

PROGRESS_INTERVAL_S = 0.5
# concat's inpoint is compared with packet times: stay just below the keyframe's time.
INPOINT_EPSILON_S = 0.001


class ClipError(Exception):
    pass


@dataclass(frozen=True)
class _Entry:
    segment: Segment
    path: Path
    inpoint: float | None
    outpoint: float | None
    seconds: float


def build_clip(clip_id: int) -> None:
    """Run one export (the worker's job). Never raises for a failed export."""
    clip = services.claim_clip(clip_id)
    if clip is None:
        return
    try:
        _export(clip)
    except (ClipError, media.MediaError) as exc:
        services.fail_clip(clip, str(exc))
    except Exception:
        logger.exception("clip %s failed", clip_id)
        services.fail_clip(clip, _("Unexpected error while exporting the clip."))


def _segments(clip: Clip) -> list[Segment]:
    segments = list(
        Segment.objects.filter(camera_id=clip.camera_id)
        .overlapping(clip.start, clip.end)
        .order_by("start")
    )
    if not segments:
        raise ClipError(_("The recording of this period is no longer available."))
    return segments


def plan(clip: Clip, segments: list[Segment], paths: list[Path]) -> list[_Entry]:
    """The concat entries of ``segments``, whose files are at ``paths`` (local copies)."""
    entries = []
    for index, (segment, path) in enumerate(zip(segments, paths, strict=True)):
        inpoint = outpoint = None
        if index == 0 and clip.start > segment.start:
            offset = (clip.start - segment.start).total_seconds()
            keyframes = [t for t in media.keyframe_times(path) if t <= offset]
            if keyframes and keyframes[-1] > 0:
                inpoint = max(keyframes[-1] - INPOINT_EPSILON_S, 0.0)
        if index == len(segments) - 1 and clip.end < segment.end:
            outpoint = (clip.end - segment.start).total_seconds()
        seconds = (outpoint if outpoint is not None else segment.duration_s) - (inpoint or 0.0)
        entries.append(_Entry(segment, path, inpoint, outpoint, max(seconds, 0.0)))
    return entries


def _export(clip: Clip) -> None:
    """Export from local copies of the segments: files on local disk in place, objects of the
    S3 tier downloaded next to the clips (``segment_io.local_copy``) and removed after."""
    segments = _segments(clip)
    try:
        with segment_io.local_copy(segments, directory=storage.clips_root()) as paths:
            entries = plan(clip, segments, paths)
            final, duration = _cut(clip, entries)
    except segment_io.SegmentMissing as exc:
        logger.warning("clip %s: %s", clip.pk, exc)
        raise ClipError(_("A recorded segment of this period is missing.")) from exc
    except segment_io.CopyTooLarge as exc:
        logger.warning("clip %s: %s", clip.pk, exc)
        raise ClipError(
            _("There is not enough space to prepare the archived recordings of this clip.")
        ) from exc
    except segment_io.SegmentUnavailable as exc:
        logger.warning("clip %s: %s", clip.pk, exc)
        raise ClipError(
            _("The archived recordings cannot be reached now; export the clip again later.")
        ) from exc
    services.finish_clip(
        clip,
        size_bytes=final.stat().st_size,
        duration_s=round(duration, 3),
        sha256=sha256(final),
        segments=[entry.segment for entry in entries],
    )


def _cut(clip: Clip, entries: list[_Entry]) -> tuple[Path, float]:
    """Run FFmpeg on ``entries``; the clip's final file and its duration."""
    expected = sum(entry.seconds for entry in entries) or 1.0
    final = storage.clip_path(clip.pk)
    partial = final.with_name(final.name + ".part")
    list_path = final.with_name(final.name + ".ffconcat")
    list_path.write_text(concat_list((e.path, e.inpoint, e.outpoint) for e in entries))
    last_report = 0.0

    def on_progress(seconds: float) -> None:
        nonlocal last_report
        if time.monotonic() - last_report >= PROGRESS_INTERVAL_S:
            last_report = time.monotonic()
            services.clip_progress(clip, seconds / expected)

    try:
        media.export_clip(list_path, partial, on_progress=on_progress, timeout_s=120 + expected)
        duration = media.measure_duration(partial)
        if duration is None:
            raise ClipError(_("The exported file is not playable."))
        os.replace(partial, final)
    finally:
        storage.unlink(list_path)
        storage.unlink(partial)
    return final, duration


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()
