"""``manage.py worker``: a job left ``doing`` by a lost worker runs again; heartbeat; SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest
from django.db import connection

from gtvision.views import check_job_worker
from streaming.models import WorkerHeartbeat
from tests.faults.helpers import ROOT
from tests.supervisor import process_env, wait_for

pytestmark = [
    pytest.mark.django_db(transaction=True, databases=["default", "channels_postgres"]),
    pytest.mark.timeout(120),
]


def job_status(job_id: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT status FROM procrastinate_jobs WHERE id = %s", [job_id])
        return cursor.fetchone()[0]


def test_a_job_left_running_by_a_lost_worker_runs_again(tmp_path):
    from recordings.tasks import expire_clips

    job_id = expire_clips.defer(timestamp=1)
    # what a worker that lost the database leaves behind once it is pruned: doing, no worker
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE procrastinate_jobs SET status = 'doing', worker_id = NULL WHERE id = %s",
            [job_id],
        )
    log = (tmp_path / "worker.log").open("w+b")
    worker = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "worker"],
        env=process_env(JOB_WORKER_HEARTBEAT_S="1"),
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: job_status(job_id) == "succeeded", timeout=60)
        beat = wait_for(lambda: WorkerHeartbeat.objects.filter(kind="job-worker").first())
        assert beat.pid == worker.pid
        assert check_job_worker()["ok"] is True
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        log.seek(0)
        print(log.read().decode(errors="replace")[-3000:])  # shown when the test fails
    log.seek(0)
    assert "left running by a lost worker: retrying it" in log.read().decode()
