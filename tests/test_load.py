"""100 concurrent users against a real Daphne: no errors, database connections bounded.

Issue 9.10: with one PostgreSQL connection per request thread (``CONN_MAX_AGE``, no pool),
100 concurrent operadores got 500 "sorry, too many clients already". Here ``manage.py serve``
runs on the test database, 100 users (90 operadores, 10 gestores, two prefeituras), each with
its own keep-alive ``requests`` session and JWT, send a realistic read mix (camera list and
detail, streams, timeline, recordings search, audit for gestores, ``/api/auth/me/``) until
``REQUESTS`` requests are done. Every answer must be a 200 with no connection error, the
server's PostgreSQL connections (``pg_stat_activity``, tagged by ``PGAPPNAME``) never exceed
its pool and go back to the baseline afterwards. No figure of speed is asserted.
"""

from __future__ import annotations

import itertools
import secrets
import threading
import time
from collections import Counter
from datetime import timedelta

import psycopg
import pytest
import requests
from django.conf import settings
from django.db import connection

from admin_ctx.models import AuditEntry, Role
from bench.load import HOUR, request_path
from recordings.models import Segment
from streaming.models import Stream
from tests.factories import CameraFactory, PrefeituraFactory, UserFactory
from tests.live_web import bearer, running_web
from tests.supervisor import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(900)]

USERS = 100
GESTORES_EVERY = 10  # every 10th user is a gestor (audit log)
REQUESTS = 3000
CAMERAS = 8  # per prefeitura
SEGMENT_S = 10
SEGMENTS = 360  # per camera: one hour
APP_NAME = "gtv-load-web"
OUTAGE_S = 40  # long enough for psycopg's backoff to reach 32 s between attempts


def _dataset() -> list[dict]:
    """Two prefeituras with cameras, an hour of footage each, streams and audit rows;
    returns one dict per user: its JWT header and its prefeitura's camera ids."""
    users = []
    for key in range(2):
        prefeitura = PrefeituraFactory(max_cameras=100)
        cameras = [CameraFactory(prefeitura=prefeitura) for _ in range(CAMERAS)]
        Segment.objects.bulk_create(
            Segment(
                camera=camera,
                start=HOUR + timedelta(seconds=SEGMENT_S * k),
                end=HOUR + timedelta(seconds=SEGMENT_S * (k + 1)),
                size_bytes=1_000_000,
            )
            for camera in cameras
            for k in range(SEGMENTS)
        )
        Stream.objects.bulk_create(
            Stream(camera=camera, status=Stream.Status.STOPPED, stopped_at=HOUR)
            for camera in cameras
            for _ in range(3)
        )
        for k in range(USERS // 2):
            role = Role.GESTOR if k % GESTORES_EVERY == 0 else Role.OPERADOR
            user = UserFactory(prefeitura=prefeitura, role=role, username=f"load-{key}-{k}")
            users.append({"headers": bearer(user), "gestor": role == Role.GESTOR,
                          "cameras": [c.pk for c in cameras]})  # fmt: skip
        AuditEntry.objects.bulk_create(
            AuditEntry(action="camera.update", prefeitura=prefeitura, actor_username="gestor",
                       target_type="camera", target_id=str(cameras[k % CAMERAS].pk))
            for k in range(200)
        )  # fmt: skip
    return users


class Load:
    """``USERS`` threads, each with its own session, sharing a budget of ``total`` requests."""

    def __init__(self, url: str, users: list[dict], total: int) -> None:
        self.url = url
        self.users = users
        self.budget = itertools.count()
        self.total = total
        self.statuses: Counter = Counter()
        self.failures: list[str] = []
        self.lock = threading.Lock()
        self.start_line = threading.Barrier(len(users))

    def user(self, user: dict) -> None:
        session = requests.Session()
        session.headers.update(user["headers"])
        n = 0
        self.start_line.wait()  # every user is there before the first request
        try:
            while next(self.budget) < self.total:
                path = request_path(user, n)
                n += 1
                try:
                    response = session.get(self.url + path, timeout=120)
                except requests.RequestException as exc:
                    with self.lock:
                        self.statuses["connection error"] += 1
                        self.failures.append(f"{path}: {type(exc).__name__}: {exc}")
                    continue
                with self.lock:
                    self.statuses[response.status_code] += 1
                    if response.status_code != 200:
                        self.failures.append(f"{path}: {response.status_code} "
                                             f"{response.text[:200]}")  # fmt: skip
        finally:
            session.close()

    def run(self) -> None:
        threads = [threading.Thread(target=self.user, args=(u,)) for u in self.users]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


class ConnectionSampler:
    """Counts the server's backends on the test database every 50 ms, in its own thread."""

    def __init__(self) -> None:
        params = connection.get_connection_params()
        for key in ("cursor_factory", "context", "prepare_threshold"):
            params.pop(key, None)
        self.conn = psycopg.connect(**params, autocommit=True)
        self.peak = 0
        self.samples = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def count(self) -> int:
        row = self.conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND application_name = %s",
            [APP_NAME],
        ).fetchone()
        return int(row[0])

    def _run(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, self.count())
            self.samples += 1
            self.stop.wait(0.05)

    def __enter__(self) -> ConnectionSampler:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()

    def close(self) -> None:
        self.conn.close()


