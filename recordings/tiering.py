"""Footage tiers: closed segments older than ``FOOTAGE_HOT_SECONDS`` move to the object store.

A run (``move_cold_segments``, the ``recordings.tier_footage`` periodic job, every minute)
takes the oldest LOCAL rows whose segment ended before ``now - FOOTAGE_HOT_SECONDS``, a batch
at a time, and for each one:

1. uploads its file as ``objectstore.segment_key`` (the same relative path, under
   ``S3_PREFIX``), verified against the row: the server checks the body's SHA-256 against
   the row's (computed from the file first when the row has none), then HEAD checks the
   size and the checksum (``objectstore.put_file``);
2. switches the batch's uploaded rows to ``storage=S3, location=<key>`` in one UPDATE that
   only matches a row still LOCAL at the same location with the same checksum (a row that
   retention deleted, or another uploader moved, in the meantime is left alone);
3. after the commit, deletes the switched rows' local files.

Crash safety: a crash before the UPDATE leaves the row LOCAL with its file, and the object
(if any) is overwritten by the next run; a crash after it leaves a local copy of an S3 row,
which ``check_footage --repair`` deletes. A row never points at footage that is not there.
Rows whose file does not match them (size or SHA-256) are not switched; they stay LOCAL and
are reported (``check_footage`` and the chain of custody see them as they are).

The bucket unreachable: one warning per outage, the rows stay LOCAL with their files, the
next run after it is back catches up (oldest first). Recording and live never wait for it.
Evidence locks do not pin the tier: a locked segment is kept, wherever it is.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from cidades.models import Camera
from recordings import objectstore, storage
from recordings.models import Segment

logger = logging.getLogger(__name__)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# The oldest LOCAL rows of each camera that ended before the cutoff, one index range per camera
# (the (camera, start) unique index), from ``since`` (see _Window).
_CANDIDATES = f"""
SELECT s.id, s.camera_id, s.start, s.size_bytes, s.location, s.sha256
FROM unnest(%(cameras)s::bigint[]) AS camera(id), LATERAL (
    SELECT id, camera_id, start, size_bytes, location, sha256
    FROM {Segment._meta.db_table}
    WHERE camera_id = camera.id AND start >= %(since)s AND start < %(cutoff)s
      AND "end" <= %(cutoff)s AND storage = {Segment.Storage.LOCAL}
      AND NOT (id = ANY(%(skip)s::bigint[]))
    ORDER BY start LIMIT %(limit)s
) AS s
ORDER BY s.start, s.id
LIMIT %(limit)s
"""  # noqa: S608 - table and constants from the model, values are parameters

# One UPDATE per batch; a row matches only if still LOCAL where we read it from.
_SWITCH = f"""
UPDATE {Segment._meta.db_table} AS s
SET storage = {Segment.Storage.S3}, location = v.key, sha256 = v.sha
FROM (
    SELECT unnest(%(ids)s::bigint[]) AS id, unnest(%(cameras)s::bigint[]) AS camera_id,
           unnest(%(starts)s::timestamptz[]) AS start, unnest(%(old)s::text[]) AS old,
           unnest(%(keys)s::text[]) AS key, unnest(%(shas)s::text[]) AS sha
) AS v
WHERE s.id = v.id AND s.camera_id = v.camera_id AND s.start = v.start
  AND s.storage = {Segment.Storage.LOCAL} AND s.location = v.old
  AND (s.sha256 = '' OR s.sha256 = v.sha)
