"""WebSocket clients against a real Daphne: the ``websockets`` library, and its helpers.

The module-scoped ``web`` fixture runs one Daphne (``manage.py serve``, ``tests/live_web.py``)
on the test database; rows made by the tests are committed (``transaction=True``) so it sees
them, and events published in the test process travel through the channel layer (PostgreSQL)
to it like the media supervisor's and the job worker's do.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from asgiref.sync import sync_to_async
from rest_framework_simplejwt.tokens import AccessToken
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.live_web import running_web

TRUSTED = "https://painel.example.gov.br"
PUBLIC = "https://vms.example.gov.br"


@pytest.fixture(scope="module")
def web(django_db_setup, django_db_blocker, tmp_path_factory):
    """Daphne for the module: (http base URL, its process)."""
    data = tmp_path_factory.mktemp("ws-web")
    env = {
        "PUBLIC_URL": PUBLIC,
        "CSRF_TRUSTED_ORIGINS": TRUSTED,
        "GTV_LIVE_DIR": str(data / "live"),
        "GTV_RECORDINGS_DIR": str(data / "recordings"),
        "GTV_CLIPS_DIR": str(data / "clips"),
        "CHANNEL_LAYER_JANITOR_S": "1",  # its janitor runs through every test here
    }
    with django_db_blocker.unblock(), running_web(**env) as (url, process):
        yield url, process
    assert "Traceback" not in process.output(), process.output()[-6000:]


def ws_url(web, path: str, user=None) -> str:
    url = web[0].replace("http://", "ws://") + "/" + path
    if user is not None:
        url += ("&" if "?" in url else "?") + f"token={AccessToken.for_user(user)}"
    return url


async def opened(url: str, **kwargs) -> ClientConnection:
    """An open socket; fails if the server closes it right away (a refusal)."""
    socket = await connect(url, open_timeout=10, **kwargs)
    try:
        await asyncio.wait_for(socket.recv(), 0.5)
    except TimeoutError:
        return socket
    except ConnectionClosed as exc:
        raise AssertionError(f"{url}: closed with {exc.rcvd and exc.rcvd.code}") from exc
    raise AssertionError(f"{url}: unexpected message right after opening")


async def close_code(url: str, **kwargs) -> int | None:
    """The close code the server sends after accepting the handshake."""
    async with connect(url, open_timeout=10, **kwargs) as socket:
        return await closed_with(socket)


async def closed_with(socket: ClientConnection, timeout: float = 10) -> int | None:
    """Wait (skipping event messages) until the server closes the socket; its code."""
    deadline = time.monotonic() + timeout
    try:
        while True:
            await asyncio.wait_for(socket.recv(), max(0.1, deadline - time.monotonic()))
    except ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd else None


async def next_event(socket: ClientConnection, timeout: float = 10) -> dict:
    return json.loads(await asyncio.wait_for(socket.recv(), timeout))


async def nothing(socket: ClientConnection, timeout: float = 1.5) -> bool:
    try:
        message = await asyncio.wait_for(socket.recv(), timeout)
    except TimeoutError:
        return True
    raise AssertionError(f"unexpected message {message}")


async def ping(socket: ClientConnection) -> None:
    await socket.send('{"type": "ping"}')
    assert await next_event(socket) == {"type": "pong"}


async def create(factory, **kwargs):
    return await sync_to_async(factory)(**kwargs)
