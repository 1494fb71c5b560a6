"""Process primitives for FFmpeg children: spawn, stop, supervise one child, sweep orphans.

No Django here. A supervisor loop owns one ``ManagedFFmpeg`` per camera and calls ``poll()``
every second or so; ``poll()`` never blocks for long, restarts a dead or stalled child with
exponential backoff, forever, and reports what it sees through ``snapshot()``.

Children run in their own session (so a terminal's Ctrl-C reaches only the supervisor, and
the whole group can be killed) and get ``SIGKILL`` when the thread that spawned them dies
(``PR_SET_PDEATHSIG``). That signal follows the spawning *thread*: spawn from the long-lived
supervisor thread, not from a short-lived worker. Children are marked in their environment
(``GTV_SUPERVISOR``/``GTV_SUPERVISOR_PID``) so a new supervisor can ``sweep_orphans()`` left by
a previous one.
"""

from __future__ import annotations

import codecs
import contextlib
import ctypes
import enum
import logging
import os
import selectors
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from streaming.ffmpeg import (
    COULD_NOT_CONNECT,
    ProgressParser,
    ffmpeg_env,
    redact_url,
    summarize_stderr,
)
from streaming.sourcefiles import SourceFile

logger = logging.getLogger(__name__)
MARKER_ENV = "GTV_SUPERVISOR"
MARKER_PID_ENV = "GTV_SUPERVISOR_PID"
_PR_SET_PDEATHSIG = 1
STDERR_LINES = 50
# A stalled FFmpeg (socket open, no data) ignores SIGINT until its own socket timeout fires,
# so after a stall it gets one SIGINT and, this much later, SIGKILL.
STALL_KILL_AFTER_S = 1.0

try:
    _prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved before any fork
except (AttributeError, OSError):  # not Linux
    _prctl = None


def _death_signal_setup(parent_pid: int) -> Callable[[], None]:
    """preexec_fn: SIGKILL this child when its parent dies (and die now if it already has).

    It only calls an already-resolved libc function and ``os.getppid``, which keeps the
    fork-with-threads risk of ``preexec_fn`` (no Python imports or locks in the child) small.
    """

    def setup() -> None:
        if _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        if os.getppid() != parent_pid:  # parent died between fork and prctl
            raise ChildProcessError("parent exited before the child started")

    return setup


def marked_env(marker: str, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default ``os.environ``) plus the marks ``sweep_orphans(marker)`` looks for."""
    env = dict(os.environ if base is None else base)
    env[MARKER_ENV] = marker
    env[MARKER_PID_ENV] = str(os.getpid())
    return env


def spawn(
    argv: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: str | None = None
) -> subprocess.Popen[str]:
    """Start ``argv`` in a new session, killed with its parent; stdout/stderr are text pipes."""
    setup = _death_signal_setup(os.getpid()) if _prctl is not None else None
    return subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(env) if env is not None else None,
        cwd=cwd,
        start_new_session=True,
        preexec_fn=setup,  # see _death_signal_setup for the threads caveat
        text=True,
        encoding="utf-8",
        errors="replace",
    )


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def stop(
    proc: subprocess.Popen[str], *, first_signal: int = signal.SIGINT, timeout: float = 5.0
) -> int:
    """Stop ``proc``: one ``first_signal`` (FFmpeg: a second SIGINT would abort the trailer),
    wait up to ``timeout`` s, then SIGKILL its whole process group. Returns the exit status."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(first_signal)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc.pid)
            proc.wait()
    return proc.returncode


def _parent_pid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return None
    return int(stat[stat.rindex(b")") + 2 :].split()[1])


def sweep_orphans(marker: str) -> int:
    """SIGKILL processes marked with ``marker`` whose supervisor is gone. Returns how many.

    A process counts as an orphan when its environment has ``GTV_SUPERVISOR=<marker>`` and its
    parent is no longer the process recorded in ``GTV_SUPERVISOR_PID`` (it was re-parented).
    Children of a live supervisor, including our own, are left alone.
    """
    wanted = f"{MARKER_ENV}={marker}".encode()
    killed = 0
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        pid = int(name)
        try:
            with open(f"/proc/{pid}/environ", "rb") as handle:
                environ = handle.read().split(b"\0")
        except OSError:  # gone, or not ours to read
            continue
        if wanted not in environ:
            continue
        prefix = f"{MARKER_PID_ENV}=".encode()
        owner = next((e[len(prefix) :] for e in environ if e.startswith(prefix)), b"")
        if owner.isdigit() and _parent_pid(pid) == int(owner):
            continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
            killed += 1
    return killed


