"""The RTSP test camera, checked with a real FFmpeg client."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import imageio_ffmpeg
import pytest

import testcamera
from testcamera import INSTALL_HINT, TestCamera

pytestmark = pytest.mark.camera

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
# A short analysis window: FFmpeg opens the stream in ~0.4 s instead of ~2 s. The SDP carries
# the SPS, so codec and size are still reported. (-analyzeduration 0 means "default".)
FAST_OPEN = ["-analyzeduration", "100000"]


def ffmpeg_args(url: str, frames: int = 10) -> list[str]:
    return [
        FFMPEG,
        "-hide_banner",
        "-nostdin",
        "-rtsp_transport",
        "tcp",
        *FAST_OPEN,
        "-i",
        url,
        "-frames:v",
        str(frames),
        "-c",
        "copy",
        "-f",
        "null",
        "-",
    ]


def read_stream(url: str, frames: int = 10) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ffmpeg_args(url, frames), capture_output=True, text=True, timeout=30, check=False
    )


def assert_reads_frames(result: subprocess.CompletedProcess[str], frames: int = 10) -> None:
    assert result.returncode == 0, result.stderr[-2000:]
    assert re.search(rf"frame=\s*{frames}\b", result.stderr), result.stderr[-2000:]


def port_is_listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def start_camera() -> Iterator[Callable[..., TestCamera]]:
    """Start TestCameras (the test fails when the camera is not installed); stop them after."""
    cameras: list[TestCamera] = []

    def start(**kwargs: Any) -> TestCamera:
        if not TestCamera.available():
            pytest.fail(INSTALL_HINT, pytrace=False)  # fail, never skip
        camera = TestCamera(**kwargs)
        cameras.append(camera)
        camera.start()
        return camera

    yield start
    for camera in cameras:
        camera.stop()


def test_client_reads_h264_640x360(start_camera: Callable[..., TestCamera]) -> None:
    camera = start_camera()
    result = read_stream(camera.url())
    assert_reads_frames(result)
    assert re.search(r"Video: h264\b.*\b640x360\b", result.stderr), result.stderr


def test_several_mounts_and_options(start_camera: Callable[..., TestCamera]) -> None:
    camera = start_camera(mounts=("front", "back"), width=320, height=240, fps=10)
    for mount in camera.mounts:
        result = read_stream(camera.url(mount), frames=5)
        assert_reads_frames(result, 5)
        assert "320x240" in result.stderr


def test_unknown_mount_is_404(start_camera: Callable[..., TestCamera]) -> None:
    camera = start_camera()
    result = read_stream(camera.url("nope"))
    assert result.returncode != 0
    assert "404" in result.stderr, result.stderr


def test_auth(start_camera: Callable[..., TestCamera]) -> None:
    camera = start_camera(user="admin", password="s3cret:/@")
    assert camera.url() == f"rtsp://admin:s3cret%3A%2F%40@127.0.0.1:{camera.port}/cam1"

    wrong = read_stream(f"rtsp://admin:wrong@127.0.0.1:{camera.port}/cam1")
    assert wrong.returncode != 0
    assert "401" in wrong.stderr, wrong.stderr

    anonymous = read_stream(camera.url(with_credentials=False))
    assert anonymous.returncode != 0
    assert "401" in anonymous.stderr, anonymous.stderr

    assert_reads_frames(read_stream(camera.url()))


def test_restart_on_same_port(start_camera: Callable[..., TestCamera]) -> None:
    camera = start_camera()
    port = camera.port
    # A client is connected while the camera goes away: the port must still be reusable.
    client = subprocess.Popen(
        ffmpeg_args(camera.url(), frames=1000),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(1)
        camera.stop()
        assert not camera.is_running
        assert not port_is_listening(port)
        outage = read_stream(camera.url())
        assert outage.returncode != 0
        assert "Connection refused" in outage.stderr, outage.stderr

        camera.start()
        assert camera.port == port
        assert camera.is_running
        assert_reads_frames(read_stream(camera.url()))

        camera.restart()
        assert camera.port == port
        assert_reads_frames(read_stream(camera.url()))
    finally:
        client.kill()
        client.wait()


def test_three_simultaneous_clients(start_camera: Callable[..., TestCamera]) -> None:
    camera = start_camera()
    clients = [
        subprocess.Popen(
            ffmpeg_args(camera.url(), frames=30),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    results = [client.communicate(timeout=30)[1] for client in clients]
    for client, stderr in zip(clients, results, strict=True):
        assert client.returncode == 0, stderr[-2000:]
        assert re.search(r"frame=\s*30\b", stderr), stderr[-2000:]
    assert camera.is_running, camera.stderr()


def test_stop_leaves_nothing_behind(start_camera: Callable[..., TestCamera]) -> None:
    camera = start_camera()
    with camera:  # entering a running camera keeps it; leaving stops it
        assert camera.is_running
    assert not camera.is_running
    assert not port_is_listening(camera.port)


def test_server_exits_when_its_owner_dies(start_camera: Callable[..., TestCamera]) -> None:
    start_camera().stop()  # only for the availability check
    code = (
        "import os, testcamera\n"
        "camera = testcamera.TestCamera()\n"
        "camera.start()\n"
        "print(camera.port, flush=True)\n"
        "os._exit(0)\n"  # die without stopping the camera
    )
    owner = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(testcamera.__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    port = int(owner.stdout)
    deadline = time.monotonic() + 5
    while port_is_listening(port) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not port_is_listening(port), "orphaned test camera still listening"


def test_start_failure_reports_stderr(
    start_camera: Callable[..., TestCamera], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(testcamera, "BIND_RETRY_SECONDS", 0.5)
    busy = start_camera()
    camera = TestCamera(port=busy.port)
    with pytest.raises(RuntimeError, match="cannot listen"):
        camera.start()
    assert not camera.is_running


def test_url_without_credentials() -> None:
    camera = TestCamera(port=8554)
    assert camera.url() == "rtsp://127.0.0.1:8554/cam1"
    assert camera.url("cam2", with_credentials=False) == "rtsp://127.0.0.1:8554/cam2"
    with pytest.raises(TypeError):
        TestCamera(colour="red")


# -- replay mode: pre-encoded H.264, looped -------------------------------------------------


def packet_timestamps(url: str, frames: int) -> tuple[list[int], list[str]]:
    """PTS (90 kHz) and CRC of the first ``frames`` video packets FFmpeg reads from ``url``."""
    result = subprocess.run(
        [FFMPEG, "-hide_banner", "-nostdin", "-rtsp_transport", "tcp", *FAST_OPEN, "-i", url,
         "-map", "0:v", "-frames:v", str(frames), "-c", "copy", "-f", "framecrc", "-"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line.split(",") for line in result.stdout.splitlines() if line[:1].isdigit()]
    return [int(row[2]) for row in rows], [row[5].strip() for row in rows]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_replay_loops_with_continuous_timestamps(
    start_camera: Callable[..., TestCamera],
) -> None:
    # A 2 s clip (30 frames at 15 fps, keyframe every 15): 75 frames cross it twice.
    camera = start_camera(replay=True, fps=15, keyint=15, replay_seconds=2)
    pts, crcs = packet_timestamps(camera.url(), 75)
    assert len(pts) == 75
    steps = {b - a for a, b in zip(pts, pts[1:], strict=False)}
    assert steps <= {5999, 6000, 6001}, steps  # one frame (1/15 s) apart, across loops too
    assert abs(pts[-1] - pts[0] - 74 * 6000) <= 1  # no gap, no jump (RTP rounding: 1 tick)
    assert len(set(crcs[:30])) == 30  # the frames advance (every frame of the clip differs)
    period = 30
    first = crcs.index(crcs[period])  # the clip restarts: the same frames come again
    assert crcs[first : first + 30] == crcs[period : period + 30]


def test_replay_serves_many_mounts_cheaply(start_camera: Callable[..., TestCamera]) -> None:
    mounts = tuple(f"r{i}" for i in range(8))
    camera = start_camera(mounts=mounts, replay=True)
    assert camera.is_running
    assert camera._process is not None
    before = cpu_seconds(camera._process.pid)
    clients = [
        subprocess.Popen(
            ffmpeg_args(camera.url(mount), frames=45),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for mount in mounts
    ]
    started = time.monotonic()
    results = [client.communicate(timeout=60)[1] for client in clients]
    wall = time.monotonic() - started
    for client, stderr in zip(clients, results, strict=True):
        assert client.returncode == 0, stderr[-2000:]
        assert re.search(r"frame=\s*45\b", stderr), stderr[-2000:]
        assert re.search(r"Video: h264\b.*\b640x360\b", stderr), stderr[-2000:]
    used = cpu_seconds(camera._process.pid) - before
    # Reported, not asserted (CPU on a shared machine): ~1 % of a core per client here.
    print(f"replay camera: {used / wall / len(mounts) * 100:.2f} % of a core per client")
    assert "x264enc" not in " ".join(camera.command())
