"""Run every long-running process of the Procfile, like a small foreman.

Output of each process is prefixed with its name. When one process exits, or on
Ctrl-C/SIGTERM, all are stopped (SIGTERM, then SIGKILL after a grace period) and,
on the embedded database, the database is stopped last.
"""

import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from gtvision import demo

GRACE_S = 10


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

    def handle(self, *args, procfile, extra, demo_camera=False, **options):
        entries = read_procfile(Path(procfile))
        for item in extra:
            name, _sep, command = item.partition("=")
            entries.append((name, shlex.split(command)))
        if demo_camera and demo.camera_available():
            entries.insert(0, ("camera", demo.server_argv()))
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        children: dict[str, subprocess.Popen] = {}
        width = max(len(name) for name, _ in entries)
        try:
            for name, argv in entries:
                children[name] = self._start(name.ljust(width), argv)
            while not stop.is_set():
                for name, child in children.items():
                    if child.poll() is not None:
                        self.stderr.write(f"{name} exited with {child.returncode}; stopping all")
                        stop.set()
                stop.wait(0.5)
        finally:
            self._stop_all(children)
            if not settings.DATABASE_URL:
                from gtvision import embedded_db

                embedded_db.stop(settings.DATA_DIR)

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

    def _stop_all(self, children: dict[str, subprocess.Popen]) -> None:
        for child in children.values():
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + GRACE_S
        for child in children.values():
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
