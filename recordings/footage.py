"""Files on disk = rows: find (and repair) footage whose row and file disagree.

``check`` compares, camera by camera, the files under ``RECORDINGS_DIR/cam<id>/`` with the
segment rows that say where their file is (``Segment.location``, or the canonical path):

- a row whose file is gone is *missing*; repair deletes the row;
- a closed file no row references is an *orphan*; repair indexes it when its name gives a
  start and FFmpeg reads a duration from it (without overlapping an indexed segment), and
  deletes it otherwise. Orphans waiting in ``incoming/`` go through the indexer itself.

Exported clips too (``CLIPS_DIR``): a DONE clip whose file is gone becomes FAILED (its row
stays: its creation is audited); a clip file (or an export's leftover) of no clip, or of a
clip not DONE and no longer exporting, is deleted.

The object store tier too (``recordings.objectstore``, when configured), camera by camera under
``S3_PREFIX``: a row on S3 whose object is gone is *missing* (repair deletes the row); an object
no row references (nor would: a LOCAL row's key, left by a tiering run that crashed before its
switch, is overwritten by the next run) is an *orphan object* (repair deletes it, once older
than the grace period);
a local file left behind by a segment already moved to S3 (a crash between the switch and the
file's deletion) is a *stale copy* (repair deletes it). The bucket unreachable: the S3 part is
skipped with a warning, the local part goes on.

Never touched: any file modified in the last ``FOOTAGE_CHECK_GRACE_S`` seconds (a file being
written or copied), the newest file of ``incoming/`` unless it is older than a whole segment
(``RECORDING_SEGMENT_MAX_SECONDS``: the segment FFmpeg has open), ``segments.csv``, and rows
of another storage tier. Safe to run while recording, indexing and retention run: the disk is
listed before the rows are read (a file reaches the archive only after its row commits), and
every file is looked up again (``incoming/`` first, where the indexer moves it from) before
its row is deleted.
"""

from __future__ import annotations

import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction
from django.utils.translation import gettext as _

from cidades.models import Camera
from recordings import indexer, objectstore, services, storage
from recordings.models import Clip, Segment

logger = logging.getLogger(__name__)

# The row's file relative to RECORDINGS_DIR, its canonical path built in SQL (strings load in
# C; a time-zone-aware timestamp costs ~10 us in Django's loader, and a camera has 260 k rows
# a month).
_ROWS_SQL = f"""
SELECT id, CASE WHEN location <> '' THEN location ELSE
    'cam' || camera_id || '/' ||
    to_char(start AT TIME ZONE 'UTC', 'YYYY/MM/DD/YYYYMMDD"T"HH24MISS"Z.ts"') END
FROM {Segment._meta.db_table}
WHERE camera_id = %s AND storage = {Segment.Storage.LOCAL}
"""  # noqa: S608 - table name from the model, values are parameters
_S3_ROWS_SQL = f"""
SELECT id, location FROM {Segment._meta.db_table}
WHERE camera_id = %s AND storage = {Segment.Storage.S3}
"""  # noqa: S608
_S3_KEYS_SQL = f"""
SELECT location FROM {Segment._meta.db_table}
WHERE camera_id = %s AND storage = {Segment.Storage.S3} AND location = ANY(%s)
"""  # noqa: S608


@dataclass
class CameraReport:
    camera_id: int
    missing: list[tuple[int, str]] = field(default_factory=list)  # (row id, location)
    orphans: list[str] = field(default_factory=list)  # locations (relative paths)
    dropped: int = 0  # missing rows deleted
    indexed: list[str] = field(default_factory=list)  # orphans that became rows
    removed: list[str] = field(default_factory=list)  # orphans deleted
    # the object store tier
    missing_objects: list[tuple[int, str]] = field(default_factory=list)  # (row id, key)
    orphan_objects: list[str] = field(default_factory=list)  # keys no row references
    stale_copies: list[str] = field(default_factory=list)  # local files of S3 rows
    removed_objects: list[str] = field(default_factory=list)
    objects_unchecked: str = ""  # why the S3 part was skipped (bucket unreachable)

    @property
    def clean(self) -> bool:
        return not (
            self.missing
            or self.orphans
            or self.missing_objects
            or self.orphan_objects
            or self.stale_copies
        )

    def lines(self) -> list[str]:
        out = [f"camera {self.camera_id}: row {pk} has no file {loc}" for pk, loc in self.missing]
        out += [f"camera {self.camera_id}: file {loc} has no row" for loc in self.orphans]
        out += [
            f"camera {self.camera_id}: row {pk} has no object {key}"
            for pk, key in self.missing_objects
        ]
        out += [f"camera {self.camera_id}: object {key} has no row" for key in self.orphan_objects]
        out += [
            f"camera {self.camera_id}: file {loc} is a stale copy of a segment on object storage"
            for loc in self.stale_copies
        ]
        out += [f"camera {self.camera_id}: removed object {key}" for key in self.removed_objects]
        out += [f"camera {self.camera_id}: indexed {loc}" for loc in self.indexed]
        out += [f"camera {self.camera_id}: removed {loc}" for loc in self.removed]
        if self.dropped:
            out.append(f"camera {self.camera_id}: {self.dropped} rows without a file dropped")
        return out


