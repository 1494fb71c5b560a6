"""Run every long-running process of the Procfile, like a small foreman.

Output of each process is prefixed with its name. A process that exits is started again
after a backoff (1 s, doubling up to ``--max-backoff``; reset once it ran for a minute), so
one process losing the database for a while does not stop the others. A process that exits
more than ``--max-restarts`` times within ``--restart-window`` seconds has used up its budget:
then everything is stopped and runall exits with status 1. On Ctrl-C/SIGTERM all are stopped
(SIGTERM to each process group, then SIGKILL after a grace period) and, on the embedded
database, the database is stopped last.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from gtvision import demo

GRACE_S = 10
HEALTHY_AFTER_S = 60.0  # a process that ran this long starts over at the minimum backoff
MIN_BACKOFF_S = 1.0


def read_procfile(path: Path) -> list[tuple[str, list[str]]]:
    entries = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _sep, command = line.partition(":")
        argv = shlex.split(command)
        if argv and argv[0] == "python":
            argv[0] = sys.executable
        entries.append((name.strip(), argv))
    return entries


@dataclass
class Managed:
    """One Procfile process and its restart bookkeeping."""

    name: str
    label: str
    argv: list[str]
    child: subprocess.Popen | None = None
    started_at: float = 0.0
    start_at: float | None = 0.0  # when to (re)start it; None while it runs
    backoff: float = MIN_BACKOFF_S
    exits: deque = field(default_factory=deque)


class Command(BaseCommand):
    help = "Run web, WebSockets, media supervisor and job worker (see the Procfile)."

    def add_arguments(self, parser):
        parser.add_argument("--procfile", default=str(settings.BASE_DIR / "Procfile"))
        parser.add_argument("--extra", action="append", default=[], help="name=command to add")
        parser.add_argument(
            "--demo-camera",
            action="store_true",
            help="Also serve the demo RTSP test camera (when its Debian packages are installed).",
        )
        parser.add_argument(
            "--max-backoff", type=float, default=30.0, help="longest wait before a restart (s)"
        )
        parser.add_argument(
            "--max-restarts",
            type=int,
            default=10,
            help="restarts of one process within --restart-window before giving up",
        )
        parser.add_argument("--restart-window", type=float, default=600.0)

    def handle(
        self,
        *args,
        procfile,
        extra,
        demo_camera=False,
        max_backoff=30.0,
        max_restarts=10,
        restart_window=600.0,
        **options,
    ):
        entries = read_procfile(Path(procfile))
        for item in extra:
            name, _sep, command = item.partition("=")
            entries.append((name, shlex.split(command)))
        if demo_camera and demo.camera_available():
            entries.insert(0, ("camera", demo.server_argv()))
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        width = max(len(name) for name, _ in entries)
        processes = [Managed(name, name.ljust(width), argv) for name, argv in entries]
        gave_up = None
        try:
            while not stop.is_set():
                now = time.monotonic()
                for proc in processes:
                    exited = proc.child is not None and proc.child.poll() is not None
                    if exited and not self._exited(
                        proc, now, max_backoff, max_restarts, restart_window
                    ):
                        gave_up = proc
                        stop.set()
                        break
                    if proc.start_at is not None and now >= proc.start_at and not stop.is_set():
                        proc.child = self._start(proc.label, proc.argv)
                        proc.started_at, proc.start_at = now, None
                stop.wait(0.2)
        finally:
            self._stop_all([proc.child for proc in processes if proc.child is not None])
            if not settings.DATABASE_URL:
                from gtvision import embedded_db

                embedded_db.stop(settings.DATA_DIR)
        if gave_up is not None:
            raise CommandError(
                f"{gave_up.name} exited {len(gave_up.exits)} times within "
                f"{restart_window:.0f} s; stopped everything"
            )

    def _exited(
        self,
        proc: Managed,
        now: float,
        max_backoff: float,
        max_restarts: int,
        restart_window: float,
    ) -> bool:
        """Schedule the restart of an exited process; False once its budget is used up."""
        # What it started dies with it (FFmpeg: PR_SET_PDEATHSIG) or is its own business: the
        # embedded PostgreSQL a process started stays up for the others.
        code = proc.child.returncode
        proc.child = None
        proc.exits.append(now)
        while proc.exits and now - proc.exits[0] > restart_window:
            proc.exits.popleft()
        if len(proc.exits) > max_restarts:
            self.stderr.write(f"{proc.name} exited with {code}; restart budget used up")
            return False
        if now - proc.started_at >= HEALTHY_AFTER_S:
            proc.backoff = MIN_BACKOFF_S
        self.stderr.write(f"{proc.name} exited with {code}; restarting in {proc.backoff:.0f} s")
        proc.start_at = now + proc.backoff
        proc.backoff = min(proc.backoff * 2, max_backoff)
        return True

    def _start(self, label: str, argv: list[str]) -> subprocess.Popen:
        child = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=settings.BASE_DIR,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,
        )

        def pump() -> None:
            for raw in child.stdout:
                sys.stdout.write(f"{label} | {raw.decode(errors='replace')}")
                sys.stdout.flush()

        threading.Thread(target=pump, daemon=True).start()
        return child

    def _stop_all(self, children: list[subprocess.Popen]) -> None:
        for child in children:
            if child.poll() is None:
                _kill_group(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + GRACE_S
        for child in children:
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _kill_group(child.pid, signal.SIGKILL)
                child.wait()


def _kill_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass
