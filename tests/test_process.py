"""Real processes: live_argv output, ManagedFFmpeg supervision, no orphans, orphan sweep.

The source is an FFmpeg we control: a test pattern encoded to H.264 and served once as
MPEG-TS on a local TCP port (FFmpeg cannot serve RTSP PLAY). One test uses a GStreamer RTSP
server when the system Python has it (marked ``camera``).
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from streaming.ffmpeg import (
    COULD_NOT_CONNECT,
    ffmpeg_env,
    ffmpeg_exe,
    live_argv,
    source_input_args,
    source_script,
)
from streaming.process import ManagedFFmpeg, State, marked_env, spawn, stop, sweep_orphans
from streaming.sourcefiles import SourceFile, source_files_dir, sweep_source_files
from testcamera import INSTALL_HINT, TestCamera

pytestmark = pytest.mark.timeout(60)
ROOT = Path(__file__).resolve().parent.parent


def wait_for(condition: Callable[[], object], timeout: float = 20.0, step: float = 0.1) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"condition not met within {timeout} s")


def gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def marked_pids(marker: str) -> list[int]:
    found = []
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{name}/environ", "rb") as handle:
                if f"GTV_SUPERVISOR={marker}".encode() in handle.read().split(b"\0"):
                    found.append(int(name))
        except OSError:
            continue
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def listening(port: int) -> bool:
    with open("/proc/net/tcp") as handle:
        rows = [line.split() for line in handle.readlines()[1:]]
    return any(row[1].endswith(f":{port:04X}") and row[3] == "0A" for row in rows)


def decodes(path: Path) -> bool:
    cmd = [ffmpeg_exe(), "-v", "error", "-i", str(path), "-f", "null", "-"]
    return subprocess.run(cmd, capture_output=True, timeout=30).returncode == 0


class TcpSource:
    """A 15 fps H.264 test pattern served (once per start) as MPEG-TS on tcp://127.0.0.1:port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"tcp://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        encode = "-pix_fmt yuv420p -c:v libx264 -preset ultrafast -tune zerolatency -g 15"
        argv = [ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-re", "-f", "lavfi"]
        argv += ["-i", "testsrc=size=320x240:rate=15", *encode.split()]
        argv += ["-f", "mpegts", f"{self.url}?listen=1"]
        self.proc = subprocess.Popen(argv, start_new_session=True)
        wait_for(lambda: listening(self.port), timeout=10, step=0.02)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, sig)


@pytest.fixture
def source() -> Iterator[TcpSource]:
    src = TcpSource()
    src.start()
    yield src
    src.kill()


@pytest.fixture
def marker() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


def csv_rows(path: Path) -> list[list[str]]:
    if not path.exists():
        return []
    with path.open() as handle:
        return [row for row in csv.reader(handle) if row]


def test_live_argv_writes_hls_and_recording(tmp_path: Path, source: TcpSource) -> None:
    hls, rec = tmp_path / "hls", tmp_path / "rec"
    hls.mkdir()
    rec.mkdir()
    # Names have 1 s resolution: segments must be longer than the start-up burst (~1.7 s here).
    argv = live_argv(source.url, hls, record_dir=rec, segment_seconds=3, hls_time=1, analyze_s=1)
    proc = spawn(argv, env=ffmpeg_env())
    try:
        wait_for(lambda: len(csv_rows(rec / "segments.csv")) >= 1)
    finally:
        code = stop(proc)
    assert code == 255  # FFmpeg's status after a SIGINT it handled
    rows = csv_rows(rec / "segments.csv")
    assert len(rows) >= 2  # the segment open at the SIGINT was closed and listed
    assert len({row[0] for row in rows}) == len(rows) == len(list(rec.glob("*.ts")))
    now = dt.datetime.now(dt.UTC)
    for name, start, end in rows:
        assert re.fullmatch(r"\d{8}T\d{6}Z\.ts", name)
        opened = dt.datetime.strptime(name, "%Y%m%dT%H%M%SZ.ts").replace(tzinfo=dt.UTC)
        assert abs((now - opened).total_seconds()) < 60  # UTC names, not local time
        assert float(end) > float(start) >= 0
        assert decodes(rec / name)
    playlist = (hls / "index.m3u8").read_text()
    assert "#EXT-X-PROGRAM-DATE-TIME:" in playlist and playlist.rstrip().endswith("#EXT-X-ENDLIST")
    segments = re.findall(r"^seg_\d+\.ts$", playlist, re.M)
    assert segments and all((hls / s).exists() for s in segments)
    assert decodes(hls / "index.m3u8")


