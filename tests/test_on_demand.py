"""On-demand live viewing (issue 9.5): a stream opened for viewers stops by itself once its
last viewer leaves; a stream started explicitly runs until stopped; recording never depends
on viewers. Through the real HTTP API with a running supervisor, and in a real Chromium."""

from __future__ import annotations

import json
import time
from urllib.parse import urlsplit

import pytest
from django.db import connection

from admin_ctx.models import AuditEntry
from cidades.models import Camera
from recordings.models import Segment
from streaming.models import Stream
from testcamera import INSTALL_HINT, TestCamera, free_port
from tests.conftest import client_for
from tests.factories import CameraFactory, UserFactory
from tests.supervisor import SupervisorProcess, media_processes, wait_for
from tests.test_browser import browser  # noqa: F401 (the module's Chromium fixture)

pytestmark = [
    pytest.mark.camera,
    pytest.mark.django_db(transaction=True, databases=["default", "channels_postgres"]),
]
IDLE_S = 10


@pytest.fixture(autouse=True)
def _fast_password_hasher():
    """The browser test logs in through Daphne, whose hashers are the real ones."""


@pytest.fixture
def camera_server():
    assert TestCamera.available(), INSTALL_HINT
    server = TestCamera(mounts=("cam1", "cam2"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def running_supervisor(settings):
    settings.MEDIA_ENGINE = "embedded"
    settings.VIEWER_IDLE_SECONDS = IDLE_S
    process = SupervisorProcess(VIEWER_IDLE_SECONDS=str(IDLE_S), RECORDING_SEGMENT_SECONDS="2")
    process.start()
    yield process
    process.stop()


def status(stream_id: int) -> str:
    return Stream.objects.get(pk=stream_id).status


def start(client, camera: Camera, **body) -> dict:
    response = client.post("/api/streams/start", {"camera_id": camera.pk, **body}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def watch(seconds: float, action) -> None:
    """Call ``action`` every second for ``seconds`` (a viewer's player)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        action()
        time.sleep(1)


@pytest.mark.timeout(120)
def test_viewer_stream_stops_after_the_last_viewer_leaves(camera_server, running_supervisor):
    operador = UserFactory()
    camera = CameraFactory(
        prefeitura=operador.prefeitura, source_url=camera_server.url("cam1"),
        recording_enabled=False,
    )  # fmt: skip
    api = client_for(operador)
    opened = start(api, camera, on_demand=True)
    assert opened["on_demand"] is True
    stream_id = opened["stream_id"]
    wait_for(lambda: status(stream_id) == "RUNNING")

    # a viewer keeps it alive well past the idle time
    def keep_alive():
        body = api.post(f"/api/streams/{stream_id}/keepalive").json()
        assert body["status"] == "RUNNING" and body["idle_timeout_s"] == IDLE_S

    watch(IDLE_S * 1.6, keep_alive)
    assert status(stream_id) == "RUNNING"

    # a second viewer joins (409 + its stream_id), and the live HLS itself counts as viewing
    joined = api.post("/api/streams/start", {"camera_id": camera.pk, "on_demand": True},
                      format="json")  # fmt: skip
    assert joined.status_code == 409 and joined.json()["stream_id"] == stream_id
    hls = urlsplit(api.get(f"/api/streams/{stream_id}/urls").json()["hls"])
    watch(IDLE_S * 1.6, lambda: api.get(f"{hls.path}?{hls.query}"))
    assert status(stream_id) == "RUNNING"

    # everyone left: stopped within the idle time (and a supervisor pass or two)
    left = time.monotonic()
    wait_for(lambda: status(stream_id) == "STOPPED", timeout=IDLE_S + 20)
    assert time.monotonic() - left >= IDLE_S - 1
    wait_for(lambda: not media_processes(f":{camera_server.port}/cam1"), timeout=15)
    stop = AuditEntry.objects.filter(action="stream.stop").latest("id")
    assert stop.details == {"stream_id": stream_id, "reason": "idle"} and stop.actor is None
    # a late keep-alive tells the player it stopped (it opens it again)
    late = api.post(f"/api/streams/{stream_id}/keepalive").json()
    assert late["status"] == "STOPPED"


@pytest.mark.timeout(120)
def test_explicit_stream_runs_until_stopped(camera_server, running_supervisor):
    operador = UserFactory()
    explicit_camera, promoted_camera = (
        CameraFactory(
            prefeitura=operador.prefeitura,
            source_url=camera_server.url(mount),
            recording_enabled=False,
        )  # fmt: skip
        for mount in ("cam1", "cam2")
    )
    api = client_for(operador)
    explicit = start(api, explicit_camera)  # the API's default: explicit
    assert explicit["on_demand"] is False
    # a viewer opening an explicit stream joins it without making it on demand
    joined = api.post("/api/streams/start", {"camera_id": explicit_camera.pk, "on_demand": True},
                      format="json")  # fmt: skip
    assert joined.status_code == 409 and joined.json()["on_demand"] is False

    # an on-demand stream started explicitly afterwards becomes explicit
    viewer = start(api, promoted_camera, on_demand=True)
    again = api.post("/api/streams/start", {"camera_id": promoted_camera.pk}, format="json")
    assert again.status_code == 409 and again.json()["stream_id"] == viewer["stream_id"]
    assert again.json()["on_demand"] is False

    for stream_id in (explicit["stream_id"], viewer["stream_id"]):
        wait_for(lambda stream_id=stream_id: status(stream_id) == "RUNNING")
    time.sleep(IDLE_S * 2)  # nobody watches: explicit streams keep running
    for stream_id in (explicit["stream_id"], viewer["stream_id"]):
        assert status(stream_id) == "RUNNING"
        assert api.get(f"/api/streams/{stream_id}").json()["on_demand"] is False
    stopped = api.post(f"/api/streams/{explicit['stream_id']}/stop")
    assert stopped.status_code == 200 and stopped.json()["status"] == "STOPPED"


@pytest.mark.timeout(120)
def test_recording_does_not_depend_on_viewers(camera_server, running_supervisor):
    operador = UserFactory()
    camera = CameraFactory(prefeitura=operador.prefeitura, source_url=camera_server.url("cam2"))
    api = client_for(operador)
    stream_id = start(api, camera, on_demand=True)["stream_id"]
    wait_for(lambda: status(stream_id) == "RUNNING")
    wait_for(lambda: status(stream_id) == "STOPPED", timeout=IDLE_S + 20)
    recorded = Segment.objects.filter(camera_id=camera.pk).count()
    wait_for(lambda: Segment.objects.filter(camera_id=camera.pk).count() >= recorded + 2)
    assert len(media_processes(f":{camera_server.port}/cam2")) == 1
    assert Camera.objects.get(pk=camera.pk).status == "online"  # shown by its recorder


def test_keepalive_and_start_validation(settings):
    operador = UserFactory()
    camera = CameraFactory(prefeitura=operador.prefeitura, source_url="rtsp://127.0.0.1:1/x")
    api = client_for(operador)
    bad = api.post("/api/streams/start", {"camera_id": camera.pk, "on_demand": "maybe"},
                   format="json")  # fmt: skip
    assert bad.status_code == 400 and "on_demand" in bad.json()
    assert not Stream.objects.exists()
    assert api.post("/api/streams/999999/keepalive").status_code == 404
    other = UserFactory(prefeitura=CameraFactory().prefeitura)
    stream_id = start(api, camera, on_demand=True)["stream_id"]
    assert client_for(other).post(f"/api/streams/{stream_id}/keepalive").status_code == 404


def test_openapi_documents_on_demand(api):
    response = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    schema = json.loads(response.content)
    start_op = schema["paths"]["/api/streams/start/"]["post"]
    assert "on_demand" in str(start_op["description"])
    body = start_op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    props = schema["components"]["schemas"][body.rsplit("/", 1)[1]]["properties"]
    assert (
        props["on_demand"]["type"] == "boolean" and "keepalive" in props["on_demand"]["description"]
    )
    assert "/api/streams/{id}/keepalive/" in schema["paths"]
    assert "409" in start_op["responses"]


# -- in a real browser ----------------------------------------------------------------------


@pytest.fixture
def browser_stack(camera_server, tmp_path):
    """Web and supervisor like tests/test_browser.py's stack, with a shorter idle time than the
    player's keep-alive period would survive without keep-alives (20 s vs every 15 s)."""
    from tests.test_browser import ASYNC_UNSAFE, ManagedProcess, Stack

    env = {
        "GTV_DATABASE_NAME": connection.settings_dict["NAME"],
        "GTV_LIVE_DIR": str(tmp_path / "live"),
        "GTV_RECORDINGS_DIR": str(tmp_path / "recordings"),
        "GTV_CLIPS_DIR": str(tmp_path / "clips"),
        "VIEWER_IDLE_SECONDS": "20",
        "LOG_LEVEL": "WARNING",
    }
    port = free_port()
    env["PUBLIC_URL"] = f"http://127.0.0.1:{port}"
    web = ManagedProcess("web", ["serve", "--host", "127.0.0.1", "--port", str(port)], env)
    supervisor = SupervisorProcess(**env)
    supervisor.env.pop(ASYNC_UNSAFE, None)
    running = Stack(f"http://127.0.0.1:{port}", web, web, supervisor, camera_server)
    try:
        web.start()
        supervisor.start()
        wait_for(lambda: _ready(running), timeout=60, step=0.1)
        yield running
    finally:
        for process in (web, supervisor):
            process.stop()


def _ready(stack) -> bool:
    import requests

    assert stack.web.alive(), stack.logs()
    try:
        return requests.get(f"{stack.url}/", timeout=2).status_code == 200
    except requests.RequestException:
        return False


@pytest.mark.browser
@pytest.mark.timeout(240)
def test_browser_viewer_keeps_the_stream_alive_and_leaving_stops_it(browser_stack, browser):  # noqa: F811
    from tests.test_browser import Browsing, operador_with_camera, wait_playing

    user, camera = operador_with_camera(browser_stack.camera.url("cam1"), recording_enabled=False)
    session = Browsing(browser, browser_stack)
    try:
        session.login(user)
        keepalives = []
        session.page.on(
            "request",
            lambda request: "/keepalive" in request.url and keepalives.append(request.method),
        )
        page = session.goto(f"/dashboard/cameras/{camera.pk}/")
        wait_playing(page, "#player-video")
        # the camera page plays the main stream (the grid seen after login, the substream)
        stream = Stream.objects.get(camera=camera, status="RUNNING", profile="main")
        assert stream.on_demand is True
        # longer than the idle time: the player's keep-alives hold it (Playwright's wait, not
        # time.sleep: the sync API delivers the request events while it waits)
        page.wait_for_timeout(35_000)
        assert status(stream.pk) == "RUNNING"
        assert len(keepalives) >= 2 and set(keepalives) == {"POST"}  # every 15 s
        wait_playing(page, "#player-video")
        session.goto("/dashboard/")  # the viewer leaves the camera (the grid shows it again)
        page.goto("about:blank")  # and then the dashboard altogether
        left = time.monotonic()
        wait_for(lambda: status(stream.pk) == "STOPPED", timeout=60)
        assert time.monotonic() - left < 60
        # and whatever the grid opened for it too
        wait_for(
            lambda: not Stream.objects.filter(camera=camera, status__in=Stream.ACTIVE).exists(),
            timeout=60,
        )
        assert not session.errors, session.errors
    finally:
        session.close()