RETURNING s.id
"""  # noqa: S608


@dataclass
class Candidate:
    id: int
    camera_id: int
    start: datetime
    size_bytes: int
    location: str
    sha256: str
    key: str = ""

    def local_path(self) -> Path | None:
        """The archived file (None while it still waits in ``incoming/`` for its move)."""
        if self.location:
            return storage.recordings_root() / self.location
        path = storage.archive_path(self.camera_id, self.start)
        return path if path.exists() else None


@dataclass
class TierRun:
    """What one run did."""

    cutoff: datetime
    moved: int = 0
    moved_bytes: int = 0
    mismatched: list[int] = field(default_factory=list)  # row ids: file != row
    missing: list[int] = field(default_factory=list)  # row ids: no local file
    failed: list[int] = field(default_factory=list)  # row ids: other upload errors
    unavailable: bool = False  # the bucket could not be reached: stopped early
    complete: bool = True  # nothing eligible left (no limit hit, no outage)
    oldest_left: datetime | None = None
    waiting: set[int] = field(default_factory=set)  # rows whose file is still in incoming/

    def __str__(self) -> str:
        return (
            f"moved {self.moved} segments ({self.moved_bytes} bytes), "
            f"{len(self.mismatched)} mismatched, {len(self.missing)} without a file, "
            f"{len(self.failed)} failed{', bucket unreachable' if self.unavailable else ''}"
        )


class _State:
    """Per process: the outage being reported, the bucket known to exist, and where the
    per-camera scans start (``since``): after a complete run, only rows that ended after the
    previous cutoff (minus indexing lag) can be new; a full scan runs every
    ``FOOTAGE_TIER_SWEEP_S`` and at the first run of the process."""

    def __init__(self) -> None:
        self.outage_since: float | None = None
        self.bucket_ready: tuple | None = None
        self.since: datetime | None = None
        self.swept_at: float = 0.0
        self.bad: set[int] = set()  # rows not to retry until the next full scan


_state = _State()


def reset_state() -> None:
    """Forget the process's tiering state (tests; a new configuration)."""
    global _state
    _state = _State()


def _outage(run: TierRun, error: Exception) -> None:
    run.unavailable = True
    run.complete = False
    try:
        from gtvision.metrics import FOOTAGE_TIER_FAILURES

        FOOTAGE_TIER_FAILURES.labels(reason="unavailable").inc()
    except Exception:  # noqa: BLE001 - metrics never break tiering
        logger.debug("footage tiering: metrics not updated", exc_info=True)
    if _state.outage_since is None:
        _state.outage_since = time.monotonic()
        logger.warning(
            "footage tiering: object store unreachable, footage stays on local disk "
            "until it is back (%s)",
            error,
            extra={"event": "footage_tier_outage"},
        )
    else:
        logger.debug("footage tiering: object store still unreachable (%s)", error)


def _reachable() -> None:
    if _state.outage_since is not None:
        logger.warning(
            "footage tiering: object store reachable again after %.0f s, catching up",
            time.monotonic() - _state.outage_since,
            extra={"event": "footage_tier_recovered"},
        )
        _state.outage_since = None


def _bucket_ready() -> None:
    key = (settings.S3_ENDPOINT_URL, settings.S3_BUCKET)
    if _state.bucket_ready != key:
        objectstore.ensure_bucket()
        _state.bucket_ready = key


def move_cold_segments(*, now: datetime | None = None, limit: int | None = None) -> TierRun | None:
    """Move closed LOCAL segments that ended more than ``FOOTAGE_HOT_SECONDS`` ago to the
    object store, oldest first, at most ``limit`` (``FOOTAGE_TIER_MAX_PER_RUN``) per run and
    for about ``FOOTAGE_TIER_RUN_BUDGET_S`` (the job worker has clips to export too).
    None (nothing done) when the object store is not configured. Never raises for an
    unreachable bucket: the rows stay LOCAL, ``TierRun.unavailable`` says so."""
    if not objectstore.enabled():
        return None
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=max(int(settings.FOOTAGE_HOT_SECONDS), 0))
    run = TierRun(cutoff=cutoff)
    try:
        _bucket_ready()
    except objectstore.ObjectStoreError as exc:  # unreachable, or refused (credentials)
        _outage(run, exc)
        _report(run)
        return run
    limit = limit if limit is not None else settings.FOOTAGE_TIER_MAX_PER_RUN
    batch = max(1, int(settings.FOOTAGE_TIER_BATCH))
    full = _state.since is None or (
        time.monotonic() - _state.swept_at > settings.FOOTAGE_TIER_SWEEP_S
    )
    if full:
        _state.bad.clear()
    since = _EPOCH if full else _state.since
    cameras = list(Camera.objects.order_by("pk").values_list("pk", flat=True))
    done = 0
    ends = time.monotonic() + max(float(settings.FOOTAGE_TIER_RUN_BUDGET_S), 0.0)
    while cameras:
        if done >= limit or time.monotonic() > ends:  # leave the worker to its other jobs
            run.complete = False
            left = _candidates(cameras, since, cutoff, 1, run)
            run.oldest_left = left[0].start if left else None
            break
        rows = _candidates(cameras, since, cutoff, min(batch, limit - done), run)
        if not rows:
            break
        done += len(rows)
        before = (run.moved, run.moved_bytes, len(run.mismatched), len(run.missing))
        _move_batch(rows, run)
        _log_batch(run, before, len(rows))
        if run.unavailable:
            break
    if run.complete:
        margin = timedelta(seconds=settings.RECORDING_SEGMENT_MAX_SECONDS + 3600)
        _state.since = cutoff - margin
        if full:
            _state.swept_at = time.monotonic()
    _report(run)
    return run