def _exit_reason(code: int, connected: bool = True) -> str:
    if code >= 0 and not connected:
        return COULD_NOT_CONNECT
    if code == 0:  # FFmpeg ends with 0 when the source closes the stream
        return "stream ended (source closed the connection)"
    if code < 0:
        return f"ffmpeg killed by signal {-code}"
    return f"ffmpeg exited with status {code}"


class State(enum.StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    BACKOFF = "backoff"
    ERROR = "error"  # `budget` consecutive failures; still retrying at the capped backoff
    STOPPED = "stopped"


@dataclass(frozen=True)
class FFmpegSnapshot:
    """What a supervisor can observe about one ``ManagedFFmpeg`` (times are monotonic)."""

    key: str
    state: State
    pid: int | None
    started_at: float | None
    last_progress: dict[str, object] = field(default_factory=dict)
    last_progress_at: float | None = None
    last_error: str = ""
    restarts: int = 0
    failures: int = 0
    next_start_at: float | None = None


class _PipeReader:
    """One thread drains the stdout and stderr pipes of every child of this process.

    Two threads per FFmpeg (a camera) cost memory (a stack each) and a GIL hand-over per
    progress block; one thread waiting on all the pipes at once does the same reading. A
    callback gets each chunk read (``str``), then ``None`` at end of file. Registration goes
    through a queue and a wake-up pipe: only the reader thread touches the selector.
    """

    CHUNK = 65536

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._added: list[tuple[int, Callable[[str | None], None]]] = []
        self._thread: threading.Thread | None = None
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)

    def add(self, fd: int, callback: Callable[[str | None], None]) -> None:
        with self._lock:
            self._added.append((fd, callback))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="ffmpeg-pipes",
                                                daemon=True)  # fmt: skip
                self._thread.start()
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_w, b"\0")

    def _loop(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self._wake_r, selectors.EVENT_READ)
        decoders: dict[int, codecs.IncrementalDecoder] = {}
        while True:
            for key, _ in selector.select():
                fd = key.fd
                if fd == self._wake_r:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self._wake_r, 4096)
                    with self._lock:
                        added, self._added = self._added, []
                    for new_fd, callback in added:
                        with contextlib.suppress(KeyError):  # an old pipe closed unread
                            selector.unregister(new_fd).data(None)
                        decoders[new_fd] = codecs.getincrementaldecoder("utf-8")("replace")
                        selector.register(new_fd, selectors.EVENT_READ, callback)
                    continue
                try:
                    data = os.read(fd, self.CHUNK)
                except OSError:
                    data = b""
                callback = key.data
                try:
                    if data:
                        callback(decoders[fd].decode(data))
                        continue
                    selector.unregister(fd)
                    tail = decoders.pop(fd).decode(b"", final=True)
                    if tail:
                        callback(tail)
                    callback(None)
                except Exception:  # a callback's bug must not stop every camera's reading
                    logger.exception("ffmpeg pipe reader failed")


_pipes = _PipeReader()


PROGRESS_KEEP = 65536  # unfinished -progress output kept, at most


def last_progress_block(text: str) -> tuple[str | None, str]:
    """``(last complete block, rest)`` of ``-progress`` output: a block is the lines up to
    and including a ``progress=`` line; ``rest`` follows the last one (the next block's
    beginning). ``(None, text)`` when no block ends in ``text``."""
    complete = text.rfind("\n") + 1
    marker = text.rfind("\nprogress=", 0, complete)
    if marker >= 0:
        line = marker + 1
    elif text.startswith("progress=") and complete:
        line = 0
    else:
        return None, text[-PROGRESS_KEEP:]
    end = text.index("\n", line) + 1
    previous = text.rfind("\nprogress=", 0, max(0, line - 1))
    if previous >= 0:
        start = text.index("\n", previous + 1) + 1
    elif line > 0 and text.startswith("progress="):
        start = text.index("\n") + 1
    else:
        start = 0
    return text[start:end], text[end:]


