"""Live events through a real client: the ``websockets`` library against a real Daphne.

One Daphne (``manage.py serve``, ``tests/live_web.py``) on the test database serves the
module; rows made by the tests are committed (``transaction=True``) so it sees them, and
events published here travel through the channel layer (PostgreSQL) to it like the media
supervisor's and the job worker's do.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time

import pytest
import requests
from asgiref.sync import sync_to_async
from django.db import connection
from django.test import Client
from rest_framework_simplejwt.tokens import AccessToken
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from admin_ctx import services as user_services
from admin_ctx.models import Role
from bench.ws_churn import django_pool_bound
from cidades import services as camera_services
from gtvision import events
from gtvision.channel_layer import ALIVE_LOCK_CLASS, APPLICATION_NAME
from streaming import services as stream_services
from streaming.models import Stream
from tests.factories import AdminFactory, CameraFactory, PrefeituraFactory, UserFactory
from tests.live_web import running_web

pytestmark = [
    pytest.mark.django_db(transaction=True, databases=["default", "channels_postgres"]),
    pytest.mark.timeout(180),
]

TRUSTED = "https://painel.example.gov.br"
PUBLIC = "https://vms.example.gov.br"
CHURN = 3000
CHURN_CONCURRENCY = 20


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


# -- refusals a client can read ---------------------------------------------------------------


async def test_refusals_are_close_codes_seen_by_a_real_client(web):
    a, b = await create(PrefeituraFactory), await create(PrefeituraFactory)
    user_a = await create(UserFactory, prefeitura=a)
    camera_b = await create(CameraFactory, prefeitura=b)
    stream_b = await sync_to_async(Stream.objects.create)(camera=camera_b)

    assert await close_code(ws_url(web, "ws/events")) == 4401
    assert await close_code(ws_url(web, "ws/events?token=garbage")) == 4401
    for path in (f"ws/streams/{stream_b.pk}/events", f"api/streams/{stream_b.pk}/events",
                 "ws/streams/999999/events"):  # fmt: skip
        assert await close_code(ws_url(web, path, user_a)) == 4404, path
    for path in ("ws/events/", "ws/nada", "ws/streams/abc/events", "", "api/streams/1/"):
        assert await close_code(ws_url(web, path, user_a)) == 4404, path
    # The server is unharmed: a valid socket still works.
    socket = await opened(ws_url(web, "ws/events", user_a))
    await ping(socket)
    await socket.close()
    assert "Traceback" not in web[1].output()


async def test_frames_that_are_not_json_objects_are_ignored(web):
    user = await create(UserFactory)
    socket = await opened(ws_url(web, "ws/events", user))
    for frame in ("not json", "{", "[1, 2]", '"ping"', "null", b"\x00\xffbinary", '{"type": 1}'):
        await socket.send(frame)
    await ping(socket)  # still open, still answering
    await socket.close()
    assert "Traceback" not in web[1].output()


# -- what reaches whom ------------------------------------------------------------------------


async def test_camera_events_reach_only_their_prefeitura(web):
    a, b = await create(PrefeituraFactory), await create(PrefeituraFactory)
    user_a = await create(UserFactory, prefeitura=a)
    user_b = await create(UserFactory, prefeitura=b)
    admin = await create(AdminFactory)
    camera = await create(CameraFactory, prefeitura=a)
    sockets = {
        name: await opened(ws_url(web, "ws/events", user))
        for name, user in (("a", user_a), ("b", user_b), ("admin", admin))
    }
    await sync_to_async(camera_services.update_camera)(
        camera, actor=user_a, data={"name": "Portão Norte", "enabled": False}
    )
    for name in ("a", "admin"):
        event = await next_event(sockets[name])
        assert event["type"] == "camera.updated"
        assert event["camera_id"] == camera.pk
        assert event["status"] == "disabled" and event["name"] == "Portão Norte"
        assert "at" in event and "source_url" not in str(event)
    assert await nothing(sockets["b"])
    await ping(sockets["a"])
    await asyncio.gather(*(s.close() for s in sockets.values()))


async def test_stream_events_on_both_paths_only_for_that_stream(web):
    prefeitura = await create(PrefeituraFactory)
    user = await create(UserFactory, prefeitura=prefeitura)
    camera = await create(CameraFactory, prefeitura=prefeitura)
    other_camera = await create(CameraFactory, prefeitura=prefeitura)
    stream = await sync_to_async(Stream.objects.create)(camera=camera)
    other = await sync_to_async(Stream.objects.create)(camera=other_camera)
    sockets = [
        await opened(ws_url(web, f"ws/streams/{stream.pk}/events", user)),
        await opened(ws_url(web, f"api/streams/{stream.pk}/events", user)),
    ]
    await sync_to_async(stream_services.set_stream_status)(other.pk, Stream.Status.RUNNING)
    await sync_to_async(stream_services.set_stream_status)(stream.pk, Stream.Status.RUNNING)
    for socket in sockets:
        event = await next_event(socket)
        assert event["type"] == "stream.status" and event["stream_id"] == stream.pk
        assert event["status"] == "RUNNING" and event["camera_id"] == camera.pk
        assert await nothing(socket, 0.5)  # not the other stream's
        await ping(socket)
        await socket.close()


# -- origin -----------------------------------------------------------------------------------


async def test_origin_is_checked_against_public_url_trusted_origins_and_own_host(web):
    user = await create(UserFactory)
    url = ws_url(web, "ws/events", user)
    port = int(web[0].rsplit(":", 1)[1])
    for foreign in ("http://evil.example", f"http://127.0.0.1:{port + 1}", "null",
                    f"https://127.0.0.1.evil.example:{port}"):  # fmt: skip
        assert await close_code(url, origin=foreign) == 4403, foreign
    for allowed in (PUBLIC, TRUSTED, f"http://127.0.0.1:{port}"):
        socket = await opened(url, origin=allowed)
        await ping(socket)
        await socket.close()
    socket = await opened(url)  # no Origin: not a browser; the token authenticates it
    await socket.close()
    # A foreign origin learns nothing else, not even whether it is signed in.
    assert await close_code(ws_url(web, "ws/events"), origin="http://evil.example") == 4403


# -- live re-authorization --------------------------------------------------------------------


async def test_a_camera_moved_away_stops_reaching_the_old_prefeitura(web):
    a, b = await create(PrefeituraFactory), await create(PrefeituraFactory)
    user_a = await create(UserFactory, prefeitura=a)
    user_b = await create(UserFactory, prefeitura=b)
    admin = await create(AdminFactory)
    camera = await create(CameraFactory, prefeitura=a)
    staying = await create(CameraFactory, prefeitura=a)
    stream = await sync_to_async(Stream.objects.create)(camera=camera)
    events_a = await opened(ws_url(web, "ws/events", user_a))
    events_b = await opened(ws_url(web, "ws/events", user_b))
    stream_a = await opened(ws_url(web, f"ws/streams/{stream.pk}/events", user_a))

    await sync_to_async(camera_services.update_camera)(camera, actor=admin, data={"prefeitura": b})
    assert await closed_with(stream_a) == 4404
    moved = await next_event(events_b)
    assert moved["type"] == "camera.updated" and moved["camera_id"] == camera.pk
    # An event published late with the old prefeitura (a process that read the camera
    # before the move) does not reach the old tenant; its other cameras still do.
    late = events.StreamStatus(camera_id=camera.pk, prefeitura_id=a.pk, stream_id=stream.pk,
                               status="RUNNING", last_error="")  # fmt: skip
    await sync_to_async(events.send_now)(late)
    await sync_to_async(camera_services.update_camera)(
        staying, actor=user_a, data={"name": "Ainda aqui"}
    )
    event = await next_event(events_a)
    assert event["camera_id"] == staying.pk, event
    assert await nothing(events_a)
    # And the new tenant may open the stream's socket now.
    socket = await opened(ws_url(web, f"ws/streams/{stream.pk}/events", user_b))
    await asyncio.gather(events_a.close(), events_b.close(), socket.close())


async def test_logout_deactivation_password_and_scope_changes_close_sockets_4401(web):
    prefeitura = await create(PrefeituraFactory)
    admin = await create(AdminFactory)
    users = [await create(UserFactory, prefeitura=prefeitura) for _ in range(5)]
    bystander = await create(UserFactory, prefeitura=prefeitura)

    # Logout of the dashboard session (POST /logout/, the real view and its signal).
    client = Client()
    await sync_to_async(client.force_login)(users[0])
    session_id = client.cookies["sessionid"].value
    by_session = await opened(
        ws_url(web, "ws/events"), additional_headers={"Cookie": f"sessionid={session_id}"}
    )
    by_token = [await opened(ws_url(web, "ws/events", user)) for user in users]
    other = await opened(ws_url(web, "ws/events", bystander))

    csrf = secrets.token_hex(16)  # a client-chosen CSRF secret: cookie and header agree
    response = await sync_to_async(requests.post)(
        f"{web[0]}/logout/",
        cookies={"sessionid": session_id, "csrftoken": csrf},
        headers={"X-CSRFToken": csrf},
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code in (200, 302), response.status_code
    assert await closed_with(by_session) == 4401
    assert await closed_with(by_token[0]) == 4401  # logout revoked the user's tokens too

    update = sync_to_async(user_services.update_user)
    await update(users[1], actor=admin, data={"is_active": False})
    assert await closed_with(by_token[1]) == 4401
    await update(users[2], actor=admin, data={"password": "Outra-senha-456"})
    assert await closed_with(by_token[2]) == 4401
    await update(users[3], actor=admin, data={"role": Role.GESTOR})
    assert await closed_with(by_token[3]) == 4401
    await sync_to_async(user_services.delete_user)(users[4], actor=admin)
    assert await closed_with(by_token[4]) == 4401
    # Nobody else was touched; the revoked ones cannot come back with what they had.
    await ping(other)
    assert await close_code(ws_url(web, "ws/events", users[1])) == 4401
    await other.close()


# -- churn ------------------------------------------------------------------------------------


def _database_load() -> dict[str, int]:
    """Locks and connections of the test database's other sessions, and group rows."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE a.datname = current_database() AND l.pid <> pg_backend_pid()"
        )
        locks = cursor.fetchone()[0]
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid()"
        )
        connections = cursor.fetchone()[0]
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND application_name = %s",
            [APPLICATION_NAME],
        )
        layer = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM channels_postgres_groupchannel")
        groups = cursor.fetchone()[0]
    return {"locks": locks, "connections": connections, "layer": layer, "groups": groups}


