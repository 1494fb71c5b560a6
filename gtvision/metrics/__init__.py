"""Prometheus metrics (docs/observability.md lists every one) and the ``/metrics`` view.

Two kinds:

- Figures that live in PostgreSQL (cameras, streams, recorder states, segments, clips, the job
  queue, heartbeats) are read at scrape time by ``collector.DatabaseCollector``, with bounded
  queries, so any web process gives the same, correct answer without sharing memory. The
  expensive footage totals are cached for ``METRICS_FOOTAGE_CACHE_S``.
- Figures only a process knows (HTTP latency, WebSocket connections, supervisor passes, FFmpeg
  events, retention deletions) are ``prometheus_client`` metrics of that process. With
  ``PROMETHEUS_MULTIPROC_DIR`` set (the same empty directory for every process of a host,
  before they start), they are shared through it and ``/metrics`` sums them
  (``prometheus_client`` multiprocess mode); unset, ``/metrics`` shows the web process's own.

Database-side: the ``django_db_*`` metrics of django-prometheus's PostgreSQL backend (the
``ENGINE`` of both database aliases) are process-local metrics like the above; the pools' own
statistics (``gtvision_db_pool_*``) are read at scrape time (``pool.PoolCollector``).

Labels are ids and fixed words only: never a tenant's name, a URL or a credential.
"""

from __future__ import annotations

import atexit
import hmac
import ipaddress
import logging
import os
import re
from collections.abc import Iterable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import Metric

from gtvision.metrics.collector import (  # noqa: F401 - the package API
    DATABASE_COLLECTOR,
    DatabaseCollector,
    job_queue,
    recording_lags,
    storage_usage,
)
from gtvision.metrics.health import check_disk, check_recording_lag  # noqa: F401
from gtvision.metrics.pool import POOL_COLLECTOR

# -- process-local metrics (multiprocess mode when PROMETHEUS_MULTIPROC_DIR is set) -------


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


if multiprocess_dir():
    os.makedirs(multiprocess_dir(), exist_ok=True)  # before the first metric opens its file
    # A process that ends takes its live gauges (WebSocket connections) with it.
    atexit.register(multiprocess.mark_process_dead, os.getpid())

HTTP_LATENCY = Histogram(
    "gtvision_http_request_duration_seconds",
    "HTTP request latency by route (the URL pattern), method and status class.",
    ["route", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
WEBSOCKET_CONNECTIONS = Gauge(
    "gtvision_websocket_connections",
    "Open WebSocket connections.",
    multiprocess_mode="livesum",
)
SUPERVISOR_TICK = Histogram(
    "gtvision_supervisor_tick_duration_seconds",
    "Duration of one media supervisor pass (reconcile, index, write states).",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
SEGMENT_INDEX_LATENCY = Histogram(
    "gtvision_segment_index_latency_seconds",
    "Time from a recording segment's end to its row in the index.",
    buckets=(1, 2, 5, 10, 15, 20, 30, 60, 120, 300, 600),
)
FFMPEG_EVENTS = Counter(
    "gtvision_ffmpeg_events",
    "FFmpeg lifecycle events per camera: start, exit, restart, stall, give_up.",
    ["camera", "event"],
)
RETENTION_DELETED_SEGMENTS = Counter(
    "gtvision_retention_deleted_segments",
    "Recording segments (rows and files) deleted by retention, by reason.",
    ["reason"],
)
RETENTION_DELETED_BYTES = Counter(
    "gtvision_retention_deleted_bytes",
    "Bytes of recordings deleted by retention, by reason.",
    ["reason"],
)
FOOTAGE_TIER_MOVED_SEGMENTS = Counter(
    "gtvision_footage_tier_moved_segments",
    "Segments moved from local disk to object storage (recordings.tiering).",
)
FOOTAGE_TIER_MOVED_BYTES = Counter(
    "gtvision_footage_tier_moved_bytes",
    "Bytes of footage moved from local disk to object storage (recordings.tiering).",
)
FOOTAGE_TIER_FAILURES = Counter(
    "gtvision_footage_tier_failures",
    "Segments not moved to object storage, by reason: unavailable, mismatch, error.",
    ["reason"],
)
FOOTAGE_TIER_LAG = Gauge(
    "gtvision_footage_tier_lag_seconds",
    "Age past FOOTAGE_HOT_SECONDS of the oldest local segment left after a tiering run.",
    multiprocess_mode="livemax",
)

_CAMERA_KEY = re.compile(r"^cam(\d+)$")


def camera_of_key(key: str) -> str | None:
    """The camera id of an FFmpeg key (``cam12`` -> ``"12"``), None for other keys."""
    match = _CAMERA_KEY.match(key or "")
    return match.group(1) if match else None


class EventMetricsHandler(logging.Handler):
    """Counts events that are logged once each: FFmpeg lifecycle events
    (``extra={"event": "ffmpeg_<what>", "ffmpeg_key": "cam<id>"}``, streaming.process) and
    retention purges ("purged %s" with a ``Purge``, recordings.retention). The log line is the
    one place these events are reported, so the counter never disagrees with the log."""

    def emit(self, record: logging.LogRecord) -> None:
        event = getattr(record, "event", None)
        try:
            if record.name == "recordings.retention" and record.msg == "purged %s":
                purge = record.args[0] if isinstance(record.args, tuple) else None
                RETENTION_DELETED_SEGMENTS.labels(reason=purge.reason).inc(purge.segments)
                RETENTION_DELETED_BYTES.labels(reason=purge.reason).inc(purge.size_bytes)
                return
            if not event:
                return
            if event.startswith("ffmpeg_"):
                camera = camera_of_key(getattr(record, "ffmpeg_key", ""))
                if camera is not None:
                    FFMPEG_EVENTS.labels(camera=camera, event=event[len("ffmpeg_") :]).inc()
        except Exception:  # noqa: BLE001 - a metric never breaks logging
            self.handleError(record)


class _ProcessCollector:
    """This process's own metrics (the default registry), when not in multiprocess mode."""

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


def exposition() -> bytes:
    """The text exposition of every metric."""
    registry = CollectorRegistry()
    if multiprocess_dir():
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_ProcessCollector())
    registry.register(DATABASE_COLLECTOR)
    registry.register(POOL_COLLECTOR)
    return generate_latest(registry)


def metrics_allowed(request: HttpRequest) -> bool:
    """``METRICS_TOKEN`` set: only ``Authorization: Bearer <token>``; unset: loopback only."""
    token = settings.METRICS_TOKEN
    if token:
        scheme, _sep, given = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode(), token.encode()
        )
    from gtvision.login_guard import client_ip  # not at import: LOGGING loads this module

    address = client_ip(request)
    try:
        return address is not None and ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def metrics_view(request: HttpRequest) -> HttpResponse:
    if not metrics_allowed(request):
        response = HttpResponse("unauthorized\n", status=401, content_type="text/plain")
        if settings.METRICS_TOKEN:
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    response = HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)
    response["Cache-Control"] = "no-store"
    return response
