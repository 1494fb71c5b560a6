"""PostgreSQL stopped under a recording, then started again (issue 9, item 9).

The suite's database may be a CI service we must not stop, so this test runs the whole system
(web, media supervisor, job worker) against a private PostgreSQL (tests/faults/pg.py) and
stops that one: FFmpeg keeps writing, the index catches up once the database is back with
nothing lost or duplicated, the job worker rides it out (same process, jobs run again),
and ``/health`` of the same Daphne answers 503 during the outage and 200 after it.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
import requests
from django.conf import settings
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from testcamera import free_port
from tests.faults.helpers import (
    ROOT,
    archived_files,
    holes,
    overlaps,
    pick,
    row_files,
    save_figures,
    serving_camera,
)
from tests.faults.pg import PrivatePostgres
from tests.supervisor import SupervisorProcess, media_processes, wait_for

OUTAGE_S = pick(25, 120)
pytestmark = [pytest.mark.camera, pytest.mark.timeout(pick(420, 900))]


class Proc:
    """A project process on the private database, its output in a temporary file."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), *args],
            env=env,
            cwd=ROOT,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def private_pg():
    server = PrivatePostgres()
    try:
        yield server.init()
    finally:
        server.destroy()


@pytest.fixture
def camera_server():
    with serving_camera() as server:
        yield server


def system_env(database_url: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "GTV_LIVE_DIR": str(settings.LIVE_DIR),
        "GTV_RECORDINGS_DIR": str(settings.RECORDINGS_DIR),
        "GTV_CLIPS_DIR": str(settings.CLIPS_DIR),
        "PYTHONUNBUFFERED": "1",
        "SUPERVISOR_INTERVAL_S": "0.3",
        "STREAM_MAX_BACKOFF_S": "2",
        "RECORDING_SEGMENT_SECONDS": "2",
        "DB_CONNECT_TIMEOUT": "2",
        "JOB_WORKER_HEARTBEAT_S": "1",
        "JOB_WORKER_HEARTBEAT_STALE_S": "6",
        "JOB_WORKER_MAX_BACKOFF_S": "8",
        "SUPERVISOR_HEARTBEAT_STALE_S": "6",
    }
    for name in ("GTV_DATABASE_NAME", "DJANGO_SETTINGS_MODULE", "REDIS_URL"):
        env.pop(name, None)
    return env


def manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def health(url: str) -> int | None:
    try:
        return requests.get(f"{url}/health", timeout=5).status_code
    except requests.RequestException:
        return None


def segments(pg: PrivatePostgres, camera_id: int) -> list[tuple]:
    with pg.connect() as conn:
        return conn.execute(
            'SELECT start, "end", location FROM recordings_segment'
            " WHERE camera_id = %s ORDER BY start",
            [camera_id],
        ).fetchall()


