"""Retention: drop footage older than each prefeitura's plan, and the oldest footage first
when free disk falls under ``RETENTION_DISK_FLOOR_BYTES`` (expired clips go first there;
clips before their expiry are never deleted to make room: they are exports someone asked for).

Rows are deleted (and committed) before their files, so a crash leaves at worst an orphan
file, never a row without a file; orphans in day directories past the cutoff are swept.

The segment index is partitioned by day (``recordings.partitions``): a day whose every row is
past its camera's cutoff, none under an evidence lock, is detached from the index at once
and its files deleted, then the detached table is dropped (``_drop_expired_days``); the rest
(the day the cutoff is in, days mixing prefeituras with different plans, locked footage) is
deleted row by row, exactly as before. See docs/scaling-index.md.
Recording never stops for this: only indexed (closed) segments are ever purged, and the
disk floor spares the last ``RETENTION_DISK_FLOOR_KEEP_S`` seconds of footage.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from admin_ctx import audit
from cidades.models import Camera
from recordings import partitions, queries, services, storage
from recordings.evidence import LOCKED_SEGMENT_SQL
from recordings.models import Segment, segment_lookback

logger = logging.getLogger(__name__)
KEPT_BY_LOCK = "evidence_lock"


@dataclass
class Purge:
    """What one purge removed from one camera (reason ``evidence_lock``: what a lock kept)."""

    reason: str  # "retention", "disk_floor" or KEPT_BY_LOCK
    camera_id: int
    segments: int = 0
    size_bytes: int = 0
    first_start: datetime | None = None
    last_end: datetime | None = None

    def add(self, start: datetime, end: datetime, size_bytes: int, segments: int = 1) -> None:
        self.segments += segments
        self.size_bytes += size_bytes
        if self.first_start is None or start < self.first_start:
            self.first_start = start
        if self.last_end is None or end > self.last_end:
            self.last_end = end

    def __str__(self) -> str:
        return (
            f"{self.reason}: camera {self.camera_id}: {self.segments} segments, "
            f"{self.size_bytes} bytes, {self.first_start:%Y-%m-%dT%H:%M:%SZ} .. "
            f"{self.last_end:%Y-%m-%dT%H:%M:%SZ}"
        )


def _delete(segments: list[Segment]) -> None:
    """Delete the rows (committed), then their files (where each row says it is)."""
    with transaction.atomic():
        Segment.objects.filter(pk__in=[s.pk for s in segments]).delete()
    for camera_id in {segment.camera_id for segment in segments}:
        mine = [(s.start, s.storage, s.location) for s in segments if s.camera_id == camera_id]
        storage.delete_footage(camera_id, mine)


# Rows are deleted a time window at a time across all the cameras with the same cutoff, as a
# recorder wrote them: at city scale a camera's day is spread over the whole day's heap pages,
# so camera-by-camera batches rewrote every page once per camera (docs/benchmarks.md, fix 9).
# Rows come back as integers: psycopg loads those in C, while a time-zone-aware timestamp costs
# ~10 us in Django's loader.
WINDOW = timedelta(minutes=10)
# Segments under an active evidence lock are skipped (recordings.evidence).
_OLDEST = f"""
    SELECT min(first.start) FROM unnest(%(cameras)s::bigint[]) AS camera(id), LATERAL (
        SELECT start FROM recordings_segment AS s
        WHERE camera_id = camera.id AND start >= %(since)s AND start < %(cutoff)s
          AND "end" <= %(cutoff)s AND NOT {LOCKED_SEGMENT_SQL}
        ORDER BY start LIMIT 1
    ) AS first
"""  # noqa: S608 - constant SQL, values are parameters
_PURGE_WINDOW = f"""
    DELETE FROM recordings_segment AS s
    WHERE camera_id = ANY(%(cameras)s) AND start >= %(since)s AND start < %(until)s
      AND "end" <= %(cutoff)s AND NOT {LOCKED_SEGMENT_SQL}
    RETURNING camera_id, (EXTRACT(EPOCH FROM start) * 1000000)::bigint,
              (EXTRACT(EPOCH FROM "end") * 1000000)::bigint, size_bytes, storage, location
