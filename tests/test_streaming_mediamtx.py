"""The MediaMTX engine (MEDIA_ENGINE=mediamtx) through the public surface, against the stand-in.

The media supervisor runs as a real subprocess (``manage.py media_supervisor``) on the test
database and drives tests/mediamtx_standin.py, a faithful stand-in of MediaMTX's control API v3
(MediaMTX itself cannot run here). The web side (``/urls``, the ``authHTTPAddress`` callback,
``/health``) runs in process with pytest-django's ``settings``.

Waits are functional: poll the API or the stand-in until a condition holds, with a generous
timeout; nothing asserts how fast anything is.
"""

from __future__ import annotations

import json
import time
import types
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import requests
from django.core import signing

from admin_ctx.models import AuditEntry, Role
from recordings.models import Recording, Segment
from streaming import services
from streaming.models import Stream, WorkerHeartbeat
from streaming.tokens import make_view_token, read_view_token
from testcamera import INSTALL_HINT, TestCamera
from tests.conftest import client_for
from tests.factories import CameraFactory, PrefeituraFactory, UserFactory
from tests.mediamtx_standin import MediaMTXStandIn
from tests.supervisor import SupervisorProcess, media_processes, process_env

ROOT = Path(__file__).resolve().parent.parent
WAIT_S = 20.0
BOOT_WAIT_S = 90.0  # Django start-up of the subprocess (first connection to the database)

API_USER = "gtv-control"
API_PASSWORD = "Api-Pass-7f3a9"
INTERNAL_USER = "gtv-recorder"
INTERNAL_PASSWORD = "Rec-Pass-51c9e"
CAMERA_PASSWORD = "Cam-Secret-8d2e4"
OTHER_CAMERA_PASSWORD = "Cam-Secret-new-b61f0"
SOURCE = f"rtsp://admin:{CAMERA_PASSWORD}@10.20.30.40:554/Streaming/Channels/101"

transactional = pytest.mark.django_db(transaction=True, databases=["default", "channels_postgres"])


# -- helpers -----------------------------------------------------------------------------------


def wait_for(
    condition: Callable[[], Any], what: str, *, timeout: float = WAIT_S, supervisor=None
) -> Any:
    """Poll ``condition`` until it returns a truthy value; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if supervisor is not None and supervisor.process.poll() is not None:
            pytest.fail(f"media supervisor exited while waiting for {what}:\n{supervisor.tail()}")
        if time.monotonic() > deadline:
            detail = f"\n{supervisor.tail()}" if supervisor is not None else ""
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}{detail}")
        time.sleep(0.1)


def path_of(camera) -> str:
    return f"pref{camera.prefeitura_id}/cam{camera.pk}"


def start_stream(client, camera) -> int:
    response = client.post("/api/streams/start", {"camera_id": camera.pk}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["status"] in ("STARTING", "RUNNING")
    return response.json()["stream_id"]


def stream_of(client, stream_id: int) -> dict:
    response = client.get(f"/api/streams/{stream_id}")
    assert response.status_code == 200, response.content
    return response.json()


def camera_status(client, camera) -> str:
    response = client.get(f"/api/cameras/{camera.pk}/")
    assert response.status_code == 200, response.content
    return response.json()["status"]


def metrics_of(client, stream_id: int) -> dict:
    response = client.get(f"/api/streams/{stream_id}/metrics")
    assert response.status_code == 200, response.content
    return response.json()


def calls(standin: MediaMTXStandIn, method: str, route: str) -> list:
    """Requests of the stand-in's log with that method and route that it answered."""
    return [r for r in list(standin.requests_log) if r.method == method and r.path == route]


def replace_calls(standin: MediaMTXStandIn, name: str) -> list:
    return [
        r for r in calls(standin, "POST", f"/v3/config/paths/replace/{name}") if r.status == 200
    ]


def wait_status(client, stream_id: int, status: str, supervisor) -> dict:
    return wait_for(
        lambda: (s := stream_of(client, stream_id))["status"] == status and s,
        f"stream {stream_id} to be {status}",
        supervisor=supervisor,
    )


