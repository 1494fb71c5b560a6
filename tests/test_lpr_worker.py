"""The LPR worker's processes: FFmpeg frames from a real RTSP camera, restarts with backoff
across an outage, secrets off the command line, no orphans after SIGKILL of the worker."""

from __future__ import annotations

import os
import signal
import stat
import time
from pathlib import Path

import pytest

from lpr.worker import CameraFeed, Config, JpegSplitter, frames_argv
from testcamera import INSTALL_HINT, TestCamera, available
from tests.factories import CameraFactory
from tests.supervisor import process_env, wait_for
from tests.test_browser import ManagedProcess
from tests.test_lpr_e2e import lpr_ffmpegs

PASSWORD = "pw-lpr-secret"


def test_jpeg_splitter_cuts_frames_across_chunks():
    one, two = b"\xff\xd8" + b"a" * 10 + b"\xff\xd9", b"\xff\xd8" + b"b" * 5 + b"\xff\xd9"
    stream = b"junk" + one + two + two[:4]
    splitter = JpegSplitter()
    frames = []
    for i in range(0, len(stream), 3):
        frames += splitter.feed(stream[i : i + 3])
    assert frames == [one, two]
    assert splitter.feed(two[4:]) == [two]


def test_frames_argv_names_a_file_not_the_url(tmp_path):
    argv = frames_argv(tmp_path / "s.ffconcat", fps=3, max_width=960, timeout_s=5)
    assert str(tmp_path / "s.ffconcat") in argv
    assert "fps=3,scale='min(960,iw)':-2" in argv
    assert argv[-3:] == ["-f", "image2pipe", "pipe:1"]


def _poll_until(feed: CameraFeed, condition, timeout: float):
    def check():
        feed.poll(time.monotonic())
        return condition()

    return wait_for(check, timeout=timeout, step=0.2)


@pytest.mark.timeout(120)
def test_feed_restarts_with_backoff_across_a_camera_outage(tmp_path):
    assert available(), INSTALL_HINT
    with TestCamera(user="lpr", password=PASSWORD) as camera:
        feed = CameraFeed(7, camera.url(), Config(fps=4, stall_s=3), tmp_path)
        try:
            _poll_until(feed, feed.take_frame, timeout=30)
            assert feed.proc is not None
            cmdline = Path(f"/proc/{feed.proc.pid}/cmdline").read_bytes()
            assert PASSWORD.encode() not in cmdline
            mode = feed.source_file.path.stat().st_mode
            assert stat.S_IMODE(mode) == 0o600
            assert os.getsid(feed.proc.pid) == feed.proc.pid  # its own session

            camera.stop()
            _poll_until(feed, lambda: feed.restarts >= 2, timeout=40)
            assert feed.backoff > 1.0  # exponential while the camera is away
            camera.start()
            feed.take_frame()
            _poll_until(feed, feed.take_frame, timeout=60)
            pid = feed.proc.pid
        finally:
            feed.stop()
        assert feed.proc is None
        assert not feed.source_file.path.exists()
        assert not Path(f"/proc/{pid}").exists()  # stopped and reaped


@pytest.mark.timeout(180)
@pytest.mark.django_db(transaction=True)
def test_sigkilled_worker_leaves_no_ffmpeg(tmp_path):
    assert available(), INSTALL_HINT
    with TestCamera(user="lpr", password=PASSWORD) as camera:
        CameraFactory(source_url=camera.url(), lpr_enabled=True)
        env = process_env(GTV_RUN_DIR=str(tmp_path / "run"), GTV_LPR_CROP_DIR=str(tmp_path))
        worker = ManagedProcess("lpr", ["lpr_worker"], env).start()
        try:
            pids = wait_for(lambda: lpr_ffmpegs(worker.process.pid), timeout=90)
            worker.process.send_signal(signal.SIGKILL)
            worker.process.wait()
            wait_for(lambda: not any(Path(f"/proc/{p}").exists() for p in pids), timeout=10)
        finally:
            worker.stop()
        assert PASSWORD not in worker.output()