class EventListener(threading.Thread):
    """A WebSocket client (the ``websockets`` library) on its own loop, keeping event types."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.types: list[str] = []
        self.closed: str | None = None
        self.opened = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.socket = None

    def run(self) -> None:
        asyncio.run(self._listen())

    async def _listen(self) -> None:
        self.loop = asyncio.get_running_loop()
        try:
            async with connect(self.url, open_timeout=10) as socket:
                self.socket = socket
                self.opened.set()
                async for raw in socket:
                    self.types.append(json.loads(raw).get("type", ""))
        except ConnectionClosed as exc:
            self.closed = f"closed {exc.rcvd and exc.rcvd.code}"
        except Exception as exc:  # noqa: BLE001 - a refused handshake: the caller retries
            self.closed = f"error {exc!r}"
        else:
            self.closed = "closed"
        finally:
            self.opened.set()

    def start_listening(self) -> EventListener:
        self.start()
        assert self.opened.wait(15) and self.socket is not None, self.closed
        return self

    @classmethod
    def first_that_opens(cls, url: str, timeout: float = 30) -> EventListener:
        deadline = time.monotonic() + timeout
        while True:
            listener = cls(url)
            listener.start()
            listener.opened.wait(15)
            if listener.socket is not None:
                return listener
            assert time.monotonic() < deadline, listener.closed
            time.sleep(1)

    def stop(self) -> None:
        if self.loop is not None and self.socket is not None and self.is_alive():
            asyncio.run_coroutine_threadsafe(self.socket.close(), self.loop).result(10)
        self.join(10)


def test_database_restart_under_a_recording(private_pg, camera_server):
    env = system_env(private_pg.url)
    manage(env, "migrate", "--noinput", "-v", "0")
    camera_id, token = manage(
        env,
        "shell",
        "-c",
        "from rest_framework_simplejwt.tokens import AccessToken; "
        "from tests.factories import CameraFactory, UserFactory; "
        f"camera = CameraFactory(source_url='{camera_server.url('cam1')}',"
        " recording_enabled=True); "
        "print(camera.pk, AccessToken.for_user(UserFactory(prefeitura=camera.prefeitura)))",
    ).split()[-2:]
    camera_id = int(camera_id)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    web = Proc(env, "serve", "--port", str(port))
    worker = Proc(env, "worker")
    supervisor = SupervisorProcess(env=env).start()
    incoming = Path(settings.RECORDINGS_DIR) / f"cam{camera_id}" / "incoming"
    try:
        wait_for(lambda: len(segments(private_pg, camera_id)) >= 3, timeout=90)
        wait_for(lambda: web.process.poll() is None and health(url) == 200, timeout=60)
        assert web.process.poll() is None, web.output()[-3000:]
        before = len(segments(private_pg, camera_id))
        events_url = f"ws://127.0.0.1:{port}/ws/events?token={token}"
        old_socket = EventListener(events_url).start_listening()

        private_pg.stop()
        stopped_at = time.time()
        wait_for(lambda: health(url) == 503, timeout=15)
        seen_503_s = time.time() - stopped_at
        body = requests.get(f"{url}/health", timeout=5).json()
        assert body["checks"]["database"]["ok"] is False, body
        # the camera's FFmpeg dies while the database is away: the supervisor restarts it
        # without waiting for the database (recording goes on)
        camera_url = camera_server.url("cam1")
        [ffmpeg_pid] = media_processes(camera_url)
        os.kill(ffmpeg_pid, signal.SIGKILL)
        killed_at = time.time()
        wait_for(lambda: [p for p in media_processes(camera_url) if p != ffmpeg_pid], timeout=15)
        assert health(url) == 503  # still during the outage
        time.sleep(max(0.0, OUTAGE_S - (time.time() - stopped_at)))
        # FFmpeg kept writing while the database was away
        written = [p for p in incoming.glob("*.ts") if p.stat().st_mtime > stopped_at + 2]
        assert len(written) >= 3, sorted(p.name for p in incoming.iterdir())
        assert worker.process.poll() is None, worker.output()[-3000:]
        assert supervisor.process.poll() is None, supervisor.tail()

        private_pg.start()
        started_at = time.time()
        outage_s = started_at - stopped_at
        wait_for(lambda: health(url) == 200, timeout=pick(90, 120), step=0.5)
        healthy_after_s = time.time() - started_at

        # the index caught up: the outage's footage has rows, one per file, no hole
        def caught_up() -> bool:
            rows = segments(private_pg, camera_id)
            return rows[-1][1].timestamp() > started_at + 4 and archived_files(
                camera_id
            ) == row_files(camera_id, rows)

        wait_for(caught_up, timeout=60)
        indexed_after_s = time.time() - started_at
        rows = segments(private_pg, camera_id)
        assert len(rows) > before + outage_s / 2 * 0.8
        assert not overlaps(rows)
        assert len(row_files(camera_id, rows)) == len(rows)
        # the only hole: the killed FFmpeg's restart, a few seconds at most
        gaps = holes(rows, tolerance_s=1.0)
        assert all(abs(at.timestamp() - killed_at) < 5 and gap < 8 for at, gap in gaps), (
            killed_at,
            gaps,
        )
        assert len(gaps) <= 1, gaps

        # the job worker rode it out: the same process, and it runs jobs again
        assert worker.process.poll() is None, worker.output()[-3000:]
        with private_pg.connect() as conn:
            beat = conn.execute(
                "SELECT pid FROM streaming_workerheartbeat WHERE kind = 'job-worker'"
            ).fetchone()
        assert beat == (worker.process.pid,)
        manage(
            env,
            "shell",
            "-c",
            "from recordings.tasks import expire_clips; expire_clips.defer(timestamp=0)",
        )

        def job_done() -> bool:
            with private_pg.connect() as conn:
                row = conn.execute(
                    "SELECT status FROM procrastinate_jobs"
                    " WHERE task_name = 'recordings.expire_clips' AND args->>'timestamp' = '0'"
                ).fetchone()
            return row is not None and row[0] == "succeeded"

        wait_for(job_done, timeout=30)

        # live events flow again through the channel layer (PostgreSQL): a socket opened now
        # gets an event published by another process; the one opened before the outage is
        # either still subscribed or was closed (a browser then reconnects)
        new_socket = EventListener.first_that_opens(events_url)
        websocket_after_s = time.time() - started_at
        manage(
            env,
            "shell",
            "-c",
            "from cidades import services; from cidades.models import Camera; "
            f"services.update_camera(Camera.objects.get(pk={camera_id}), actor=None,"
            " data={'name': 'Depois da queda'})",
        )
        wait_for(lambda: "camera.updated" in new_socket.types, timeout=15)
        time.sleep(1)
        old_socket_saw = (
            "event" if "camera.updated" in old_socket.types else old_socket.closed or "nothing"
        )
        new_socket.stop()
        old_socket.stop()
        assert web.process.poll() is None
        save_figures(
            "database_outage",
            {
                "outage_s": round(outage_s, 1),
                "health_503_after_s": round(seen_503_s, 1),
                "health_200_after_restart_s": round(healthy_after_s, 1),
                "index_caught_up_after_restart_s": round(indexed_after_s, 1),
                "segments_written_during_outage": len(written),
                "segments_total": len(rows),
                "holes_over_1s": len(gaps),
                "ffmpeg_killed_hole_s": round(sum(gap for _, gap in gaps), 1),
                "overlaps": 0,
                "socket_opened_before_outage": old_socket_saw,
                "websocket_opened_after_restart_s": round(websocket_after_s, 1),
                "worker_restarted_in_process": worker.output().count("job worker connected") - 1,
            },
        )
    finally:
        supervisor.stop()
        worker.stop()
        web.stop()
        # shown by pytest when the test fails
        lines = [
            line
            for line in supervisor.output().splitlines()
            if "psycopg" not in line and not line.startswith("\t")
        ]
        print("--- supervisor", *lines[-80:], sep="\n")
        print("--- worker", worker.output()[-3000:], "--- web", web.output()[-3000:], sep="\n")
        if not private_pg.running():
            private_pg.start()
