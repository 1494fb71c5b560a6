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
from recordings import indexer, services, storage
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


@dataclass
class CameraReport:
    camera_id: int
    missing: list[tuple[int, str]] = field(default_factory=list)  # (row id, location)
    orphans: list[str] = field(default_factory=list)  # locations (relative paths)
    dropped: int = 0  # missing rows deleted
    indexed: list[str] = field(default_factory=list)  # orphans that became rows
    removed: list[str] = field(default_factory=list)  # orphans deleted

    @property
    def clean(self) -> bool:
        return not (self.missing or self.orphans)

    def lines(self) -> list[str]:
        out = [f"camera {self.camera_id}: row {pk} has no file {loc}" for pk, loc in self.missing]
        out += [f"camera {self.camera_id}: file {loc} has no row" for loc in self.orphans]
        out += [f"camera {self.camera_id}: indexed {loc}" for loc in self.indexed]
        out += [f"camera {self.camera_id}: removed {loc}" for loc in self.removed]
        if self.dropped:
            out.append(f"camera {self.camera_id}: {self.dropped} rows without a file dropped")
        return out


def check(*, repair: bool = False) -> list[CameraReport]:
    """Reports of the cameras whose footage disagrees (all of them clean: ``[]``)."""
    camera_ids = set(Camera.objects.values_list("pk", flat=True))  # rows die with their camera
    reports = []
    for camera_id in sorted(camera_ids | set(storage.camera_ids_on_disk())):
        report = check_camera(camera_id, known=camera_id in camera_ids, repair=repair)
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


def check_camera(camera_id: int, *, known: bool, repair: bool) -> CameraReport:
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
    if repair:
        _drop_missing(report)
        _adopt_orphans(report, archived - referenced, waiting, known=known)
        _remove_empty_dirs(camera_id, known=known)
    return report


def _drop_missing(report: CameraReport) -> None:
    gone = [pk for pk, location in report.missing if not _exists(report.camera_id, location)]
    if gone:
        with transaction.atomic():
            report.dropped, _ = Segment.objects.filter(pk__in=gone).delete()


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
