"""Streams API without a media engine running: lifecycle rules, audit, URLs, media access."""

from urllib.parse import parse_qs, urlsplit

from admin_ctx.models import AuditEntry
from streaming.models import Stream
from streaming.tokens import make_view_token
from tests.conftest import client_for
from tests.factories import CameraFactory


def start(client, camera_id):
    return client.post("/api/streams/start", {"camera_id": camera_id}, format="json")


def test_start_stop_lifecycle_and_audit(tenants):
    operador = tenants["a"]["operador"]
    camera = tenants["a"]["camera"]
    client = client_for(operador)
    response = start(client, camera.pk)
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"stream_id", "camera_id", "profile", "status", "on_demand"}
    assert body["on_demand"] is False  # the API's start is explicit unless asked otherwise
    assert body["camera_id"] == camera.pk and body["status"] in ("STARTING", "RUNNING")
    stream_id = body["stream_id"]

    again = start(client, camera.pk)
    assert again.status_code == 409
    assert again.json()["stream_id"] == stream_id and "detail" in again.json()
    assert Stream.objects.filter(camera=camera).count() == 1

    detail = client.get(f"/api/streams/{stream_id}").json()
    assert set(detail) == {
        "stream_id", "camera_id", "profile", "status", "started_at", "stopped_at", "last_error",
        "on_demand", "last_viewed_at", "node",
    }  # fmt: skip
    assert detail["started_at"].endswith("-03:00")

    stopped = client.post(f"/api/streams/{stream_id}/stop")
    assert stopped.status_code == 200 and stopped.json()["status"] == "STOPPED"
    assert stopped.json()["stopped_at"] is not None
    assert client.post(f"/api/streams/{stream_id}/stop").status_code == 200
    # a stopped camera can be started again, as a new stream
    assert start(client, camera.pk).json()["stream_id"] != stream_id

    actions = list(
        AuditEntry.objects.filter(actor_id=operador.pk)
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions == ["stream.start", "stream.stop", "stream.start"]


def test_start_validation(tenants):
    client = client_for(tenants["a"]["operador"])
    assert start(client, "abc").status_code == 400
    assert client.post("/api/streams/start", {}, format="json").status_code == 400
    assert start(client, 999_999).status_code == 404
    assert start(client, tenants["b"]["camera"].pk).status_code == 404
    disabled = CameraFactory(prefeitura=tenants["a"]["prefeitura"], enabled=False)
    assert start(client, disabled.pk).status_code == 409
    assert not Stream.objects.exists()


def test_list_filters_and_scoping(tenants):
    a_stream = Stream.objects.create(camera=tenants["a"]["camera"])
    Stream.objects.create(camera=tenants["b"]["camera"])
    stopped = Stream.objects.create(
        camera=CameraFactory(prefeitura=tenants["a"]["prefeitura"]), status="STOPPED"
    )
    client = client_for(tenants["a"]["operador"])
    ids = lambda r: [s["stream_id"] for s in r.json()["results"]]  # noqa: E731
    assert sorted(ids(client.get("/api/streams"))) == sorted([a_stream.pk, stopped.pk])
    assert ids(client.get("/api/streams", {"status": "STOPPED"})) == [stopped.pk]
    assert ids(client.get("/api/streams", {"camera_id": a_stream.camera_id})) == [a_stream.pk]
    assert client.get("/api/streams", {"status": "BOGUS"}).status_code == 400


def test_metrics_are_null_until_measured(tenants):
    stream = Stream.objects.create(camera=tenants["a"]["camera"])
    metrics = client_for(tenants["a"]["operador"]).get(f"/api/streams/{stream.pk}/metrics").json()
    assert metrics == {
        "fps": None, "bitrate_kbps": None, "bytes_received": None, "uptime_s": None,
        "readers": None, "last_frame_at": None, "latency_ms": None,
    }  # fmt: skip


def test_urls_are_audited_and_carry_a_view_token(tenants, settings, tmp_path):
    settings.LIVE_DIR = tmp_path
    settings.MEDIA_ENGINE = "embedded"
    stream = Stream.objects.create(camera=tenants["a"]["camera"])
    operador = tenants["a"]["operador"]
    urls = client_for(operador).get(f"/api/streams/{stream.pk}/urls").json()
    assert set(urls) == {"hls", "webrtc", "rtsp"}
    assert urls["webrtc"] is None and urls["rtsp"] is None
    parts = urlsplit(urls["hls"])
    assert parts.path == f"/api/streams/{stream.pk}/hls/index.m3u8"
    assert "token" in parse_qs(parts.query)
    entry = AuditEntry.objects.get(action="stream.view")
    assert entry.actor_id == operador.pk and entry.details == {"stream_id": stream.pk}
    assert entry.prefeitura_id == tenants["a"]["prefeitura"].pk


def test_live_media_access_rules(api, tenants, settings, tmp_path):
    settings.LIVE_DIR = tmp_path
    camera = tenants["a"]["camera"]
    stream = Stream.objects.create(camera=camera, status="RUNNING")
    live = tmp_path / f"cam{camera.pk}"
    live.mkdir()
    (live / "index.m3u8").write_text("#EXTM3U\n#EXTINF:2.0,\nseg_1.ts\n")
    (live / "seg_1.ts").write_bytes(b"\x47" * 188)
    base = f"/api/streams/{stream.pk}/hls/"
    assert api.get(base + "index.m3u8").status_code == 401
    token = make_view_token(tenants["a"]["operador"].pk, camera.pk)
    playlist = api.get(base + "index.m3u8", {"token": token})
    assert playlist.status_code == 200
    assert playlist["Content-Type"] == "application/vnd.apple.mpegurl"
    assert f"seg_1.ts?token={token}" in playlist.content.decode()
    segment = api.get(base + "seg_1.ts", {"token": token})
    assert segment.status_code == 200 and b"".join(segment.streaming_content) == b"\x47" * 188
    # a token for another camera, a user of another prefeitura, a forged token, bad names
    other_camera = make_view_token(tenants["a"]["operador"].pk, tenants["b"]["camera"].pk)
    assert api.get(base + "index.m3u8", {"token": other_camera}).status_code in (401, 404)
    other_user = make_view_token(tenants["b"]["operador"].pk, camera.pk)
    assert api.get(base + "index.m3u8", {"token": other_user}).status_code == 404
    assert api.get(base + "index.m3u8", {"token": token + "x"}).status_code == 401
    assert api.get(base + "..%2Fsecret.m3u8", {"token": token}).status_code == 404
    assert api.get(base + "passwd", {"token": token}).status_code == 404
    # session/JWT users of the prefeitura may fetch too; a stopped stream serves nothing
    assert client_for(tenants["a"]["gestor"]).get(base + "index.m3u8").status_code == 200
    stream.status = "STOPPED"
    stream.save()
    assert api.get(base + "index.m3u8", {"token": token}).status_code == 404