def check(*, repair: bool = False) -> list[CameraReport]:
    """Reports of the cameras whose footage disagrees (all of them clean: ``[]``)."""
    camera_ids = set(Camera.objects.values_list("pk", flat=True))  # rows die with their camera
    reports = []
    in_bucket = _camera_ids_in_bucket()  # None: no object storage, or unreachable
    for camera_id in sorted(camera_ids | set(storage.camera_ids_on_disk()) | (in_bucket or set())):
        report = check_camera(
            camera_id, known=camera_id in camera_ids, repair=repair, objects=in_bucket is not None
        )
        if not report.clean:
            reports.append(report)
            for line in report.lines():
                logger.warning("check_footage: %s", line)
    return reports


CLIP_FILE = re.compile(r"^clip-(\d{1,18})\.mp4(\.part|\.ffconcat)?$")


@dataclass
class ClipReport:
    missing: list[int] = field(default_factory=list)  # DONE clips without their file
    orphans: list[str] = field(default_factory=list)  # file names under CLIPS_DIR

    @property
    def clean(self) -> bool:
        return not (self.missing or self.orphans)

    def lines(self) -> list[str]:
        out = [f"clip {pk}: no file" for pk in self.missing]
        return out + [f"clips: file {name} has no clip" for name in self.orphans]


def check_clips(*, repair: bool = False) -> ClipReport:
    """Clip files against clip rows (the same rules as the footage's)."""
    report = ClipReport()
    root = Path(settings.CLIPS_DIR)
    now = time.time()
    files: dict[str, int | None] = {}
    if root.is_dir():
        for entry in os.scandir(root):
            try:
                if not entry.is_file() or _untouchable(entry.stat().st_mtime, now):
                    continue
            except FileNotFoundError:
                continue
            match = CLIP_FILE.match(entry.name)
            files[entry.name] = int(match.group(1)) if match else None
    ids = {pk for pk in files.values() if pk is not None}
    status = dict(Clip.objects.filter(pk__in=ids).values_list("pk", "status"))
    for name, pk in sorted(files.items()):
        temporary = not name.endswith(".mp4")
        wanted = Clip.Status.RUNNING if temporary else Clip.Status.DONE
        if pk is None or status.get(pk) not in {wanted, Clip.Status.RUNNING}:
            report.orphans.append(name)
    done = Clip.objects.filter(status=Clip.Status.DONE).values_list("pk", flat=True)
    report.missing = [pk for pk in done if not storage.clip_path(pk).exists()]
    if repair:
        for name in report.orphans:
            storage.unlink(root / name)
        for clip in Clip.objects.select_related("camera").filter(pk__in=report.missing):
            if not storage.clip_path(clip.pk).exists():
                services.fail_clip(clip, _("The exported file was lost."))
    for line in report.lines():
        logger.warning("check_footage: %s", line)
    return report


def _untouchable(mtime: float, now: float) -> bool:
    return now - mtime < settings.FOOTAGE_CHECK_GRACE_S


def _list_files(camera_id: int) -> tuple[set[str], list[Path]]:
    """(closed archive files as locations, closed segment files waiting in ``incoming/``)."""
    root = storage.recordings_root()
    camera = storage.camera_dir(camera_id)
    incoming = camera / storage.INCOMING
    now = time.time()
    archived: set[str] = set()
    for directory, dirs, files in os.walk(camera):
        if Path(directory) == camera and storage.INCOMING in dirs:
            dirs.remove(storage.INCOMING)
        for name in files:
            path = os.path.join(directory, name)
            try:
                if _untouchable(os.stat(path).st_mtime, now):
                    continue
            except FileNotFoundError:
                continue
            archived.add(os.path.relpath(path, root))
    waiting = []
    try:
        entries = sorted(
            (entry.name, entry.stat().st_mtime)
            for entry in os.scandir(incoming)
            if storage.SEGMENT_NAME.match(entry.name)
        )
    except FileNotFoundError:
        entries = []
    open_after = now - max(settings.FOOTAGE_CHECK_GRACE_S, settings.RECORDING_SEGMENT_MAX_SECONDS)
    for index, (name, mtime) in enumerate(entries):
        newest = index == len(entries) - 1
        if _untouchable(mtime, now) or (newest and mtime > open_after):
            continue  # being written (the newest one: FFmpeg's open segment)
        waiting.append(incoming / name)
    return archived, waiting