def test_recording_survives_sigkill(tmp_path: Path, source: TcpSource) -> None:
    rec = tmp_path / "rec"
    rec.mkdir()
    argv = live_argv(source.url, tmp_path, record_dir=rec, segment_seconds=3, analyze_s=1)
    proc = spawn(argv, env=ffmpeg_env())
    wait_for(lambda: len(csv_rows(rec / "segments.csv")) >= 1)
    time.sleep(1.0)  # into the next segment
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    listed = {row[0] for row in csv_rows(rec / "segments.csv")}
    files = sorted(p.name for p in rec.glob("*.ts"))
    unlisted = [name for name in files if name not in listed]
    assert len(unlisted) == 1 and unlisted[0] == files[-1]  # the one FFmpeg had open
    assert all(decodes(rec / name) for name in files)


def managed(source: TcpSource, tmp_path: Path, marker: str, **kwargs: object) -> ManagedFFmpeg:
    """The source read from a ``SourceFile`` (the concat demuxer), as the supervisor does."""
    hls = tmp_path / "hls"
    hls.mkdir(exist_ok=True)
    script = source_files_dir(tmp_path / "run") / "cam1.ffconcat"
    return ManagedFFmpeg(
        "cam-1",
        lambda: live_argv(source.url, hls, analyze_s=1, source_file=script),
        source_url=source.url,
        source_file=SourceFile(script, source_script(source.url, timeout_s=30, analyze_s=1)),
        marker=marker,
        **{"initial_backoff_s": 0.2, "max_backoff_s": 0.5, "budget": 2, **kwargs},
    )


def cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def test_managed_runs_restarts_and_recovers(tmp_path: Path, source: TcpSource, marker: str) -> None:
    m = managed(source, tmp_path, marker)
    m.start()
    try:
        first = wait_for(lambda: (s := m.poll()).state == State.RUNNING and s.pid)
        assert source.url not in cmdline(first) and ".ffconcat" in cmdline(first)
        run_dir = source_files_dir(tmp_path / "run")
        assert run_dir.stat().st_mode & 0o777 == 0o700
        assert [(p.name, p.stat().st_mode & 0o777) for p in run_dir.iterdir()] == [
            ("cam1.ffconcat", 0o600)
        ]
        wait_for(lambda: (m.poll().last_progress.get("fps") or 0) > 0)
        assert m.last_progress_at is not None and m.started_at is not None
        source.kill()  # camera down: the stream ends, reconnects are refused
        wait_for(lambda: m.poll().state == State.ERROR)
        snap = m.snapshot()
        assert snap.failures >= 2 and snap.restarts >= 1
        assert m.last_error in (COULD_NOT_CONNECT, "stream ended (source closed the connection)")
        source.start()  # camera back
        running = wait_for(lambda: (s := m.poll()).state == State.RUNNING and s)
        assert running.pid != first and running.restarts >= 1
    finally:
        code = m.stop()
    assert code == 255 and m.state == State.STOPPED and m.snapshot().pid is None
    assert gone(running.pid) and marked_pids(marker) == []
    assert list(source_files_dir(tmp_path / "run").iterdir()) == []


def test_managed_detects_stall(tmp_path: Path, source: TcpSource, marker: str) -> None:
    m = managed(source, tmp_path, marker, stall_timeout_s=1.5, start_grace_s=3)
    m.start()
    try:
        pid = wait_for(lambda: (s := m.poll()).state == State.RUNNING and s.pid)
        source.signal(signal.SIGSTOP)  # socket open, no data: FFmpeg's own timeout is 30 s
        wait_for(lambda: m.poll().last_error.startswith("stalled"), timeout=15)
        assert m.snapshot().failures == 1 and gone(pid)
    finally:
        source.signal(signal.SIGCONT)
        m.stop()
    assert marked_pids(marker) == []


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


FAIL = [sys.executable, "-c", "import sys; sys.stderr.write('[error] Connection refused\\n')"]
PROGRESS = """
import signal, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)  # like a stalled FFmpeg
frozen_after, frame = int(sys.argv[1]), 0
while True:
    frame = min(frame + 1, frozen_after)
    print(f"frame={frame}\\nfps=15.0\\nout_time_us={frame * 66667}\\nprogress=continue", flush=True)
    time.sleep(0.05)
"""


def progress_child(frozen_after: int = 10**9) -> list[str]:
    return [sys.executable, "-c", PROGRESS, str(frozen_after)]


def test_backoff_doubles_caps_and_reports_error() -> None:
    clock = FakeClock()
    m = ManagedFFmpeg("k", FAIL, clock=clock, max_backoff_s=4, budget=3, source_url="x")
    m.start()
    delays, states = [], []
    for _ in range(5):
        snap = wait_for(lambda: (s := m.poll()).pid is None and s)
        delays.append(snap.next_start_at - clock.now)
        states.append(snap.state)
        clock.now = snap.next_start_at - 0.01
        assert m.poll().pid is None  # still waiting
        clock.now = snap.next_start_at
        assert m.poll().pid is not None
    m.stop()
    assert delays == [1, 2, 4, 4, 4]
    assert states == ["backoff", "backoff", "error", "error", "error"]
    assert m.restarts == 5 and m.last_error == COULD_NOT_CONNECT  # it never sent media


