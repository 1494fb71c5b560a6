"""The live event channel ``ws/events``: every event of the cameras the user can see."""

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from gtvision import events

CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404


class EventsConsumer(AsyncJsonWebsocketConsumer):
    groups_joined: list[str]

    async def connect(self) -> None:
        self.groups_joined = []
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or not user.is_active:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        groups = await self.groups_for(user)
        if groups is None:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        for group in groups:
            await self.channel_layer.group_add(group, self.channel_name)
            self.groups_joined.append(group)
        await self.accept()

    async def groups_for(self, user) -> list[str] | None:
        if user.is_platform_admin:
            return [events.PLATFORM_GROUP]
        if user.prefeitura_id is None:
            return None
        return [events.prefeitura_group(user.prefeitura_id)]

    async def disconnect(self, code: int) -> None:
        for group in self.groups_joined:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive_json(self, content, **kwargs) -> None:
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
        await self.send_json(message["event"])
