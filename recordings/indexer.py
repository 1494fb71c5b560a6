"""Index closed recording segments into PostgreSQL, exactly once.

The media supervisor calls ``index_cameras`` for all its recorded cameras every second or so
(one batch: a fixed handful of queries and one transaction for every segment closed since
the last pass, none when nothing closed), and ``catch_up`` once at start (before it starts
any FFmpeg). A segment is closed when
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

import bisect
import csv
import hashlib
import io
import logging
import mmap
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from django.db import connection, transaction

from cidades.models import Camera
from gtvision import events
from recordings import media, storage
from recordings.models import Segment, segment_lookback

logger = logging.getLogger(__name__)

LIST_TAIL_BYTES = 64 * 1024
RECENT_TAIL_BYTES = 2048  # ~50 lines of segments.csv
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
    """The record dir's ``segments.csv``, read lazily: its last lines first (what just
    closed), then a longer tail, all of it if needed. The list grows by a line a segment for
    as long as FFmpeg runs (8,640 lines a day): parsing its 64 kB tail for every segment
    would cost more than the rest of the indexing."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._recent: dict[str, float] | None = None
        self._tail: dict[str, float] | None = None
        self._full: dict[str, float] | None = None

    def duration(self, name: str) -> float | None:
        if self._recent is None:
            self._recent = read_segment_list(self.path, tail_bytes=RECENT_TAIL_BYTES)
        if name in self._recent:
            return self._recent[name]
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
    return index_cameras({camera_id: (Path(record_dir), writer_alive)})


def index_cameras(cameras: Mapping[int, tuple[Path, bool]]) -> list[Segment]:
    """``index_camera`` for several cameras at once (``camera_id -> (record_dir,
    writer_alive)``): one transaction and a fixed handful of queries for all their closed
    segments (the supervisor's pass), none when no segment closed."""
    pending: dict[int, tuple[Path, list[str]]] = {}
    for camera_id, (record_dir, writer_alive) in cameras.items():
        try:
            names = sorted(n for n in os.listdir(record_dir) if storage.SEGMENT_NAME.match(n))
        except FileNotFoundError:
            continue
        if writer_alive and names:
            names.pop()  # the file FFmpeg is writing (or, for an instant, just closed)
        if names:
            pending[camera_id] = (Path(record_dir), names)
    if not pending:
        return []
    return _index_batch(pending)


def index_names(camera_id: int, names: list[str]) -> list[Segment]:
    """Index these closed files of the camera's ``incoming/`` (``check_footage``)."""
    record_dir = storage.camera_dir(camera_id) / storage.INCOMING
    return _index_batch({camera_id: (record_dir, sorted(names))})


@dataclass
class _Closed:
    """A closed segment file waiting for its row."""

    camera_id: int
    path: Path
    named: datetime
    duration: float
    size: int
    sha256: str
    segment: Segment | None = None
    created: bool = False


def _index_batch(pending: Mapping[int, tuple[Path, list[str]]]) -> list[Segment]:
    prefeituras = dict(
        Camera.objects.filter(pk__in=list(pending)).values_list("pk", "prefeitura_id")
    )
    files: list[_Closed] = []
    for camera_id, (record_dir, names) in pending.items():
        if camera_id not in prefeituras:
            logger.warning("recordings of unknown camera %s left in %s", camera_id, record_dir)
            continue
        listing = _SegmentList(storage.segment_list(record_dir))
        for name in names:
            closed = _measure(camera_id, record_dir / name, listing)
            if closed is not None:
                files.append(closed)
    if not files:
        return []
    _create_rows(files, prefeituras)
    indexed = []
    made: set[Path] = set()
    for closed in files:  # each row is committed: now its file goes to its day directory
        target = storage.archive_path(closed.camera_id, closed.named)
        if not closed.created and target.exists():
            logger.warning("duplicate recording %s of an indexed segment: deleted", closed.path)
            storage.unlink(closed.path)
            continue
        if target.parent not in made:
            target.parent.mkdir(parents=True, exist_ok=True)
            made.add(target.parent)
        try:
            os.replace(closed.path, target)
        except FileNotFoundError:
            pass  # moved by a concurrent caller
        if closed.created:
            indexed.append(closed.segment)
    return indexed


def _measure(camera_id: int, path: Path, listing: _SegmentList) -> _Closed | None:
    """Size, duration and SHA-256 of a closed file; None (and an empty or unreadable file
    deleted) when there is nothing to index."""
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
    try:
        digest = file_sha256(path)  # just written: read back from the page cache
    except FileNotFoundError:
        return None  # indexed meanwhile by another caller
    return _Closed(camera_id, path, named, duration, size, digest)


