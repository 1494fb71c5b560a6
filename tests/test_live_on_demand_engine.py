"""Live HLS only while watched, in the embedded engine (issue 15), end to end: the real media
supervisor, Daphne (``manage.py serve``), FFmpeg and RTSP test cameras.

A recorded camera nobody watches runs one segment-only FFmpeg and writes no HLS. Opening it
live starts a second FFmpeg for HLS without touching the recorder (same PID, no hole in the
segment rows); closing it ends that FFmpeg. A ``sub`` stream pulls the camera's substream (a
second test camera server here, so its RTSP connections are counted apart), the main stream
when the camera has none.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from recordings.models import Segment
from streaming.engine import live_dir
from streaming.ffmpeg import ffmpeg_exe
from streaming.models import Stream
from testcamera import INSTALL_HINT, TestCamera
from tests.factories import CameraFactory, UserFactory
from tests.faults.helpers import holes, overlaps, rtsp_pulls, segment_rows
from tests.live_web import bearer, running_web
from tests.supervisor import SupervisorProcess, media_processes, wait_for

pytestmark = [
    pytest.mark.camera,
    pytest.mark.django_db(transaction=True, databases=["default", "channels_postgres"]),
    pytest.mark.timeout(240),
]
PASSWORD = "Live-S3cret"


def _camera(mount: str):
    assert TestCamera.available(), INSTALL_HINT
    server = TestCamera(mounts=(mount,), user="viewer", password=PASSWORD)
    server.start()
    return server


@pytest.fixture
def main_server():
    server = _camera("main")
    yield server
    server.stop()


@pytest.fixture
def sub_server():
    server = _camera("sub")
    yield server
    server.stop()


@pytest.fixture
def stack(settings):
    """Daphne and the media supervisor (2 s recording segments) on the test database."""
    settings.MEDIA_ENGINE = "embedded"
    supervisor = SupervisorProcess(RECORDING_SEGMENT_SECONDS="2")
    with running_web() as (url, _web):
        supervisor.start()
        try:
            yield url, supervisor
        finally:
            supervisor.stop()
            assert PASSWORD not in supervisor.output()


def argv_of(pid: int) -> list[str]:
    return [a.decode() for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if a]


def output_format(pid: int) -> str:
    """The muxer an FFmpeg writes with (its last ``-f``)."""
    argv = argv_of(pid)
    return argv[len(argv) - 1 - argv[::-1].index("-f") + 1]


def start(url: str, user, camera, profile: str = "main") -> int:
    body = {"camera_id": camera.pk, "profile": profile, "on_demand": True}
    response = requests.post(f"{url}/api/streams/start", json=body, headers=bearer(user),
                             timeout=10)  # fmt: skip
    assert response.status_code == 201, response.text
    assert response.json()["profile"] == profile
    return response.json()["stream_id"]


def stop(url: str, user, stream_id: int) -> None:
    response = requests.post(f"{url}/api/streams/{stream_id}/stop", headers=bearer(user),
                             timeout=10)  # fmt: skip
    assert response.status_code == 200 and response.json()["status"] == "STOPPED"


def play(url: str, user, stream_id: int, tmp_path: Path) -> str:
    """As a player: the stream's HLS URL (view token), then its playlist until it lists a
    segment that downloads in full and decodes as H.264. Returns the playlist."""
    urls = requests.get(f"{url}/api/streams/{stream_id}/urls", headers=bearer(user), timeout=10)
    assert urls.status_code == 200, urls.text
    hls = urlsplit(urls.json()["hls"])
    assert "token=" in hls.query
    playlist_url = f"{url}{hls.path}?{hls.query}"  # no Authorization header: the token only
    base = playlist_url.rsplit("/", 1)[0]

    def playable() -> str | None:
        response = requests.get(playlist_url, timeout=10)
        if response.status_code != 200:
            return None
        names = [ln for ln in response.text.splitlines() if ln and not ln.startswith("#")]
        if not names:
            return None
        segment = requests.get(f"{base}/{names[0]}", timeout=10)
        assert segment.status_code == 200 and segment.content
        (tmp_path / "segment.ts").write_bytes(segment.content)
        return response.text

    playlist = wait_for(playable, timeout=60, step=0.2)
    probe = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-i", str(tmp_path / "segment.ts"), "-f", "null", "-"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert probe.returncode == 0 and "Video: h264" in probe.stderr, probe.stderr[-2000:]
    return playlist


def hls_files() -> list[Path]:
    from django.conf import settings

    root = Path(settings.LIVE_DIR)
    return sorted(root.rglob("*.m3u8")) + sorted(root.rglob("*.ts")) if root.exists() else []


def test_recorded_camera_goes_live_without_restarting_its_recorder(main_server, stack, tmp_path):
    url, supervisor = stack
    user = UserFactory()
    camera = CameraFactory(prefeitura=user.prefeitura, source_url=main_server.url("main"))
    fragment = f":{main_server.port}/main"

    # recorded, nobody watches: one FFmpeg, segment-only, one pull, no HLS anywhere
    wait_for(lambda: Segment.objects.filter(camera_id=camera.pk).count() >= 3, timeout=60)
    [recorder] = media_processes(fragment)
    assert output_format(recorder) == "segment"
    assert not any("hls" in arg for arg in argv_of(recorder))
    assert rtsp_pulls(main_server.port) == 1
    assert hls_files() == [] and not live_dir(camera.pk).exists()
    before_live = Segment.objects.filter(camera_id=camera.pk).count()

    # a viewer opens it: playable through the real endpoint, the recorder untouched
    stream_id = start(url, user, camera)
    playlist = play(url, user, stream_id, tmp_path)
    assert "#EXT-X-PROGRAM-DATE-TIME" in playlist
    wait_for(lambda: Stream.objects.get(pk=stream_id).status == "RUNNING")
    pids = media_processes(fragment)
    assert recorder in pids and len(pids) == 2
    [writer] = [pid for pid in pids if pid != recorder]
    assert output_format(writer) == "hls"
    assert rtsp_pulls(main_server.port) == 2  # watched: a second pull of the camera
    wait_for(
        lambda: Segment.objects.filter(camera_id=camera.pk).count() >= before_live + 3, timeout=60
    )

    # the viewer closes it: the live FFmpeg goes, its HLS with it; the recorder stays
    stop(url, user, stream_id)
    wait_for(lambda: media_processes(fragment) == [recorder], timeout=20)
    wait_for(lambda: not live_dir(camera.pk).exists(), timeout=10)
    assert hls_files() == []
    after_stop = Segment.objects.filter(camera_id=camera.pk).count()
    wait_for(
        lambda: Segment.objects.filter(camera_id=camera.pk).count() >= after_stop + 2, timeout=60
    )
    assert media_processes(fragment) == [recorder]

    # the recording went on across the start and the stop: no hole, no overlap
    rows = segment_rows(camera.pk)
    gaps = holes(rows, tolerance_s=0.25)
    assert not gaps, gaps
    assert not overlaps(rows), overlaps(rows)
    stream = Stream.objects.get(pk=stream_id)
    assert rows[0][0] < stream.started_at and rows[-1][1] > stream.stopped_at
    assert PASSWORD not in supervisor.output()


def test_sub_stream_pulls_the_substream_and_main_the_main(main_server, sub_server, stack, tmp_path):
    url, _supervisor = stack
    user = UserFactory()
    camera = CameraFactory(
        prefeitura=user.prefeitura,
        source_url=main_server.url("main"),
        substream_url=sub_server.url("sub"),
        recording_enabled=False,
    )
    sub_id = start(url, user, camera, "sub")
    play(url, user, sub_id, tmp_path)
    assert rtsp_pulls(sub_server.port) == 1 and rtsp_pulls(main_server.port) == 0
    assert len(media_processes(f":{sub_server.port}/sub")) == 1
    assert live_dir(camera.pk, "sub").is_dir() and not live_dir(camera.pk).exists()

    # the camera page opens the main stream alongside: its own process, directory and URL
    main_id = start(url, user, camera, "main")
    play(url, user, main_id, tmp_path)
    assert rtsp_pulls(main_server.port) == 1 and rtsp_pulls(sub_server.port) == 1
    assert live_dir(camera.pk).is_dir() and live_dir(camera.pk, "sub").is_dir()
    wait_for(lambda: Stream.objects.get(pk=sub_id).status == "RUNNING")
    wait_for(lambda: Stream.objects.get(pk=main_id).status == "RUNNING")
    # a view token of the camera reads the main playlist, not the sub one under its id
    sub_files = {p.name for p in live_dir(camera.pk, "sub").iterdir()}
    main_files = {p.name for p in live_dir(camera.pk).iterdir()}
    assert "index.m3u8" in sub_files and "index.m3u8" in main_files

    stop(url, user, sub_id)
    wait_for(lambda: rtsp_pulls(sub_server.port) == 0, timeout=20)
    wait_for(lambda: not live_dir(camera.pk, "sub").exists(), timeout=10)
    assert Stream.objects.get(pk=main_id).status == "RUNNING"
    assert rtsp_pulls(main_server.port) == 1
    stop(url, user, main_id)
    wait_for(lambda: rtsp_pulls(main_server.port) == 0, timeout=20)


def test_sub_stream_falls_back_to_the_main_stream(main_server, stack, tmp_path):
    url, _supervisor = stack
    user = UserFactory()
    camera = CameraFactory(
        prefeitura=user.prefeitura, source_url=main_server.url("main"), recording_enabled=False
    )
    assert camera.substream_url == ""
    sub_id = start(url, user, camera, "sub")
    play(url, user, sub_id, tmp_path)
    assert len(media_processes(f":{main_server.port}/main")) == 1
    assert rtsp_pulls(main_server.port) == 1
    assert live_dir(camera.pk, "sub").is_dir() and not live_dir(camera.pk).exists()
    stop(url, user, sub_id)
    wait_for(lambda: not media_processes(f":{main_server.port}/main"), timeout=20)


def test_a_bad_substream_fails_only_its_stream(main_server, stack, tmp_path):
    """An undecryptable substream URL is the sub stream's error (credential-free, pt-BR):
    the recorder and the main stream of the same camera carry on."""
    from django.utils import translation

    from cidades.models import Camera
    from streaming.models import RecorderStatus
    from streaming.supervisor.jobs import CameraFault

    url, supervisor = stack
    user = UserFactory()
    camera = CameraFactory(
        prefeitura=user.prefeitura,
        source_url=main_server.url("main"),
        substream_url=main_server.url("main"),
    )
    Camera.objects.filter(pk=camera.pk).update(substream_url_encrypted="gAAAAAB-damaged")
    wait_for(lambda: Segment.objects.filter(camera_id=camera.pk).count() >= 2, timeout=60)
    [recorder] = media_processes(f":{main_server.port}/main")
    sub_id = start(url, user, camera, "sub")
    main_id = start(url, user, camera, "main")
    wait_for(lambda: Stream.objects.get(pk=sub_id).status == "ERROR")
    with translation.override("pt-br"):
        expected = translation.gettext(CameraFault.UNREADABLE_URL)
    assert Stream.objects.get(pk=sub_id).last_error == expected
    play(url, user, main_id, tmp_path)
    wait_for(lambda: Stream.objects.get(pk=main_id).status == "RUNNING")
    assert recorder in media_processes(f":{main_server.port}/main")
    assert RecorderStatus.objects.get(camera=camera).status == "RUNNING"
    assert not live_dir(camera.pk, "sub").exists()
    assert PASSWORD not in supervisor.output()
