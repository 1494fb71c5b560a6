"""The clip export job: join the segments with the concat demuxer and cut with codec copy.

The cut starts at the last keyframe at or before ``start`` (read from the first segment's
packets, no decoding) and ends exactly at ``end``, so the MP4 covers at least the range and
at most one GOP more. Any failure becomes a FAILED clip with a readable error.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from django.utils.translation import gettext as _

from recordings import media, services, storage
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


def plan(clip: Clip) -> list[_Entry]:
    segments = list(
        Segment.objects.filter(camera_id=clip.camera_id)
        .overlapping(clip.start, clip.end)
        .order_by("start")
    )
    if not segments:
        raise ClipError(_("The recording of this period is no longer available."))
    entries = []
    for index, segment in enumerate(segments):
        path = storage.segment_file(segment)
        if not path.exists():
            raise ClipError(_("A recorded segment of this period is missing."))
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
    entries = plan(clip)
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
    services.finish_clip(
        clip,
        size_bytes=final.stat().st_size,
        duration_s=round(duration, 3),
        sha256=sha256(final),
        segments=[entry.segment for entry in entries],
    )


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()
