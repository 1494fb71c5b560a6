"""Clip exports: API, the procrastinate job run by a real worker, download, expiry."""

from __future__ import annotations

import hashlib
import itertools
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connection
from django.utils import timezone
from procrastinate.contrib.django import app
from procrastinate.contrib.django.models import ProcrastinateJob

from admin_ctx.models import AuditEntry
from recordings import services, storage
from recordings.models import Clip
from tests.conftest import client_for
from tests.factories import CameraFactory, PrefeituraFactory, UserFactory
from tests.test_recordings_support import (
    GOP_S,
    decoded_duration,
    footage,
    index_footage,
    seconds,
    utc,
)

pytestmark = [pytest.mark.camera, pytest.mark.timeout(180)]
ROOT = Path(__file__).resolve().parent.parent
FRAME_S = 1 / 15


@pytest.fixture(autouse=True)
def _media_dirs(settings, tmp_path):
    settings.RECORDINGS_DIR = tmp_path / "recordings"
    settings.CLIPS_DIR = tmp_path / "clips"


def database_url() -> str:
    db = connection.settings_dict
    host = quote(db["HOST"] or "127.0.0.1", safe="")
    password = quote(db["PASSWORD"] or "", safe="")
    return f"postgresql://{db['USER']}:{password}@{host}:{db['PORT'] or 5432}/{db['NAME']}"