"""  # noqa: S608
_LOCKED = f"""
    SELECT camera_id, count(*), coalesce(sum(size_bytes), 0), min(start), max("end")
    FROM recordings_segment AS s
    WHERE camera_id = ANY(%(cameras)s) AND start < %(cutoff)s AND "end" <= %(cutoff)s
      AND {LOCKED_SEGMENT_SQL}
    GROUP BY camera_id
"""  # noqa: S608
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _purge_window(
    camera_ids: list[int],
    cutoff: datetime,
    since: datetime,
    purges: dict[int, Purge],
    now: datetime,
) -> datetime | None:
    """Delete (and commit) these cameras' oldest ``WINDOW`` of unlocked footage from ``since``
    that ended before ``cutoff``, then its files. Returns where the next window starts (each
    search begins there, not over the index entries of the rows just deleted), None when
    nothing is left."""
    params = {"cameras": camera_ids, "since": since, "cutoff": cutoff, "now": now}
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_OLDEST, params)
        (oldest,) = cursor.fetchone()
        if oldest is None:
            return None
        cursor.execute(_PURGE_WINDOW, {**params, "since": oldest, "until": oldest + WINDOW})
        rows = cursor.fetchall()
    by_camera: dict[int, list[tuple[int, int, int, int, str]]] = {}
    for camera_id, *segment in rows:
        by_camera.setdefault(camera_id, []).append(segment)
    for camera_id, segments in by_camera.items():
        files = [
            (_EPOCH + timedelta(microseconds=start), tier, location)
            for start, _, _, tier, location in segments
        ]
        last_end = _EPOCH + timedelta(microseconds=max(segment[1] for segment in segments))
        first_start = min(start for start, _, _ in files)
        purge = purges.setdefault(camera_id, Purge("retention", camera_id))
        purge.add(first_start, last_end, sum(segment[2] for segment in segments), len(segments))
        storage.delete_footage(camera_id, files)
    return oldest + WINDOW


def _log(purges: list[Purge]) -> None:
    for purge in purges:
        logger.info("%s %s", "kept" if purge.reason == KEPT_BY_LOCK else "purged", purge)


def purge_expired(now: datetime | None = None) -> list[Purge]:
    """Delete every camera's segments that ended before its prefeitura's retention cutoff."""
    now = now or timezone.now()
    cameras: dict[datetime, list[int]] = {}
    for camera in Camera.objects.select_related("prefeitura").only("id", "prefeitura__plan"):
        cutoff = now - timedelta(days=camera.prefeitura.retention_days)
        cameras.setdefault(cutoff, []).append(camera.pk)
    purges: dict[int, Purge] = {}
    kept: list[Purge] = []
    _drop_expired_days(cameras, purges, now)
    for cutoff, camera_ids in cameras.items():
        since: datetime | None = _EPOCH
        while since is not None:
            since = _purge_window(camera_ids, cutoff, since, purges, now)
        kept += _locked_past(camera_ids, cutoff, now)
        for camera_id in camera_ids:
            _sweep_days(camera_id, cutoff)
    result = [purges[camera_id] for camera_id in sorted(purges)]
    result += sorted(kept, key=lambda purge: purge.camera_id)
    _log(result)
    return result


# -- whole days: detach the partition, delete its files, drop it ------------------------------

# Rows of these cameras in the partition that end after their cutoff. Rows end at most
# ``segment_lookback()`` after they start (the bound every overlap query relies on), so only
# the tail of the day is searched, on the (camera, start) index.
_UNEXPIRED = """
    SELECT EXISTS (SELECT 1 FROM {table}
                   WHERE camera_id = ANY(%(cameras)s) AND start >= %(since)s AND "end" > %(cutoff)s)
"""
# An active evidence lock overlapping a row of the partition.
_LOCK_IN = """
    SELECT EXISTS (
        SELECT 1 FROM recordings_evidencelock AS lock
        WHERE (lock.expires_at IS NULL OR lock.expires_at > %(now)s) AND lock."end" > %(lo)s
          AND EXISTS (SELECT 1 FROM {table} AS s WHERE s.camera_id = lock.camera_id
                      AND s.start < lock."end" AND s."end" > lock.start)
    )
"""
_DAY_TOTALS = """
    SELECT camera_id, count(*), coalesce(sum(size_bytes), 0), min(start), max("end"),
           count(*) FILTER (WHERE storage <> %(local)s OR location <> '')
    FROM {table} GROUP BY camera_id
