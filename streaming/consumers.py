"""``ws/streams/{id}/events``: the events of one stream the user can see.

The stream's camera may move to another prefeitura while the socket is open: its sockets
hear ``events.CameraMoved`` (the camera's group) and close with 4404 if the stream is no
longer visible to their user.
"""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async

from gtvision import events
from gtvision.consumers import CLOSE_NOT_FOUND, EventsConsumer
from streaming.models import Stream


class StreamEventsConsumer(EventsConsumer):
    async def groups_for(self, user: Any) -> list[str] | None:
        self.stream_id = self.scope["url_route"]["kwargs"]["stream_id"]
        camera_id = await self.visible_camera(user)
        if camera_id is None:
            return None
        return [events.stream_group(self.stream_id), events.camera_group(camera_id)]

    async def visible_camera(self, user: Any) -> int | None:
        """The stream's camera id if the user can see the stream, else None."""
        return await database_sync_to_async(
            Stream.objects.for_user(user)
            .filter(pk=self.stream_id)
            .values_list("camera_id", flat=True)
            .first
        )()

    async def access_camera(self, message: dict) -> None:
        if await self.visible_camera(self.scope["user"]) is None:
            await self.close(code=CLOSE_NOT_FOUND)