def wait_declared(standin: MediaMTXStandIn, name: str, supervisor, source: str = SOURCE) -> dict:
    return wait_for(
        lambda: (conf := standin.config_paths().get(name)) and conf["source"] == source and conf,
        f"path {name} declared on MediaMTX with its source",
        supervisor=supervisor,
    )


def wait_ticks(standin: MediaMTXStandIn, supervisor, ticks: int = 3) -> None:
    """Let the supervisor go through a few more reconcile passes (each lists the config)."""
    route = "/v3/config/paths/list"
    seen = len(calls(standin, "GET", route))
    wait_for(
        lambda: len(calls(standin, "GET", route)) >= seen + ticks,
        f"{ticks} more reconcile passes",
        supervisor=supervisor,
    )


def supervisor_env(standin: MediaMTXStandIn, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in process_env().items() if not k.startswith("MEDIAMTX_")}
    env.update(
        MEDIA_ENGINE="mediamtx",
        MEDIAMTX_API_URL=standin.base_url,
        MEDIAMTX_API_USER=API_USER,
        MEDIAMTX_API_PASSWORD=API_PASSWORD,
        SUPERVISOR_INTERVAL_S="0.3",
        SUPERVISOR_METRICS_INTERVAL_S="0",  # metrics of every pass, so every sample is seen
        STREAM_START_GRACE_S="2",
        LOG_LEVEL="DEBUG",  # the most the supervisor ever writes: still no camera password
    )
    env.update(overrides)
    return env


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture
def standin():
    server = MediaMTXStandIn(username=API_USER, password=API_PASSWORD).start()
    yield server
    server.stop()


@pytest.fixture
def start_supervisor(standin, tmp_path, transactional_db):
    """Start the media supervisor on the test database; always terminated afterwards."""
    started: list[SupervisorProcess] = []

    def start(**env_overrides: str) -> SupervisorProcess:
        supervisor = SupervisorProcess(env=supervisor_env(standin, **env_overrides)).start()
        started.append(supervisor)
        # Up once it holds the lock and has reconciled once (its heartbeat).
        wait_for(
            lambda: heartbeat_of(supervisor.process.pid),
            "the media supervisor's first heartbeat",
            timeout=BOOT_WAIT_S,
            supervisor=supervisor,
        )
        return supervisor

    yield start
    for supervisor in started:
        supervisor.stop()
    for supervisor in started:  # whatever the test did, no camera password was ever written
        output = supervisor.output()
        assert CAMERA_PASSWORD not in output and OTHER_CAMERA_PASSWORD not in output


def heartbeat_of(pid: int) -> bool:
    return WorkerHeartbeat.objects.filter(
        kind="media-supervisor", engine="mediamtx", pid=pid
    ).exists()


@pytest.fixture
def city(db):
    """A prefeitura with a gestor, an operador and a camera whose URL carries a password."""
    prefeitura = PrefeituraFactory()
    return types.SimpleNamespace(
        prefeitura=prefeitura,
        gestor=UserFactory(prefeitura=prefeitura, role=Role.GESTOR),
        operador=UserFactory(prefeitura=prefeitura, role=Role.OPERADOR),
        # live streams only: recording is covered by its own test below
        camera=CameraFactory(prefeitura=prefeitura, source_url=SOURCE, recording_enabled=False),
    )


# -- 1. the supervisor as a subprocess ----------------------------------------------------------


