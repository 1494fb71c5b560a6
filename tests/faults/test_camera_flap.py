"""The camera goes away and comes back, again and again, under a recording media supervisor.

Every outage is seen (the stream and the camera in ERROR) within 30 s, every return to
RUNNING happens within 45 s, recording resumes each time, and the only holes in the
timeline are the outages (plus a few seconds to notice and reconnect). Afterwards one
RTSP pull per camera and files on disk = rows.

Two kinds of outage alternate: the server stops (connections refused: FFmpeg sees the end at
once) and the server freezes (SIGSTOP: connections stay open and go silent, as a camera
behind a dead link does, which only the stall detection notices).
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from cidades.models import Camera
from recordings.models import Segment
from streaming.models import Stream
from tests.conftest import client_for
from tests.factories import CameraFactory, UserFactory
from tests.faults.helpers import (
    archived_files,
    holes,
    overlaps,
    pick,
    row_files,
    rtsp_pulls,
    save_figures,
    segment_rows,
    serving_camera,
)
from tests.supervisor import SupervisorProcess, wait_for

FLAPS = pick(5, 20)
OUTAGE_S = pick(6, 10)
HOLE_SLACK_S = 10  # noticing the stall (STREAM_STALL_TIMEOUT_S), backoff, reconnect, keyframe
pytestmark = [
    pytest.mark.camera,
    pytest.mark.django_db(transaction=True, databases=["default", "channels_postgres"]),
    pytest.mark.timeout(pick(420, 1500)),
]


@pytest.fixture
def camera_server():
    with serving_camera(fps=15, keyint=15) as server:
        yield server


def test_camera_flapping_under_a_recording(camera_server, settings):
    settings.MEDIA_ENGINE = "embedded"
    operador = UserFactory()
    camera = CameraFactory(
        prefeitura=operador.prefeitura,
        source_url=camera_server.url("cam1"),
        recording_enabled=True,
    )
    supervisor = SupervisorProcess(STREAM_STALL_TIMEOUT_S="3", RECORDING_SEGMENT_SECONDS="2")
    supervisor.start()
    try:
        started = client_for(operador).post(
            "/api/streams/start", {"camera_id": camera.pk}, format="json"
        )
        assert started.status_code == 201, started.content
        stream_id = started.json()["stream_id"]

        def status() -> tuple[str, str]:
            return (
                Stream.objects.get(pk=stream_id).status,
                Camera.objects.get(pk=camera.pk).status,
            )

        wait_for(lambda: status() == ("RUNNING", "online"), timeout=45)
        wait_for(lambda: len(segment_rows(camera.pk)) >= 2, timeout=30)
        outages, detections, recoveries, resumes, gaps = [], [], [], [], []
        for flap in range(FLAPS):
            frozen = flap % 2 == 1
            if frozen:
                os.kill(camera_server._process.pid, signal.SIGSTOP)
            else:
                camera_server.stop()
            down = time.time()
            wait_for(lambda: status() == ("ERROR", "error"), timeout=30, step=0.2)
            detections.append((time.time() - down, "frozen" if frozen else "stopped"))
            assert supervisor.process.poll() is None, supervisor.tail()
            time.sleep(max(0.0, OUTAGE_S - (time.time() - down)))
            if frozen:
                os.kill(camera_server._process.pid, signal.SIGCONT)
            else:
                camera_server.start()
            up = time.time()
            outages.append((down, up))
            wait_for(lambda: status() == ("RUNNING", "online"), timeout=45, step=0.2)
            recoveries.append(time.time() - up)

            def recording_again(up: float = up) -> bool:
                return Segment.objects.filter(camera_id=camera.pk, start__gt=_dt(up)).exists()

            wait_for(recording_again, timeout=30, step=0.3)
            resumes.append(time.time() - up)

        # the last segments are indexed; afterwards two pulls of the camera (the recorder and,
        # the stream being active, the live HLS writer: docs/live.md), files = rows
        wait_for(lambda: archived_files(camera.pk) == row_files(camera.pk, segment_rows(camera.pk)))
        wait_for(lambda: rtsp_pulls(camera_server.port) == 2, timeout=10)
        timeline = segment_rows(camera.pk)
        assert not overlaps(timeline)
        gaps = holes(timeline, tolerance_s=1.0)
        unexplained, excess = [], []
        for where, length in gaps:
            hole_start = where.timestamp()
            outage = next(
                ((down, up) for down, up in outages if down - 3 <= hole_start <= up), None
            )
            if outage is None:
                unexplained.append((where, length))
            else:
                excess.append(length - (outage[1] - outage[0]))
        assert not unexplained, (unexplained, outages)
        assert len(gaps) <= FLAPS
        assert all(extra <= HOLE_SLACK_S for extra in excess), excess
        save_figures(
            "camera_flap",
            {
                "flaps": FLAPS,
                "outage_s": OUTAGE_S,
                "detected_stopped_s": _summary([s for s, kind in detections if kind == "stopped"]),
                "detected_frozen_s": _summary([s for s, kind in detections if kind == "frozen"]),
                "running_again_s": _summary(recoveries),
                "recording_resumed_s": _summary(resumes),
                "holes": len(gaps),
                "hole_minus_outage_s": _summary(excess),
                "segments": len(timeline),
                "rtsp_pulls_after": 2,
            },
        )
    finally:
        supervisor.stop()
        # shown when the test fails
        print("outages", outages, "detected", detections, "running again", recoveries, sep="\n")
        print("resumed", resumes, "holes", gaps, sep="\n")
        if camera_server.is_running:  # thaw a frozen server so that its fixture can stop it
            os.kill(camera_server._process.pid, signal.SIGCONT)
        print("--- supervisor", supervisor.tail(80), sep="\n")  # shown when the test fails


def _dt(timestamp: float):
    from datetime import UTC, datetime

    return datetime.fromtimestamp(timestamp, UTC)


def _summary(values: list[float]) -> dict:
    if not values:
        return {}
    ordered = sorted(values)
    return {
        "n": len(values),
        "min": round(ordered[0], 1),
        "median": round(ordered[len(ordered) // 2], 1),
        "max": round(ordered[-1], 1),
    }