async def _churn(url: str, count: int, concurrency: int) -> int:
    done = 0

    async def worker(n: int) -> None:
        nonlocal done
        for _ in range(n):
            async with connect(url, open_timeout=20) as socket:
                await socket.send('{"type": "ping"}')
                assert await asyncio.wait_for(socket.recv(), 20) == '{"type": "pong"}'
            done += 1

    share, extra = divmod(count, concurrency)
    await asyncio.gather(*(worker(share + (i < extra)) for i in range(concurrency)))
    return done


async def _settled(groups: int, locks: int | None = None) -> dict[str, int]:
    """The database load once in-flight work is done: ``groups`` group rows, and at most
    ``locks`` locks if given."""
    load = sync_to_async(_database_load)
    deadline = time.monotonic() + 15
    while True:
        now = await load()
        done = now["groups"] == groups and (locks is None or now["locks"] <= locks)
        if done or time.monotonic() > deadline:
            return now
        await asyncio.sleep(0.3)


async def test_connect_disconnect_churn_leaks_no_locks_connections_or_groups(web):
    """CHURN connects/disconnects (bench/ws_churn.py measures 20,000): nothing grows.

    The connections of the server's pools (Django's and the channel layer's) are bounded by
    their sizes; a warm-up at twice the concurrency brings them to their working size first.
    """
    user = await create(UserFactory)
    url = ws_url(web, "ws/events", user)
    await _churn(url, 300, 2 * CHURN_CONCURRENCY)
    before = await _settled(groups=0)
    keeper = await opened(url)  # one socket stays open through the churn
    started = time.monotonic()
    assert await _churn(url, CHURN, CHURN_CONCURRENCY) == CHURN
    print(f"{CHURN} connects in {time.monotonic() - started:.1f} s")
    await ping(keeper)  # the layer still delivers to the socket that stayed
    after = await _settled(groups=2, locks=before["locks"])  # the keeper's 2 groups
    assert after["locks"] <= before["locks"], (before, after)
    assert after["groups"] == 2, (before, after)
    assert after["layer"] <= before["layer"] + 1, (before, after)
    # Django's own pools in the server may still grow, up to their sizes: not per connect.
    assert after["connections"] - after["layer"] <= max(
        before["connections"] - before["layer"] + 1, django_pool_bound()
    ), (before, after)
    await keeper.close()
    assert (await _settled(groups=0))["groups"] == 0


