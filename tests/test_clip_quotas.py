"""Clip exports have quotas (429 with a clear message), the disk floor counts clips, and a
download streams with bounded server memory, with byte ranges.

Quotas go through the API as the dashboard calls it; downloads through a real Daphne
(``manage.py serve``) read by a deliberately slow client while the server's RSS is watched.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests
from django.utils import timezone

from admin_ctx.models import Role
from recordings import retention, storage
from recordings.models import Clip
from tests.conftest import client_for
from tests.factories import CameraFactory, UserFactory
from tests.live_web import bearer, running_web
from tests.test_recordings_support import backdate, synthetic_segment

pytestmark = [pytest.mark.timeout(180)]

T0 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _media_dirs(settings, tmp_path):
    settings.RECORDINGS_DIR = tmp_path / "recordings"
    settings.CLIPS_DIR = tmp_path / "clips"


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return synthetic_segment(tmp_path_factory.mktemp("sample") / "sample.ts")


@pytest.fixture
def recorded(db, sample):
    """Two cameras of one prefeitura with a minute of footage each, and its users."""
    cameras = [CameraFactory(), None]
    cameras[1] = CameraFactory(prefeitura=cameras[0].prefeitura)
    for camera in cameras:
        backdate(camera.pk, [T0 + timedelta(seconds=2 * k) for k in range(30)], sample)
    users = [UserFactory(prefeitura=cameras[0].prefeitura, role=Role.OPERADOR) for _ in range(3)]
    return cameras, users


def ask(user, camera, k: int = 0):
    start = T0 + timedelta(seconds=k)
    return client_for(user).post(
        "/api/clips/",
        {
            "camera_id": camera.pk,
            "start": start.isoformat(),
            "end": (start + timedelta(seconds=20)).isoformat(),
        },
        format="json",
    )


def test_pending_exports_are_limited_per_user_and_per_prefeitura(recorded, settings):
    settings.CLIP_MAX_PENDING_PER_USER = 2
    settings.CLIP_MAX_PENDING_PER_PREFEITURA = 3
    (camera, other), (first, second, _third) = recorded
    assert [ask(first, camera, k).status_code for k in range(2)] == [202, 202]
    refused = ask(first, other, 5)
    assert refused.status_code == 429
    assert (
        "Você já tem 2 exportações de clipe aguardando ou em andamento" in refused.json()["detail"]
    )
    assert Clip.objects.count() == 2  # nothing changed
    assert ask(second, other).status_code == 202  # another user: the prefeitura's 3rd
    refused = ask(second, camera, 3)
    assert refused.status_code == 429
    assert "Esta prefeitura já tem 3 exportações" in refused.json()["detail"]
    # a finished export frees a place
    Clip.objects.filter(created_by=first).update(status=Clip.Status.DONE, size_bytes=10)
    assert ask(second, camera, 3).status_code == 202
    assert Clip.objects.filter(status=Clip.Status.PENDING).count() == 2


def test_clip_storage_is_limited_per_prefeitura(recorded, settings, sample):
    (camera, other), (first, second, _third) = recorded
    settings.CLIP_MAX_BYTES_PER_PREFEITURA = 25 * sample.stat().st_size
    assert ask(first, camera).status_code == 202
    Clip.objects.update(status=Clip.Status.DONE, size_bytes=20 * sample.stat().st_size)
    # 20 kept + about 11 segments of this clip would pass the limit
    refused = ask(second, other)
    assert refused.status_code == 429
    assert "Os clipes desta prefeitura ocupam" in refused.json()["detail"]
    # expired clips do not count
    Clip.objects.update(expires_at=timezone.now() - timedelta(minutes=1))
    assert ask(second, other).status_code == 202


def test_the_disk_floor_deletes_expired_clips_before_footage_and_never_live_clips(
    recorded, settings, django_capture_on_commit_callbacks
):
    (camera, _other), (user, *_rest) = recorded
    clips = []
    for expires in (timezone.now() - timedelta(days=1), timezone.now() + timedelta(days=1)):
        clip = Clip.objects.create(
            camera=camera, start=T0, end=T0 + timedelta(seconds=5), status=Clip.Status.DONE,
            size_bytes=4, created_by=user, expires_at=expires,
        )  # fmt: skip
        storage.clip_path(clip.pk).write_bytes(b"clip")
        clips.append(clip)
    settings.RETENTION_DISK_FLOOR_BYTES = 10**18
    settings.RETENTION_DISK_FLOOR_KEEP_S = 0
    with django_capture_on_commit_callbacks(execute=True):
        retention.enforce_disk_floor()
    assert list(Clip.objects.values_list("pk", flat=True)) == [clips[1].pk]
    assert not storage.clip_path(clips[0].pk).exists() and storage.clip_path(clips[1].pk).exists()


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def write_big_file(path, size: int) -> str:
    block = os.urandom(1024 * 1024)
    digest = hashlib.sha256()
    with path.open("wb") as handle:
        for _ in range(size // len(block)):
            handle.write(block)
            digest.update(block)
    return digest.hexdigest()


@pytest.mark.django_db(transaction=True)
def test_a_slow_download_keeps_server_memory_bounded_and_ranges_work(settings):
    camera = CameraFactory()
    user = UserFactory(prefeitura=camera.prefeitura, role=Role.OPERADOR)
    size = 256 * 1024 * 1024
    clip = Clip.objects.create(
        camera=camera, start=T0, end=T0 + timedelta(seconds=5), status=Clip.Status.DONE,
        size_bytes=size, created_by=user, expires_at=timezone.now() + timedelta(days=1),
    )  # fmt: skip
    path = storage.clip_path(clip.pk)
    sha = write_big_file(path, size)
    with running_web() as (url, web):
        auth = bearer(user)
        download = f"/api/clips/{clip.pk}/download"
        # ranges: a slice, the tail, and one out of bounds
        part = requests.get(
            f"{url}{download}", headers={**auth, "Range": "bytes=1000-2999"}, timeout=30
        )
        assert part.status_code == 206 and len(part.content) == 2000
        with path.open("rb") as handle:
            handle.seek(1000)
            assert part.content == handle.read(2000)
        assert part.headers["Content-Range"] == f"bytes 1000-2999/{size}"
        tail = requests.get(f"{url}{download}", headers={**auth, "Range": "bytes=-10"}, timeout=30)
        assert tail.status_code == 206 and tail.headers["Content-Range"].endswith(f"/{size}")
        beyond = requests.get(
            f"{url}{download}", headers={**auth, "Range": f"bytes={size}-"}, timeout=30
        )
        assert beyond.status_code == 416

        baseline = rss_bytes(web.process.pid)
        peak = baseline
        sock = socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        request = f"GET {download} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        request += f"Authorization: {auth['Authorization']}\r\nConnection: close\r\n\r\n"
        sock.sendall(request.encode())
        received = bytearray()
        try:
            # a slow reader: a few MB, then a pause in which a server that buffers the
            # response would read the whole file into its memory
            while len(received) < 4 * 1024 * 1024:
                received += sock.recv(64 * 1024)
            for _ in range(40):
                peak = max(peak, rss_bytes(web.process.pid))
                time.sleep(0.1)
            while chunk := sock.recv(1024 * 1024):
                received += chunk
                peak = max(peak, rss_bytes(web.process.pid))
        finally:
            sock.close()
    head, _, body = bytes(received).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head[:200]
    assert len(body) == size and hashlib.sha256(body).hexdigest() == sha
    assert peak - baseline < size // 4, (baseline, peak)
