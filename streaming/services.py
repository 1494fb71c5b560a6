"""Stream lifecycle: every write goes through here, then the event is published."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime

from django.db import connection, transaction
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext as _

from admin_ctx import audit
from admin_ctx.models import User
from cidades.models import Camera
from gtvision import events
from gtvision.api import Conflict
from streaming.models import Stream, WorkerHeartbeat

CAMERA_STATUS_FOR = {
    Stream.Status.RUNNING: Camera.Status.ONLINE,
    Stream.Status.ERROR: Camera.Status.ERROR,
    Stream.Status.STARTING: Camera.Status.OFFLINE,
    Stream.Status.STOPPED: Camera.Status.OFFLINE,
}
SUPERVISOR_WAKE_CHANNEL = "gtv_media_supervisor"
METRIC_FIELDS = (
    "fps",
    "bitrate_kbps",
    "bytes_received",
    "readers",
    "last_frame_at",
    "latency_ms",
    "running_since",
)


@dataclass(frozen=True)
class Metrics:
    fps: float | None = None
    bitrate_kbps: float | None = None
    bytes_received: int | None = None
    readers: int | None = None
    last_frame_at: datetime | None = None
    latency_ms: float | None = None
    running_since: datetime | None = None


def _publish_status(stream: Stream) -> None:
    events.publish(
        events.StreamStatus(
            camera_id=stream.camera_id,
            prefeitura_id=stream.camera.prefeitura_id,
            stream_id=stream.pk,
            status=stream.status,
            last_error=stream.last_error,
        )
    )


def _sync_camera_status(stream: Stream) -> None:
    camera = stream.camera
    wanted = CAMERA_STATUS_FOR[stream.status]
    if camera.enabled and camera.status != wanted:
        camera.status = wanted
        camera.save(update_fields=["status", "updated_at"])
        events.publish(
            events.CameraUpdated(
                camera_id=camera.pk,
                prefeitura_id=camera.prefeitura_id,
                status=camera.status,
                name=camera.name,
            )
        )


def wake_supervisor() -> None:
    """Have the media supervisor reconcile now (NOTIFY, delivered when the transaction commits)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_notify(%s, '')", [SUPERVISOR_WAKE_CHANNEL])


def start_stream(
    camera: Camera, *, actor: User | None, request: HttpRequest | None = None
) -> Stream:
    """Ask for a live stream of the camera; the media supervisor brings it up."""
    with transaction.atomic():
        camera = Camera.objects.select_for_update().get(pk=camera.pk)
        active = Stream.objects.filter(camera=camera, status__in=Stream.ACTIVE).first()
        if active is not None:
            raise Conflict(
                _("This camera already has an active stream."),
                stream_id=active.pk,
                status=active.status,
            )
        if not camera.enabled:
            raise Conflict(_("This camera is disabled."), camera_id=camera.pk)
        stream = Stream.objects.create(
            camera=camera, status=Stream.Status.STARTING, started_by=actor
        )
        audit.record("stream.start", actor=actor, request=request, target=stream.camera,
                     details={"stream_id": stream.pk})  # fmt: skip
        _publish_status(stream)
        wake_supervisor()
    return stream


def stop_stream(
    stream: Stream, *, actor: User | None, request: HttpRequest | None = None
) -> Stream:
    """Stop a stream; stopping a stopped stream changes nothing."""
    with transaction.atomic():
        stream = Stream.objects.select_for_update().select_related("camera").get(pk=stream.pk)
        if stream.status == Stream.Status.STOPPED:
            return stream
        stream.status = Stream.Status.STOPPED
        stream.stopped_at = timezone.now()
        for field in METRIC_FIELDS:
            setattr(stream, field, None)
        stream.save()
        audit.record("stream.stop", actor=actor, request=request, target=stream.camera,
                     details={"stream_id": stream.pk})  # fmt: skip
        _sync_camera_status(stream)
        _publish_status(stream)
        wake_supervisor()
    return stream


def set_stream_status(stream_id: int, status: str, last_error: str = "") -> bool:
    """The supervisor's observation of an active stream. Returns True when it changed."""
    with transaction.atomic():
        stream = (
            Stream.objects.select_for_update()
            .select_related("camera")
            .filter(pk=stream_id, status__in=Stream.ACTIVE)
            .first()
        )
        if stream is None:
            return False  # stopped meanwhile: never resurrect it
        last_error = last_error[:500] if status == Stream.Status.ERROR else ""
        if stream.status == status and stream.last_error == last_error:
            return False
        stream.status = status
        stream.last_error = last_error
        if status != Stream.Status.RUNNING:
            stream.running_since = None
        stream.save(update_fields=["status", "last_error", "running_since"])
        _sync_camera_status(stream)
        _publish_status(stream)
    return True


def record_metrics(stream_id: int, metrics: Metrics) -> None:
    """Store the latest measured metrics of an active stream and publish them."""
    values = {field: getattr(metrics, field) for field in METRIC_FIELDS}
    now = timezone.now()
    with transaction.atomic():
        updated = Stream.objects.filter(pk=stream_id, status__in=Stream.ACTIVE).update(
            metrics_at=now, **values
        )
        if not updated:
            return
        stream = Stream.objects.select_related("camera").get(pk=stream_id)
        events.publish(
            events.StreamMetrics(
                camera_id=stream.camera_id,
                prefeitura_id=stream.camera.prefeitura_id,
                stream_id=stream.pk,
                fps=stream.fps,
                bitrate_kbps=stream.bitrate_kbps,
                bytes_received=stream.bytes_received,
                uptime_s=uptime_s(stream),
                readers=stream.readers,
                last_frame_at=events.iso(stream.last_frame_at),
                latency_ms=stream.latency_ms,
            )
        )


def uptime_s(stream: Stream) -> float | None:
    if stream.status != Stream.Status.RUNNING or stream.running_since is None:
        return None
    return round((timezone.now() - stream.running_since).total_seconds(), 1)


def audit_view(stream: Stream, *, actor: User, request: HttpRequest | None = None) -> None:
    audit.record("stream.view", actor=actor, request=request, target=stream.camera,
                 details={"stream_id": stream.pk})  # fmt: skip


def heartbeat(name: str, *, kind: str, engine: str = "", details: dict | None = None) -> None:
    WorkerHeartbeat.objects.update_or_create(
        name=name,
        defaults={
            "kind": kind,
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
            "engine": engine,
            "details": details or {},
            "beat_at": timezone.now(),
        },
    )
