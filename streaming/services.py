"""Stream lifecycle: every write goes through here, then the event is published."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext as _

from admin_ctx import audit
from admin_ctx.models import User
from cidades.models import Camera
from gtvision import events
from gtvision.api import Conflict
from streaming.models import RecorderStatus, Stream, WorkerHeartbeat

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
            profile=stream.profile,
        )
    )


def _sync_camera_status(stream: Stream) -> None:
    status = stream.status
    if status == Stream.Status.STOPPED:
        # the camera's other stream (main or sub) still running shows its state; else a
        # camera still recorded shows its recorder's state
        other = (
            Stream.objects.filter(camera_id=stream.camera_id, status__in=Stream.ACTIVE)
            .exclude(pk=stream.pk)
            .first()
        )
        recorder = RecorderStatus.objects.filter(camera_id=stream.camera_id).first()
        if other is not None:
            status = other.status
        elif recorder is not None:
            status = recorder.status
    _set_camera_status(stream.camera, status)


def _set_camera_status(camera: Camera, status: str) -> None:
    wanted = CAMERA_STATUS_FOR[status]
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
    camera: Camera,
    *,
    actor: User | None,
    request: HttpRequest | None = None,
    on_demand: bool = False,
    profile: str = Stream.Profile.MAIN,
) -> Stream:
    """Ask for a live stream of the camera; the media supervisor brings it up.

    ``profile``: ``"main"`` (the camera page) or ``"sub"`` (grids, mosaics: the camera's
    low-resolution substream, or its main stream when it has none). One active stream per
    camera and profile.

    ``on_demand``: opened for a viewer, it stops by itself ``VIEWER_IDLE_SECONDS`` after the
    last keep-alive (``keep_alive``). An explicit start (not on demand) runs until stopped.
    A camera with an active stream is a ``Conflict`` carrying its ``stream_id``; on the way,
    a viewer's start counts as a keep-alive, and an explicit start makes an on-demand stream
    explicit (it then runs until stopped). A viewer never makes an explicit stream on demand.
    """
    now = timezone.now()
    with transaction.atomic():
        camera = Camera.objects.select_for_update().get(pk=camera.pk)
        active = Stream.objects.filter(
            camera=camera, profile=profile, status__in=Stream.ACTIVE
        ).first()
        if active is None:
            if not camera.enabled:
                raise Conflict(_("This camera is disabled."), camera_id=camera.pk)
            stream = Stream.objects.create(
                camera=camera,
                profile=profile,
                status=Stream.Status.STARTING,
                started_by=actor,
                on_demand=on_demand,
                last_viewed_at=now if on_demand else None,
            )
            audit.record("stream.start", actor=actor, request=request, target=stream.camera,
                         details={"stream_id": stream.pk, "on_demand": on_demand,
                                  "profile": profile})  # fmt: skip
            _publish_status(stream)
            wake_supervisor()
            return stream
        if active.on_demand and on_demand:
            active.last_viewed_at = now
            active.save(update_fields=["last_viewed_at"])
        elif active.on_demand:
            active.on_demand = False
            active.save(update_fields=["on_demand"])
            audit.record("stream.start", actor=actor, request=request, target=camera,
                         details={"stream_id": active.pk, "on_demand": False,
                                  "profile": profile, "promoted": True})  # fmt: skip
    raise Conflict(
        _("This camera already has an active stream."),
        stream_id=active.pk,
        status=active.status,
        on_demand=active.on_demand,
        profile=active.profile,
    )


def keep_alive(stream: Stream) -> Stream:
    """A viewer still watches ``stream``: postpone its idle stop (on-demand streams only)."""
    if stream.on_demand and stream.is_active:
        stream.last_viewed_at = timezone.now()
        Stream.objects.filter(pk=stream.pk, on_demand=True, status__in=Stream.ACTIVE).update(
            last_viewed_at=stream.last_viewed_at
        )
    return stream


TOUCH_EVERY_S = 5


def touch_viewed(stream: Stream) -> None:
    """A live media request counts as a keep-alive (written at most every few seconds)."""
    now = timezone.now()
    if not stream.on_demand or (
        stream.last_viewed_at and now - stream.last_viewed_at < timedelta(seconds=TOUCH_EVERY_S)
    ):
        return
    Stream.objects.filter(pk=stream.pk, on_demand=True, status__in=Stream.ACTIVE).update(
        last_viewed_at=now
    )


def stop_idle_streams() -> list[Stream]:
    """Stop on-demand streams nobody has watched for ``VIEWER_IDLE_SECONDS`` (the supervisor)."""
    cutoff = timezone.now() - timedelta(seconds=settings.VIEWER_IDLE_SECONDS)
    idle = Stream.objects.filter(status__in=Stream.ACTIVE, on_demand=True).filter(
        Q(last_viewed_at__lt=cutoff) | Q(last_viewed_at=None)
    )
    return [stop_stream(stream, actor=None, reason="idle") for stream in idle]


def stop_stream(
    stream: Stream,
    *,
    actor: User | None,
    request: HttpRequest | None = None,
    reason: str | None = None,
) -> Stream:
    """Stop a stream; stopping a stopped stream changes nothing. ``reason="idle"``: an
    on-demand stream whose viewers left (stopped only if still idle once locked)."""
    with transaction.atomic():
        stream = Stream.objects.select_for_update().select_related("camera").get(pk=stream.pk)
        if stream.status == Stream.Status.STOPPED:
            return stream
        if reason == "idle" and not _is_idle(stream):
            return stream  # a viewer came back (or it was made explicit) meanwhile
        stream.status = Stream.Status.STOPPED
        stream.stopped_at = timezone.now()
        for field in METRIC_FIELDS:
            setattr(stream, field, None)
        stream.save()
        details = {"stream_id": stream.pk, **({"reason": reason} if reason else {})}
        audit.record("stream.stop", actor=actor, request=request, target=stream.camera,
                     details=details)  # fmt: skip
        _sync_camera_status(stream)
        _publish_status(stream)
        wake_supervisor()
    return stream


def _is_idle(stream: Stream) -> bool:
    cutoff = timezone.now() - timedelta(seconds=settings.VIEWER_IDLE_SECONDS)
    return stream.on_demand and (stream.last_viewed_at is None or stream.last_viewed_at < cutoff)


def set_recorder_status(camera_id: int, status: str, last_error: str = "") -> None:
    """The supervisor's observation of a recorded camera's pull (with or without a stream).

    A camera without an active stream takes its status from it (``online``/``error``)."""
    last_error = last_error[:500] if status == RecorderStatus.Status.ERROR else ""
    with transaction.atomic():
        camera = Camera.objects.select_for_update().filter(pk=camera_id).first()
        if camera is None:
            return
        RecorderStatus.objects.update_or_create(
            camera=camera, defaults={"status": status, "last_error": last_error}
        )
        if not Stream.objects.filter(camera=camera, status__in=Stream.ACTIVE).exists():
            _set_camera_status(camera, status)


def recorder_status_cameras() -> set[int]:
    return set(RecorderStatus.objects.values_list("camera_id", flat=True))


def clear_recorder_status(camera_id: int) -> None:
    """The camera is no longer recorded (by this supervisor)."""
    with transaction.atomic():
        deleted, _rows = RecorderStatus.objects.filter(camera_id=camera_id).delete()
        camera = Camera.objects.filter(pk=camera_id).first()
        active = Stream.objects.filter(camera_id=camera_id, status__in=Stream.ACTIVE).exists()
        if deleted and camera is not None and not active:
            _set_camera_status(camera, Stream.Status.STOPPED)


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