def _value(block: str, key: str) -> str:
    """The raw value of ``key=`` in a -progress block ("" when absent)."""
    if block.startswith(f"{key}="):
        start = len(key) + 1
    else:
        index = block.find(f"\n{key}=")
        if index < 0:
            return ""
        start = index + len(key) + 2
    end = block.find("\n", start)
    return block[start : end if end >= 0 else len(block)].strip()


def _number(value: str) -> bool:
    """Whether a raw frame/out_time_us value is a non-zero number (N/A and 0 are not)."""
    try:
        return int(value) != 0
    except ValueError:
        return False


class _Run:
    """One child process; the shared pipe reader drains its stdout (progress) and stderr."""

    def __init__(self, proc: subprocess.Popen[str], clock: Callable[[], float]) -> None:
        self.proc = proc
        self.clock = clock
        self.started_at = clock()
        self.lock = threading.Lock()
        self._block = ""  # the last complete -progress block, parsed when asked for
        self._parsed: dict[str, object] | None = {}
        self._signature: tuple[str, str] = ("", "")  # its frame and out_time_us, raw
        self.progress_at: float | None = None
        self.changed_at: float | None = None  # last time out_time_us/frame advanced
        self.stderr: deque[str] = deque(maxlen=STDERR_LINES)
        self.kill_deadline: float | None = None  # set when we asked it to stop
        self._partial = {"out": "", "err": ""}  # an incomplete last line, per pipe
        self._open = 2
        self._drained = threading.Event()
        assert proc.stdout is not None and proc.stderr is not None
        _pipes.add(proc.stdout.fileno(), self._on_progress)
        _pipes.add(proc.stderr.fileno(), self._on_stderr)

    def _lines(self, pipe: str, chunk: str | None) -> list[str]:
        if chunk is None:  # end of file: the last line, even without its newline
            lines, self._partial[pipe] = [self._partial[pipe]], ""
            return [line for line in lines if line]
        lines = (self._partial[pipe] + chunk).split("\n")
        self._partial[pipe] = lines.pop()
        return lines

    def _on_progress(self, chunk: str | None) -> None:
        # Only the last complete block of what arrived matters: found with string searches,
        # its two stall-detection values read at once, the rest parsed when someone asks
        # (``progress``): FFmpeg writes a block every half second, the loop reads one a pass.
        text = self._partial["out"] + (chunk or "")
        if chunk is None and text and not text.endswith("\n"):
            text += "\n"  # end of file: the last line is complete
        block, self._partial["out"] = last_progress_block(text)
        if block is not None:
            signature = (_value(block, "frame"), _value(block, "out_time_us"))
            now = self.clock()
            with self.lock:
                if signature != self._signature and any(_number(v) for v in signature):
                    self.changed_at = now
                self._signature = signature
                self._block, self._parsed = block, None
                self.progress_at = now
        if chunk is None:
            self._closed()

    @property
    def progress(self) -> dict[str, object]:
        """The last complete block, parsed (``ProgressParser``); call it under ``lock``."""
        if self._parsed is None:
            parser = ProgressParser()
            parsed: dict[str, object] = {}
            for line in self._block.split("\n"):
                parsed = parser.feed(line) or parsed
            self._parsed = parsed
        return self._parsed

    def _on_stderr(self, chunk: str | None) -> None:
        self.stderr.extend(line.rstrip("\r") for line in self._lines("err", chunk))
        if chunk is None:
            self._closed()

    def _closed(self) -> None:
        with self.lock:
            self._open -= 1
            if self._open == 0:
                self._drained.set()

    def join(self, timeout: float = 1.0) -> None:
        """Wait until both pipes are read to their end (the child has exited)."""
        self._drained.wait(timeout)


