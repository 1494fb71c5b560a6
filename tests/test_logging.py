"""Structured logs: LOG_FORMAT=json from a real Daphne and a real media supervisor, request ids
through X-Request-ID, and FFmpeg lifecycle lines (once each, no credentials) from a real FFmpeg
pulling a real RTSP camera."""

from __future__ import annotations

import json
import logging
import os
import re
import signal

import pytest
import requests

from streaming.ffmpeg import live_argv, source_script
from streaming.process import ManagedFFmpeg, SourceFile, State
from testcamera import INSTALL_HINT, TestCamera
from tests.conftest import client_for
from tests.factories import CameraFactory, UserFactory
from tests.live_web import bearer, running_web
from tests.supervisor import SupervisorProcess, process_env, wait_for
from tests.test_browser import ManagedProcess

PASSWORD = "L0gs-S3cret"
pytestmark = pytest.mark.django_db(transaction=True)


def json_lines(output: str) -> list[dict]:
    """Every line of a process's output as JSON (fails on a line that is not)."""
    records = []
    for line in output.splitlines():
        if line.strip():
            try:
                records.append(json.loads(line))
            except ValueError:
                pytest.fail(f"not a JSON log line: {line!r}")
    return records


def test_json_logs_carry_the_request_id_of_each_request():
    user = UserFactory()
    with running_web(LOG_FORMAT="json", LOG_LEVEL="INFO") as (url, web):
        kept = requests.get(f"{url}/health", headers={"X-Request-ID": "lb-42.abc"}, timeout=10)
        assert kept.headers["X-Request-ID"] == "lb-42.abc"
        new = requests.get(f"{url}/api/auth/me/", headers=bearer(user), timeout=10)
        assert new.status_code == 200
        generated = new.headers["X-Request-ID"]
        assert re.fullmatch(r"[0-9a-f]{32}", generated)
        insane = requests.get(
            f"{url}/health", headers={"X-Request-ID": "x" * 300 + "\u00e9"}, timeout=10
        )
        assert re.fullmatch(r"[0-9a-f]{32}", insane.headers["X-Request-ID"])
        query = requests.get(f"{url}/health?token=s3cr3t-in-query", timeout=10)
        missing = requests.get(f"{url}/no/such/page", timeout=10)
        assert missing.status_code == 404 and missing.headers["X-Request-ID"]

        def access(request_id: str) -> list[dict]:
            return [
                r
                for r in json_lines(web.output())
                if r.get("request_id") == request_id and r["logger"] == "gtvision.request"
            ]

        wait_for(lambda: access(generated) and access("lb-42.abc"), timeout=10)
        (health,) = access("lb-42.abc")
        assert health["level"] == "INFO" and health["path"] == "/health"
        assert health["status"] in (200, 503) and health["route"] == "/health"
        assert {"time", "message"} <= health.keys() and "user_id" not in health
        (me,) = access(generated)
        assert me["user_id"] == user.pk and me["prefeitura_id"] == user.prefeitura_id
        assert me["route"] == "/api/auth/me/" and me["status"] == 200
        (with_query,) = access(query.headers["X-Request-ID"])
        assert with_query["path"] == "/health"  # never the query string (tokens live there)
        assert "s3cr3t-in-query" not in web.output()
        (unmatched,) = access(missing.headers["X-Request-ID"])
        assert unmatched["status"] == 404 and unmatched["route"] == "<unmatched>"


def test_text_logs_stay_readable_with_the_request_id():
    with running_web(LOG_LEVEL="INFO") as (url, web):
        response = requests.get(f"{url}/health", headers={"X-Request-ID": "plain-1"}, timeout=10)
        assert response.headers["X-Request-ID"] == "plain-1"
        line = wait_for(
            lambda: next((ln for ln in web.output().splitlines() if "plain-1" in ln), None),
            timeout=10,
        )
        assert "INFO gtvision.request: GET /health" in line and "[request plain-1]" in line
        with pytest.raises(ValueError):
            json.loads(line)


@pytest.fixture
def camera_server():
    assert TestCamera.available(), INSTALL_HINT
    server = TestCamera(mounts=("cam1",), user="viewer", password=PASSWORD)
    server.start()
    yield server
    server.stop()


def _ffmpeg_events(records: list[logging.LogRecord]) -> list[logging.LogRecord]:
    return [r for r in records if getattr(r, "event", "").startswith("ffmpeg_")]


