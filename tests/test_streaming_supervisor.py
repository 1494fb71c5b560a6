"""The embedded media engine end to end: a real RTSP camera, FFmpeg and the supervisor."""

import subprocess
from urllib.parse import urlsplit

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from rest_framework_simplejwt.tokens import AccessToken

from cidades.models import Camera
from gtvision.asgi import application
from streaming.ffmpeg import ffmpeg_exe
from streaming.models import Stream
from testcamera import INSTALL_HINT, TestCamera
from tests.conftest import client_for
from tests.factories import CameraFactory, PrefeituraFactory, UserFactory
from tests.supervisor import SupervisorProcess, media_processes, wait_for

pytestmark = [
    pytest.mark.camera,
    pytest.mark.django_db(transaction=True, databases=["default", "channels_postgres"]),
]
PASSWORD = "Cam-S3cret"


@pytest.fixture
def camera_server():
    assert TestCamera.available(), INSTALL_HINT
    server = TestCamera(mounts=("cam1", "cam2"), user="viewer", password=PASSWORD)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def supervisor(settings):
    settings.MEDIA_ENGINE = "embedded"
    processes = []

    def make(**env):
        process = SupervisorProcess(**env).start()
        processes.append(process)
        return process

    yield make
    for process in processes:
        process.stop()
        assert PASSWORD not in process.output()


def stream_status(stream_id):
    return Stream.objects.get(pk=stream_id).status


def start_stream(user, camera) -> int:
    response = client_for(user).post("/api/streams/start", {"camera_id": camera.pk}, format="json")
    assert response.status_code == 201, response.content
    return response.json()["stream_id"]


def test_stream_runs_with_playable_hls_and_metrics(api, camera_server, supervisor, tmp_path):
    operador = UserFactory()
    camera = CameraFactory(
        prefeitura=operador.prefeitura,
        source_url=camera_server.url("cam1"),
        recording_enabled=False,
    )
    supervisor()
    stream_id = start_stream(operador, camera)
    wait_for(lambda: stream_status(stream_id) == "RUNNING")
    assert Camera.objects.get(pk=camera.pk).status == "online"

    urls = client_for(operador).get(f"/api/streams/{stream_id}/urls").json()
    hls = urlsplit(urls["hls"])
    playlist_url = f"{hls.path}?{hls.query}"

    def playlist_with_segments():
        response = api.get(playlist_url)
        text = response.content.decode() if response.status_code == 200 else ""
        return text if text.count(".ts") >= 2 else None

    playlist = wait_for(playlist_with_segments)
    assert playlist.startswith("#EXTM3U") and "#EXT-X-PROGRAM-DATE-TIME" in playlist
    segment_uri = [line for line in playlist.splitlines() if ".ts" in line][-1]
    segment = api.get(f"/api/streams/{stream_id}/hls/{segment_uri}")
    assert segment.status_code == 200
    path = tmp_path / "segment.ts"
    path.write_bytes(b"".join(segment.streaming_content))
    probe = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-i", str(path), "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert probe.returncode == 0 and "Video: h264" in probe.stderr

    def measured():
        metrics = client_for(operador).get(f"/api/streams/{stream_id}/metrics").json()
        return metrics if metrics["fps"] and metrics["bitrate_kbps"] else None

    metrics = wait_for(measured)
    assert metrics["fps"] > 0 and metrics["bitrate_kbps"] > 0 and metrics["bytes_received"] > 0
    assert metrics["uptime_s"] >= 0 and metrics["last_frame_at"]
    assert len(media_processes(f":{camera_server.port}/cam1")) == 1

    client_for(operador).post(f"/api/streams/{stream_id}/stop")
    wait_for(lambda: not media_processes(f":{camera_server.port}/cam1"))
    wait_for(lambda: not live_dir_of(camera).exists())
    assert api.get(playlist_url).status_code == 404
    assert Camera.objects.get(pk=camera.pk).status == "offline"