def test_running_after_failures_then_healthy_resets_backoff() -> None:
    clock = FakeClock()
    starts = iter([FAIL, FAIL])
    m = ManagedFFmpeg(
        "k",
        lambda: next(starts, progress_child()),
        clock=clock,
        budget=2,
        stall_timeout_s=60,
        stop_timeout_s=0.5,
    )
    m.start()
    for _ in range(2):
        snap = wait_for(lambda: (s := m.poll()).pid is None and s)
        clock.now = snap.next_start_at
        m.poll()
    assert m.state == State.ERROR  # starting again, but after `budget` failures
    wait_for(lambda: m.poll().state == State.RUNNING)
    assert m.snapshot().failures == 2
    clock.now += 10  # healthy_after_s
    wait_for(lambda: m.poll().failures == 0)
    assert m.stop() == -signal.SIGKILL  # it ignores SIGINT: killed after stop_timeout_s


def test_stall_sends_sigint_then_sigkill() -> None:
    clock = FakeClock()
    m = ManagedFFmpeg("k", progress_child(frozen_after=3), clock=clock, start_grace_s=0)
    m.start()
    pid = wait_for(lambda: (s := m.poll()).state == State.RUNNING and s.pid)
    wait_for(lambda: m.poll().last_progress.get("frame") == 3)
    clock.now += 6.5  # stall_timeout_s is 6
    assert m.poll().pid == pid and m.last_error == ""  # SIGINT sent (and ignored)
    clock.now += 1.0  # STALL_KILL_AFTER_S
    m.poll()
    snap = wait_for(lambda: (s := m.poll()).pid is None and s)
    assert snap.state == State.BACKOFF and snap.failures == 1
    assert snap.last_error == "stalled: no new data for 6 s" and gone(pid)
    m.stop()


def test_stop_escalates_to_sigkill_of_the_group() -> None:
    script = "import signal, subprocess, time\n"
    script += "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
    script += "child = subprocess.Popen(['sleep', '60'])\nprint(child.pid, flush=True)\n"
    script += "time.sleep(60)\n"
    proc = spawn([sys.executable, "-c", script])
    assert proc.stdout is not None
    grandchild = int(proc.stdout.readline())
    assert stop(proc, timeout=0.5) == -signal.SIGKILL
    wait_for(lambda: gone(grandchild), timeout=5)


def test_parent_sigkill_leaves_no_orphan(marker: str) -> None:
    script = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from streaming.process import marked_env, spawn
        argv = [{ffmpeg_exe()!r}, "-re", "-f", "lavfi", "-i", "testsrc", "-f", "null", "-"]
        child = spawn(argv, env=marked_env({marker!r}))
        print(child.pid, flush=True)
        time.sleep(60)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    assert not gone(child)
    parent.kill()
    parent.wait()
    wait_for(lambda: gone(child), timeout=5)
    assert marked_pids(marker) == []


