"""Live events through real clients: the ``websockets`` library (and Chromium) against a real
Daphne (``tests/ws_live.py``): refusals, what reaches whom, origins, live re-authorization."""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import secrets
import threading

import pytest
import requests
from asgiref.sync import sync_to_async
from django.test import Client

from admin_ctx import services as user_services
from admin_ctx.models import Role
from cidades import services as camera_services
from gtvision import events
from streaming import services as stream_services
from streaming.models import Stream
from testcamera import free_port
from tests import test_browser, ws_live
from tests.factories import AdminFactory, CameraFactory, PrefeituraFactory, UserFactory
from tests.ws_live import (
    PUBLIC,
    TRUSTED,
    close_code,
    closed_with,
    create,
    next_event,
    nothing,
    opened,
    ping,
    ws_url,
)

pytestmark = [
    pytest.mark.django_db(transaction=True, databases=["default", "channels_postgres"]),
    pytest.mark.timeout(180),
]

web = ws_live.web  # the module's Daphne
browser = test_browser.browser  # the module's Chromium


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


# -- in a real browser ------------------------------------------------------------------------

SOCKET_JS = """
([url, ping]) => new Promise((resolve) => {
  const seen = {open: false, messages: []};
  const socket = new WebSocket(url);
  socket.onopen = () => { seen.open = true; if (ping) socket.send('{"type": "ping"}'); };
  socket.onmessage = (e) => { seen.messages.push(e.data); socket.close(1000); };
  socket.onclose = (e) => { seen.code = e.code; resolve(seen); };
  setTimeout(() => resolve(seen), 10000);
})
"""


@contextlib.contextmanager
def foreign_site():
    """Another origin on the same host (another port): an attacker's page."""
    port = free_port()

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            body = b"<!doctype html><title>elsewhere</title>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.browser
def test_chromium_reads_the_close_codes_and_a_page_elsewhere_is_refused(web, browser):
    a, b = PrefeituraFactory(), PrefeituraFactory()
    user = UserFactory(prefeitura=a)
    stream_b = Stream.objects.create(camera=CameraFactory(prefeitura=b))
    client = Client()
    client.force_login(user)
    base = web[0].replace("http://", "ws://")
    context = browser.new_context()
    context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": web[0]}]
    )
    try:
        page = context.new_page()
        page.goto(f"{web[0]}/login/")
        own = page.evaluate(SOCKET_JS, [f"{base}/ws/events", True])
        assert own == {"open": True, "messages": ['{"type": "pong"}'], "code": 1000}, own
        for path, code in [
            ("ws/events?token=garbage", 4401),
            (f"ws/streams/{stream_b.pk}/events", 4404),
            ("ws/nada", 4404),
        ]:
            seen = page.evaluate(SOCKET_JS, [f"{base}/{path}", False])
            assert seen == {"open": True, "messages": [], "code": code}, (path, seen)
        # A page on another port of the same host: the browser sends the user's cookie
        # (cookies ignore ports), the server refuses by Origin, and the page reads why.
        with foreign_site() as elsewhere:
            page.goto(elsewhere)
            seen = page.evaluate(SOCKET_JS, [f"{base}/ws/events", True])
            assert seen == {"open": True, "messages": [], "code": 4403}, seen
    finally:
        context.close()