@transactional
def test_stream_is_declared_on_mediamtx_and_runs_once_the_source_is_available(
    city, standin, start_supervisor
):
    # A long grace period here: the stream must stay STARTING for as long as we look at it.
    supervisor = start_supervisor(STREAM_START_GRACE_S="600")
    client = client_for(city.operador)
    name = path_of(city.camera)
    stream_id = start_stream(client, city.camera)

    conf = wait_declared(standin, name, supervisor)
    assert conf["rtspTransport"] == "tcp"
    sent = replace_calls(standin, name)[0].json()  # declared with the replace (upsert) call
    assert sent["source"] == SOURCE and sent["rtspTransport"] == "tcp"
    assert not calls(standin, "POST", f"/v3/config/paths/add/{name}")

    wait_ticks(standin, supervisor)  # observed several times, the source still absent
    assert stream_of(client, stream_id)["status"] == "STARTING"
    assert camera_status(client, city.camera) == "offline"

    standin.set_source_available(name, True, readers=2, inbound_bytes=250_000)
    stream = wait_status(client, stream_id, "RUNNING", supervisor)
    assert stream["last_error"] == ""
    assert camera_status(client, city.camera) == "online"
    metrics = wait_for(
        lambda: (
            (m := metrics_of(client, stream_id))["readers"] == 2
            and m["bytes_received"] == 250_000
            and m
        ),
        "the path's readers and inbound bytes in the stream metrics",
        supervisor=supervisor,
    )
    assert metrics["uptime_s"] is not None and metrics["uptime_s"] >= 0
    assert metrics["last_frame_at"] is not None

    # bytes keep coming in: the supervisor measures a bitrate from MediaMTX's counter
    standin.set_source_available(name, True, readers=2, inbound_bytes=1_250_000)
    metrics = wait_for(
        lambda: (m := metrics_of(client, stream_id))["bytes_received"] == 1_250_000 and m,
        "the new inbound bytes in the stream metrics",
        supervisor=supervisor,
    )
    assert metrics["bitrate_kbps"] is not None and metrics["bitrate_kbps"] > 0
    assert supervisor.stop() == 0


@transactional
def test_source_never_available_is_error_after_the_grace_period_then_recovers(
    city, standin, start_supervisor
):
    supervisor = start_supervisor()
    client = client_for(city.operador)
    name = path_of(city.camera)
    stream_id = start_stream(client, city.camera)
    wait_declared(standin, name, supervisor)

    stream = wait_status(client, stream_id, "ERROR", supervisor)
    assert stream["last_error"]
    assert CAMERA_PASSWORD not in stream["last_error"]
    assert camera_status(client, city.camera) == "error"
    assert name in standin.config_paths()  # MediaMTX keeps retrying the camera

    standin.set_source_available(name, True, readers=0)  # the camera is back
    stream = wait_status(client, stream_id, "RUNNING", supervisor)
    assert stream["last_error"] == ""
    assert camera_status(client, city.camera) == "online"


@transactional
def test_paths_are_declared_again_after_mediamtx_restarts(city, standin, start_supervisor):
    supervisor = start_supervisor()
    client = client_for(city.operador)
    name = path_of(city.camera)
    stream_id = start_stream(client, city.camera)
    wait_declared(standin, name, supervisor)
    standin.set_source_available(name, True, readers=1, inbound_bytes=5_000_000)
    wait_status(client, stream_id, "RUNNING", supervisor)
    wait_for(
        lambda: metrics_of(client, stream_id)["bytes_received"] == 5_000_000,
        "the inbound bytes in the metrics",
        supervisor=supervisor,
    )
    declared = len(replace_calls(standin, name))

    standin.restart()  # MediaMTX keeps paths in RAM: all gone
    assert name not in standin.config_paths()
    conf = wait_declared(standin, name, supervisor)  # the reconcile loop declares it again
    assert conf["rtspTransport"] == "tcp"
    assert len(replace_calls(standin, name)) > declared
    # the restarted MediaMTX has no stream yet: the stream is not reported RUNNING
    wait_for(
        lambda: stream_of(client, stream_id)["status"] in ("STARTING", "ERROR"),
        "the stream to leave RUNNING",
        supervisor=supervisor,
    )

    # MediaMTX's byte counters start again from zero with it
    standin.set_source_available(name, True, readers=1, inbound_bytes=1_000)
    wait_status(client, stream_id, "RUNNING", supervisor)
    metrics = wait_for(
        lambda: (m := metrics_of(client, stream_id))["bytes_received"] == 1_000 and m,
        "the restarted path's inbound bytes in the metrics",
        supervisor=supervisor,
    )
    assert metrics["bitrate_kbps"] is None or metrics["bitrate_kbps"] >= 0