def live_dir_of(camera):
    from streaming.engine import live_dir

    return live_dir(camera.pk)


def test_camera_outage_goes_error_then_running(camera_server, supervisor):
    operador = UserFactory()
    camera = CameraFactory(prefeitura=operador.prefeitura, source_url=camera_server.url("cam1"))
    supervisor(STREAM_STALL_TIMEOUT_S="3")
    stream_id = start_stream(operador, camera)
    wait_for(lambda: stream_status(stream_id) == "RUNNING")
    camera_server.stop()
    wait_for(lambda: stream_status(stream_id) == "ERROR")
    stream = Stream.objects.get(pk=stream_id)
    assert stream.last_error and PASSWORD not in stream.last_error
    assert Camera.objects.get(pk=camera.pk).status == "error"
    camera_server.start()
    wait_for(lambda: stream_status(stream_id) == "RUNNING", timeout=45)
    assert Stream.objects.get(pk=stream_id).last_error == ""
    assert Camera.objects.get(pk=camera.pk).status == "online"
    # the recorder and the live HLS writer (a recorded camera's live stream is a second pull)
    assert len(media_processes(f":{camera_server.port}/cam1")) == 2


def test_killed_supervisor_leaves_no_orphan_and_restart_adopts(camera_server, supervisor):
    operador = UserFactory()
    camera = CameraFactory(prefeitura=operador.prefeitura, source_url=camera_server.url("cam2"))
    first = supervisor()
    stream_id = start_stream(operador, camera)
    wait_for(lambda: stream_status(stream_id) == "RUNNING")
    fragment = f":{camera_server.port}/cam2"
    # the camera is recorded and watched: its recorder and its live HLS writer
    wait_for(lambda: len(media_processes(fragment)) == 2)
    first.kill9()
    wait_for(lambda: not media_processes(fragment), timeout=10)
    second = supervisor()
    wait_for(lambda: len(media_processes(fragment)) == 2)
    wait_for(lambda: stream_status(stream_id) == "RUNNING")
    # a second supervisor with the same node name refuses to start: still these two FFmpeg
    duplicate = supervisor()
    assert duplicate.process.wait(60) != 0
    assert "another media supervisor named" in duplicate.output()
    assert len(media_processes(fragment)) == 2
    assert second.process.poll() is None


def pt_br(message: str) -> str:
    """``last_error`` is stored in the site's language (pt-BR)."""
    from django.utils import translation

    with translation.override("pt-br"):
        return translation.gettext(message)


@pytest.mark.parametrize(
    ("mount", "password", "port_offset", "message"),
    [
        ("cam1", "wrong-pass", 0, "authentication failed (401)"),
        ("nope", PASSWORD, 0, "stream path not found (404)"),
        ("cam1", PASSWORD, None, "could not connect to the camera"),
    ],
)
def test_bad_camera_url_is_a_clear_error(
    camera_server, supervisor, mount, password, port_offset, message
):
    from testcamera import free_port

    port = camera_server.port if port_offset == 0 else free_port()
    url = f"rtsp://viewer:{password}@127.0.0.1:{port}/{mount}"
    operador = UserFactory()
    camera = CameraFactory(prefeitura=operador.prefeitura, source_url=url)
    supervisor()
    stream_id = start_stream(operador, camera)
    wait_for(lambda: stream_status(stream_id) == "ERROR")
    stream = Stream.objects.get(pk=stream_id)
    assert pt_br(message) != message and stream.last_error == pt_br(message)
    assert password not in stream.last_error
    detail = client_for(operador).get(f"/api/streams/{stream_id}").json()
    assert detail["status"] == "ERROR" and detail["last_error"] == stream.last_error


