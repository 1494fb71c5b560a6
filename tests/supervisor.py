"""Run ``manage.py media_supervisor`` as a real process against the test database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent
MARKER_ENV = "GTV_SUPERVISOR=gtvision-media"


def wait_for(condition: Callable[[], object], timeout: float = 30, step: float = 0.3):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(step)


def process_env(**extra: str) -> dict[str, str]:
    """Environment for a project process started by a test: the test database and the
    test's media directories (DATABASE_URL and GTV_DATA_DIR pass through)."""
    env = {
        **os.environ,
        "GTV_DATABASE_NAME": connection.settings_dict["NAME"],
        "GTV_LIVE_DIR": str(settings.LIVE_DIR),
        "GTV_RECORDINGS_DIR": str(settings.RECORDINGS_DIR),
        "GTV_CLIPS_DIR": str(settings.CLIPS_DIR),
        "PYTHONUNBUFFERED": "1",
        **extra,
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return env


class SupervisorProcess:
    """The supervisor with fast test settings plus ``extra``, or exactly ``env`` if given."""

    def __init__(self, env: dict[str, str] | None = None, **extra: str) -> None:
        self.env = env or process_env(
            SUPERVISOR_INTERVAL_S="0.3",
            SUPERVISOR_METRICS_INTERVAL_S="1",
            STREAM_MAX_BACKOFF_S="2",
            **extra,
        )
        self.log = tempfile.TemporaryFile()
        self.process: subprocess.Popen | None = None

    def start(self) -> SupervisorProcess:
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "media_supervisor"],
            env=self.env,
            cwd=ROOT,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        return self

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL if it does not stop; returns the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def kill9(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.output().splitlines()[-lines:])


def media_processes(fragment: str = "") -> list[int]:
    """PIDs of FFmpeg processes started by a media supervisor (optionally for one URL part).

    The camera URL is not on FFmpeg's command line but in its source file (``-i
    X.ffconcat``, 0600, kept while FFmpeg runs): the fragment is looked for there too."""
    return [pid for pid, text in media_sources().items() if fragment.encode() in text]


def media_sources() -> dict[int, bytes]:
    """Every media supervisor's FFmpeg: PID -> its command line plus its source files (one
    pass over /proc, for callers counting many cameras at once)."""
    found: dict[int, bytes] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            environ = Path(f"/proc/{name}/environ").read_bytes().split(b"\0")
            argv = Path(f"/proc/{name}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if MARKER_ENV.encode() not in environ:
            continue
        cmdline = b" ".join(argv)
        for arg in argv:
            if arg.endswith(b".ffconcat"):
                try:
                    cmdline += b" " + Path(arg.decode(errors="replace")).read_bytes()
                except OSError:
                    continue
        found[int(name)] = cmdline
    return found
