"""``ws/streams/{id}/events``: the events of one stream the user can see."""

from channels.db import database_sync_to_async

from gtvision import events
from gtvision.consumers import EventsConsumer
from streaming.models import Stream


class StreamEventsConsumer(EventsConsumer):
    async def groups_for(self, user) -> list[str] | None:
        stream_id = self.scope["url_route"]["kwargs"]["stream_id"]
        visible = await database_sync_to_async(
            Stream.objects.for_user(user).filter(pk=stream_id).exists
        )()
        return [events.stream_group(stream_id)] if visible else None
