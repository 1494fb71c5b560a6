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
from django.utils import timezone

from cidades.models import Camera
from recordings import queries, services, storage
from recordings.models import Segment, segment_lookback

logger = logging.getLogger(__name__)


@dataclass
class Purge:
    """What one purge removed from one camera."""

    reason: str  # "retention" or "disk_floor"
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
_OLDEST = """
    SELECT min(first.start) FROM unnest(%s::bigint[]) AS camera(id), LATERAL (
        SELECT start FROM recordings_segment
        WHERE camera_id = camera.id AND start >= %s AND start < %s AND "end" <= %s
        ORDER BY start LIMIT 1
    ) AS first
"""
_PURGE_WINDOW = """
    DELETE FROM recordings_segment
    WHERE camera_id = ANY(%s) AND start >= %s AND start < %s AND "end" <= %s
    RETURNING camera_id, (EXTRACT(EPOCH FROM start) * 1000000)::bigint,
              (EXTRACT(EPOCH FROM "end") * 1000000)::bigint, size_bytes, location
"""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _purge_window(
    camera_ids: list[int], cutoff: datetime, since: datetime, purges: dict[int, Purge]
) -> datetime | None:
    """Delete (and commit) these cameras' oldest ``WINDOW`` of footage from ``since`` that
    ended before ``cutoff``, then its files. Returns where the next window starts (each
    search begins there, not over the index entries of the rows just deleted), None when
    nothing is left."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_OLDEST, [camera_ids, since, cutoff, cutoff])
        (oldest,) = cursor.fetchone()
        if oldest is None:
            return None
        cursor.execute(_PURGE_WINDOW, [camera_ids, oldest, oldest + WINDOW, cutoff])
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
        logger.info("purged %s", purge)


def purge_expired(now: datetime | None = None) -> list[Purge]:
    """Delete every camera's segments that ended before its prefeitura's retention cutoff."""
    now = now or timezone.now()
    cameras: dict[datetime, list[int]] = {}
    for camera in Camera.objects.select_related("prefeitura").only("id", "prefeitura__plan"):
        cutoff = now - timedelta(days=camera.prefeitura.retention_days)
        cameras.setdefault(cutoff, []).append(camera.pk)
    purges: dict[int, Purge] = {}
    for cutoff, camera_ids in cameras.items():
        since: datetime | None = _EPOCH
        while since is not None:
            since = _purge_window(camera_ids, cutoff, since, purges)
        for camera_id in camera_ids:
            _sweep_days(camera_id, cutoff)
    result = [purges[camera_id] for camera_id in sorted(purges)]
    _log(result)
    return result


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
            kept = set(
                Segment.objects.filter(camera_id=camera_id, location__in=list(leftovers))
                .values_list("location", flat=True)
            )  # fmt: skip
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
        batch = queries.oldest_segments(before=now - keep, limit=100)
        if not batch:
            logger.error(
                "free disk %d bytes is under the floor of %d bytes and only the last %s of "
                "footage is left: add disk or lower RETENTION_DISK_FLOOR_BYTES",
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
    """The periodic job: the plan's retention, then the disk floor."""
    return purge_expired(now) + enforce_disk_floor(now)
