"""Where recordings and clips live on disk.

Per camera, under ``RECORDINGS_DIR``::

    cam<id>/incoming/                       FFmpeg's record_dir: the open segment, closed
                                            segments not indexed yet, segments.csv
    cam<id>/YYYY/MM/DD/YYYYmmddTHHMMSSZ.ts  indexed segments, by UTC day

The indexer moves each segment out of ``incoming/`` once its row is committed, so the
directory FFmpeg writes to stays a few entries long (listed every second) whatever the
retention, and a day's footage is one directory. A row's file is its ``location`` (relative
to ``RECORDINGS_DIR``) or, when that is empty, the canonical path above, which follows from
its camera and start (the file name is the UTC second of the start): ``segment_file``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
from collections.abc import Iterable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings

from streaming.ffmpeg import SEGMENT_LIST, SEGMENT_NAME_PATTERN

if TYPE_CHECKING:
    from recordings.models import Segment

logger = logging.getLogger(__name__)

INCOMING = "incoming"
SEGMENT_NAME = re.compile(r"^\d{8}T\d{6}Z\.ts$")
CAMERA_DIR = re.compile(r"^cam(\d+)$")


def recordings_root() -> Path:
    return Path(settings.RECORDINGS_DIR)


def camera_dir(camera_id: int) -> Path:
    return recordings_root() / f"cam{camera_id}"


def record_dir(camera_id: int) -> Path:
    """The directory FFmpeg records a camera into (``live_argv(record_dir=...)``); created."""
    path = camera_dir(camera_id) / INCOMING
    path.mkdir(parents=True, exist_ok=True)
    return path


def segment_list(directory: Path) -> Path:
    return directory / SEGMENT_LIST


def segment_name(start: datetime) -> str:
    return start.astimezone(UTC).strftime(SEGMENT_NAME_PATTERN)


def parse_segment_name(name: str) -> datetime | None:
    """UTC start of a segment file name, None for anything else."""
    if not SEGMENT_NAME.match(name):
        return None
    try:
        return datetime.strptime(name, SEGMENT_NAME_PATTERN).replace(tzinfo=UTC)
    except ValueError:
        return None


def day_dir(camera_id: int, start: datetime) -> Path:
    return camera_dir(camera_id) / start.astimezone(UTC).strftime("%Y/%m/%d")


def archive_path(camera_id: int, start: datetime) -> Path:
    """Where an indexed segment is kept."""
    return day_dir(camera_id, start) / segment_name(start)


def canonical_location(camera_id: int, start: datetime) -> str:
    """The path of a segment's file relative to ``RECORDINGS_DIR`` when its row stores none."""
    utc = start.astimezone(UTC)
    return f"cam{camera_id}/{utc:%Y/%m/%d}/{utc.strftime(SEGMENT_NAME_PATTERN)}"


def segment_path(camera_id: int, start: datetime) -> Path:
    """The file of an indexed segment at its canonical place: archived, or still in
    ``incoming/`` for the instant between its row's commit and its move."""
    archived = archive_path(camera_id, start)
    if archived.exists():
        return archived
    waiting = camera_dir(camera_id) / INCOMING / segment_name(start)
    return waiting if waiting.exists() else archived


def segment_file(segment: Segment) -> Path:
    """Where a segment row's file is: its stored ``location``, else its canonical path."""
    if segment.location:
        return recordings_root() / segment.location
    return segment_path(segment.camera_id, segment.start)