def run_worker(settings) -> subprocess.CompletedProcess[str]:
    """``manage.py procrastinate worker`` in its own process, on the test database."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "GTV_RECORDINGS_DIR": str(settings.RECORDINGS_DIR),
        "GTV_CLIPS_DIR": str(settings.CLIPS_DIR),
    }
    argv = [sys.executable, "manage.py", "procrastinate", "worker", "--one-shot"]
    argv += ["--queues", "clips", "--no-listen-notify"]
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def mp4_boxes(data: bytes) -> list[bytes]:
    boxes, offset = [], 0
    while offset + 8 <= len(data):
        size = int.from_bytes(data[offset : offset + 4], "big")
        boxes.append(data[offset + 4 : offset + 8])
        if size < 8:
            break
        offset += size
    return boxes


@pytest.mark.django_db(transaction=True)
def test_clip_is_exported_by_the_worker_and_downloads_intact(settings, tmp_path_factory):
    camera = CameraFactory()
    user = UserFactory(prefeitura=camera.prefeitura)
    segments = index_footage(footage(tmp_path_factory), camera.pk)
    # across the boundary of two contiguous segments, starting between two keyframes
    first, second = next(
        (a, b) for a, b in itertools.pairwise(segments) if a.end == b.start and b.duration_s > 1.5
    )
    start, end = first.end - seconds(1.0), second.start + seconds(1.5)
    client = client_for(user)
    response = client.post(
        "/api/clips/", {"camera_id": camera.pk, "start": start, "end": end}, format="json"
    )
    assert response.status_code == 202, response.content
    clip_id = response.json()["id"]
    assert response.json()["status"] == "PENDING"
    assert ProcrastinateJob.objects.filter(
        task_name="recordings.build_clip", args={"clip_id": clip_id}
    ).exists()

    worker = run_worker(settings)
    assert worker.returncode == 0, worker.stderr

    body = client.get(f"/api/clips/{clip_id}").json()
    assert body["status"] == "DONE", body
    assert body["progress"] == 1.0 and body["error"] == ""
    assert body["camera_id"] == camera.pk and body["created_by"] == user.username
    assert (utc(body["start"]), utc(body["end"])) == (start, end)
    download = client.get(f"/api/clips/{clip_id}/download")
    assert download.status_code == 200
    assert download["Content-Type"] == "video/mp4"
    assert "attachment" in download["Content-Disposition"]
    data = b"".join(download.streaming_content)
    assert len(data) == body["size_bytes"]
    assert hashlib.sha256(data).hexdigest() == body["sha256"]
    boxes = mp4_boxes(data)
    assert boxes[0] == b"ftyp" and boxes.index(b"moov") < boxes.index(b"mdat")  # faststart
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    path.write_bytes(data)
    # covers [start, end]: from the keyframe at or before start (2 s GOP), to end exactly
    wanted = (end - start).total_seconds()
    assert wanted - FRAME_S <= decoded_duration(path) <= wanted + GOP_S + FRAME_S
    assert body["duration_s"] == pytest.approx(decoded_duration(path), abs=0.1)
    # HTTP range
    part = client.get(f"/api/clips/{clip_id}/download", HTTP_RANGE="bytes=100-199")
    assert part.status_code == 206
    assert part["Content-Range"] == f"bytes 100-199/{len(data)}"
    assert b"".join(part.streaming_content) == data[100:200]
    unsatisfiable = client.get(f"/api/clips/{clip_id}/download", HTTP_RANGE="bytes=999999999-")
    assert unsatisfiable.status_code == 416
    actions = list(
        AuditEntry.objects.filter(target_id=str(camera.pk)).values_list("action", flat=True)
    )
    assert actions.count("clip.create") == 1 and actions.count("clip.download") == 3


@pytest.mark.django_db(transaction=True)
def test_a_failing_export_is_failed_and_the_worker_goes_on(tmp_path_factory):
    camera = CameraFactory()
    segments = index_footage(footage(tmp_path_factory), camera.pk)
    broken = services.create_clip(camera, segments[0].start, segments[1].end, actor=None)
    healthy = services.create_clip(camera, segments[-3].start, segments[-2].end, actor=None)
    storage.segment_path(camera.pk, segments[0].start).unlink()

    # what ``manage.py procrastinate worker`` does, in this process
    with app.replace_connector(app.connector.get_worker_connector()):
        app.run_worker(
            queues=["clips"], wait=False, install_signal_handlers=False, listen_notify=False
        )

    broken.refresh_from_db()
    healthy.refresh_from_db()
    assert broken.status == Clip.Status.FAILED
    assert broken.error == "Falta um segmento gravado deste período."  # pt-BR, for the operator
    assert not storage.clip_path(broken.pk).exists()
    assert healthy.status == Clip.Status.DONE and storage.clip_path(healthy.pk).exists()


@pytest.mark.parametrize(
    ("shift_start", "shift_end", "field"),
    [
        (0, 0, "end"),  # end == start
        (5, 1, "end"),  # end before start
        (0, 61, "end"),  # longer than CLIP_MAX_SECONDS
        (-7200, -7170, "start"),  # nothing recorded
    ],
)
def test_bad_clip_requests_are_400_and_change_nothing(
    tenants, tmp_path_factory, settings, shift_start, shift_end, field
):
    settings.CLIP_MAX_SECONDS = 60
    camera = tenants["a"]["camera"]
    segments = index_footage(footage(tmp_path_factory), camera.pk)
    base = segments[0].start
    body = {
        "camera_id": camera.pk,
        "start": (base + seconds(shift_start)).isoformat(),
        "end": (base + seconds(shift_end)).isoformat(),
    }
    jobs = ProcrastinateJob.objects.count()
    response = client_for(tenants["a"]["operador"]).post("/api/clips/", body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert not Clip.objects.exists() and ProcrastinateJob.objects.count() == jobs
    assert not AuditEntry.objects.filter(action="clip.create").exists()


def test_clip_input_must_be_complete_and_carry_offsets(tenants):
    client = client_for(tenants["a"]["operador"])
    camera = tenants["a"]["camera"]
    naive = {"camera_id": camera.pk, "start": "2026-01-01T10:00:00", "end": "2026-01-01T10:01:00"}
    assert set(client.post("/api/clips/", naive, format="json").json()) == {"start", "end"}
    assert client.post("/api/clips/", {}, format="json").status_code == 400
    assert client.get("/api/clips/999999").status_code == 404
    assert not Clip.objects.exists()


def test_clip_not_ready_is_409_and_expired_clips_go_with_their_files(
    tenants, django_capture_on_commit_callbacks
):
    camera = tenants["a"]["camera"]
    now = timezone.now()
    fresh = Clip.objects.create(
        camera=camera, start=now, end=now + seconds(5), expires_at=now + timedelta(days=1)
    )
    old = Clip.objects.create(
        camera=camera,
        start=now,
        end=now + seconds(5),
        status=Clip.Status.DONE,
        expires_at=now - timedelta(minutes=1),
    )
    for clip in (fresh, old):
        storage.clip_path(clip.pk).write_bytes(b"mp4")
    client = client_for(tenants["a"]["gestor"])
    response = client.get(f"/api/clips/{fresh.pk}/download")
    assert response.status_code == 409 and response.json()["status"] == "PENDING"
    with django_capture_on_commit_callbacks(execute=True):
        assert services.expire_clips() == 1
    assert list(Clip.objects.values_list("pk", flat=True)) == [fresh.pk]
    assert not storage.clip_path(old.pk).exists() and storage.clip_path(fresh.pk).exists()


def test_every_role_exports_and_lists_only_its_prefeitura(tenants, tmp_path_factory):
    camera = tenants["a"]["camera"]
    segments = index_footage(footage(tmp_path_factory), camera.pk)
    body = {"camera_id": camera.pk, "start": segments[0].start, "end": segments[0].end}
    for role in ("admin", "gestor", "operador"):
        user = tenants["admin"] if role == "admin" else tenants["a"][role]
        assert client_for(user).post("/api/clips/", body, format="json").status_code == 202
    other = PrefeituraFactory()
    outsider = UserFactory(prefeitura=other)
    assert client_for(outsider).get("/api/clips/").json()["count"] == 0
    mine = client_for(tenants["a"]["operador"]).get("/api/clips/", {"camera_id": camera.pk})
    assert mine.json()["count"] == 3


@pytest.mark.django_db(transaction=True, databases=["default", "channels_postgres"])
async def test_clip_progress_and_done_reach_the_prefeitura_live(
    settings, tmp_path_factory, channel_layer
):
    """The worker (another process) publishes clip.progress and clip.done on ws/events."""
    from asgiref.sync import sync_to_async
    from channels.testing import WebsocketCommunicator
    from rest_framework_simplejwt.tokens import AccessToken

    from gtvision.asgi import application

    camera = await sync_to_async(CameraFactory)()
    user = await sync_to_async(UserFactory)(prefeitura=camera.prefeitura)
    segments = await sync_to_async(index_footage)(footage(tmp_path_factory), camera.pk)
    socket = WebsocketCommunicator(
        application, f"ws/events?token={AccessToken.for_user(user)}", [(b"host", b"localhost")]
    )
    assert (await socket.connect(timeout=5))[0]
    start, end = segments[0].start, segments[0].start + seconds(3)
    response = await sync_to_async(client_for(user).post)(
        "/api/clips/", {"camera_id": camera.pk, "start": start, "end": end}, format="json"
    )
    clip_id = response.json()["id"]
    worker = await sync_to_async(run_worker)(settings)
    assert worker.returncode == 0, worker.stderr
    seen: dict[str, list[dict]] = {}
    while "clip.done" not in seen:
        event = await socket.receive_json_from(timeout=20)
        if event["type"].startswith("clip."):
            assert event["clip_id"] == clip_id and event["camera_id"] == camera.pk
            seen.setdefault(event["type"], []).append(event)
    progress = [event["progress"] for event in seen["clip.progress"]]
    assert progress == sorted(progress) and progress[-1] <= 1.0
    done = seen["clip.done"][0]
    assert done["status"] == "DONE" and len(done["sha256"]) == 64 and done["size_bytes"] > 0
    await socket.disconnect()
