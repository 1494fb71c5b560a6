"""The LPR worker's heartbeat on ``/health``, through HTTP against a live server: reported only
while an enabled camera has ``lpr_enabled``; fresh while the real ``lpr_worker`` runs, failing
once it is gone."""

from __future__ import annotations

import signal

import pytest
import requests

from cidades.models import Camera
from streaming import services
from streaming.models import WorkerHeartbeat
from testcamera import free_port
from tests.factories import CameraFactory
from tests.supervisor import process_env, wait_for
from tests.test_browser import ManagedProcess


def health(live_server) -> tuple[int, dict]:
    response = requests.get(f"{live_server.url}/health", timeout=30)
    return response.status_code, response.json()


def other_processes_beat() -> None:
    services.heartbeat("media-supervisor@test", kind="media-supervisor", engine="embedded")
    services.heartbeat("job-worker@test", kind="job-worker")


@pytest.mark.django_db(transaction=True)
def test_no_lpr_check_without_lpr_cameras_and_a_failing_one_without_the_worker(live_server):
    other_processes_beat()
    camera = CameraFactory(lpr_enabled=False)
    CameraFactory(lpr_enabled=True, enabled=False)  # a disabled camera does not count
    status, body = health(live_server)
    assert status == 200, body
    assert "lpr_worker" not in body["checks"]

    Camera.objects.filter(pk=camera.pk).update(lpr_enabled=True)
    status, body = health(live_server)
    assert status == 503
    assert body["status"] == "unhealthy"
    assert body["checks"]["lpr_worker"] == {"ok": False, "error": "no LPR worker has reported"}
    assert body["checks"]["job_worker"]["ok"] is True


@pytest.mark.timeout(240)
@pytest.mark.django_db(transaction=True)
def test_the_running_worker_keeps_health_green_and_its_death_turns_it_red(
    live_server, settings, tmp_path
):
    settings.LPR_HEARTBEAT_STALE_S = 10.0
    other_processes_beat()
    # a camera that does not answer: the worker retries FFmpeg with backoff and still beats
    CameraFactory(lpr_enabled=True, source_url=f"rtsp://127.0.0.1:{free_port()}/nothing")
    env = process_env(
        GTV_RUN_DIR=str(tmp_path / "run"),
        GTV_LPR_CROP_DIR=str(tmp_path / "crops"),
        LPR_HEARTBEAT_S="0.5",
    )
    worker = ManagedProcess("lpr", ["lpr_worker"], env).start()
    try:
        pid = worker.process.pid
        wait_for(
            lambda: WorkerHeartbeat.objects.filter(kind="lpr-worker", pid=pid).exists(),
            timeout=120,
        )
        other_processes_beat()
        status, body = health(live_server)
        assert status == 200, body
        check = body["checks"]["lpr_worker"]
        assert check["ok"] is True and check["name"].startswith("lpr-worker@")
        beat = WorkerHeartbeat.objects.get(kind="lpr-worker", pid=pid)
        assert beat.details["cameras"] == 1

        worker.process.send_signal(signal.SIGKILL)
        worker.process.wait()

        def red() -> dict | None:
            other_processes_beat()
            status, body = health(live_server)
            return body if status == 503 else None

        body = wait_for(red, timeout=60, step=1)
        assert body["checks"]["lpr_worker"]["ok"] is False
        assert body["checks"]["lpr_worker"]["error"].startswith("no heartbeat for")
        assert body["checks"]["job_worker"]["ok"] is True
    finally:
        worker.stop()
