"""``ws/events`` through the real ASGI application and the real channel layer."""

import asyncio

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from rest_framework_simplejwt.tokens import AccessToken

from cidades import services
from gtvision.asgi import application
from tests.factories import AdminFactory, CameraFactory, PrefeituraFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "channels_postgres"])


async def connect(path: str) -> tuple[WebsocketCommunicator, bool, int | None]:
    communicator = WebsocketCommunicator(application, path, headers=[(b"host", b"localhost")])
    connected, code = await communicator.connect(timeout=5)
    return communicator, connected, code


async def test_anonymous_and_bad_token_are_closed_4401(channel_layer):
    for path in ("ws/events", "ws/events?token=garbage"):
        communicator, connected, code = await connect(path)
        assert not connected and code == 4401
        await communicator.disconnect()


async def test_camera_events_reach_only_their_prefeitura(channel_layer):
    a, b = await sync_to_async(PrefeituraFactory)(), await sync_to_async(PrefeituraFactory)()
    user_a = await sync_to_async(UserFactory)(prefeitura=a)
    user_b = await sync_to_async(UserFactory)(prefeitura=b)
    admin = await sync_to_async(AdminFactory)()
    camera = await sync_to_async(CameraFactory)(prefeitura=a)
    sockets = {}
    for name, user in (("a", user_a), ("b", user_b), ("admin", admin)):
        communicator, connected, _ = await connect(f"ws/events?token={AccessToken.for_user(user)}")
        assert connected, name
        sockets[name] = communicator

    await sync_to_async(services.update_camera)(
        camera, actor=user_a, data={"name": "Portão Norte", "enabled": False}
    )
    for name in ("a", "admin"):
        event = await sockets[name].receive_json_from(timeout=10)
        assert event["type"] == "camera.updated"
        assert event["camera_id"] == camera.pk
        assert event["status"] == "disabled" and event["name"] == "Portão Norte"
        assert "at" in event and "source_url" not in str(event)
    assert await sockets["b"].receive_nothing(timeout=1)
    await sockets["a"].send_json_to({"type": "ping"})
    assert (await sockets["a"].receive_json_from(timeout=5)) == {"type": "pong"}
    await asyncio.gather(*(s.disconnect() for s in sockets.values()))