@transactional
def test_mediamtx_down_is_an_error_and_streams_come_back_with_it(city, standin, start_supervisor):
    supervisor = start_supervisor()
    client = client_for(city.operador)
    name = path_of(city.camera)
    stream_id = start_stream(client, city.camera)
    wait_declared(standin, name, supervisor)
    standin.set_source_available(name, True, readers=1)
    wait_status(client, stream_id, "RUNNING", supervisor)
    port = standin.port

    standin.stop()
    stream = wait_status(client, stream_id, "ERROR", supervisor)
    assert "media server unavailable" in stream["last_error"]
    assert CAMERA_PASSWORD not in stream["last_error"]
    assert camera_status(client, city.camera) == "error"
    assert supervisor.process.poll() is None  # the supervisor rides it out

    declared = len(replace_calls(standin, name))
    standin.start()
    assert standin.port == port
    wait_for(
        lambda: len(replace_calls(standin, name)) > declared,
        "the path declared again once MediaMTX answers",
        supervisor=supervisor,
    )
    assert standin.config_paths()[name]["source"] == SOURCE
    standin.set_source_available(name, True, readers=1)
    stream = wait_status(client, stream_id, "RUNNING", supervisor)
    assert stream["last_error"] == ""
    assert camera_status(client, city.camera) == "online"


@transactional
def test_stopping_a_stream_deletes_its_path_and_leaves_other_paths_alone(
    city, standin, start_supervisor
):
    supervisor = start_supervisor()
    client = client_for(city.operador)
    other_camera = CameraFactory(prefeitura=city.prefeitura, recording_enabled=False)
    # Paths declared on MediaMTX by someone else: not the application's to remove.
    foreign = {
        "other/path": {"source": "rtsp://10.9.9.9:554/live", "rtspTransport": "udp"},
        "pref1/cam1/sub": {"source": "publisher"},
    }
    for foreign_name, foreign_conf in foreign.items():
        response = requests.post(
            f"{standin.base_url}/v3/config/paths/add/{foreign_name}",
            json=foreign_conf,
            auth=(API_USER, API_PASSWORD),
            timeout=5,
        )
        assert response.status_code == 200, response.text
    before = {n: c for n, c in standin.config_paths().items() if n in foreign}

    first = start_stream(client, city.camera)
    second = start_stream(client, other_camera)
    wait_declared(standin, path_of(city.camera), supervisor)
    wait_declared(standin, path_of(other_camera), supervisor, source=other_camera.source_url)

    response = client.post(f"/api/streams/{first}/stop")
    assert response.status_code == 200 and response.json()["status"] == "STOPPED"
    wait_for(
        lambda: path_of(city.camera) not in standin.config_paths(),
        "the stopped stream's path to be deleted",
        supervisor=supervisor,
    )
    assert path_of(other_camera) in standin.config_paths()
    assert stream_of(client, second)["status"] in ("STARTING", "ERROR")

    assert client.post(f"/api/streams/{second}/stop").status_code == 200
    wait_for(
        lambda: path_of(other_camera) not in standin.config_paths(),
        "the second path to be deleted",
        supervisor=supervisor,
    )
    wait_ticks(standin, supervisor)
    assert {n: c for n, c in standin.config_paths().items() if n in foreign} == before
    assert set(standin.config_paths()) == set(foreign)
    deleted = {r.path for r in list(standin.requests_log) if r.method == "DELETE"}
    assert deleted == {
        f"/v3/config/paths/delete/{path_of(city.camera)}",
        f"/v3/config/paths/delete/{path_of(other_camera)}",
    }
    assert stream_of(client, first)["status"] == "STOPPED"  # never resurrected


@transactional
def test_a_new_source_url_is_declared_again(city, standin, start_supervisor):
    supervisor = start_supervisor()
    client = client_for(city.operador)
    name = path_of(city.camera)
    stream_id = start_stream(client, city.camera)
    wait_declared(standin, name, supervisor)
    standin.set_source_available(name, True, readers=1)
    wait_status(client, stream_id, "RUNNING", supervisor)

    new_source = f"rtsp://admin:{OTHER_CAMERA_PASSWORD}@10.20.30.41:8554/live/main"
    response = client_for(city.gestor).patch(
        f"/api/cameras/{city.camera.pk}/", {"source_url": new_source}, format="json"
    )
    assert response.status_code == 200, response.content
    assert OTHER_CAMERA_PASSWORD not in response.content.decode()

    conf = wait_declared(standin, name, supervisor, source=new_source)
    assert conf["rtspTransport"] == "tcp"
    assert replace_calls(standin, name)[-1].json()["source"] == new_source
    # a new source restarts the path: not RUNNING until MediaMTX has the new camera's stream
    wait_for(
        lambda: stream_of(client, stream_id)["status"] in ("STARTING", "ERROR"),
        "the restarted path's stream to leave RUNNING",
        supervisor=supervisor,
    )
    standin.set_source_available(name, True, readers=1)
    wait_status(client, stream_id, "RUNNING", supervisor)
    assert camera_status(client, city.camera) == "online"


