"""Camera passwords never on a command line, in a log, an event or an error (issue 9.7).

A running supervisor pulls a camera whose URL carries a password: FFmpeg reads the URL from a
0600 file in a 0700 directory (the concat demuxer), the stream runs and records, and the
password is in no process's ``/proc/PID/cmdline``, no log line, no stored error or audit entry.
The files go when FFmpeg stops, and what a killed supervisor left is swept at the next start.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from urllib.parse import quote

import pytest

from admin_ctx.models import AuditEntry
from recordings import storage
from recordings.models import Segment
from streaming.ffmpeg import ffmpeg_exe
from streaming.models import Stream
from testcamera import INSTALL_HINT, SERVER_SCRIPT, TestCamera
from tests.conftest import client_for
from tests.factories import CameraFactory, UserFactory
from tests.supervisor import SupervisorProcess, media_processes, wait_for

pytestmark = [
    pytest.mark.camera,
    pytest.mark.timeout(180),
    pytest.mark.django_db(transaction=True, databases=["default", "channels_postgres"]),
]
PASSWORD = "S3nha'Sec reta#1"  # a quote, a space and a '#': ffconcat quoting is exercised
WRONG = "Wr0ng-S3nha-Xyz"


def secrets_of(password: str) -> list[bytes]:
    return [password.encode(), quote(password, safe="").encode()]


def every_cmdline() -> dict[int, bytes]:
    """Every process's command line but the test camera's (it plays the street camera)."""
    found = {}
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{name}/cmdline").read_bytes()
        except OSError:
            continue
        if str(SERVER_SCRIPT).encode() not in cmdline:
            found[int(name)] = cmdline
    return found


def assert_nowhere(password: str, *texts: str) -> None:
    for pid, cmdline in every_cmdline().items():
        for secret in secrets_of(password):
            assert secret not in cmdline, f"password on the command line of pid {pid}"
    for text in texts:
        for secret in secrets_of(password):
            assert secret.decode() not in text


def test_password_never_on_a_command_line_log_or_error(tmp_path, settings):
    assert TestCamera.available(), INSTALL_HINT
    server = TestCamera(mounts=("cam1", "cam2"), user="viewer", password=PASSWORD)
    server.start()
    run_dir = tmp_path / "run"
    supervisors: list[SupervisorProcess] = []

    def supervisor() -> SupervisorProcess:
        process = SupervisorProcess(GTV_RUN_DIR=str(run_dir), RECORDING_SEGMENT_SECONDS="2")
        supervisors.append(process.start())
        return process

    try:
        operador = UserFactory()
        camera = CameraFactory(prefeitura=operador.prefeitura, source_url=server.url("cam1"))
        wrong = CameraFactory(
            prefeitura=operador.prefeitura,
            source_url=server.url("cam2").replace(quote(PASSWORD, safe=""), WRONG),
            recording_enabled=False,
        )
        api = client_for(operador)
        stream_id = api.post("/api/streams/start", {"camera_id": camera.pk}, format="json").json()[
            "stream_id"
        ]
        wrong_id = api.post("/api/streams/start", {"camera_id": wrong.pk}, format="json").json()[
            "stream_id"
        ]
        first = supervisor()
        wait_for(lambda: Stream.objects.get(pk=stream_id).status == "RUNNING", timeout=45)
        wait_for(lambda: Segment.objects.filter(camera_id=camera.pk).count() >= 2, timeout=60)
        wait_for(lambda: Stream.objects.get(pk=wrong_id).status == "ERROR", timeout=45)

        # FFmpeg runs with the URL in a file only its owner can read
        # (two: the recorder and, while the stream is active, its live HLS writer)
        pids = media_processes(f":{server.port}/cam1")
        assert len(pids) == 2
        for pid in pids:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            source = Path(argv[argv.index(b"-i") + 1].decode())
            assert source.suffix == ".ffconcat" and source.parent.parent == run_dir
            assert source.stat().st_mode & 0o777 == 0o600
            assert source.parent.stat().st_mode & 0o777 == 0o700
        errors = list(Stream.objects.values_list("last_error", flat=True))
        audit = [str(entry.details) for entry in AuditEntry.objects.all()]
        api_text = api.get("/api/streams").content.decode()
        assert_nowhere(PASSWORD, first.output(), *errors, *audit, api_text)
        assert_nowhere(WRONG, first.output(), *errors, *audit, api_text)
        assert Stream.objects.get(pk=wrong_id).last_error  # a 401, told without the password

        # what FFmpeg reads through the concat demuxer records with sane timestamps
        for segment in Segment.objects.filter(camera_id=camera.pk).order_by("start")[1:3]:
            probe = subprocess.run(
                [ffmpeg_exe(), "-hide_banner", "-i", str(storage.segment_file(segment)),
                 "-c", "copy", "-f", "null", "-"],
                capture_output=True, text=True, timeout=30,
            )  # fmt: skip
            assert probe.returncode == 0 and "Video: h264" in probe.stderr
            played = re.findall(r"time=(\d+):(\d+):([\d.]+)", probe.stderr)[-1]
            seconds = int(played[0]) * 3600 + int(played[1]) * 60 + float(played[2])
            assert abs(seconds - (segment.end - segment.start).total_seconds()) < 1.0

        # a supervisor killed with SIGKILL leaves its files; the next one sweeps them
        first.kill9()
        wait_for(lambda: not media_processes(f":{server.port}/cam1"), timeout=15)
        assert any(run_dir.glob("ffmpeg-*/cam*.ffconcat"))
        second = supervisor()
        wait_for(lambda: Stream.objects.get(pk=stream_id).status == "RUNNING", timeout=45)
        wait_for(lambda: len(media_processes(f":{server.port}/cam1")) == 2, timeout=45)
        left = [p.name for p in run_dir.iterdir()]
        assert left == [f"ffmpeg-{second.process.pid}"], left
        assert_nowhere(PASSWORD, second.output())

        # stopped: no file is left behind
        second.stop()
        assert list(run_dir.iterdir()) == []
        assert_nowhere(PASSWORD, second.output())
    finally:
        for process in supervisors:
            process.stop()
        server.stop()