def test_100_concurrent_users_no_errors_and_bounded_connections():
    """The module's scenario: every answer a 200, the server's connections within its pool."""
    users = _dataset()
    assert len(users) == USERS
    sampler = ConnectionSampler()
    try:
        # PGAPPNAME tags every connection the server makes; an idle extra pooled connection
        # is closed after 1 s unused instead of 5 min.
        with running_web(PGAPPNAME=APP_NAME, DB_POOL_MAX_IDLE="1") as (url, web):
            with requests.Session() as warm:  # one request of each kind, one user
                warm.headers.update(users[0]["headers"])
                for n in range(9):
                    assert warm.get(url + request_path(users[0], n), timeout=60).status_code == 200
            time.sleep(3)
            baseline = sampler.count()
            load = Load(url, users, REQUESTS)
            with sampler:
                load.run()
            assert web.alive(), web.output()[-4000:]
            print(f"load: {dict(load.statuses)}, server connections: baseline {baseline}, "
                  f"peak {sampler.peak} ({sampler.samples} samples)")  # fmt: skip
            assert load.failures == [], (dict(load.statuses), load.failures[:5],
                                         web.output()[-3000:])  # fmt: skip
            assert sum(load.statuses.values()) == REQUESTS
            assert load.statuses[200] == REQUESTS
            assert sampler.samples > 0
            pool = settings.DATABASES["default"]["OPTIONS"].get("pool") or {}
            max_size = pool.get("max_size")
            assert max_size, f"connections are not pooled (peak: {sampler.peak})"
            assert sampler.peak <= max_size, (sampler.peak, max_size)
            # Nothing is held between requests: every connection idles back in the pool,
            # which shrinks to where it was before the load.
            wait_for(lambda: sampler.count() <= baseline, timeout=90, step=0.5)
            busy = sampler.conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND application_name = %s AND state <> 'idle'",
                [APP_NAME],
            ).fetchone()[0]
            assert busy == 0
        wait_for(lambda: sampler.count() == 0, timeout=30, step=0.3)  # the server let go
    finally:
        sampler.close()


@pytest.mark.django_db(transaction=True)
def test_a_pooled_connection_goes_back_without_its_session_locks():
    """A session advisory lock (the media supervisor's single-instance lock) does not stay
    taken by an idle pooled connection after its borrower gave the connection back."""
    assert connection.pool is not None
    key = secrets.randbelow(2**62)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid(), pg_try_advisory_lock(%s)", [key])
        pid, locked = cursor.fetchone()
    assert locked
    connection.close()  # back to the pool: the session itself stays open
    sampler = ConnectionSampler()
    try:

        def held() -> int:
            return sampler.conn.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = %s", [pid]
            ).fetchone()[0]

        wait_for(lambda: held() == 0, timeout=10, step=0.05)
        alive = sampler.conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid]
        ).fetchone()[0]
        assert alive == 1  # pooled, not closed
        assert sampler.conn.execute("SELECT pg_try_advisory_lock(%s)", [key]).fetchone()[0]
    finally:
        sampler.close()


