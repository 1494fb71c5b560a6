"""Shared helpers of the ``test_recordings_*`` modules (no tests here).

``footage()`` records the RTSP test camera once per session the way the media supervisor
does (``live_argv`` with recording, supervised by ``ManagedFFmpeg``): a first run, a camera
outage, a second run, then ``kill -9`` mid-segment. Tests copy those files into a camera's
record dir and index them, so each test gets its own rows and files.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from recordings import indexer, storage
from recordings.models import Segment
from streaming.ffmpeg import SEGMENT_LIST, ffmpeg_env, ffmpeg_exe, live_argv
from streaming.process import ManagedFFmpeg
from testcamera import INSTALL_HINT, TestCamera

SEGMENT_SECONDS = 2  # the camera's GOP: keyint 30 at 15 fps
GOP_S = 2.0
FPS = 15


def wait_for(condition: Callable[[], object], timeout: float = 30.0, step: float = 0.1) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"condition not met within {timeout} s")


def listed(record_dir: Path) -> list[str]:
    path = record_dir / SEGMENT_LIST
    if not path.exists():
        return []
    return [line.split(",")[0] for line in path.read_text().splitlines() if line.count(",") == 2]


def segment_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if storage.SEGMENT_NAME.match(p.name))


def recorder(camera: TestCamera, record_dir: Path, hls_dir: Path) -> ManagedFFmpeg:
    record_dir.mkdir(parents=True, exist_ok=True)
    hls_dir.mkdir(parents=True, exist_ok=True)
    argv = live_argv(
        camera.url(), hls_dir, record_dir=record_dir, segment_seconds=SEGMENT_SECONDS, analyze_s=1
    )
    return ManagedFFmpeg(
        "rec", argv, source_url=camera.url(), stall_timeout_s=3, start_grace_s=5, max_backoff_s=1
    )


def supervise(ffmpeg: ManagedFFmpeg, until: Callable[[], object], timeout: float = 40) -> None:
    """Poll like the supervisor loop until ``until()`` holds."""
    wait_for(lambda: (ffmpeg.poll(), until())[1], timeout=timeout, step=0.2)


def kill_mid_segment(ffmpeg: ManagedFFmpeg, record_dir: Path) -> str:
    """SIGKILL the recorder about one second into a segment; returns the cut file's name."""
    count = len(listed(record_dir))
    supervise(ffmpeg, lambda: len(listed(record_dir)) > count)
    time.sleep(1.0)
    cut = segment_files(record_dir)[-1]
    assert cut not in listed(record_dir)
    os.kill(ffmpeg.pid, signal.SIGKILL)
    ffmpeg.stop()
    return cut


@dataclass(frozen=True)
class Footage:
    directory: Path  # a record dir: the .ts files and the last run's segments.csv
    first_run: list[str]  # segment names of the run before the outage
    second_run: list[str]  # names after it, the last one cut by kill -9
    cut: str
    outage: tuple[datetime, datetime]  # camera down from .. to (UTC)


_footage: dict[str, Footage] = {}


def footage(tmp_path_factory: pytest.TempPathFactory) -> Footage:
    """The session's recording (made on first use, ~20 s)."""
    if "main" not in _footage:
        if not TestCamera.available():
            pytest.fail(INSTALL_HINT)
        _footage["main"] = _record(tmp_path_factory.mktemp("footage"))
    return _footage["main"]


def _record(base: Path) -> Footage:
    rec = base / "incoming"
    with TestCamera() as camera:
        ffmpeg = recorder(camera, rec, base / "hls")
        ffmpeg.start()
        try:
            supervise(ffmpeg, lambda: len(listed(rec)) >= 2)
            camera.stop()
            down = datetime.now(UTC)
            supervise(ffmpeg, lambda: ffmpeg.pid is None)  # FFmpeg saw the source go away
            first_run = segment_files(rec)
            time.sleep(2)
            camera.start()
            up = datetime.now(UTC)
            supervise(ffmpeg, lambda: len(set(listed(rec)) - set(first_run)) >= 1)
            cut = kill_mid_segment(ffmpeg, rec)
        finally:
            ffmpeg.stop()
    names = segment_files(rec)
    second_run = [name for name in names if name not in first_run]
    assert len(set(listed(rec))) == len(listed(rec)), "a segment name was reused"
    return Footage(rec, first_run, second_run, cut, (down, up))


def install(footage: Footage, camera_id: int, names: list[str] | None = None) -> Path:
    """Copy recorded files (and the segment list) into a camera's record dir."""
    target = storage.record_dir(camera_id)
    for name in [*(names or segment_files(footage.directory)), SEGMENT_LIST]:
        shutil.copy2(footage.directory / name, target / name)
    return target


def index_footage(footage: Footage, camera_id: int) -> list[Segment]:
    target = install(footage, camera_id)
    indexer.index_camera(camera_id, target, writer_alive=False)
    return list(Segment.objects.filter(camera_id=camera_id).order_by("start"))


def packet_span(path: Path) -> float:
    """Seconds from the first video packet's start to the last one's end (FFmpeg framecrc)."""
    out = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-i", str(path), "-map", "0:v", "-c", "copy"]
        + ["-f", "framecrc", "-"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    timebase = 90000
    packets = []
    for line in out.splitlines():
        if line.startswith("#tb 0:"):
            timebase = int(line.split("/")[1])
        elif line and not line.startswith("#"):
            fields = [field.strip() for field in line.split(",")]
            packets.append((int(fields[2]), int(fields[3])))
    first = min(pts for pts, _ in packets)
    last = max(pts + duration for pts, duration in packets)
    return (last - first) / timebase


def decoded_duration(path: Path) -> float:
    """Seconds of video decoded by FFmpeg (last ``time=`` of a full decode)."""
    result = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-i", str(path), "-map", "0:v", "-f", "null", "-"],
        capture_output=True,
        text=True,
        env=ffmpeg_env(),
        check=True,
    )
    times = re.findall(r"time=(\d+):(\d+):(\d+\.\d+)", result.stderr)
    hours, minutes, seconds = times[-1]
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def decodes_as_jpeg(data: bytes, tmp_path: Path) -> bool:
    if not (data.startswith(b"\xff\xd8") and data.rstrip(b"\0").endswith(b"\xff\xd9")):
        return False
    path = tmp_path / "frame.jpg"
    path.write_bytes(data)
    argv = [ffmpeg_exe(), "-v", "error", "-i", str(path), "-f", "null", "-"]
    return subprocess.run(argv, capture_output=True, check=False).returncode == 0


def synthetic_segment(path: Path, seconds: float = 2.0) -> Path:
    """A small H.264 MPEG-TS file like a recorded segment (for backdated footage)."""
    argv = [ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=15"]
    argv += ["-t", f"{seconds}", "-pix_fmt", "yuv420p", "-c:v", "libx264", "-g", "30", "-bf", "0"]
    argv += ["-f", "mpegts", "-y", str(path)]
    subprocess.run(argv, check=True, capture_output=True)
    return path


def backdate(camera_id: int, starts: list[datetime], sample: Path) -> list[Segment]:
    """Index copies of ``sample`` as segments that began at ``starts`` (no segment list)."""
    target = storage.record_dir(camera_id)
    for start in starts:
        shutil.copy2(sample, target / storage.segment_name(start))
    indexer.index_camera(camera_id, target, writer_alive=False)
    return list(Segment.objects.filter(camera_id=camera_id, start__in=starts).order_by("start"))


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def seconds(value: float) -> timedelta:
    return timedelta(seconds=value)
