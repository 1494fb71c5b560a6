"""Index closed recording segments into PostgreSQL, exactly once.

The media supervisor calls ``index_camera`` for each recorded camera every second or so,
and ``catch_up`` once at start (before it starts any FFmpeg). A segment is closed when
``segments.csv`` lists it (its duration is taken from there) or when it is not the file the
live writer has open (the newest one while ``writer_alive``); an unlisted closed segment
(FFmpeg killed or restarted: the list is truncated on every start) is measured by reading
it through FFmpeg. Empty or unreadable files are deleted.

Each file's SHA-256 is computed here, once, right after FFmpeg wrote it (read back from the
page cache) and stored with its row for the chain of custody (``recordings.custody``).

Each segment's row is committed first and the file then moved to its day directory; a
crash in between is completed on the next pass (the row already exists: only the move is
left), so there is never a row without a file and never a second row for a file.

A segment's start is the UTC second of its name, refined to the previous segment's end
when that falls within the same second (the same FFmpeg run continues): consecutive
segments then neither overlap nor leave a false gap, and ``floor(start)`` is the name.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import os
from datetime import datetime, timedelta
from pathlib import Path

from django.db import connection, transaction

from cidades.models import Camera
from gtvision import events
from recordings import media, storage
from recordings.models import Segment, segment_lookback

logger = logging.getLogger(__name__)

LIST_TAIL_BYTES = 64 * 1024
ONE_SECOND = timedelta(seconds=1)
LOCK_CLASS = 0x67747672  # pg_advisory_xact_lock(class, camera_id): "gtvr"


def read_segment_list(path: Path, *, tail_bytes: int | None = None) -> dict[str, float]:
    """``name -> duration`` from a ``segments.csv`` (only its last ``tail_bytes`` if given).

    A name listed twice (FFmpeg overwrote a file) keeps its last, surviving, entry.
    """
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            offset = max(0, size - tail_bytes) if tail_bytes else 0
            handle.seek(offset)
            data = handle.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return {}
    if offset:
        data = data.partition("\n")[2]  # the first line may be cut
    durations: dict[str, float] = {}
    for row in csv.reader(io.StringIO(data)):
        if len(row) != 3:
            continue
        try:
            durations[row[0]] = float(row[2]) - float(row[1])
        except ValueError:
            continue
    return durations


class _SegmentList:
    """The record dir's ``segments.csv``, read lazily: its tail first, all of it if needed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._tail: dict[str, float] | None = None
        self._full: dict[str, float] | None = None

    def duration(self, name: str) -> float | None:
        if self._tail is None:
            self._tail = read_segment_list(self.path, tail_bytes=LIST_TAIL_BYTES)
        if name in self._tail:
            return self._tail[name]
        if self._full is None:
            try:
                small = self.path.stat().st_size <= LIST_TAIL_BYTES
            except FileNotFoundError:
                small = True
            self._full = self._tail if small else read_segment_list(self.path)
        return self._full.get(name)


def index_camera(camera_id: int, record_dir: Path, *, writer_alive: bool) -> list[Segment]:
    """Index every closed segment in ``record_dir``; returns the segments indexed now.

    Safe to call repeatedly, concurrently and after any crash. ``writer_alive``: an FFmpeg
    is recording into ``record_dir`` right now: its newest file is left for a later call.
    """
    try:
        names = sorted(n for n in os.listdir(record_dir) if storage.SEGMENT_NAME.match(n))
    except FileNotFoundError:
        return []
    if writer_alive and names:
        names.pop()  # the file FFmpeg is writing (or, for an instant, just closed)
    if not names:
        return []
    return _index_names(camera_id, Path(record_dir), names)


def index_names(camera_id: int, names: list[str]) -> list[Segment]:
    """Index these closed files of the camera's ``incoming/`` (``check_footage``)."""
    return _index_names(camera_id, storage.camera_dir(camera_id) / storage.INCOMING, names)


def _index_names(camera_id: int, record_dir: Path, names: list[str]) -> list[Segment]:
    listing = _SegmentList(storage.segment_list(record_dir))
    prefeitura_id = (
        Camera.objects.filter(pk=camera_id).values_list("prefeitura_id", flat=True).first()
    )
    if prefeitura_id is None:
        logger.warning("recordings of unknown camera %s left in %s", camera_id, record_dir)
        return []
    indexed = []
    for name in names:
        segment = _index_file(camera_id, prefeitura_id, record_dir / name, listing)
        if segment is not None:
            indexed.append(segment)
    return indexed