def _candidates(
    cameras: list[int], since: datetime, cutoff: datetime, n: int, run: TierRun | None = None
) -> list[Candidate]:
    params = {
        "cameras": cameras,
        "since": since,
        "cutoff": cutoff,
        "limit": n,
        "skip": sorted(_state.bad | (run.waiting if run else set())),
    }
    with connection.cursor() as cursor:
        cursor.execute(_CANDIDATES, params)
        return [Candidate(*row) for row in cursor.fetchall()]


def _move_batch(rows: list[Candidate], run: TierRun) -> None:
    """Upload the batch (``S3_UPLOAD_CONCURRENCY`` at a time), then switch what was verified.
    The first sign of an outage stops the uploads not started yet."""
    ready: list[tuple[Candidate, Path]] = []
    for row in rows:
        path = row.local_path()
        if path is None:
            run.waiting.add(row.id)  # still in incoming/: the indexer moves it in a moment
        else:
            ready.append((row, path))
    if not ready:
        return
    stop = threading.Event()

    def upload(row: Candidate, path: Path) -> Candidate | None:
        if stop.is_set():
            return None
        try:
            return _upload(row, path, run)
        except objectstore.ObjectStoreUnavailable:
            stop.set()
            raise

    uploaded: list[Candidate] = []
    workers = max(1, min(int(settings.S3_UPLOAD_CONCURRENCY), len(ready)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tiering") as pool:
        futures = [(row, pool.submit(upload, row, path)) for row, path in ready]
        for row, future in futures:
            try:
                moved = future.result()
            except objectstore.ObjectStoreUnavailable as exc:
                if not run.unavailable:
                    _outage(run, exc)
                moved = None
            if moved is not None:
                uploaded.append(moved)
            elif stop.is_set() and (run.oldest_left is None or row.start < run.oldest_left):
                run.oldest_left = row.start
    if uploaded:
        if not run.unavailable:
            _reachable()
        _switch(uploaded, run)


def _upload(row: Candidate, path: Path, run: TierRun) -> Candidate | None:
    """Upload and verify one row's file; None when it cannot move (reported in ``run``)."""
    sha256 = row.sha256
    if not sha256:
        try:
            size, sha256 = objectstore.file_digest(path)
        except FileNotFoundError:
            _skip(run.missing, row, "its file is gone")
            return None
        if size != row.size_bytes:
            _skip(run.mismatched, row, f"its file has {size} bytes, the row {row.size_bytes}")
            return None
    row.key = objectstore.segment_key(row.camera_id, row.location, start=row.start)
    try:
        objectstore.put_file(path, row.key, size=row.size_bytes, sha256=sha256)
    except objectstore.ObjectStoreUnavailable:
        raise
    except objectstore.ObjectStoreError as exc:
        if not path.exists():
            _skip(run.missing, row, "its file is gone")
        elif isinstance(exc, objectstore.ObjectMismatch):
            _skip(run.mismatched, row, f"its file does not match the row ({exc})")
            _forget(row.key)
        else:
            _skip(run.failed, row, str(exc))
        return None
    row.sha256 = sha256
    return row


def _forget(key: str) -> None:
    """Delete an object that must not stay (a failed verification); best effort."""
    try:
        objectstore.delete_keys([key])
    except objectstore.ObjectStoreError as exc:
        logger.warning("footage tiering: could not delete %s: %s", key, exc)


def _skip(bucket: list[int], row: Candidate, why: str) -> None:
    bucket.append(row.id)
    _state.bad.add(row.id)
    logger.warning(
        "footage tiering: segment %s of camera %s (%s) stays local: %s",
        row.id,
        row.camera_id,
        f"{row.start:%Y-%m-%dT%H:%M:%SZ}",
        why,
    )


def _switch(rows: list[Candidate], run: TierRun) -> None:
    """Point the rows at their objects (one UPDATE, committed), then delete their files."""
    params = {
        "ids": [r.id for r in rows],
        "cameras": [r.camera_id for r in rows],
        "starts": [r.start for r in rows],
        "old": [r.location for r in rows],
        "keys": [r.key for r in rows],
        "shas": [r.sha256 for r in rows],
    }
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_SWITCH, params)
        switched = {pk for (pk,) in cursor.fetchall()}
    moved = [r for r in rows if r.id in switched]
    for camera_id in {r.camera_id for r in moved}:
        storage.unlink_segments(
            camera_id, ((r.start, r.location) for r in moved if r.camera_id == camera_id)
        )
    run.moved += len(moved)
    run.moved_bytes += sum(r.size_bytes for r in moved)
    left = [r for r in rows if r.id not in switched]
    if left:
        # Deleted meanwhile (retention): the object is nobody's. Moved by another uploader:
        # the object is that row's now, so it stays.
        alive = set(
            Segment.objects.filter(pk__in=[r.id for r in left]).values_list("pk", flat=True)
        )
        orphans = [r.key for r in left if r.id not in alive]
        if orphans:
            _forget_all(orphans)


def _forget_all(keys: list[str]) -> None:
    try:
        objectstore.delete_keys(keys)
    except objectstore.ObjectStoreError as exc:
        logger.warning("footage tiering: could not delete %d objects: %s", len(keys), exc)


def _report(run: TierRun) -> None:
    try:
        from gtvision.metrics import (
            FOOTAGE_TIER_FAILURES,
            FOOTAGE_TIER_LAG,
            FOOTAGE_TIER_MOVED_BYTES,
            FOOTAGE_TIER_MOVED_SEGMENTS,
        )

        FOOTAGE_TIER_MOVED_SEGMENTS.inc(run.moved)
        FOOTAGE_TIER_MOVED_BYTES.inc(run.moved_bytes)
        for reason, rows in (("mismatch", run.mismatched), ("error", run.failed)):
            if rows:
                FOOTAGE_TIER_FAILURES.labels(reason=reason).inc(len(rows))
        lag = (run.cutoff - run.oldest_left).total_seconds() if run.oldest_left else 0.0
        FOOTAGE_TIER_LAG.set(max(lag, 0.0))
    except Exception:  # noqa: BLE001 - metrics never break tiering
        logger.debug("footage tiering: metrics not updated", exc_info=True)


def _log_batch(run: TierRun, before: tuple[int, int, int, int], rows: int) -> None:
    """One structured line per batch."""
    moved = run.moved - before[0]
    logger.info(
        "footage tiering: batch of %d segments: %d moved (%d bytes) to bucket %s, "
        "%d mismatched, %d without a file%s",
        rows,
        moved,
        run.moved_bytes - before[1],
        settings.S3_BUCKET,
        len(run.mismatched) - before[2],
        len(run.missing) - before[3],
        ", bucket unreachable" if run.unavailable else "",
        extra={
            "event": "footage_tiered",
            "segments": rows,
            "moved": moved,
            "moved_bytes": run.moved_bytes - before[1],
            "mismatched": len(run.mismatched) - before[2],
            "missing": len(run.missing) - before[3],
            "unavailable": run.unavailable,
            "bucket": settings.S3_BUCKET,
        },
    )


def remove_camera_objects(camera_id: int) -> int:
    """Delete every object of a deleted camera; returns how many. ``ObjectStoreError`` (the
    job is retried) while the bucket is away."""
    if not objectstore.enabled():
        return 0
    keys = [key for key, _size in objectstore.iter_keys(objectstore.camera_prefix(camera_id))]
    objectstore.delete_keys(keys)
    if keys:
        logger.info("camera %s: %d objects of its footage deleted", camera_id, len(keys))
    return len(keys)