async def test_group_rows_of_a_killed_server_are_removed_and_live_ones_kept(web):
    """A Daphne killed with its sockets open leaves no group rows behind (no row and no NOTIFY
    per event for sockets that are gone); a live server's rows stay."""
    prefeitura = await create(PrefeituraFactory)
    user = await create(UserFactory, prefeitura=prefeitura)
    camera = await create(CameraFactory, prefeitura=prefeitura)
    count = sync_to_async(lambda: _database_load()["groups"])
    assert await count() == 0
    with running_web(CHANNEL_LAYER_JANITOR_S="1") as doomed:
        orphans = [await opened(ws_url(doomed, "ws/events", user)) for _ in range(3)]
        survivor = await opened(ws_url(web, "ws/events", user))
        assert await count() == 8  # 4 sockets x (user, prefeitura)
        doomed[1].process.kill()
        doomed[1].process.wait()
    assert (await _settled(groups=2))["groups"] == 2
    await asyncio.sleep(2.5)  # more janitor rounds: the live server's rows stay
    assert await count() == 2
    await sync_to_async(camera_services.update_camera)(camera, actor=user, data={"name": "Vivo"})
    assert (await next_event(survivor))["name"] == "Vivo"
    await ping(survivor)
    for socket in [*orphans, survivor]:
        await socket.close()