def _exists(camera_id: int, location: str) -> bool:
    """The file is there, or (canonical path) still waiting in ``incoming/`` for its move:
    looked up there first, since the indexer moves it from there to the archive."""
    name = os.path.basename(location)
    waiting = storage.camera_dir(camera_id) / storage.INCOMING / name
    if location == _canonical_of(camera_id, name) and waiting.exists():
        return True
    return (storage.recordings_root() / location).exists()


def _canonical_of(camera_id: int, name: str) -> str | None:
    start = storage.parse_segment_name(name)
    return storage.canonical_location(camera_id, start) if start else None


def check_camera(
    camera_id: int, *, known: bool, repair: bool, objects: bool = True
) -> CameraReport:
    """One camera's footage on disk (and, with ``objects`` and object storage configured, in
    the bucket) against its rows."""
    report = CameraReport(camera_id)
    archived, waiting = _list_files(camera_id)  # before the rows: see the module docstring
    with connection.cursor() as cursor:
        cursor.execute(_ROWS_SQL, [camera_id])
        rows = cursor.fetchall()
    referenced = {location for _, location in rows}
    report.missing = [
        (pk, location)
        for pk, location in rows
        if location not in archived and not _exists(camera_id, location)
    ]
    report.orphans = sorted(archived - referenced)
    report.orphans += [os.path.relpath(p, storage.recordings_root()) for p in waiting]
    stale = _stale_copies(camera_id, sorted(archived - referenced))
    report.stale_copies = sorted(stale)
    report.orphans = [location for location in report.orphans if location not in stale]
    if repair:
        _drop_missing(report)
        for location in report.stale_copies:
            if storage.unlink(storage.recordings_root() / location):
                report.removed.append(location)
        _adopt_orphans(report, archived - referenced - stale, waiting, known=known)
        _remove_empty_dirs(camera_id, known=known)
    if objects and objectstore.enabled():
        _check_objects(report, repair=repair)
    return report


def _stale_copies(camera_id: int, locations: list[str]) -> set[str]:
    """Of these files no LOCAL row references, the ones whose segment is on object storage
    (its row's key is the file's relative path under ``S3_PREFIX``)."""
    if not locations:
        return set()
    prefix = objectstore.prefix()
    keys = {location: prefix + location for location in locations}
    with connection.cursor() as cursor:
        cursor.execute(_S3_KEYS_SQL, [camera_id, [*keys.values(), *locations]])
        tiered = {key for (key,) in cursor.fetchall()}
    return {location for location, key in keys.items() if key in tiered or location in tiered}


def _camera_ids_in_bucket() -> set[int] | None:
    """Cameras with objects in the bucket (under ``S3_PREFIX``); None when object storage is
    not configured or unreachable (logged once: the S3 part of the check is skipped)."""
    if not objectstore.enabled():
        return None
    prefix = objectstore.prefix()
    try:
        found = set()
        for directory in objectstore.iter_prefixes(prefix):
            match = storage.CAMERA_DIR.match(directory[len(prefix) :].rstrip("/"))
            if match:
                found.add(int(match.group(1)))
        return found
    except objectstore.ObjectStoreError as exc:
        logger.warning("check_footage: object storage not checked: %s", exc)
        return None


def _check_objects(report: CameraReport, *, repair: bool) -> None:
    """The camera's objects against its S3 rows (objects listed before the rows are read: an
    object reaches a row only after its upload; every finding is checked again before a
    repair)."""
    camera_id = report.camera_id
    now = time.time()
    try:
        objects = {
            key: modified.timestamp()
            for key, _size, modified in objectstore.iter_objects(
                objectstore.camera_prefix(camera_id)
            )
        }
        with connection.cursor() as cursor:
            cursor.execute(_S3_ROWS_SQL, [camera_id])
            rows = cursor.fetchall()
        keys = {key for _, key in rows}
        report.missing_objects = [
            (pk, key) for pk, key in rows if key not in objects and objectstore.head(key) is None
        ]
        unreferenced = [
            key
            for key, modified in objects.items()
            if key not in keys and now - modified >= settings.FOOTAGE_CHECK_GRACE_S
        ]
        pending = _pending_uploads(camera_id, unreferenced)  # a LOCAL row's, not an orphan
        report.orphan_objects = sorted(key for key in unreferenced if key not in pending)
        if repair:
            _drop_missing_objects(report)
            _delete_orphan_objects(report)
    except objectstore.ObjectStoreError as exc:
        report.objects_unchecked = str(exc)
        logger.warning("check_footage: camera %s: object storage not checked: %s", camera_id, exc)