@pytest.mark.django_db(transaction=True)
def test_the_supervisor_waker_connects_outside_the_pool():
    """The media supervisor's LISTEN connection is built from the pooled settings."""
    from streaming.supervisor.loop import Waker

    waker = Waker()
    try:
        waker.wait(threading.Event(), 0.05)
        assert waker.conn is not None and not waker.conn.closed
        row = waker.conn.execute("SELECT count(*) FROM pg_listening_channels()").fetchone()
        assert row[0] == 1
    finally:
        waker.close()


@pytest.mark.timeout(300)
def test_the_pool_reconnects_as_soon_as_the_database_is_back():
    """After an outage, a borrower gets a connection within seconds of PostgreSQL's return,
    not at the next step of a connection attempt's exponential backoff (up to minutes)."""
    from psycopg_pool import ConnectionPool, PoolTimeout

    from gtvision.db_pool import pool_options
    from tests.faults.pg import PrivatePostgres

    server = PrivatePostgres(database="gtv_pool").init()
    options = pool_options(min_size=2, max_size=4, timeout=1.0, max_idle=60.0)
    pool = ConnectionPool(server.url, open=True, **options)
    try:

        def query() -> bool:
            try:
                with pool.connection(timeout=1.0) as conn:
                    conn.execute("SELECT 1")
                return True
            except (PoolTimeout, psycopg.OperationalError):
                return False

        assert query()
        server.stop()
        stopped = time.monotonic()
        while time.monotonic() - stopped < OUTAGE_S:  # borrowers keep asking meanwhile
            assert not query()
            time.sleep(0.5)
        server.start()
        wait_for(query, timeout=10, step=0.2)
    finally:
        pool.close()
        server.destroy()


SLOW_DOWNLOADS = 2  # as many as the server's pool holds (DB_POOL_MAX_SIZE below)


def test_slow_downloads_do_not_hold_the_pools_connections(settings):
    """A recorded segment streamed to a client that does not read it keeps its request open
    (the server's flow control waits for the reader): it must not keep a pooled connection
    for that long, or a few slow downloads would stop every other request."""
    import socket
    from urllib.parse import urlsplit

    prefeitura = PrefeituraFactory(max_cameras=10)
    camera = CameraFactory(prefeitura=prefeitura)
    operador = UserFactory(prefeitura=prefeitura, role=Role.OPERADOR)
    location = f"cam{camera.pk}/big.ts"
    big = settings.RECORDINGS_DIR / location
    big.parent.mkdir(parents=True, exist_ok=True)
    with big.open("wb") as handle:
        handle.truncate(256 * 1024 * 1024)  # more than any socket buffers hold
    Segment.objects.create(camera=camera, start=HOUR, location=location,
                           end=HOUR + timedelta(seconds=SEGMENT_S), size_bytes=1)  # fmt: skip
    env = {"DB_POOL_MAX_SIZE": str(SLOW_DOWNLOADS), "DB_POOL_TIMEOUT": "5"}
    with running_web(**env) as (url, web):
        window = {"start": HOUR.isoformat(),
                  "end": (HOUR + timedelta(seconds=SEGMENT_S)).isoformat()}  # fmt: skip
        playlist = requests.get(f"{url}/api/cameras/{camera.pk}/playback.m3u8", params=window,
                                headers=bearer(operador), timeout=30)  # fmt: skip
        assert playlist.status_code == 200, playlist.text[:500]
        uri = next(line for line in playlist.text.splitlines() if line and line[0] != "#")
        target = urlsplit(requests.compat.urljoin(playlist.url, uri))
        readers = []
        try:
            for _ in range(SLOW_DOWNLOADS):
                reader = socket.create_connection(("127.0.0.1", target.port), timeout=30)
                reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                reader.sendall(f"GET {target.path}?{target.query} HTTP/1.1\r\n"
                               f"Host: 127.0.0.1:{target.port}\r\n\r\n".encode())  # fmt: skip
                assert reader.recv(4096).startswith(b"HTTP/1.1 200"), "no download"
                readers.append(reader)  # and never read again
            # Every slow download is under way; the other users' requests still get answers.
            for _ in range(3):
                me = requests.get(f"{url}/api/auth/me/", headers=bearer(operador), timeout=30)
                assert me.status_code == 200, (me.status_code, web.output()[-2000:])
        finally:
            for reader in readers:
                reader.close()