@pytest.mark.camera
@pytest.mark.timeout(120)
def test_ffmpeg_lifecycle_logged_once_without_credentials(camera_server, tmp_path, caplog):
    url = camera_server.url("cam1")
    source = tmp_path / "run" / "cam5.ffconcat"
    process = ManagedFFmpeg(
        "cam5",
        lambda: live_argv(url, tmp_path / "hls", source_file=source, analyze_s=1.0),
        source_url=url,
        source_file=SourceFile(source, source_script(url, analyze_s=1.0)),
        initial_backoff_s=0.5,
        budget=2,
    )
    caplog.set_level(logging.INFO, logger="streaming.process")
    try:
        process.start()
        wait_for(lambda: process.poll().state == State.RUNNING, timeout=30)
        os.kill(process.pid, signal.SIGKILL)
        wait_for(lambda: process.poll().restarts == 1 and process.poll().pid, timeout=30)
        wait_for(lambda: process.poll().state == State.RUNNING, timeout=30)
        for _ in range(20):  # polling a running child logs nothing more
            process.poll()
        # A second failure in a row uses up the budget of 2: given up on (still retrying).
        os.kill(process.pid, signal.SIGKILL)
        wait_for(lambda: process.poll().restarts == 2 and process.poll().pid, timeout=30)
        wait_for(lambda: process.poll().state == State.RUNNING, timeout=30)
    finally:
        process.stop()
    events = _ffmpeg_events(caplog.records)
    assert [r.event for r in events] == [
        "ffmpeg_start",
        "ffmpeg_exit",
        "ffmpeg_restart",
        "ffmpeg_start",
        "ffmpeg_exit",
        "ffmpeg_restart",
        "ffmpeg_give_up",
        "ffmpeg_start",
        "ffmpeg_stop",
    ]
    start, exit_, restart, again, _exit, restart2, give_up, third, stop = events
    assert start.ffmpeg_key == "cam5" and start.restarts == 0 and again.restarts == 1
    assert third.restarts == 2 and start.pid != again.pid != third.pid
    assert exit_.levelname == "WARNING" and exit_.exit_code == -signal.SIGKILL
    assert exit_.reason == "ffmpeg killed by signal 9" and "code -9" in exit_.getMessage()
    assert restart.backoff_s == 0.5 and restart.failures == 1
    assert restart2.backoff_s == 1.0 and restart2.failures == 2
    assert give_up.levelname == "ERROR" and give_up.failures == 2
    assert stop.exit_code is not None
    for record in caplog.records:
        assert PASSWORD not in record.getMessage()
        assert PASSWORD not in json.dumps(record.__dict__, default=str)


@pytest.mark.camera
@pytest.mark.timeout(180)
def test_supervisor_json_logs_ffmpeg_lifecycle_with_camera_id(camera_server, settings):
    settings.MEDIA_ENGINE = "embedded"
    operador = UserFactory()
    camera = CameraFactory(
        prefeitura=operador.prefeitura,
        source_url=camera_server.url("cam1"),
        recording_enabled=False,
    )
    supervisor = SupervisorProcess(LOG_FORMAT="json", STREAM_STALL_TIMEOUT_S="3").start()
    try:
        response = client_for(operador).post(
            "/api/streams/start", {"camera_id": camera.pk}, format="json"
        )
        assert response.status_code == 201

        def events(name: str) -> list[dict]:
            return [r for r in json_lines(supervisor.output()) if r.get("event") == name]

        wait_for(lambda: events("ffmpeg_start"), timeout=60)
        camera_server.stop()
        wait_for(lambda: events("ffmpeg_restart"), timeout=60)
    finally:
        supervisor.stop()
    output = supervisor.output()
    assert PASSWORD not in output
    start = events("ffmpeg_start")[0]
    assert start["camera_id"] == camera.pk and start["level"] == "INFO"
    assert start["logger"] == "streaming.process" and start["time"].endswith("+00:00")
    stall_or_exit = events("ffmpeg_stall") + events("ffmpeg_exit")
    assert stall_or_exit and all(r["camera_id"] == camera.pk for r in stall_or_exit)
    exits = events("ffmpeg_exit")
    assert exits and all("exit_code" in r and r["reason"] for r in exits)
    # Each exit is logged once, followed by one restart line with its backoff.
    assert len(events("ffmpeg_restart")) >= len(exits) >= len(events("ffmpeg_restart")) - 1
    assert all(r["backoff_s"] > 0 for r in events("ffmpeg_restart"))


@pytest.mark.timeout(90)
def test_job_worker_logs_json_lines():
    worker = ManagedProcess("worker", ["worker"], process_env(LOG_FORMAT="json", LOG_LEVEL="INFO"))
    worker.start()
    try:

        def connected() -> list[dict]:
            assert worker.alive(), worker.output()[-3000:]
            return [
                r
                for r in json_lines(worker.output())
                if r["logger"] == "gtvision.jobworker" and "connected" in r["message"]
            ]

        (line,) = wait_for(connected, timeout=60)
        assert line["level"] == "INFO" and line["time"].endswith("+00:00")
    finally:
        worker.stop()
    assert all(r["level"] and r["logger"] for r in json_lines(worker.output()))