@transactional
def test_camera_passwords_never_leak_and_a_refused_camera_spares_the_others(
    city, standin, start_supervisor
):
    supervisor = start_supervisor()
    client = client_for(city.operador)
    gestor = client_for(city.gestor)
    # A camera created through the API (audited), and one whose URL MediaMTX refuses: MediaMTX
    # repeats an invalid source, password included, in its 400 error.
    created = gestor.post(
        "/api/cameras/",
        {
            "prefeitura": city.prefeitura.pk,
            "name": "Praça Central",
            "code": "praca-central",
            "source_url": f"rtsp://operador:{OTHER_CAMERA_PASSWORD}@10.20.30.50:554/ch1",
            "recording_enabled": False,
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    good = city.camera
    refused = CameraFactory(
        prefeitura=city.prefeitura,
        source_url=f"rtsp://admin:{CAMERA_PASSWORD}@10.20.30.42:99999/live",  # no such port
        recording_enabled=False,
    )
    good_stream = start_stream(client, good)
    refused_stream = start_stream(client, refused)

    wait_declared(standin, path_of(good), supervisor)
    standin.set_source_available(path_of(good), True, readers=1)
    wait_status(client, good_stream, "RUNNING", supervisor)
    stream = wait_status(client, refused_stream, "ERROR", supervisor)
    assert calls(standin, "POST", f"/v3/config/paths/replace/{path_of(refused)}")[0].status == 400
    assert stream["last_error"] and "media server unavailable" not in stream["last_error"]
    assert CAMERA_PASSWORD not in stream["last_error"]
    assert camera_status(client, refused) == "error"
    assert stream_of(client, good_stream)["status"] == "RUNNING"

    standin.stop()  # every error path: unreachable server
    for stream_id in (good_stream, refused_stream):
        wait_for(
            lambda stream_id=stream_id: (
                (s := stream_of(client, stream_id))["status"] == "ERROR"
                and "media server unavailable" in s["last_error"]
            ),
            f"stream {stream_id} in error: media server unavailable",
            supervisor=supervisor,
        )
    standin.start()
    wait_status(client, good_stream, "RUNNING", supervisor)
    response = gestor.patch(
        f"/api/cameras/{good.pk}/", {"source_url": SOURCE + "?x=1"}, format="json"
    )
    assert response.status_code == 200, response.content
    wait_declared(standin, path_of(good), supervisor, source=SOURCE + "?x=1")
    for stream_id in (good_stream, refused_stream):
        client.post(f"/api/streams/{stream_id}/stop")
    wait_for(lambda: not standin.config_paths(), "every path removed", supervisor=supervisor)
    assert supervisor.stop() == 0

    secrets = (CAMERA_PASSWORD, OTHER_CAMERA_PASSWORD)
    output = supervisor.output()
    assert "declared" in output  # the output was captured (DEBUG logging)
    for secret in secrets:
        assert secret not in output
    errors = " ".join(Stream.objects.values_list("last_error", flat=True))
    audit = json.dumps(list(AuditEntry.objects.values()), default=str)
    assert {"camera.create", "camera.update", "stream.start", "stream.stop"} <= set(
        AuditEntry.objects.values_list("action", flat=True)
    )
    audit_api = gestor.get("/api/audit/?page_size=500").content.decode()
    streams_api = client.get("/api/streams").content.decode()
    for text in (errors, audit, audit_api, streams_api):
        for secret in secrets:
            assert secret not in text


# -- 2. player URLs ------------------------------------------------------------------------------


def mediamtx_settings(settings, standin: MediaMTXStandIn | None = None) -> None:
    settings.MEDIA_ENGINE = "mediamtx"
    settings.MEDIAMTX_API_USER = API_USER
    settings.MEDIAMTX_API_PASSWORD = API_PASSWORD
    settings.MEDIAMTX_INTERNAL_USER = INTERNAL_USER
    settings.MEDIAMTX_INTERNAL_PASSWORD = INTERNAL_PASSWORD
    settings.MEDIAMTX_PUBLIC_HLS_URL = "https://media.cidade.gov.br"
    settings.MEDIAMTX_PUBLIC_WEBRTC_URL = "https://media.cidade.gov.br:8443"
    settings.MEDIAMTX_PUBLIC_RTSP_URL = "media.cidade.gov.br"
    if standin is not None:
        settings.MEDIAMTX_API_URL = standin.base_url


def viewer_urls(client, stream_id: int) -> dict:
    response = client.get(f"/api/streams/{stream_id}/urls")
    assert response.status_code == 200, response.content
    return response.json()


def token_of(urls: dict) -> str:
    return parse_qs(urlsplit(urls["hls"]).query)["token"][0]


def test_urls_point_at_mediamtx_with_a_view_token_and_are_audited(settings, tenants):
    mediamtx_settings(settings)
    operador, camera = tenants["a"]["operador"], tenants["a"]["camera"]
    stream = services.start_stream(camera, actor=operador)
    name = path_of(camera)

    urls = viewer_urls(client_for(operador), stream.pk)
    assert set(urls) == {"hls", "webrtc", "rtsp"}
    hls, webrtc, rtsp = (urlsplit(urls[key]) for key in ("hls", "webrtc", "rtsp"))
    token = token_of(urls)
    assert read_view_token(token) == (operador.pk, camera.pk)
    assert hls._replace(query="").geturl() == f"https://media.cidade.gov.br/{name}/index.m3u8"
    assert webrtc._replace(query="").geturl() == f"https://media.cidade.gov.br:8443/{name}/whep"
    assert parse_qs(webrtc.query) == {"token": [token]}
    assert (rtsp.scheme, rtsp.hostname, rtsp.port, rtsp.path) == (
        "rtsp", "media.cidade.gov.br", 8554, f"/{name}",
    )  # fmt: skip
    assert unquote(rtsp.password) == token  # RTSP players send the token as the password
    assert CAMERA_PASSWORD not in json.dumps(urls) and "10.0.0." not in json.dumps(urls)

    views = AuditEntry.objects.filter(action="stream.view")
    assert views.count() == 1
    entry = views.get()
    assert entry.actor_id == operador.pk and entry.target_type == "camera"
    assert entry.target_id == str(camera.pk) and entry.prefeitura_id == camera.prefeitura_id
    assert entry.details == {"stream_id": stream.pk}

    # another prefeitura's user: 404, no URL, nothing audited as viewed
    response = client_for(tenants["b"]["operador"]).get(f"/api/streams/{stream.pk}/urls")
    assert response.status_code == 404
    assert views.count() == 1


# -- 3. the authHTTPAddress callback ------------------------------------------------------------


def media_auth(client, *, action: str = "read", path: str = "", **fields: str) -> int:
    """POST /api/media/auth with the body MediaMTX sends; returns the status code."""
    body = {
        "ip": "203.0.113.7",
        "user": "",
        "password": "",
        "token": "",
        "action": action,
        "path": path,
        "protocol": "hls",
        "id": str(uuid.uuid4()) if action in ("read", "publish") else None,
        "query": "",
    }
    body.update(fields)
    return client.post("/api/media/auth", body, format="json").status_code


@pytest.fixture
def viewer(settings, tenants):
    """An operador's view token from /urls for camera A, and what else the tests need."""
    mediamtx_settings(settings)
    operador, camera = tenants["a"]["operador"], tenants["a"]["camera"]
    stream = services.start_stream(camera, actor=operador)
    token = token_of(viewer_urls(client_for(operador), stream.pk))
    return types.SimpleNamespace(token=token, path=path_of(camera), camera=camera, **tenants)


def test_media_auth_lets_a_viewer_read_its_camera_by_query_bearer_or_rtsp_password(api, viewer):
    path, token = viewer.path, viewer.token
    assert media_auth(api, path=path, query=f"token={token}") == 200
    assert media_auth(api, path=path, query=f"foo=1&token={token}", protocol="webrtc") == 200
    assert media_auth(api, path=path, token=token, protocol="webrtc") == 200
    assert media_auth(api, path=path, user="viewer", password=token, protocol="rtsp") == 200
    assert media_auth(api, path=path, token=token, action="playback") == 200


def test_media_auth_refuses_a_token_for_another_path(api, viewer):
    token = viewer.token
    same_city = CameraFactory(prefeitura=viewer.camera.prefeitura)
    for path in (
        path_of(same_city),
        path_of(viewer.b["camera"]),
        f"{viewer.path}/sub",
        "other/path",
        "",
    ):
        assert media_auth(api, path=path, query=f"token={token}") == 401, path
        assert media_auth(api, path=path, user="viewer", password=token, protocol="rtsp") == 401


def test_media_auth_refuses_a_token_for_a_camera_the_user_cannot_see(api, viewer):
    camera_a = viewer.camera
    user_b = viewer.b["operador"]
    forged = make_view_token(user_b.pk, camera_a.pk)  # validly signed, but B cannot see A
    assert media_auth(api, path=viewer.path, query=f"token={forged}") == 401
    assert media_auth(api, path=viewer.path, token=forged) == 401
    assert media_auth(api, path=viewer.path, user="viewer", password=forged) == 401
    # the same user, its own camera: allowed (the refusal above is about the tenant)
    own = make_view_token(user_b.pk, viewer.b["camera"].pk)
    assert media_auth(api, path=path_of(viewer.b["camera"]), query=f"token={own}") == 200
    # a deactivated user's token stops working
    viewer.a["operador"].is_active = False
    viewer.a["operador"].save(update_fields=["is_active"])
    assert media_auth(api, path=viewer.path, query=f"token={viewer.token}") == 401


def test_media_auth_refuses_expired_and_garbage_tokens(api, viewer, settings, monkeypatch):
    operador = viewer.a["operador"]
    two_hours_ago = time.time() - 7200
    with monkeypatch.context() as patch:
        patch.setattr(signing, "time", types.SimpleNamespace(time=lambda: two_hours_ago))
        expired = make_view_token(operador.pk, viewer.camera.pk)
    settings.MEDIA_VIEW_TOKEN_MAX_AGE_S = 3600
    assert read_view_token(expired) is None
    tampered = viewer.token[:-2] + ("AA" if not viewer.token.endswith("AA") else "BB")
    other_salt = signing.dumps({"u": operador.pk, "c": viewer.camera.pk})
    for bad in (expired, tampered, other_salt, "garbage", "a:b:c", "token"):
        assert media_auth(api, path=viewer.path, query=f"token={bad}") == 401, bad
        assert media_auth(api, path=viewer.path, token=bad) == 401, bad
        assert media_auth(api, path=viewer.path, user="viewer", password=bad) == 401, bad
    assert media_auth(api, path=viewer.path) == 401  # no credentials at all
    assert api.post("/api/media/auth", {}, format="json").status_code == 401


def test_media_auth_never_allows_publishing(api, viewer):
    path, token = viewer.path, viewer.token
    assert media_auth(api, action="publish", path=path, query=f"token={token}") == 401
    assert media_auth(api, action="publish", path=path, token=token) == 401
    assert media_auth(api, action="publish", path=path, user=API_USER, password=API_PASSWORD) == 401
    assert (
        media_auth(api, action="publish", path=path, user=INTERNAL_USER, password=INTERNAL_PASSWORD)
        == 401
    )


def test_media_auth_control_api_needs_the_api_account(api, viewer, settings):
    assert media_auth(api, action="api", user=API_USER, password=API_PASSWORD) == 200
    assert media_auth(api, action="metrics", user=API_USER, password=API_PASSWORD) == 200
    assert media_auth(api, action="api", user=API_USER, password=API_PASSWORD + "x") == 401
    assert media_auth(api, action="api", user="someone", password=API_PASSWORD) == 401
    assert media_auth(api, action="api") == 401
    assert media_auth(api, action="api", token=viewer.token) == 401  # a viewer is no operator
    assert media_auth(api, action="api", user=INTERNAL_USER, password=INTERNAL_PASSWORD) == 401

    settings.MEDIAMTX_API_PASSWORD = ""  # never open by default
    assert media_auth(api, action="api", user=API_USER, password="") == 401
    assert media_auth(api, action="api", user=API_USER, password=API_PASSWORD) == 401
    assert media_auth(api, action="api") == 401


def test_media_auth_lets_the_internal_recorder_read(api, viewer, settings):
    other = path_of(viewer.b["camera"])
    for path in (viewer.path, other):
        assert (
            media_auth(
                api, path=path, user=INTERNAL_USER, password=INTERNAL_PASSWORD, protocol="rtsp"
            )
            == 200
        )
    assert media_auth(api, path=other, user=INTERNAL_USER, password="wrong", protocol="rtsp") == 401
    settings.MEDIAMTX_INTERNAL_PASSWORD = ""
    assert media_auth(api, path=other, user=INTERNAL_USER, password="", protocol="rtsp") == 401
    assert (
        media_auth(api, path=other, user=INTERNAL_USER, password=INTERNAL_PASSWORD, protocol="rtsp")
        == 401
    )


# -- 4. health ---------------------------------------------------------------------------------


def test_health_checks_mediamtx(api, settings, standin, db):
    mediamtx_settings(settings, standin)
    services.heartbeat("media-supervisor@test", kind="media-supervisor", engine="mediamtx")
    services.heartbeat("job-worker@test", kind="job-worker")

    response = api.get("/health")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "healthy"
    assert body["checks"]["media_engine"]["ok"] is True
    assert body["checks"]["media_engine"]["engine"] == "mediamtx"
    assert calls(standin, "GET", "/v3/info")[-1].status == 200  # asked with the API account

    standin.stop()
    response = api.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unhealthy"
    assert body["checks"]["media_engine"]["ok"] is False
    assert body["checks"]["database"]["ok"] is True

    standin.start()
    assert api.get("/health").status_code == 200
    settings.MEDIAMTX_API_PASSWORD = "not-the-password"  # refused credentials fail it too
    response = api.get("/health")
    assert response.status_code == 503 and not response.json()["checks"]["media_engine"]["ok"]
    assert API_PASSWORD not in response.content.decode()


@pytest.mark.camera
@transactional
def test_recording_pulls_the_mediamtx_restream_not_the_camera(city, standin, start_supervisor):
    """The camera is pulled once, by MediaMTX; the recorder reads MediaMTX's RTSP restream
    (played here by the real test camera at the internal address) with its own account."""
    camera = CameraFactory(prefeitura=city.prefeitura, source_url=SOURCE, recording_enabled=True)
    name = path_of(camera)
    assert TestCamera.available(), INSTALL_HINT
    restream = TestCamera(mounts=(name,), user=INTERNAL_USER, password=INTERNAL_PASSWORD)
    restream.start()
    try:
        supervisor = start_supervisor(
            MEDIAMTX_INTERNAL_RTSP_URL=f"rtsp://127.0.0.1:{restream.port}",
            MEDIAMTX_INTERNAL_USER=INTERNAL_USER,
            MEDIAMTX_INTERNAL_PASSWORD=INTERNAL_PASSWORD,
            RECORDING_SEGMENT_SECONDS="2",
        )
        # no live stream asked for: the path is declared for the recording alone
        wait_declared(standin, name, supervisor)
        wait_for(
            lambda: Segment.objects.filter(camera_id=camera.pk).count() >= 2,
            "segments recorded from the restream",
            timeout=60,
            supervisor=supervisor,
        )
        pulls = media_processes(f"{restream.port}/{name}")
        assert len(pulls) == 1
        assert not media_processes("10.20.30.40")  # never the camera itself
        assert Recording.objects.filter(camera=camera, status="RECORDING").exists()
    finally:
        restream.stop()