async def test_stream_events_over_websocket(camera_server, supervisor, channel_layer):
    operador = await sync_to_async(UserFactory)()
    outsider = await sync_to_async(UserFactory)(prefeitura=await sync_to_async(PrefeituraFactory)())
    camera = await sync_to_async(CameraFactory)(
        prefeitura_id=operador.prefeitura_id, source_url=camera_server.url("cam1")
    )
    stream = await sync_to_async(Stream.objects.create)(camera=camera)
    headers = [(b"host", b"localhost")]
    denied = WebsocketCommunicator(
        application,
        f"ws/streams/{stream.pk}/events?token={AccessToken.for_user(outsider)}",
        headers,
    )
    connected, _ = await denied.connect(timeout=5)  # accepted, then closed: a browser sees 4404
    assert connected and await denied.receive_output(5) == {"type": "websocket.close", "code": 4404}
    socket = WebsocketCommunicator(
        application,
        f"api/streams/{stream.pk}/events?token={AccessToken.for_user(operador)}",
        headers,
    )
    connected, _ = await socket.connect(timeout=5)
    assert connected
    await sync_to_async(supervisor)()
    seen = {}
    while "stream.metrics" not in seen or seen.get("stream.status", {}).get("status") != "RUNNING":
        event = await socket.receive_json_from(timeout=30)
        assert event["camera_id"] == camera.pk and event["stream_id"] == stream.pk
        seen[event["type"]] = event
    assert seen["stream.metrics"]["fps"] is not None
    assert PASSWORD not in str(seen)
    await socket.disconnect()


def test_health_reports_the_supervisor_heartbeat(client, camera_server, supervisor, settings):
    running = supervisor()
    from streaming import services

    services.heartbeat("job-worker@test", kind="job-worker")  # the job worker: test_faults_*
    wait_for(lambda: client.get("/health").status_code == 200)
    body = client.get("/health").json()
    assert body["checks"]["media_supervisor"]["ok"] is True
    assert body["checks"]["media_engine"]["engine"] == "embedded"
    running.stop()
    settings.SUPERVISOR_HEARTBEAT_STALE_S = 1
    wait_for(lambda: client.get("/health").status_code == 503)
    assert client.get("/health").json()["checks"]["media_supervisor"]["ok"] is False


def test_supervisor_records_indexes_and_stops(camera_server, supervisor, settings):
    """Recording through the API: the supervisor records, indexes each segment once, stops."""
    from admin_ctx.models import Role
    from recordings import storage
    from recordings.models import Recording, Segment

    gestor = UserFactory(role=Role.GESTOR)
    camera = CameraFactory(
        prefeitura=gestor.prefeitura, source_url=camera_server.url("cam2"), recording_enabled=False
    )
    supervisor(RECORDING_SEGMENT_SECONDS="2")
    client = client_for(gestor)
    started = client.post("/api/recordings/start", {"camera_id": camera.pk}, format="json")
    assert started.status_code == 201, started.content
    recording_id = started.json()["recording_id"]
    wait_for(lambda: Segment.objects.filter(camera_id=camera.pk).count() >= 3, timeout=60)
    assert len(media_processes(f":{camera_server.port}/cam2")) == 1  # one pull, no stream

    found = client.get(
        "/api/recordings/search",
        {"camera_id": camera.pk, "start": "2000-01-01T00:00:00Z", "end": "2099-12-31T00:00:00Z"},
    ).json()
    assert found["count"] >= 3
    assert all(row["duration_s"] > 0 and row["size_bytes"] > 0 for row in found["results"])

    stopped = client.post("/api/recordings/stop", {"camera_id": camera.pk}, format="json")
    assert stopped.status_code == 200 and stopped.json()["status"] == "STOPPED"
    wait_for(lambda: not media_processes(f":{camera_server.port}/cam2"))

    def every_file_indexed():
        files = [p for p in storage.camera_dir(camera.pk).rglob("*.ts")]
        return files and len(files) == Segment.objects.filter(camera_id=camera.pk).count()

    wait_for(every_file_indexed, timeout=20)
    detail = client.get(f"/api/recordings/{recording_id}").json()
    assert detail["status"] == "STOPPED" and detail["segment_count"] >= 3
    assert Recording.objects.filter(camera_id=camera.pk, status="RECORDING").count() == 0


