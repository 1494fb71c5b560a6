"""Controller for the RTSP test camera (testcamera/server.py).

The server needs GStreamer's Python bindings, which only the system interpreter
``/usr/bin/python3`` has, so it always runs as a child process::

    with TestCamera(mounts=("cam1", "cam2"), user="admin", password="secret") as camera:
        url = camera.url("cam1")  # rtsp://admin:secret@127.0.0.1:PORT/cam1
        ...
        camera.restart()  # simulate an outage and the camera's return

Install the system packages with ``scripts/install-test-deps``.
"""

from __future__ import annotations

import functools
import os
import select
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Self
from urllib.parse import quote

SYSTEM_PYTHON = "/usr/bin/python3"
SERVER_SCRIPT = Path(__file__).resolve().parent / "server.py"
HOST = "127.0.0.1"
BIND_RETRY_SECONDS = 3.0
INSTALL_HINT = "the RTSP test camera is not available: run scripts/install-test-deps"

# Extra server options accepted as keyword arguments (see server.py --help).
OPTIONS = frozenset({"width", "height", "fps", "keyint", "bitrate", "frames_dir", "replay_seconds"})


@functools.cache
def available() -> bool:
    """Whether the system Python can import GstRtspServer (the result is cached)."""
    code = (
        "import gi; gi.require_version('GstRtspServer', '1.0'); "
        "from gi.repository import GstRtspServer"
    )
    try:
        result = subprocess.run(
            [SYSTEM_PYTHON, "-c", code], capture_output=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _ffmpeg_exe() -> str:
    """FFmpeg with libx264 (imageio-ffmpeg's, as the project uses), else the PATH's."""
    try:
        import imageio_ffmpeg
    except ImportError:
        return "ffmpeg"
    return imageio_ffmpeg.get_ffmpeg_exe()


class TestCamera:
    """A GStreamer RTSP server with one synthetic H.264 stream per mount."""

    __test__ = False  # not a pytest test class, despite the name

    available = staticmethod(available)

    def __init__(
        self,
        mounts: tuple[str, ...] | list[str] = ("cam1",),
        port: int | None = None,
        user: str | None = None,
        password: str | None = None,
        replay: bool = False,
        clock: bool = False,
        **opts: int | str,
    ) -> None:
        """Configure the camera; ``opts`` are width, height, fps, keyint, bitrate (kbit/s), and
        frames_dir (plate mode: stream that directory's *.jpg frames, looped), replay_seconds
        (replay mode: the clip's length, default 20).

        ``replay``: serve a clip encoded once (cached on disk, see testcamera/replay.py),
        looped, instead of encoding live for every client: cheap enough for 100 mounts.
        ``clock``: every frame carries its capture time (testcamera/clock.py)."""
        unknown = set(opts) - OPTIONS
        if unknown:
            raise TypeError(f"unknown TestCamera options: {sorted(unknown)}")
        if (user is None) != (password is None):
            raise ValueError("user and password go together")
        self.mounts = tuple(mounts)
        self.port = port if port is not None else free_port()
        self.user = user
        self.password = password
        self.opts = dict(opts)
        self.replay = replay
        self.clock = clock
        self._process: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None

    def command(self) -> list[str]:
        """The server's argv."""
        argv = [
            SYSTEM_PYTHON,
            str(SERVER_SCRIPT),
            f"--host={HOST}",
            f"--port={self.port}",
            f"--mounts={','.join(self.mounts)}",
            f"--parent-pid={os.getpid()}",
        ]
        if self.user is not None and self.password is not None:
            argv += [f"--user={self.user}", f"--password={self.password}"]
        argv += [f"--{name.replace('_', '-')}={value}" for name, value in sorted(self.opts.items())]
        if self.replay:
            argv += ["--replay", f"--ffmpeg={_ffmpeg_exe()}"]
        if self.clock:
            argv.append("--clock")
        return argv

    @property
    def is_running(self) -> bool:
        """Whether the server process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 15) -> None:
        """Launch the server and wait until it listens; RuntimeError if it does not."""
        if self.is_running:
            raise RuntimeError("test camera already running")
        if not available():
            raise RuntimeError(INSTALL_HINT)
        deadline = time.monotonic() + timeout
        # The port can stay busy for a moment after a stop: retry a bind failure briefly.
        bind_deadline = min(deadline, time.monotonic() + BIND_RETRY_SECONDS)
        while True:
            error = self._launch(deadline)
            if error is None:
                return
            if "cannot listen" not in error or time.monotonic() + 0.2 > bind_deadline:
                raise RuntimeError(f"test camera did not start on port {self.port}:\n{error}")
            time.sleep(0.2)

    def _launch(self, deadline: float) -> str | None:
        """Start the process once; None when READY, else the server's stderr."""
        if self._stderr is not None:
            self._stderr.close()
        self._stderr = tempfile.TemporaryFile()  # a file, so a chatty server never blocks
        self._process = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            start_new_session=True,
        )
        assert self._process.stdout is not None
        fd = self._process.stdout.fileno()
        output = b""
        while b"\n" not in output:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                break
            chunk = os.read(fd, 4096)
            if not chunk:  # EOF: the server exited
                break
            output += chunk
        line = output.split(b"\n", 1)[0].decode(errors="replace")
        if line.startswith("READY "):
            return None
        self.stop()
        return f"stdout: {output.decode(errors='replace')!r}\nstderr: {self.stderr() or '(empty)'}"

    def stop(self) -> None:
        """Stop the server: SIGTERM, wait up to 5 s, then SIGKILL its process group."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(process.pid, signal.SIGKILL)  # also kills any stray child in its group
        except ProcessLookupError:
            pass
        process.wait()
        self._process = None  # a second stop() is a no-op
        if process.stdout is not None:
            process.stdout.close()

    def restart(self, timeout: float = 15) -> None:
        """Stop and start again on the same port (a camera outage and its return)."""
        self.stop()
        self.start(timeout)

    def stderr(self) -> str:
        """What the server wrote to stderr so far (for error messages)."""
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace").strip()

    def url(self, mount: str = "cam1", with_credentials: bool = True) -> str:
        """The RTSP URL of a mount, with user:password@ when configured and asked for."""
        userinfo = ""
        if with_credentials and self.user is not None and self.password is not None:
            userinfo = f"{quote(self.user, safe='')}:{quote(self.password, safe='')}@"
        return f"rtsp://{userinfo}{HOST}:{self.port}/{mount}"

    def __enter__(self) -> Self:
        """Start the camera unless it is already running; it is stopped on exit."""
        if not self.is_running:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.is_running else "stopped"
        mode = " replay" if self.replay else ""
        return f"<TestCamera{mode} {HOST}:{self.port} mounts={list(self.mounts)} {state}>"


__all__ = ["INSTALL_HINT", "TestCamera", "available", "free_port"]