"""  # noqa: S608
_STORED_ELSEWHERE = """
    SELECT start, storage, location FROM {table}
    WHERE camera_id = %(camera)s AND (storage <> %(local)s OR location <> '')
"""  # noqa: S608


def _expired_day(table: str, day: datetime, cameras: dict[datetime, list[int]],
                 now: datetime) -> bool:  # fmt: skip
    """Whether every row of this day partition ended before its camera's cutoff and none is
    under an active evidence lock."""
    lookback = segment_lookback()
    end = day + timedelta(days=1)
    with connection.cursor() as cursor:
        for cutoff, camera_ids in cameras.items():
            if end + lookback <= cutoff:
                continue  # the whole day of these cameras ended before their cutoff
            since = day if cutoff <= day else max(day, cutoff - lookback)
            cursor.execute(_UNEXPIRED.format(table=table),
                           {"cameras": camera_ids, "since": since, "cutoff": cutoff})  # fmt: skip
            if cursor.fetchone()[0]:
                return False
        cursor.execute(_LOCK_IN.format(table=table), {"now": now, "lo": day})
        return not cursor.fetchone()[0]


def _drop_expired_days(cameras: dict[datetime, list[int]], purges: dict[int, Purge],
                       now: datetime) -> None:  # fmt: skip
    """Purge the day partitions wholly past every cutoff: detached (committed, the rows are
    gone from every query), their files deleted, then dropped. A detached day left over by
    an interrupted run is finished here too."""
    if not partitions.is_partitioned():
        return
    latest = max(cameras, default=None)
    for partition in partitions.partitions() if latest else []:
        if partition.end > latest:
            break
        if not _expired_day(partition.name, partition.start, cameras, now):
            continue
        # checked again once detached, in the same transaction: a lock or a row that arrived
        # in between puts it back (rolled back)
        detached = partitions.detach_for_purge(
            partition, lambda table, day=partition.start: _expired_day(table, day, cameras, now)
        )
        if detached is None:
            continue  # still needed, or the locks not granted in time: rows stay, per-row pass
    for table, day in partitions.purging_tables():
        _finish_day(table, day, purges)


def _finish_day(table: str, day: datetime, purges: dict[int, Purge]) -> None:
    """Count a detached day per camera, delete its files, drop it. Files at their canonical
    place are the day's directory of each camera (the file name is the start's UTC second,
    the directory its UTC day, so the directory holds this day's files and no other's)."""
    local = Segment.Storage.LOCAL
    with connection.cursor() as cursor:
        cursor.execute(_DAY_TOTALS.format(table=table), {"local": local})
        totals = cursor.fetchall()
    for camera_id, count, size_bytes, first_start, last_end, elsewhere in totals:
        if elsewhere:
            with connection.cursor() as cursor:
                cursor.execute(_STORED_ELSEWHERE.format(table=table),
                               {"camera": camera_id, "local": local})  # fmt: skip
                storage.delete_footage(camera_id, cursor.fetchall())
        _remove_day_dir(camera_id, day)
        purge = purges.setdefault(camera_id, Purge("retention", camera_id))
        purge.add(first_start, last_end, size_bytes, count)
    partitions.drop_purged(table)


def _remove_day_dir(camera_id: int, day: datetime) -> None:
    path = storage.day_dir(camera_id, day)
    try:
        entries = list(os.scandir(path))
    except FileNotFoundError:
        return
    for entry in entries:
        if entry.name.endswith(".ts") and entry.is_file(follow_symlinks=False):
            storage.unlink(Path(entry.path))
    storage.remove_empty_parents(path, storage.camera_dir(camera_id))


def _locked_past(camera_ids: list[int], cutoff: datetime, now: datetime) -> list[Purge]:
    """What an evidence lock kept past the cutoff, per camera (``Purge`` with reason
    ``evidence_lock``: counted, not deleted)."""
    with connection.cursor() as cursor:
        cursor.execute(_LOCKED, {"cameras": camera_ids, "cutoff": cutoff, "now": now})
        rows = cursor.fetchall()
    kept = []
    for camera_id, count, size_bytes, first_start, last_end in rows:
        purge = Purge(KEPT_BY_LOCK, camera_id)
        purge.add(first_start, last_end, size_bytes, count)
        kept.append(purge)
    return kept


def _sweep_days(camera_id: int, cutoff: datetime) -> None:
    """Remove day directories wholly before the cutoff: the canonical files there were all
    purged, so what is left is orphaned unless a row stores it as its ``location``."""
    root = storage.camera_dir(camera_id)
    for day, path in storage.day_dirs(camera_id):
        if day + timedelta(days=1) + segment_lookback() > cutoff:
            break
        leftovers = {
            os.path.relpath(leftover, settings.RECORDINGS_DIR): leftover
            for leftover in path.glob("*.ts")
        }
        if leftovers:
            # files of rows that stay (a stored location, or canonical ones kept by a lock)
            rows = Segment.objects.filter(camera_id=camera_id).filter(
                Q(location__in=list(leftovers))
                | Q(location="", start__gte=day, start__lt=day + timedelta(days=1))
            )
            kept = {
                location or storage.canonical_location(camera_id, start)
                for start, location in rows.values_list("start", "location")
            }
            for location, leftover in leftovers.items():
                if location not in kept:
                    logger.warning("removing orphan recording %s", leftover)
                    storage.unlink(leftover)
        storage.remove_empty_parents(path, root)


def enforce_disk_floor(now: datetime | None = None) -> list[Purge]:
    """While free disk is under the floor, delete the oldest footage across all cameras."""
    now = now or timezone.now()
    floor = settings.RETENTION_DISK_FLOOR_BYTES
    keep = timedelta(seconds=settings.RETENTION_DISK_FLOOR_KEEP_S)
    purges: dict[int, Purge] = {}
    if storage.free_bytes() < floor:
        # Clips are evidence someone asked for: past their expiry they go before any footage,
        # before it never (they share the disk, so their bytes count in the free space).
        expired = services.expire_clips(now)
        if expired:
            logger.warning("free disk under the floor: %d expired clips deleted first", expired)
    while (free := storage.free_bytes()) < floor:
        batch = queries.oldest_segments(before=now - keep, limit=100, now=now)
        if not batch:
            logger.error(
                "free disk %d bytes is under the floor of %d bytes and only the last %s of "
                "footage (and footage under evidence locks) is left: add disk or lower "
                "RETENTION_DISK_FLOOR_BYTES",
                free,
                floor,
                keep,
            )
            break
        for segment in batch:
            camera_id = segment.camera_id
            purge = purges.setdefault(camera_id, Purge("disk_floor", camera_id))
            purge.add(segment.start, segment.end, segment.size_bytes)
        _delete(batch)
    result = list(purges.values())
    _log(result)
    return result


def apply_retention(now: datetime | None = None) -> list[Purge]:
    """The periodic job: the plan's retention, then the disk floor; each prefeitura whose
    footage was deleted (or kept by an evidence lock) gets a ``retention.run`` audit entry."""
    now = now or timezone.now()
    purges = purge_expired(now) + enforce_disk_floor(now)
    audit_run(purges, now)
    return purges


def audit_run(purges: list[Purge], now: datetime) -> None:
    """Retention evidence (LGPD art. 15, 16): per prefeitura, what this run deleted and kept,
    by reason: segments, bytes, cameras, oldest and newest time removed."""
    cameras = dict(
        Camera.objects.filter(pk__in={p.camera_id for p in purges})
        .values_list("pk", "prefeitura_id")
    )  # fmt: skip
    reports: dict[int, dict[str, dict]] = {}
    for purge in purges:
        prefeitura_id = cameras.get(purge.camera_id)
        if prefeitura_id is None:
            continue
        totals = reports.setdefault(prefeitura_id, {}).setdefault(
            purge.reason,
            {"segments": 0, "size_bytes": 0, "cameras": [], "oldest": None, "newest": None},
        )
        totals["segments"] += purge.segments
        totals["size_bytes"] += purge.size_bytes
        totals["cameras"].append(purge.camera_id)
        oldest = purge.first_start.astimezone(UTC).isoformat()
        newest = purge.last_end.astimezone(UTC).isoformat()
        totals["oldest"] = min(filter(None, [totals["oldest"], oldest]))
        totals["newest"] = max(filter(None, [totals["newest"], newest]))
    for prefeitura_id, report in sorted(reports.items()):
        audit.record(
            "retention.run",
            prefeitura_id=prefeitura_id,
            details={"at": now.isoformat(), **report},
        )
