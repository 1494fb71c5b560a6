"""The media supervisor is killed with SIGKILL mid-recording, twice, and started again.

No FFmpeg outlives it (no orphan keeps pulling), the new one pulls the camera once, no
finished segment is lost, no segment row is duplicated or overlaps another, files on disk =
rows, and the holes are the restarts.
"""

from __future__ import annotations

import time

import pytest

from tests.factories import CameraFactory
from tests.faults.helpers import (
    archived_files,
    ffmpeg_of,
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

KILLS = pick(2, 6)
pytestmark = [
    pytest.mark.camera,
    pytest.mark.django_db(transaction=True, databases=["default", "channels_postgres"]),
    pytest.mark.timeout(pick(300, 900)),
]


@pytest.fixture
def camera_server():
    with serving_camera(fps=15, keyint=15) as server:
        yield server


def test_supervisor_killed_mid_recording(camera_server, settings):
    settings.MEDIA_ENGINE = "embedded"
    camera = CameraFactory(source_url=camera_server.url("cam1"), recording_enabled=True)
    supervisors = [SupervisorProcess(RECORDING_SEGMENT_SECONDS="2").start()]
    pids = [supervisors[0].process.pid]
    kills = []
    try:
        wait_for(lambda: len(segment_rows(camera.pk)) >= 3, timeout=60)
        for _ in range(KILLS):
            time.sleep(3.3)  # mid-segment: FFmpeg has a file open
            finished = set(segment_rows(camera.pk))
            assert len(ffmpeg_of(pids)) == 1 and rtsp_pulls(camera_server.port) == 1
            supervisors[-1].kill9()
            killed_at = time.time()
            # no FFmpeg outlives its supervisor (PR_SET_PDEATHSIG): no pull left behind
            wait_for(lambda: not ffmpeg_of(pids), timeout=10, step=0.1)
            orphans_gone_s = time.time() - killed_at
            wait_for(lambda: rtsp_pulls(camera_server.port) == 0, timeout=10, step=0.1)
            supervisors.append(SupervisorProcess(RECORDING_SEGMENT_SECONDS="2").start())
            pids.append(supervisors[-1].process.pid)

            def recording_again(killed_at: float = killed_at) -> bool:
                return any(start.timestamp() > killed_at for start, _, _ in segment_rows(camera.pk))

            wait_for(recording_again, timeout=60)
            kills.append(
                {
                    "orphans_gone_s": round(orphans_gone_s, 1),
                    "recording_again_s": round(time.time() - killed_at, 1),
                    "killed_at": killed_at,
                }
            )
            # every segment finished before the kill is still there, unchanged or completed
            after = segment_rows(camera.pk)
            assert {row[0] for row in finished} <= {row[0] for row in after}
            assert len(ffmpeg_of(pids)) == 1

        wait_for(lambda: archived_files(camera.pk) == row_files(camera.pk, segment_rows(camera.pk)))
        timeline = segment_rows(camera.pk)
        starts = [row[0] for row in timeline]
        assert len(starts) == len(set(starts))  # no duplicate
        assert len(row_files(camera.pk, timeline)) == len(timeline)
        assert not overlaps(timeline), overlaps(timeline)
        for _ in range(5):  # one pull, and it stays one
            assert len(ffmpeg_of(pids)) == 1 and rtsp_pulls(camera_server.port) == 1
            time.sleep(0.5)
        gaps = holes(timeline, tolerance_s=1.0)
        assert len(gaps) <= KILLS, (gaps, kills)
        for where, length in gaps:  # a hole is a restart: it starts at a kill (+- timestamps)
            assert any(abs(where.timestamp() - kill["killed_at"]) <= 2.5 for kill in kills), (
                where,
                kills,
            )
            assert length <= 20, gaps
        save_figures(
            "supervisor_kill",
            {
                "kills": KILLS,
                "orphans_gone_s": [kill["orphans_gone_s"] for kill in kills],
                "recording_again_s": [kill["recording_again_s"] for kill in kills],
                "holes_s": [round(length, 1) for _, length in gaps],
                "segments": len(timeline),
                "duplicates": 0,
                "overlaps": 0,
                "ffmpeg_after": 1,
            },
        )
    finally:
        for supervisor in supervisors:
            supervisor.stop()
        print("--- last supervisor", supervisors[-1].tail(60), sep="\n")