class ManagedFFmpeg:
    """One supervised FFmpeg child for one key (a camera). Use it from one thread.

    ``argv`` is a list or a callable returning one (called at every start). A child that
    exits or stalls (``out_time_us``/``frame`` unchanged for ``stall_timeout_s`` after a
    ``start_grace_s`` grace period) is restarted after 1, 2, 4... s (``initial_backoff_s``
    doubling, capped at ``max_backoff_s``), forever. After ``budget`` consecutive failures the
    state reads ``error`` (while it keeps retrying) until data flows again; the failure count
    resets once the child has run ``healthy_after_s`` seconds. Every exit we did not ask for
    is a failure: FFmpeg exits with 0 after a mid-stream socket timeout.
    """

    def __init__(
        self,
        key: str,
        argv: Sequence[str] | Callable[[], Sequence[str]],
        *,
        source_url: str = "",
        source_file: SourceFile | None = None,
        marker: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        before_start: Callable[[], None] | None = None,
        stall_timeout_s: float = 6.0,
        start_grace_s: float = 10.0,
        initial_backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
        budget: int = 3,
        healthy_after_s: float = 10.0,
        stop_timeout_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.key = key
        self._argv = argv
        self._source_url = source_url
        self._source_file = source_file
        self._env = ffmpeg_env(dict(env) if env is not None else None)
        self._marker = marker
        self._cwd = cwd
        self._before_start = before_start
        self.stall_timeout_s = stall_timeout_s
        self.start_grace_s = start_grace_s
        self.initial_backoff_s = initial_backoff_s
        self.max_backoff_s = max_backoff_s
        self.budget = budget
        self.healthy_after_s = healthy_after_s
        self.stop_timeout_s = stop_timeout_s
        self._clock = clock
        self._run: _Run | None = None
        self._wanted = False
        self._state = State.STOPPED
        self._running_since: float | None = None
        self._failures = 0
        self._next_start_at: float | None = None
        self._pending_error = ""  # reason for a stop we requested because of a stall
        self._last_stderr: list[str] = []
        self.last_error = ""
        self.restarts = 0

    # -- public API ----------------------------------------------------------------------

    def start(self) -> FFmpegSnapshot:
        """Start now (also cuts a backoff short); no-op while a child is alive."""
        self._wanted = True
        if self._run is None:
            self._spawn(self._clock())
        return self.snapshot()

    def stop(self) -> int | None:
        """Stop the child (blocking, at most ``stop_timeout_s`` + a kill) and stay stopped."""
        self._wanted = False
        self._state = State.STOPPED
        self._next_start_at = None
        self._failures = 0
        run, self._run = self._run, None
        if run is None:
            self._remove_source_file()
            return None
        if run.kill_deadline is not None:  # already sent its one SIGINT (stall)
            _kill_group(run.proc.pid)
        code = stop(run.proc, timeout=self.stop_timeout_s)
        run.join()
        self._remove_source_file()
        self._log(
            logging.INFO, "ffmpeg stopped on request (code %s)", code, event="stop", exit_code=code
        )
        return code

    def poll(self) -> FFmpegSnapshot:
        """Advance the state machine without blocking; call it every second or so."""
        now = self._clock()
        run = self._run
        if not self._wanted:
            return self.snapshot()
        if run is None:
            if self._next_start_at is not None and now >= self._next_start_at:
                self._spawn(now)
            return self.snapshot()
        if run.proc.poll() is not None:
            run.join()
            self._remove_source_file()
            self._last_stderr = list(run.stderr)
            connected = run.changed_at is not None
            reason = self._pending_error or summarize_stderr(
                run.stderr, self._source_url, connected=connected
            )
            reason = redact_url(
                reason or _exit_reason(run.proc.returncode, connected), self._source_url
            )
            self._log(
                logging.WARNING,
                "ffmpeg exited with code %s: %s",
                run.proc.returncode,
                reason,
                event="exit",
                exit_code=run.proc.returncode,
                reason=reason,
            )
            self._fail(now, reason)
            return self.snapshot()
        if run.kill_deadline is not None:
            if now >= run.kill_deadline:
                _kill_group(run.proc.pid)
            return self.snapshot()
        with run.lock:
            changed_at = run.changed_at
        if changed_at is not None and self._state != State.RUNNING:
            self._state = State.RUNNING
            self._running_since = changed_at
        reference = max(changed_at or 0.0, run.started_at + self.start_grace_s)
        stalled = now - reference > self.stall_timeout_s
        healthy_for = now - (self._running_since or now)
        if self._state == State.RUNNING and not stalled and healthy_for >= self.healthy_after_s:
            self._failures = 0
        if stalled:
            # Before any media, a listener that never answers reads like any unreachable host.
            self._pending_error = (
                f"stalled: no new data for {self.stall_timeout_s:g} s"
                if changed_at is not None
                else COULD_NOT_CONNECT
            )
            self._log(
                logging.WARNING,
                "ffmpeg stalled: %s",
                self._pending_error,
                event="stall",
                reason=self._pending_error,
            )
            with contextlib.suppress(ProcessLookupError):
                run.proc.send_signal(signal.SIGINT)
            run.kill_deadline = now + STALL_KILL_AFTER_S
        return self.snapshot()

    def snapshot(self) -> FFmpegSnapshot:
        run = self._run
        progress: dict[str, object] = {}
        progress_at = None
        if run is not None:
            with run.lock:
                progress, progress_at = dict(run.progress), run.progress_at
        return FFmpegSnapshot(
            key=self.key,
            state=self._state,
            pid=run.proc.pid if run is not None else None,
            started_at=run.started_at if run is not None else None,
            last_progress=progress,
            last_progress_at=progress_at,
            last_error=self.last_error,
            restarts=self.restarts,
            failures=self._failures,
            next_start_at=self._next_start_at,
        )

    @property
    def state(self) -> State:
        return self._state

    @property
    def last_progress(self) -> dict[str, object]:
        return self.snapshot().last_progress

    @property
    def last_progress_at(self) -> float | None:
        return self.snapshot().last_progress_at

    @property
    def started_at(self) -> float | None:
        return self._run.started_at if self._run is not None else None

    @property
    def pid(self) -> int | None:
        return self._run.proc.pid if self._run is not None else None

    def stderr_tail(self) -> list[str]:
        """The last stderr lines of the current (or last exited) child, passwords removed."""
        lines = list(self._run.stderr) if self._run is not None else self._last_stderr
        return [redact_url(line, self._source_url) for line in lines]

    # -- internals -----------------------------------------------------------------------

    def _spawn(self, now: float) -> None:
        if self._next_start_at is not None:
            self.restarts += 1
        self._next_start_at = None
        self._pending_error = ""
        try:
            if self._before_start is not None:
                self._before_start()
            if self._source_file is not None:
                self._source_file.write()
            argv = self._argv() if callable(self._argv) else self._argv
            env = self._env if self._marker is None else marked_env(self._marker, self._env)
            proc = spawn(argv, env=env, cwd=self._cwd)
        except Exception as exc:  # any start failure is retried like an exit
            self._remove_source_file()
            # An OSError's text, without its path (server paths are not the user's business).
            cause = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            self._fail(now, redact_url(f"cannot start ffmpeg: {cause}", self._source_url))
            return
        self._run = _Run(proc, self._clock)
        self._log(
            logging.INFO,
            "ffmpeg started (pid %s, restart %s)",
            proc.pid,
            self.restarts,
            event="start",
            pid=proc.pid,
            restarts=self.restarts,
        )
        self._running_since = None
        self._state = State.ERROR if self._failures >= self.budget else State.STARTING

    def _remove_source_file(self) -> None:
        if self._source_file is not None:
            self._source_file.remove()

    def _fail(self, now: float, reason: str) -> None:
        self._run = None
        self._running_since = None
        self._failures += 1
        self.last_error = reason
        delay = min(self.max_backoff_s, self.initial_backoff_s * 2 ** (self._failures - 1))
        self._next_start_at = now + delay
        self._state = State.ERROR if self._failures >= self.budget else State.BACKOFF
        self._log(
            logging.INFO,
            "ffmpeg restarts in %g s (failure %s): %s",
            delay,
            self._failures,
            reason,
            event="restart",
            backoff_s=delay,
            failures=self._failures,
            reason=reason,
        )
        if self._failures == self.budget:
            self._log(
                logging.ERROR,
                "ffmpeg failed %s times in a row: camera in error, retrying every %g s at most",
                self._failures,
                self.max_backoff_s,
                event="give_up",
                failures=self._failures,
            )

    def _log(self, level: int, message: str, *args: object, event: str, **fields: object) -> None:
        """One log line per FFmpeg lifecycle event (counted by gtvision.metrics); no URL."""
        logger.log(
            level,
            f"%s: {message}",
            self.key,
            *args,
            extra={"event": f"ffmpeg_{event}", "ffmpeg_key": self.key, **fields},
        )