def test_sweep_orphans_kills_only_orphans(marker: str) -> None:
    # A "previous supervisor" starts a marked child without the death signal, then exits.
    script = textwrap.dedent(
        f"""
        import subprocess, sys
        sys.path.insert(0, {str(ROOT)!r})
        from streaming.process import marked_env
        child = subprocess.Popen(["sleep", "60"], env=marked_env({marker!r}),
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        print(child.pid, flush=True)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    orphan = int(out.stdout)
    ours = spawn(["sleep", "60"], env=marked_env(marker))  # a live supervisor's child
    try:
        assert not gone(orphan)
        assert sweep_orphans(marker) == 1
        wait_for(lambda: gone(orphan), timeout=5)
        assert ours.poll() is None and sweep_orphans(marker) == 0
    finally:
        stop(ours, first_signal=signal.SIGTERM)
    assert sweep_orphans(f"{marker}-other") == 0


@pytest.mark.camera
def test_rtsp_source_and_auth_error(tmp_path: Path, marker: str) -> None:
    assert TestCamera.available(), INSTALL_HINT
    camera = TestCamera(mounts=("live",), user="admin", password="Secr3t")
    good = camera.url("live")
    bad = good.replace("Secr3t", "Wr0ngPass")
    rec = tmp_path / "rec"
    rec.mkdir()
    run = source_files_dir(tmp_path / "run")
    argv = live_argv(good, tmp_path, record_dir=rec, source_file=run / "ok.ffconcat")
    ok = ManagedFFmpeg(
        "ok",
        argv,
        source_url=good,
        source_file=SourceFile(run / "ok.ffconcat", source_script(good)),
    )
    argv = live_argv(bad, tmp_path / "x", source_file=run / "bad.ffconcat")
    denied = ManagedFFmpeg(
        "bad",
        argv,
        source_url=bad,
        budget=1,
        source_file=SourceFile(run / "bad.ffconcat", source_script(bad)),
    )
    try:
        camera.start()
        ok.start()
        assert "Secr3t" not in cmdline(ok.pid)
        assert (run / "ok.ffconcat").stat().st_mode & 0o777 == 0o600
        denied.start()
        wait_for(lambda: ok.poll().state == State.RUNNING)
        wait_for(lambda: denied.poll().state == State.ERROR)
        assert denied.last_error == "authentication failed (401)"
        assert not any("Wr0ngPass" in line for line in denied.stderr_tail())
        assert [p.name for p in run.iterdir()] == ["ok.ffconcat"]  # removed once bad exited
        wait_for(lambda: (tmp_path / "index.m3u8").exists())
    finally:
        ok.stop()
        denied.stop()
        camera.stop()


def test_source_file_quoting_with_a_real_ffmpeg(tmp_path: Path, source: TcpSource) -> None:
    """A source whose name needs ffconcat quoting (quote, space, #) is opened as it is."""
    odd = tmp_path / "it's a #clip.ts"
    argv = [ffmpeg_exe(), "-nostdin", "-v", "error", "-i", source.url, "-t", "2", "-c", "copy"]
    subprocess.run([*argv, "-f", "mpegts", str(odd)], check=True, timeout=30)
    script = tmp_path / "s.ffconcat"
    SourceFile(script, source_script(str(odd))).write()
    out = tmp_path / "out.ts"
    read = [ffmpeg_exe(), "-nostdin", "-v", "error", *source_input_args(script), "-c", "copy"]
    subprocess.run([*read, "-f", "mpegts", str(out)], check=True, timeout=30)
    assert out.stat().st_size > 0 and decodes(out)


def test_sweep_source_files_removes_only_dead_processes(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        for pid in (dead.pid, alive.pid):
            SourceFile(tmp_path / f"ffmpeg-{pid}" / "cam1.ffconcat", "x").write()
        ours = SourceFile(source_files_dir(tmp_path) / "cam2.ffconcat", "x")
        ours.write()
        (tmp_path / "other").mkdir()
        assert sweep_source_files(tmp_path) == 2  # the dead one's and our own leftovers
        assert sorted(p.name for p in tmp_path.iterdir()) == [f"ffmpeg-{alive.pid}", "other"]
        assert sweep_source_files(tmp_path / "missing") == 0
    finally:
        alive.kill()
        alive.wait()


class ClosingListener:
    """A TCP port that accepts and closes at once (something listening that is no camera)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.close()

    def close(self) -> None:
        self.sock.close()


def test_closed_port_and_closing_listener_read_the_same(tmp_path: Path) -> None:
    """A camera URL cannot port-scan: a closed port and an open one that is no camera give
    the same ``last_error``."""
    listener = ClosingListener()
    errors = {}
    try:
        for name, port in (("closed", free_port()), ("open", listener.port)):
            url = f"rtsp://admin:Secr3t@127.0.0.1:{port}/live"
            script = source_files_dir(tmp_path) / f"{name}.ffconcat"
            m = ManagedFFmpeg(
                name,
                live_argv(url, tmp_path / name, source_file=script),
                source_url=url,
                budget=1,
                source_file=SourceFile(script, source_script(url)),
            )
            m.start()
            try:
                wait_for(lambda m=m: m.poll().state == State.ERROR, timeout=30)
                errors[name] = m.last_error
            finally:
                m.stop()
    finally:
        listener.close()
    assert errors == {"closed": COULD_NOT_CONNECT, "open": COULD_NOT_CONNECT}


def test_last_progress_block_of_split_output() -> None:
    """The shared pipe reader keeps only the last complete -progress block of each read."""
    from streaming.process import last_progress_block

    first = "frame=10\nfps=15.0\nout_time_us=1000\nprogress=continue\n"
    second = first.replace("10", "20").replace("1000", "2000")
    assert last_progress_block(first) == (first, "")
    assert last_progress_block(first + second + "frame=3") == (second, "frame=3")
    assert last_progress_block("frame=1\nfps") == (None, "frame=1\nfps")  # no block ended
    block, rest = last_progress_block("progress=continue\nframe=5\nprogress=end\n")
    assert (block, rest) == ("frame=5\nprogress=end\n", "")
    # a block split across reads: its beginning is carried over as ``rest``
    block, rest = last_progress_block(first + "frame=30\nfps=")
    assert rest == "frame=30\nfps="
    block, rest = last_progress_block(rest + "15.0\nout_time_us=3000\nprogress=continue\n")
    assert block == "frame=30\nfps=15.0\nout_time_us=3000\nprogress=continue\n" and rest == ""