def unlink_segments(camera_id: int, segments: Iterable[tuple[datetime, str]]) -> int:
    """Delete indexed segments' files, given each row's ``(start, location)``; returns how
    many were found. A stored location is deleted as is; an empty one is the canonical path
    (archived, or still in ``incoming/``).

    The same paths as ``segment_file``, built as strings with one day directory per day:
    retention deletes thousands of segments a second, and ``Path`` joins, existence checks
    and a second ``strftime`` per file cost more than the unlink."""
    root = str(settings.RECORDINGS_DIR)
    camera = os.path.join(root, f"cam{camera_id}")
    incoming = os.path.join(camera, INCOMING)
    days: dict[date, str] = {}
    found = 0
    for start, location in segments:
        if location:
            candidates: tuple[str, ...] = (os.path.join(root, location),)
        else:
            utc = start.astimezone(UTC)
            day = days.get(utc.date())
            if day is None:
                day = days[utc.date()] = os.path.join(camera, utc.strftime("%Y/%m/%d"))
            name = utc.strftime(SEGMENT_NAME_PATTERN)
            candidates = (f"{day}/{name}", f"{incoming}/{name}")
        for candidate in candidates:
            try:
                os.unlink(candidate)
            except FileNotFoundError:
                continue
            found += 1
            break
    return found


def delete_footage(camera_id: int, rows: Iterable[tuple[datetime, int, str]]) -> int:
    """Delete the footage of deleted segment rows, given each row's ``(start, storage,
    location)``: local files as ``unlink_segments``, objects of the S3 tier (``location`` is
    the key) with batched DeleteObjects. Returns how many local files were found plus how
    many objects were asked to go. The bucket unreachable (or not configured): logged, the
    objects stay (``check_footage`` finds them later as objects without a row)."""
    from recordings import objectstore
    from recordings.models import Segment

    local: list[tuple[datetime, str]] = []
    keys: list[str] = []
    for start, tier, location in rows:
        if tier == Segment.Storage.S3:
            if location:
                keys.append(location)
        else:
            local.append((start, location))
    found = unlink_segments(camera_id, local) if local else 0
    if keys:
        if not objectstore.enabled():
            logger.warning(
                "delete_footage: camera %s: %d objects left in the bucket: S3 is not configured",
                camera_id,
                len(keys),
            )
            return found
        try:
            objectstore.delete_keys(keys)
        except objectstore.ObjectStoreError as exc:
            logger.warning(
                "delete_footage: camera %s: %d objects left in the bucket (%s); "
                "check_footage removes them later",
                camera_id,
                len(keys),
                exc,
            )
            return found
        found += len(keys)
    return found


def camera_ids_on_disk() -> list[int]:
    root = recordings_root()
    if not root.is_dir():
        return []
    ids = (CAMERA_DIR.match(entry.name) for entry in root.iterdir() if entry.is_dir())
    return sorted(int(match.group(1)) for match in ids if match)


def day_dirs(camera_id: int) -> list[tuple[datetime, Path]]:
    """The camera's archive day directories with their UTC date, oldest first."""
    found = []
    for path in camera_dir(camera_id).glob("[0-9][0-9][0-9][0-9]/[0-9][0-9]/[0-9][0-9]"):
        try:
            day = datetime.strptime("/".join(path.parts[-3:]), "%Y/%m/%d").replace(tzinfo=UTC)
        except ValueError:
            continue
        found.append((day, path))
    return sorted(found)


def remove_empty_parents(path: Path, stop: Path) -> None:
    """Remove ``path`` and its parents up to (not including) ``stop`` while they are empty."""
    while path != stop and stop in path.parents:
        try:
            path.rmdir()
        except OSError:
            return
        path = path.parent


def unlink(path: Path) -> bool:
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def remove_camera(camera_id: int) -> None:
    """Delete everything recorded for a camera (the camera itself was deleted)."""
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(camera_dir(camera_id))


def clips_root() -> Path:
    path = Path(settings.CLIPS_DIR)
    path.mkdir(parents=True, exist_ok=True)
    return path


def clip_path(clip_id: int) -> Path:
    return clips_root() / f"clip-{clip_id}.mp4"


def free_bytes() -> int:
    root = recordings_root()
    root.mkdir(parents=True, exist_ok=True)
    return shutil.disk_usage(root).free
