"""The live event channel ``ws/events``: every event of the cameras the user can see.

Every refusal is an accept followed by a close with its code, so that a browser can read it
(closing before ``accept()`` makes Daphne answer the handshake with HTTP 403):

* 4403: the page's ``Origin`` is not allowed (``gtvision.ws_auth.origin_allowed``);
* 4401: no valid session or token, or (later) the user's access was revoked: logout,
  deactivation, deletion, a password, role or prefeitura change;
* 4404: the stream does not exist or belongs to another prefeitura (also when its camera
  moves away while the socket is open), or the path is unknown.

Live re-authorization: each socket joins its user's group (``events.AccessRevoked``); a
prefeitura's sockets hear ``events.CameraMoved`` and stop forwarding the events of a camera
that left (including events published late with the old prefeitura).

Frames from the client: ``{"type": "ping"}`` is answered with ``{"type": "pong"}``; anything
else (binary, not JSON, not an object, unknown type) is ignored.
"""

from __future__ import annotations

import json
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from gtvision import events
from gtvision.metrics import WEBSOCKET_CONNECTIONS
from gtvision.ws_auth import origin_allowed

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN_ORIGIN = 4403
CLOSE_NOT_FOUND = 4404


class EventsConsumer(AsyncJsonWebsocketConsumer):
    groups_joined: list[str]
    hidden_cameras: set[int]

    async def connect(self) -> None:
        self.groups_joined = []
        self.hidden_cameras = set()
        groups, refusal = await self.authorize()
        if refusal is not None:
            await self.accept()
            await self.close(code=refusal)
            return
        # Subscribed before the handshake completes: a client that reads the state once the
        # socket is open misses no change made in between.
        for group in groups:
            await self.channel_layer.group_add(group, self.channel_name)
            self.groups_joined.append(group)
        await self.accept()
        WEBSOCKET_CONNECTIONS.inc()
        self.counted = True

    async def authorize(self) -> tuple[list[str], int | None]:
        """(groups to join, None), or ([], the close code of the refusal)."""
        if not origin_allowed(self.scope):
            return [], CLOSE_FORBIDDEN_ORIGIN
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or not user.is_active:
            return [], CLOSE_UNAUTHENTICATED
        groups = await self.groups_for(user)
        if groups is None:
            return [], CLOSE_NOT_FOUND
        return [events.user_group(user.pk), *groups], None

    async def groups_for(self, user: Any) -> list[str] | None:
        if user.is_platform_admin:
            return [events.PLATFORM_GROUP]
        if user.prefeitura_id is None:
            return None
        return [events.prefeitura_group(user.prefeitura_id)]

    async def disconnect(self, code: int) -> None:
        if getattr(self, "counted", False):
            WEBSOCKET_CONNECTIONS.dec()
            self.counted = False
        for group in self.groups_joined:
            await self.channel_layer.group_discard(group, self.channel_name)
        self.groups_joined = []

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data is None:
            return
        try:
            content = json.loads(text_data)
        except ValueError:
            return
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send_json({"type": "pong"})

    async def dispatch(self, message: dict) -> None:
        # Channels runs close_old_connections() in the one sync thread before every handler.
        # Forwarding an event touches no database: skipping that hop matters when one event
        # goes to hundreds of consumers of a process (p99 for 500 clients: ~250 ms -> see
        # docs/benchmarks.md).
        if message.get("type") == "event.message":
            await self.event_message(message)
            return
        await super().dispatch(message)

    async def event_message(self, message: dict) -> None:
        event = message["event"]
        if event.get("camera_id") in self.hidden_cameras:
            return
        await self.send_json(event)

    async def access_revoked(self, message: dict) -> None:
        await self.close(code=CLOSE_UNAUTHENTICATED)

    async def access_camera(self, message: dict) -> None:
        """A camera changed prefeitura: keep forwarding its events only if still visible."""
        from cidades.models import Camera

        camera_id = message["camera_id"]
        user = self.scope["user"]
        visible = await database_sync_to_async(
            Camera.objects.for_user(user).filter(pk=camera_id).exists
        )()
        if visible:
            self.hidden_cameras.discard(camera_id)
        else:
            self.hidden_cameras.add(camera_id)


async def not_found(scope: dict, receive: Any, send: Any) -> None:
    """Any other WebSocket path: accepted, then closed with 4404 (no server error)."""
    while True:
        message = await receive()
        if message["type"] == "websocket.connect":
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.close", "code": CLOSE_NOT_FOUND})
        elif message["type"] == "websocket.disconnect":
            return
