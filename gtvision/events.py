"""Live events: the one module that publishes to the Channels layer.

Each event is a typed payload. ``publish`` sends it after the surrounding database
transaction commits, to the prefeitura's group (every user of that prefeitura), the
platform group (admins) and, for stream events, the stream's own group.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import threading
from dataclasses import asdict, dataclass, field
from datetime import datetime

from channels.layers import get_channel_layer
from django.db import transaction
from django.utils import timezone

logger = logging.getLogger(__name__)

PLATFORM_GROUP = "platform"


def prefeitura_group(prefeitura_id: int) -> str:
    return f"prefeitura.{prefeitura_id}"


def stream_group(stream_id: int) -> str:
    return f"stream.{stream_id}"


def user_group(user_id: int) -> str:
    """Every open socket of one user (closed when the user's access is revoked)."""
    return f"user.{user_id}"


def camera_group(camera_id: int) -> str:
    """The sockets watching one camera's streams (re-checked when the camera moves)."""
    return f"camera.{camera_id}"


@dataclass(frozen=True, kw_only=True)
class Event:
    type: str = field(init=False)
    camera_id: int
    prefeitura_id: int
    at: str = field(default_factory=lambda: timezone.now().isoformat())

    def message(self) -> dict:
        data = asdict(self)
        data.pop("prefeitura_id")
        return data

    def groups(self) -> list[str]:
        return [prefeitura_group(self.prefeitura_id), PLATFORM_GROUP]

    def layer_message(self) -> dict:
        return {"type": "event.message", "event": self.message()}


@dataclass(frozen=True, kw_only=True)
class SocketControl:
    """Not shown to clients: tells the open sockets of some groups to re-check their access.

    The channel layer delivers ``type`` to the consumer's handler of that name
    (``access.revoked`` -> ``access_revoked``).
    """

    type: str = field(init=False)

    def groups(self) -> list[str]:
        raise NotImplementedError

    def layer_message(self) -> dict:
        return asdict(self)


@dataclass(frozen=True, kw_only=True)
class AccessRevoked(SocketControl):
    """The user logged out, was deactivated or deleted, or changed password, role or
    prefeitura: their open sockets close with 4401 (a client reconnects with what it has
    left)."""

    type: str = field(default="access.revoked", init=False)
    user_id: int
    reason: str

    def groups(self) -> list[str]:
        return [user_group(self.user_id)]


@dataclass(frozen=True, kw_only=True)
class CameraMoved(SocketControl):
    """A camera changed prefeitura: the sockets of both re-check whether they may see it."""

    type: str = field(default="access.camera", init=False)
    camera_id: int
    from_prefeitura_id: int
    to_prefeitura_id: int

    def groups(self) -> list[str]:
        return [
            prefeitura_group(self.from_prefeitura_id),
            prefeitura_group(self.to_prefeitura_id),
            camera_group(self.camera_id),
        ]


@dataclass(frozen=True, kw_only=True)
class CameraUpdated(Event):
    type: str = field(default="camera.updated", init=False)
    status: str
    name: str
    deleted: bool = False


@dataclass(frozen=True, kw_only=True)
class StreamStatus(Event):
    type: str = field(default="stream.status", init=False)
    stream_id: int
    status: str
    last_error: str
    profile: str = "main"  # "main" | "sub" (the camera's low-resolution substream)

    def groups(self) -> list[str]:
        return [*super().groups(), stream_group(self.stream_id)]


@dataclass(frozen=True, kw_only=True)
class StreamMetrics(Event):
    type: str = field(default="stream.metrics", init=False)
    stream_id: int
    fps: float | None
    bitrate_kbps: float | None
    bytes_received: int | None
    uptime_s: float | None
    readers: int | None
    last_frame_at: str | None
    latency_ms: float | None

    def groups(self) -> list[str]:
        return [*super().groups(), stream_group(self.stream_id)]


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()
SEND_TIMEOUT_S = 10


def _publisher_loop() -> asyncio.AbstractEventLoop:
    """One event loop per process for publishing from synchronous code.

    ``async_to_sync`` would make a new loop per call, and with it new connections to the
    channel layer's backend every time.
    """
    global _loop
    with _loop_lock:
        if _loop is None or _loop.is_closed():
            _loop = asyncio.new_event_loop()
            threading.Thread(target=_loop.run_forever, name="events", daemon=True).start()
            atexit.register(_close_publisher_loop, _loop)
        return _loop


def _close_publisher_loop(loop: asyncio.AbstractEventLoop) -> None:
    async def close() -> None:
        layer = get_channel_layer()
        if hasattr(layer, "close"):
            await layer.close()

    with contextlib.suppress(Exception):
        asyncio.run_coroutine_threadsafe(close(), loop).result(SEND_TIMEOUT_S)
    loop.call_soon_threadsafe(loop.stop)


async def _send(event: Event | SocketControl) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    message = event.layer_message()
    for group in event.groups():
        await layer.group_send(group, message)


def send_now(event: Event | SocketControl) -> None:
    """Deliver at once; a broken channel layer never breaks the caller."""
    try:
        asyncio.run_coroutine_threadsafe(_send(event), _publisher_loop()).result(SEND_TIMEOUT_S)
    except Exception:
        logger.exception("could not publish %s", event.type)


def publish(event: Event | SocketControl) -> None:
    """Send the event once the current transaction (if any) has committed."""
    transaction.on_commit(lambda: send_now(event), robust=True)


async def _send_all(batch: list[Event | SocketControl]) -> None:
    for event in batch:
        try:
            await _send(event)
        except Exception:
            logger.exception("could not publish %s", event.type)


def publish_all(batch: list[Event | SocketControl]) -> None:
    """``publish`` each event, in order, with one hand-over to the publisher's loop for all
    (the recorder's segments of one pass)."""
    if not batch:
        return

    def send() -> None:
        try:
            future = asyncio.run_coroutine_threadsafe(_send_all(batch), _publisher_loop())
            future.result(SEND_TIMEOUT_S * len(batch))
        except Exception:
            logger.exception("could not publish %d events", len(batch))

    transaction.on_commit(send, robust=True)


@dataclass(frozen=True, kw_only=True)
class RecordingSegment(Event):
    type: str = field(default="recording.segment", init=False)
    segment_id: int
    start: str
    end: str
    duration_s: float
    size_bytes: int


@dataclass(frozen=True, kw_only=True)
class ClipProgress(Event):
    type: str = field(default="clip.progress", init=False)
    clip_id: int
    status: str
    progress: float


@dataclass(frozen=True, kw_only=True)
class ClipDone(Event):
    type: str = field(default="clip.done", init=False)
    clip_id: int
    status: str
    size_bytes: int | None
    duration_s: float | None
    sha256: str
    error: str


@dataclass(frozen=True, kw_only=True)
class LprRead(Event):
    """A vehicle's plate was read (one per pass)."""

    type: str = field(default="lpr.read", init=False)
    read_id: int
    plate: str
    format: str
    confidence: float
    bbox: list[int]


@dataclass(frozen=True, kw_only=True)
class LprAlert(Event):
    """A read plate is on the prefeitura's watchlist."""

    type: str = field(default="lpr.alert", init=False)
    plate: str
    read_id: int
    watchlist_id: int
    reason: str