def test_one_bad_camera_row_fails_alone(client, camera_server, supervisor, settings):
    """An undecryptable URL and a recording directory that cannot be created are those
    cameras' errors (credential-free, pt-BR, visible in the API); the others keep running
    and the heartbeat stays fresh."""
    from recordings import storage
    from streaming.models import RecorderStatus
    from streaming.supervisor.jobs import CameraFault

    settings.SUPERVISOR_HEARTBEAT_STALE_S = 5
    operador = UserFactory()
    prefeitura = operador.prefeitura
    undecryptable = CameraFactory(
        prefeitura=prefeitura, source_url=camera_server.url("cam2"), recording_enabled=False
    )
    Camera.objects.filter(pk=undecryptable.pk).update(source_url_encrypted="gAAAAAB-damaged")
    bad_stream = start_stream(operador, undecryptable)  # first: reconciled before the good one
    good = CameraFactory(
        prefeitura=prefeitura, source_url=camera_server.url("cam1"), recording_enabled=False
    )
    good_stream = start_stream(operador, good)
    # left by an earlier supervisor for a camera no longer recorded: cleared at start
    RecorderStatus.objects.create(camera=good, status="ERROR", last_error="old")
    supervisor()
    recorded_only = CameraFactory(prefeitura=prefeitura, source_url=camera_server.url("cam2"))
    storage.recordings_root().mkdir(parents=True, exist_ok=True)
    storage.camera_dir(recorded_only.pk).write_text("a file where its directory should be")

    wait_for(lambda: stream_status(good_stream) == "RUNNING")
    wait_for(lambda: stream_status(bad_stream) == "ERROR")
    api = client_for(operador)
    detail = api.get(f"/api/streams/{bad_stream}").json()
    assert detail["last_error"] == pt_br(CameraFault.UNREADABLE_URL)
    assert PASSWORD not in detail["last_error"]

    def recorder_error():
        rows = api.get("/api/recorders", {"camera_id": recorded_only.pk}).json()["results"]
        return rows and rows[0]["status"] == "ERROR" and rows[0]

    row = wait_for(recorder_error)
    assert row["last_error"] == pt_br(CameraFault.NO_DIRECTORY)
    assert api.get(f"/api/recorders/{recorded_only.pk}").json()["status"] == "ERROR"
    assert api.get(f"/api/cameras/{recorded_only.pk}/").json()["status"] == "error"
    assert api.get(f"/api/cameras/{undecryptable.pk}/").json()["status"] == "error"
    outsider = UserFactory(prefeitura=PrefeituraFactory())
    assert client_for(outsider).get(f"/api/recorders/{recorded_only.pk}").status_code == 404
    assert client_for(outsider).get("/api/recorders").json()["results"] == []

    # (/health as a whole also needs a job worker, which this test does not run)
    assert client.get("/health").json()["checks"]["media_supervisor"]["ok"] is True
    assert stream_status(good_stream) == "RUNNING"

    # fixed rows recover by themselves
    storage.camera_dir(recorded_only.pk).unlink()
    wait_for(lambda: api.get(f"/api/recorders/{recorded_only.pk}").json()["status"] == "RUNNING")
    assert api.get(f"/api/cameras/{recorded_only.pk}/").json()["status"] == "online"
    assert not RecorderStatus.objects.filter(camera=good).exists()
    # no longer recorded: its recorder row goes, the camera shows offline
    Camera.objects.filter(pk=recorded_only.pk).update(recording_enabled=False)
    wait_for(lambda: api.get(f"/api/recorders/{recorded_only.pk}").status_code == 404)
    wait_for(lambda: Camera.objects.get(pk=recorded_only.pk).status == "offline")
