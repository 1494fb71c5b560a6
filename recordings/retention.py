"""Retention: drop footage older than each prefeitura's plan, and the oldest footage first
when free disk falls under ``RETENTION_DISK_FLOOR_BYTES`` (expired clips go first there;
clips before their expiry are never deleted to make room: they are exports someone asked for).

Rows are deleted (and committed) before their files, so a crash leaves at worst an orphan
file, never a row without a file; orphans in day directories past the cutoff are swept.
Recording never stops for this: only indexed (closed) segments are ever purged, and the
disk floor spares the last ``RETENTION_DISK_FLOOR_KEEP_S`` seconds of footage.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from admin_ctx import audit
from cidades.models import Camera
from recordings import queries, services, storage
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
        mine = ((s.start, s.location) for s in segments if s.camera_id == camera_id)
        storage.unlink_segments(camera_id, mine)


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
              (EXTRACT(EPOCH FROM "end") * 1000000)::bigint, size_bytes, location
"""  # noqa: S608
_LOCKED = f"""
    SELECT camera_id, count(*), coalesce(sum(size_bytes), 0), min(start), max("end")
    FROM recordings_segment AS s
    WHERE camera_id = ANY(%(cameras)s) AND "end" <= %(cutoff)s AND {LOCKED_SEGMENT_SQL}
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
    by_camera: dict[int, list[tuple[int, int, int, str]]] = {}
    for camera_id, *segment in rows:
        by_camera.setdefault(camera_id, []).append(segment)
    for camera_id, segments in by_camera.items():
        files = [(_EPOCH + timedelta(microseconds=start), loc) for start, _, _, loc in segments]
        last_end = _EPOCH + timedelta(microseconds=max(end for _, end, _, _ in segments))
        first_start = min(start for start, _ in files)
        purge = purges.setdefault(camera_id, Purge("retention", camera_id))
        purge.add(first_start, last_end, sum(size for _, _, size, _ in segments), len(segments))
        storage.unlink_segments(camera_id, files)
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