def _index_file(
    camera_id: int, prefeitura_id: int, path: Path, listing: _SegmentList
) -> Segment | None:
    named = storage.parse_segment_name(path.name)
    assert named is not None
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return None  # indexed meanwhile by another caller
    duration = listing.duration(path.name)
    if duration is None and size > 0:
        duration = media.measure_duration(path)
    if not size or not duration or duration <= 0:
        logger.warning("deleting empty or unreadable recording %s (%d bytes)", path, size)
        storage.unlink(path)
        return None
    if duration > segment_lookback().total_seconds():
        logger.warning(
            "segment %s lasts %.1f s: raise RECORDING_SEGMENT_MAX_SECONDS", path, duration
        )
    target = storage.archive_path(camera_id, named)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        digest = file_sha256(path)  # just written: read back from the page cache
    except FileNotFoundError:
        return None  # indexed meanwhile by another caller
    segment, created = _create_row(camera_id, prefeitura_id, named, duration, size, digest)
    if not created and target.exists():
        logger.warning("duplicate recording %s of an indexed segment: deleted", path)
        storage.unlink(path)
        return None
    try:
        os.replace(path, target)
    except FileNotFoundError:
        pass  # moved by a concurrent caller
    return segment if created else None


def _create_row(
    camera_id: int,
    prefeitura_id: int,
    named: datetime,
    duration: float,
    size: int,
    sha256: str,
    *,
    location: str = "",
    overlap_check: bool = False,
) -> tuple[Segment | None, bool]:
    """The row of the file named ``named``: ``(existing row, False)`` or ``(new row, True)``.

    ``overlap_check``: refuse (``(None, False)``) a file whose span overlaps another
    segment of the camera (a file found on disk rather than written by the recorder)."""
    with transaction.atomic():
        with connection.cursor() as cursor:  # one indexer per camera at a time
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [LOCK_CLASS, camera_id])
        segment = _existing(camera_id, named)
        if segment is not None:
            return segment, False
        start = _start(camera_id, named)
        end = start + timedelta(seconds=duration)
        if (
            overlap_check
            and Segment.objects.filter(camera_id=camera_id).overlapping(start, end).exists()
        ):
            return None, False
        segment = Segment.objects.create(
            camera_id=camera_id,
            start=start,
            end=end,
            size_bytes=size,
            location=location,
            sha256=sha256,
        )
        events.publish(
            events.RecordingSegment(
                camera_id=camera_id,
                prefeitura_id=prefeitura_id,
                segment_id=segment.pk,
                start=segment.start.isoformat(),
                end=segment.end.isoformat(),
                duration_s=segment.duration_s,
                size_bytes=segment.size_bytes,
            )
        )
    return segment, True


def index_found_file(camera_id: int, path: Path) -> Segment | None:
    """Index a closed file found in the camera's archive that no row references (copied in
    by hand, or left by a crash): its name gives its start, FFmpeg its duration; the row
    keeps the file where it is (``location`` when that is not the canonical path). None,
    and nothing written, when the name or the media cannot be read, the camera is unknown
    or the span overlaps an indexed segment (a duplicate)."""
    named = storage.parse_segment_name(path.name)
    prefeitura_id = (
        Camera.objects.filter(pk=camera_id).values_list("prefeitura_id", flat=True).first()
    )
    if named is None or prefeitura_id is None:
        return None
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return None
    duration = media.measure_duration(path) if size else None
    if not duration or duration <= 0:
        return None
    relative = os.path.relpath(path, storage.recordings_root())
    location = "" if relative == storage.canonical_location(camera_id, named) else relative
    segment, created = _create_row(
        camera_id,
        prefeitura_id,
        named,
        duration,
        size,
        file_sha256(path),
        location=location,
        overlap_check=True,
    )
    return segment if created else None


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, read once in 1 MiB chunks (chain of custody: ``Segment.sha256``)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def _existing(camera_id: int, named: datetime) -> Segment | None:
    """The row of the file named ``named`` (its start lies within that second)."""
    return Segment.objects.filter(
        camera_id=camera_id, start__gte=named, start__lt=named + ONE_SECOND
    ).first()


def _start(camera_id: int, named: datetime) -> datetime:
    """Wall-clock start of a segment named ``named`` (the UTC second in which it opened).

    When the camera's previous segment ends within that second, this one continues it
    (same FFmpeg run): it starts where that one ended, not up to a second earlier. Either
    way the start truncates to the file name.
    """
    previous = (
        Segment.objects.filter(
            camera_id=camera_id, start__lt=named, start__gte=named - segment_lookback()
        )
        .order_by("-start")
        .first()
    )
    if previous is not None and named < previous.end < named + ONE_SECOND:
        return previous.end
    return named


def catch_up(*, writers_alive: bool = False) -> list[Segment]:
    """Index every camera's waiting segments (supervisor start, after an indexer crash).

    Pass ``writers_alive=True`` while FFmpeg may still be recording (each camera's newest
    file is then left for ``index_camera``).
    """
    indexed: list[Segment] = []
    for camera_id in storage.camera_ids_on_disk():
        directory = storage.camera_dir(camera_id) / storage.INCOMING
        indexed += index_camera(camera_id, directory, writer_alive=writers_alive)
    return indexed
