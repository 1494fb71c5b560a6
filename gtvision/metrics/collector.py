"""Figures read from PostgreSQL (and the recordings disk) when /metrics is scraped."""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from django.conf import settings
from django.db import connection
from django.utils import timezone
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

logger = logging.getLogger(__name__)
CLIP_DURATION_BUCKETS = (5, 15, 30, 60, 120, 300, 600, 1800, 3600)

# -- figures read from PostgreSQL at scrape time ---------------------------------------------

_footage_cache: tuple[float, list[tuple[int, int, int]]] | None = None


def _age(now, at) -> float | None:
    return None if at is None else max(0.0, (now - at).total_seconds())


def recording_lags(now=None) -> dict[int, float]:
    """Camera id -> seconds since the end of its last indexed segment, for every camera with
    an open recording session (since the session's start when nothing is indexed yet).
    One index probe per recorded camera (the (camera, start) index carries ``end``)."""
    now = now or timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT r.camera_id, COALESCE(s."end", r.started_at)
            FROM recordings_recording r
            LEFT JOIN LATERAL (
                SELECT "end" FROM recordings_segment
                WHERE camera_id = r.camera_id ORDER BY start DESC LIMIT 1
            ) s ON TRUE
            WHERE r.status = 'RECORDING'
            """
        )
        return {camera_id: _age(now, at) for camera_id, at in cursor.fetchall()}


def job_queue(now=None) -> list[tuple[str, int, float | None]]:
    """(queue, jobs due and waiting, age in seconds of the oldest) per procrastinate queue."""
    now = now or timezone.now()
    rows = _rows(
        """
        SELECT j.queue_name, count(*), min(COALESCE(j.scheduled_at, e.at))
        FROM procrastinate_jobs j
        LEFT JOIN LATERAL (
            SELECT min(at) AS at FROM procrastinate_events
            WHERE job_id = j.id AND type = 'deferred'
        ) e ON TRUE
        WHERE j.status = 'todo' AND (j.scheduled_at IS NULL OR j.scheduled_at <= now())
        GROUP BY j.queue_name ORDER BY j.queue_name
        """
    )
    return [(queue, count, _age(now, since)) for queue, count, since in rows]


def storage_usage() -> dict[str, tuple[int, int]]:
    """Storage tier -> (free bytes, total bytes) of the file systems recordings live on."""
    path = Path(settings.RECORDINGS_DIR)
    while not path.exists() and path != path.parent:  # not created yet: the disk it will be on
        path = path.parent
    usage = shutil.disk_usage(path)
    return {"local": (usage.free, usage.total)}


def _footage() -> list[tuple[int, int, int]]:
    """(storage tier, segments, bytes); a full pass over the segment table, so cached."""
    global _footage_cache
    now = time.monotonic()
    if _footage_cache is None or now - _footage_cache[0] > settings.METRICS_FOOTAGE_CACHE_S:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT storage, count(*), COALESCE(sum(size_bytes), 0) "
                "FROM recordings_segment GROUP BY storage"
            )
            _footage_cache = (now, list(cursor.fetchall()))
    return _footage_cache[1]


def _storage_name(value: int) -> str:
    from recordings.models import Segment

    try:
        return Segment.Storage(value).name.lower()
    except ValueError:
        return str(value)


class DatabaseCollector:
    """Camera, recording, clip, queue and heartbeat figures, read when scraped."""

    def describe(self) -> list[Metric]:
        return []  # no names up front: collect() needs the database

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("gtvision_database_up", "1 when /metrics could read PostgreSQL.")
        families: list[Metric] = []
        try:
            families = list(self._collect())
        except Exception as exc:  # noqa: BLE001 - the exposition still answers
            logger.warning("metrics: database figures unavailable (%s)", type(exc).__name__)
            connection.close_if_unusable_or_obsolete()
            up.add_metric([], 0)
        else:
            up.add_metric([], 1)
        yield up
        yield from families
        yield from self._storage()

    def _storage(self) -> Iterator[Metric]:
        free = GaugeMetricFamily(
            "gtvision_storage_free_bytes", "Free bytes per storage tier.", labels=["storage"]
        )
        size = GaugeMetricFamily(
            "gtvision_storage_size_bytes", "Size in bytes per storage tier.", labels=["storage"]
        )
        try:
            for tier, (free_bytes, total) in storage_usage().items():
                free.add_metric([tier], free_bytes)
                size.add_metric([tier], total)
        except OSError:
            pass
        floor = GaugeMetricFamily(
            "gtvision_storage_floor_bytes",
            "Free space retention keeps on the recordings disk (RETENTION_DISK_FLOOR_BYTES).",
        )
        floor.add_metric([], settings.RETENTION_DISK_FLOOR_BYTES)
        yield from (free, size, floor)

    def _collect(self) -> Iterable[Metric]:
        now = timezone.now()
        yield from self._cameras(now)
        yield from self._recordings(now)
        yield from self._clips()
        yield from self._queue(now)
        yield from self._heartbeats(now)
        yield from self._nodes()

    def _cameras(self, now) -> Iterable[Metric]:
        from cidades.models import Camera
        from streaming.models import RecorderStatus, Stream

        by_status = GaugeMetricFamily("gtvision_cameras", "Cameras by status.", labels=["status"])
        counts = dict.fromkeys(Camera.Status.values, 0)
        for status, count in _rows("SELECT status, count(*) FROM cidades_camera GROUP BY 1"):
            counts[status] = count
        for status, count in sorted(counts.items()):
            by_status.add_metric([status], count)
        yield by_status

        streams = list(
            Stream.objects.filter(status__in=Stream.ACTIVE)
            .order_by("camera_id")
            .values_list(
                "camera_id", "status", "fps", "bitrate_kbps", "bytes_received", "last_frame_at"
            )
        )
        streams_by_status = GaugeMetricFamily(
            "gtvision_streams", "Live streams by status.", labels=["status"]
        )
        counts = dict.fromkeys(Stream.Status.values, 0)
        for status, count in _rows("SELECT status, count(*) FROM streaming_stream GROUP BY 1"):
            counts[status] = count
        for status, count in sorted(counts.items()):
            streams_by_status.add_metric([status], count)
        yield streams_by_status

        recorders = dict(RecorderStatus.objects.values_list("camera_id", "status"))
        # A camera's pull: its live stream's state, else its recorder's.
        states = {camera_id: status for camera_id, status in recorders.items()}
        states.update({row[0]: row[1] for row in streams})

        state = GaugeMetricFamily(
            "gtvision_camera_state",
            "1 for the current state of each pulled camera's stream or recorder.",
            labels=["camera", "state"],
        )
        up = GaugeMetricFamily(
            "gtvision_camera_up",
            "1 while a pulled camera (live stream or recording) receives media, else 0.",
            labels=["camera"],
        )
        for camera_id, status in sorted(states.items()):
            for value in Stream.Status.values:
                if value != Stream.Status.STOPPED:
                    state.add_metric([str(camera_id), value], 1 if status == value else 0)
            up.add_metric([str(camera_id)], 1 if status == Stream.Status.RUNNING else 0)
        yield state
        yield up

        fps = GaugeMetricFamily(
            "gtvision_camera_fps", "Frames per second received.", labels=["camera"]
        )
        bitrate = GaugeMetricFamily(
            "gtvision_camera_bitrate_bytes_per_second", "Live bitrate.", labels=["camera"]
        )
        received = CounterMetricFamily(
            "gtvision_camera_received_bytes",
            "Bytes received from the camera by the current stream.",
            labels=["camera"],
        )
        frame_age = GaugeMetricFamily(
            "gtvision_camera_last_frame_age_seconds",
            "Seconds since the last frame was received.",
            labels=["camera"],
        )
        for camera_id, _status, cam_fps, kbps, received_bytes, last_frame_at in streams:
            label = [str(camera_id)]
            if cam_fps is not None:
                fps.add_metric(label, cam_fps)
            if kbps is not None:
                bitrate.add_metric(label, kbps * 1000 / 8)
            if received_bytes is not None:
                received.add_metric(label, received_bytes)
            if last_frame_at is not None:
                frame_age.add_metric(label, _age(now, last_frame_at))
        yield from (fps, bitrate, received, frame_age)

    def _recordings(self, now) -> Iterable[Metric]:
        lag = GaugeMetricFamily(
            "gtvision_camera_recording_lag_seconds",
            "Seconds since the end of the camera's last indexed segment (recorded cameras).",
            labels=["camera"],
        )
        for camera_id, seconds in sorted(recording_lags(now).items()):
            lag.add_metric([str(camera_id)], seconds)
        yield lag

        indexed = CounterMetricFamily(
            "gtvision_segments_indexed",
            "Recording segments indexed since the database was created (its id sequence).",
        )
        rows = _rows(
            "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM recordings_segment_id_seq"
        )
        indexed.add_metric([], rows[0][0] if rows else 0)
        yield indexed

        segments = GaugeMetricFamily(
            "gtvision_footage_segments", "Indexed segments per storage tier.", labels=["storage"]
        )
        footage = GaugeMetricFamily(
            "gtvision_footage_bytes", "Bytes of indexed footage per storage tier.",
            labels=["storage"],
        )  # fmt: skip
        for storage, count, size in _footage():
            segments.add_metric([_storage_name(storage)], count)
            footage.add_metric([_storage_name(storage)], size)
        yield segments
        yield footage

    def _clips(self) -> Iterable[Metric]:
        from recordings.models import Clip

        by_status = GaugeMetricFamily(
            "gtvision_clips", "Clip export jobs by status.", labels=["status"]
        )
        counts = dict.fromkeys(Clip.Status.values, 0)
        for status, count in _rows("SELECT status, count(*) FROM recordings_clip GROUP BY 1"):
            counts[status] = count
        for status, count in sorted(counts.items()):
            by_status.add_metric([status], count)
        yield by_status

        duration = HistogramMetricFamily(
            "gtvision_clip_duration_seconds",
            "Time from a clip's request to its end (done or failed), by outcome.",
            labels=["status"],
        )
        seconds = "EXTRACT(EPOCH FROM finished_at - created_at)"
        buckets = ", ".join(
            f"count(*) FILTER (WHERE {seconds} <= {bound})" for bound in CLIP_DURATION_BUCKETS
        )
        sql = (  # built from constants only
            f"SELECT status, {buckets}, count(*), COALESCE(sum({seconds}), 0) "  # noqa: S608
            "FROM recordings_clip WHERE finished_at IS NOT NULL "
            "AND status IN ('DONE', 'FAILED') GROUP BY status ORDER BY status"
        )
        rows = _rows(sql)
        for row in rows:
            status, counts_le, total, total_s = row[0], row[1:-2], row[-2], row[-1]
            pairs = [(str(b), c) for b, c in zip(CLIP_DURATION_BUCKETS, counts_le, strict=True)]
            duration.add_metric([status], [*pairs, ("+Inf", total)], float(total_s))
        yield duration

    def _queue(self, now) -> Iterable[Metric]:
        depth = GaugeMetricFamily(
            "gtvision_job_queue_depth", "Jobs waiting to run, per queue.", labels=["queue"]
        )
        oldest = GaugeMetricFamily(
            "gtvision_job_queue_oldest_age_seconds",
            "Age of the oldest job waiting to run, per queue.",
            labels=["queue"],
        )
        for queue, count, age in job_queue(now):
            depth.add_metric([queue], count)
            if age is not None:
                oldest.add_metric([queue], age)
        yield depth
        yield oldest

    def _heartbeats(self, now) -> Iterable[Metric]:
        from streaming.models import WorkerHeartbeat

        age = GaugeMetricFamily(
            "gtvision_worker_heartbeat_age_seconds",
            "Seconds since each long-running process (supervisor, job worker) reported.",
            labels=["name", "kind"],
        )
        cameras = GaugeMetricFamily(
            "gtvision_supervisor_cameras",
            "Cameras handled by each media supervisor (node), as it last reported.",
            labels=["name"],
        )
        for name, kind, beat_at, details in WorkerHeartbeat.objects.order_by("name").values_list(
            "name", "kind", "beat_at", "details"
        ):
            age.add_metric([name, kind], _age(now, beat_at))
            if kind == "media-supervisor" and isinstance(details, dict):
                count = details.get("cameras")
                if isinstance(count, int):
                    cameras.add_metric([name], count)
        yield age
        yield cameras

    def _nodes(self) -> Iterable[Metric]:
        """Recorder nodes (streaming/leases.py): cameras per node and each camera's node."""
        from streaming.leases import node_of_cameras, nodes_overview

        cameras = GaugeMetricFamily(
            "gtvision_node_cameras", "Cameras each recorder node holds a lease on.",
            labels=["node"],
        )  # fmt: skip
        age = GaugeMetricFamily(
            "gtvision_node_heartbeat_age_seconds", "Seconds since each recorder node beat.",
            labels=["node"],
        )  # fmt: skip
        live = GaugeMetricFamily(
            "gtvision_node_live", "1 while a recorder node beats and is not draining.",
            labels=["node"],
        )  # fmt: skip
        for node in nodes_overview():
            cameras.add_metric([node["name"]], node["cameras"])
            age.add_metric([node["name"]], node["heartbeat_age_s"])
            live.add_metric([node["name"]], 1 if node["live"] else 0)
        camera_node = GaugeMetricFamily(
            "gtvision_camera_node",
            "1 for the recorder node pulling each camera (cameras no node pulls are absent).",
            labels=["camera", "node"],
        )
        for camera_id, name in sorted(node_of_cameras().items()):
            camera_node.add_metric([str(camera_id), name], 1)
        yield from (cameras, age, live, camera_node)


def _rows(sql: str) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return list(cursor.fetchall())


DATABASE_COLLECTOR = DatabaseCollector()
