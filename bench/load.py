"""6. HTTP load: concurrent API users against Daphne, with the database connections pooled.

Daphne (``manage.py serve``, default settings: a pool of ``DB_POOL_MAX_SIZE`` connections) on
a dataset of two prefeituras (8 cameras each, an hour of 10 s segments per camera, streams and
audit rows) and 100 users (one in ten a gestor). For each concurrency level, that many users
— asyncio tasks of the bench process, each with its own keep-alive HTTP/1.1 connection and
JWT — send the dashboard/playback read mix (camera list and detail, streams, timeline,
recordings search, ``/api/auth/me/``, audit for gestores) back to back until ``--load-requests``
requests are done (closed loop: a user sends its next request when its answer arrived).
Throughput = requests / wall time; latency = request sent to answer read, p50/p95/p99; an
error is anything but a 200 or a connection failure. Alongside: the peak of the server's
PostgreSQL connections (``pg_stat_activity`` by ``application_name``, sampled every 50 ms)
and of Daphne's threads. Baselines, same run, same client: a static file through Daphne and
Django with no database (``GET /static/css/app.css``) at the same concurrency, and a
``SELECT 1`` round trip of a psycopg connection of the bench process.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from datetime import UTC, datetime, timedelta

from bench.common import (
    Context,
    Daphne,
    Section,
    Verdict,
    fmt,
    log,
    make_camera,
    make_prefeitura,
    make_user,
    percentile,
    raw_connection,
    token_for,
)

APP_NAME = "gtv-bench-load"
CAMERAS = 8
SEGMENTS = 360
SEGMENT_S = 10
USERS = 100
GESTORES_EVERY = 10
HOUR = datetime(2026, 1, 5, 13, 0, tzinfo=UTC)
STATIC = "/static/css/app.css"


class HttpError(Exception):
    pass


class Connection:
    """A minimal keep-alive HTTP/1.1 client connection (GET only: Content-Length or chunked)."""

    def __init__(self, host: str, port: int, token: str | None) -> None:
        self.host, self.port = host, port
        auth = f"Authorization: Bearer {token}\r\n" if token else ""
        self.head = f"Host: {host}:{port}\r\n{auth}Accept: application/json\r\n\r\n"
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.writer.write(f"GET {path} HTTP/1.1\r\n{self.head}".encode())
        await self.writer.drain()
        status_line = await self.reader.readline()
        if not status_line:
            raise HttpError("connection closed by the server")
        status = int(status_line.split()[1])
        headers = {}
        while (line := await self.reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip().lower()
        if status in (204, 304) or status < 200:
            pass  # no body
        elif "content-length" in headers:
            await self.reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding") == "chunked":
            while size := int((await self.reader.readline()).split(b";")[0], 16):
                await self.reader.readexactly(size + 2)
            await self.reader.readline()
        else:
            await self.reader.read()
            await self.close()
        if headers.get("connection") == "close":
            await self.close()
        return status

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass
        self.reader = self.writer = None


def _dataset() -> list[dict]:
    from admin_ctx.models import AuditEntry
    from recordings.models import Segment
    from streaming.models import Stream

    users = []
    for key in range(2):
        prefeitura = make_prefeitura(f"Bench load {key}")
        cameras = [make_camera(prefeitura, f"load-{key}-{k}", f"rtsp://127.0.0.1:9/load{k}")
                   for k in range(CAMERAS)]  # fmt: skip
        Segment.objects.bulk_create(
            Segment(camera=camera, start=HOUR + timedelta(seconds=SEGMENT_S * k),
                    end=HOUR + timedelta(seconds=SEGMENT_S * (k + 1)), size_bytes=1_000_000)
            for camera in cameras
            for k in range(SEGMENTS)
        )  # fmt: skip
        Stream.objects.bulk_create(
            Stream(camera=camera, status=Stream.Status.STOPPED, stopped_at=HOUR)
            for camera in cameras
            for _ in range(3)
        )
        AuditEntry.objects.bulk_create(
            AuditEntry(action="camera.update", prefeitura=prefeitura, actor_username="gestor",
                       target_type="camera", target_id=str(cameras[k % CAMERAS].pk))
            for k in range(200)
        )  # fmt: skip
        for k in range(USERS // 2):
            gestor = k % GESTORES_EVERY == 0
            user = make_user(prefeitura, f"load{k}", role="gestor" if gestor else "operador")
            users.append({"token": token_for(user), "gestor": gestor,
                          "cameras": [c.pk for c in cameras]})  # fmt: skip
    return users


def request_path(user: dict, n: int) -> str:
    """The ``n``-th request of a user: the dashboard/playback read mix."""
    camera = user["cameras"][n % len(user["cameras"])]
    start = HOUR + timedelta(minutes=n % 50)
    iso = "%Y-%m-%dT%H:%M:%SZ"
    window = f"start={start.strftime(iso)}&end={(start + timedelta(minutes=10)).strftime(iso)}"
    mix = [
        "/api/cameras/",
        f"/api/cameras/{camera}/",
        "/api/streams/",
        f"/api/cameras/{camera}/timeline?{window}",
        f"/api/recordings/search?camera_id={camera}&{window}",
        "/api/auth/me/",
        "/api/cameras/?page=1",
        f"/api/cameras/{camera}/timeline?{window}",
    ]
    if user["gestor"]:
        mix.append("/api/audit/")
    return mix[n % len(mix)]


async def _drive(port: int, users: list[dict], total: int, path_of) -> dict:
    """``len(users)`` closed-loop users sharing ``total`` requests: latencies and errors."""
    budget = itertools.count()
    latencies: list[float] = []
    errors: dict[str, int] = {}

    async def one(user: dict) -> None:
        conn = Connection("127.0.0.1", port, user.get("token"))
        n = 0
        try:
            while next(budget) < total:
                path = path_of(user, n)
                n += 1
                started = time.perf_counter()
                try:
                    status = await conn.get(path)
                except (OSError, HttpError, ValueError, IndexError,
                        asyncio.IncompleteReadError) as exc:  # fmt: skip
                    key = type(exc).__name__
                    errors[key] = errors.get(key, 0) + 1
                    await conn.close()
                    continue
                latencies.append(time.perf_counter() - started)
                if status != 200:
                    errors[str(status)] = errors.get(str(status), 0) + 1
        finally:
            await conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(one(user) for user in users))
    wall = time.perf_counter() - started
    return {"latencies": latencies, "errors": errors, "wall": wall, "total": total}


class Sampler:
    """Peaks of the server's database connections and of Daphne's threads, every 50 ms."""

    def __init__(self, daphne_pid: int) -> None:
        self.pid = daphne_pid
        self.conn = raw_connection()
        self.stop = threading.Event()
        self.connections = self.threads = 0
        self.thread: threading.Thread | None = None

    def count(self) -> int:
        row = self.conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [APP_NAME]
        ).fetchone()
        return int(row[0])

    def _threads(self) -> int:
        try:
            with open(f"/proc/{self.pid}/status") as handle:
                for line in handle:
                    if line.startswith("Threads:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return 0

    def _run(self) -> None:
        while not self.stop.is_set():
            self.connections = max(self.connections, self.count())
            self.threads = max(self.threads, self._threads())
            self.stop.wait(0.05)

    def __enter__(self) -> Sampler:
        self.connections = self.threads = 0
        self.stop.clear()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        assert self.thread is not None
        self.thread.join()


def _select1_ms(runs: int = 200) -> float:
    with raw_connection() as conn:
        conn.execute("SELECT 1")
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            conn.execute("SELECT 1").fetchone()
            times.append(time.perf_counter() - started)
    return percentile(times, 50) * 1000


def run(ctx: Context) -> Section:
    from django.conf import settings

    args = ctx.args
    section = Section(key="load", title="6. HTTP load", method=__doc__.split("\n\n", 1)[1])
    levels = [int(x) for x in str(args.load_users).split(",") if x.strip()]
    users = _dataset()
    pool = settings.DATABASES["default"]["OPTIONS"].get("pool") or {}
    daphne = Daphne(ctx, name="daphne-load", PGAPPNAME=APP_NAME).start()
    rows, base_rows = [], []
    results = {}
    try:
        port = daphne.port
        sampler = Sampler(daphne.proc.pid)
        # Warm-up: every kind of request once, then a short burst.
        asyncio.run(_drive(port, users[:1], 9, request_path))
        asyncio.run(_drive(port, users[: min(levels)], min(levels) * 5, request_path))
        asyncio.run(_drive(port, [{} for _ in range(min(levels))], min(levels) * 5,
                           lambda user, n: STATIC))  # fmt: skip
        for level in levels:
            group = [users[k % len(users)] for k in range(level)]
            with sampler:
                api = asyncio.run(_drive(port, group, args.load_requests, request_path))
            peak_conns, peak_threads = sampler.connections, sampler.threads
            base = asyncio.run(_drive(port, [{} for _ in range(level)], args.load_requests,
                                      lambda user, n: STATIC))  # fmt: skip
            results[level] = api
            for target, data in ((rows, api), (base_rows, base)):
                lat = data["latencies"]
                target.append([
                    str(level),
                    fmt(data["total"] / data["wall"], 0, "req/s"),
                    fmt(percentile(lat, 50) * 1000, 1, "ms"),
                    fmt(percentile(lat, 95) * 1000, 1, "ms"),
                    fmt(percentile(lat, 99) * 1000, 1, "ms"),
                    str(sum(data["errors"].values())),
                ])  # fmt: skip
            rows[-1] += [str(peak_conns), str(peak_threads)]
            log(f"load {level} users: {rows[-1][1]}, p99 {rows[-1][4]}, errors "
                f"{api['errors'] or 0}; static {base_rows[-1][1]}")  # fmt: skip
        idle = sampler.count()
        sampler.conn.close()
    finally:
        daphne.stop()
    section.columns = ["users", "throughput", "p50", "p95", "p99", "errors",
                       "peak DB connections", "peak Daphne threads"]  # fmt: skip
    section.rows = rows
    section.tables.append((
        f"Baseline: `GET {STATIC}` (Daphne + Django, no database), same client and sizes",
        ["users", "throughput", "p50", "p95", "p99", "errors"], base_rows,
    ))  # fmt: skip
    select1 = _select1_ms()
    top = max(levels)
    errors = sum(results[top]["errors"].values())
    section.verdicts.append(Verdict(f"errors at {top} users", str(errors), "", "", "0",
                                    errors == 0))  # fmt: skip
    lat = results[top]["latencies"]
    section.verdicts.append(Verdict(
        f"p99 at {top} users", fmt(percentile(lat, 99) * 1000, 1, "ms"),
        f"static {base_rows[-1][4]}", "", "", None,
    ))  # fmt: skip
    section.notes += [
        f"{args.load_requests} requests per level; pool: min {pool.get('min_size', 'n/a')}, "
        f"max {pool.get('max_size', 'n/a')} connections, {pool.get('timeout', 'n/a')} s wait "
        f"(`DB_POOL_*`); {idle} server connections left idle after the last level.",
        f"Physical floor: `SELECT 1` round trip {fmt(select1, 3, 'ms')} (median of 200).",
        "Every level runs the same mix; users, server and PostgreSQL share the machine's "
        "cores, so latency at high concurrency is mostly queueing for the CPU.",
    ]
    if any(results[level]["errors"] for level in levels):
        section.notes.append("Errors by kind: " + "; ".join(
            f"{level} users: {results[level]['errors']}" for level in levels
            if results[level]["errors"]))  # fmt: skip
    return section