_AROUND_SQL = """
SELECT t.camera_id, s.start, s."end"
FROM unnest(%(cameras)s::bigint[], %(lows)s::timestamptz[], %(highs)s::timestamptz[])
    AS t(camera_id, low, high)
CROSS JOIN LATERAL (
    (SELECT start, "end" FROM {table}
     WHERE camera_id = t.camera_id AND start < t.low AND start >= t.low - %(lookback)s
       AND start >= %(first)s AND start < %(last)s
     ORDER BY start DESC LIMIT 1)
    UNION ALL
    (SELECT start, "end" FROM {table}
     WHERE camera_id = t.camera_id AND start >= t.low AND start < t.high
       AND start >= %(first)s AND start < %(last)s)
) AS s
"""


def _rows_around(by_camera: Mapping[int, list[_Closed]]) -> dict[int, list[tuple]]:
    """Per camera, sorted ``(start, end)`` of its rows among the files' seconds and the one
    row before them (within the lookback): one query, tuples rather than model instances."""
    cameras = list(by_camera)
    params = {
        "cameras": cameras,
        "lows": [by_camera[c][0].named for c in cameras],
        "highs": [by_camera[c][-1].named + ONE_SECOND for c in cameras],
        "lookback": segment_lookback(),
    }
    # the same bounds as constants: the planner prunes the table's partitions (by start)
    params["first"] = min(params["lows"]) - params["lookback"]
    params["last"] = max(params["highs"])
    known: dict[int, list[tuple]] = {camera_id: [] for camera_id in cameras}
    with connection.cursor() as cursor:
        cursor.execute(_AROUND_SQL.format(table=Segment._meta.db_table), params)
        for camera_id, start, end in cursor.fetchall():
            known[camera_id].append((start, end))
    for rows in known.values():
        rows.sort()
    return known


def _create_rows(files: list[_Closed], prefeituras: Mapping[int, int]) -> None:
    """Find or insert the row of each file (sets ``created``, and ``segment`` for a new
    row), in one transaction: the cameras' advisory locks, one query for the rows around
    the files, one INSERT for the new rows; their events are sent after the commit."""
    by_camera: dict[int, list[_Closed]] = {}
    for closed in sorted(files, key=lambda f: (f.camera_id, f.named)):
        by_camera.setdefault(closed.camera_id, []).append(closed)
    lookback = segment_lookback()
    with transaction.atomic():
        with connection.cursor() as cursor:  # one indexer per camera at a time
            cursor.execute(
                "SELECT pg_advisory_xact_lock(%s, id) FROM unnest(%s::int[]) AS t(id)",
                [LOCK_CLASS, sorted(by_camera)],  # always in this order: no deadlock
            )
        known = _rows_around(by_camera)
        new: list[Segment] = []
        for camera_id, closed in by_camera.items():
            rows = known[camera_id]  # (start, end), sorted; new rows are inserted in order
            for item in closed:
                index = bisect.bisect_left(rows, (item.named,))
                if index < len(rows) and rows[index][0] < item.named + ONE_SECOND:
                    continue  # indexed already: only the move is left
                start = item.named
                # The previous segment ends within this file's second: the same FFmpeg run
                # continues it (see the module's docstring).
                if index:
                    previous_start, previous_end = rows[index - 1]
                    if (
                        previous_start >= item.named - lookback
                        and item.named < previous_end < item.named + ONE_SECOND
                    ):
                        start = previous_end
                end = start + timedelta(seconds=item.duration)
                item.segment = Segment(
                    camera_id=camera_id,
                    start=start,
                    end=end,
                    size_bytes=item.size,
                    sha256=item.sha256,
                )
                item.created = True
                rows.insert(index, (start, end))
                new.append(item.segment)
        Segment.objects.bulk_create(new)
        events.publish_all(
            [
                events.RecordingSegment(
                    camera_id=segment.camera_id,
                    prefeitura_id=prefeituras[segment.camera_id],
                    segment_id=segment.pk,
                    start=segment.start.isoformat(),
                    end=segment.end.isoformat(),
                    duration_s=segment.duration_s,
                    size_bytes=segment.size_bytes,
                )
                for segment in new
            ]
        )


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
    """SHA-256 of a file (chain of custody: ``Segment.sha256``), hashed straight from the
    page cache through a read-only mapping: no copy into Python (half the CPU of reads)."""
    with path.open("rb") as handle:
        if os.fstat(handle.fileno()).st_size == 0:
            return hashlib.sha256().hexdigest()
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            return hashlib.sha256(mapped).hexdigest()


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