def _kill_layer_sessions() -> int:
    """Terminate every channel-layer session of the test database (server's and ours)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name = %s",
            [APPLICATION_NAME],
        )
        return cursor.fetchone()[0]


def _listening() -> bool:
    """A listener of the layer is connected (it holds its process's liveness lock)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database"
            " WHERE d.datname = current_database() AND l.locktype = 'advisory'"
            " AND l.classid = %s::oid AND l.granted",
            [ALIVE_LOCK_CLASS],
        )
        return cursor.fetchone()[0] > 0


async def test_the_layer_rides_out_lost_database_sessions(web):
    """Its LISTEN and pooled sessions killed (as in a database restart), the server's layer
    reconnects, puts its group rows back and delivers again."""
    prefeitura = await create(PrefeituraFactory)
    user = await create(UserFactory, prefeitura=prefeitura)
    camera = await create(CameraFactory, prefeitura=prefeitura)
    socket = await opened(ws_url(web, "ws/events", user))
    assert await sync_to_async(_kill_layer_sessions)() >= 2  # at least a listener and a pool
    await asyncio.sleep(3)  # the janitor's rounds while the server held no liveness lock
    deadline = time.monotonic() + 20
    while not await sync_to_async(_listening)():
        assert time.monotonic() < deadline, "the listener did not come back"
        await asyncio.sleep(0.3)
    assert (await _settled(groups=2))["groups"] == 2
    await sync_to_async(camera_services.update_camera)(
        camera, actor=user, data={"name": "De volta"}
    )
    assert (await next_event(socket))["name"] == "De volta"
    await ping(socket)
    await socket.close()