def _drop_missing_objects(report: CameraReport) -> None:
    gone = [pk for pk, key in report.missing_objects if objectstore.head(key) is None]
    if gone:
        with transaction.atomic():
            dropped, _ = Segment.objects.filter(pk__in=gone, storage=Segment.Storage.S3).delete()
        report.dropped += dropped


def _delete_orphan_objects(report: CameraReport) -> None:
    """Delete the orphan objects still referenced by no row, looked up again: an upload may
    have been switched to since. An object a LOCAL row would be uploaded to (left by a run that
    crashed before its switch) stays: tiering may be uploading it again right now, and deleting
    it between its verification and its switch would lose the segment; tiering overwrites it."""
    if not report.orphan_objects:
        return
    with connection.cursor() as cursor:
        cursor.execute(_S3_KEYS_SQL, [report.camera_id, report.orphan_objects])
        referenced = {key for (key,) in cursor.fetchall()}
    referenced |= _pending_uploads(report.camera_id, report.orphan_objects)
    doomed = [key for key in report.orphan_objects if key not in referenced]
    if doomed:
        objectstore.delete_keys(doomed)
        report.removed_objects += doomed


_LOCAL_AT_SQL = f"""
SELECT location FROM {Segment._meta.db_table}
WHERE camera_id = %s AND storage = {Segment.Storage.LOCAL} AND location = ANY(%s)
"""  # noqa: S608
# LOCAL rows at a canonical path: the file is named after the UTC second the segment began in.
_LOCAL_CANONICAL_SQL = f"""
SELECT DISTINCT c.second FROM unnest(%s::timestamptz[]) AS c(second)
JOIN {Segment._meta.db_table} AS s ON s.camera_id = %s AND s.start >= c.second
    AND s.start < c.second + interval '1 second'
    AND s.storage = {Segment.Storage.LOCAL} AND s.location = ''
"""  # noqa: S608


def _pending_uploads(camera_id: int, keys: list[str]) -> set[str]:
    """Of these keys, the ones a LOCAL row of the camera would be uploaded to."""
    prefix = objectstore.prefix()
    relative = {key: key[len(prefix) :] for key in keys if key.startswith(prefix)}
    if not relative:
        return set()
    with connection.cursor() as cursor:
        cursor.execute(_LOCAL_AT_SQL, [camera_id, list(relative.values())])
        at = {location for (location,) in cursor.fetchall()}
        seconds = {}
        for key, location in relative.items():
            start = storage.parse_segment_name(os.path.basename(location))
            if start and location == storage.canonical_location(camera_id, start):
                seconds[key] = start
        found: set = set()
        if seconds:
            cursor.execute(_LOCAL_CANONICAL_SQL, [sorted(set(seconds.values())), camera_id])
            found = {second for (second,) in cursor.fetchall()}
    return {key for key, location in relative.items() if location in at} | {
        key for key, second in seconds.items() if second in found
    }


def _drop_missing(report: CameraReport) -> None:
    gone = [pk for pk, location in report.missing if not _exists(report.camera_id, location)]
    if gone:
        with transaction.atomic():
            dropped, _ = Segment.objects.filter(pk__in=gone, storage=Segment.Storage.LOCAL).delete()
        report.dropped += dropped


def _adopt_orphans(report: CameraReport, archived: set[str], waiting: list[Path], *, known: bool):
    """Index what can be indexed, delete the rest. Files waiting in ``incoming/`` go through
    the indexer (which deletes unreadable ones and moves the others to the archive)."""
    root = storage.recordings_root()
    camera_id = report.camera_id
    if known and waiting:
        segments = indexer.index_names(camera_id, [path.name for path in waiting])
        done = {storage.segment_name(segment.start) for segment in segments}
        for path in waiting:
            if path.name in done:
                report.indexed.append(os.path.relpath(path, root))
            elif not path.exists():
                report.removed.append(os.path.relpath(path, root))
        waiting = []
    for location in sorted(archived) + [os.path.relpath(p, root) for p in waiting]:
        path = root / location
        if known and indexer.index_found_file(camera_id, path) is not None:
            report.indexed.append(location)
        elif storage.unlink(path):
            report.removed.append(location)


def _remove_empty_dirs(camera_id: int, *, known: bool) -> None:
    """Empty directories go (not one made in the grace period, nor ``incoming/``); so does
    an unknown camera's emptied directory."""
    camera = storage.camera_dir(camera_id)
    now = time.time()
    for directory, _dirs, _files in os.walk(camera, topdown=False):
        path = Path(directory)
        if path == camera or (path.name == storage.INCOMING and known):
            continue
        try:
            if _untouchable(path.stat().st_mtime, now):
                continue  # just made, e.g. by the indexer about to move a file into it
        except FileNotFoundError:
            continue
        storage.remove_empty_parents(path, camera)
    if not known:
        storage.remove_empty_parents(camera, storage.recordings_root())
