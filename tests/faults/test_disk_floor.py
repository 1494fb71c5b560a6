"""Free disk under ``RETENTION_DISK_FLOOR_BYTES`` while a camera records.

``manage.py apply_retention`` (what the job worker's periodic job runs) deletes the oldest
footage first, rows and files together, spares the last ``RETENTION_DISK_FLOOR_KEEP_S``,
and recording goes on. The floor is set relative to the disk's real free space (shared with
other processes, so never to a value a few megabytes would tip): above it, nothing goes;
far under it (a full disk), all footage but the kept window goes, oldest first.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime

import pytest

from recordings.models import Segment
from tests.factories import CameraFactory
from tests.faults.helpers import (
    ROOT,
    archived_files,
    overlaps,
    pick,
    row_files,
    rtsp_pulls,
    save_figures,
    segment_rows,
    serving_camera,
)
from tests.supervisor import SupervisorProcess, process_env, wait_for

KEEP_S = 6
pytestmark = [
    pytest.mark.camera,
    pytest.mark.django_db(transaction=True, databases=["default", "channels_postgres"]),
    pytest.mark.timeout(pick(300, 600)),
]


@pytest.fixture
def camera_server():
    with serving_camera(fps=15, keyint=15, bitrate=2000) as server:
        yield server


def apply_retention(floor: int, keep_s: int = KEEP_S) -> str:
    env = process_env(
        RETENTION_DISK_FLOOR_BYTES=str(floor), RETENTION_DISK_FLOOR_KEEP_S=str(keep_s)
    )
    result = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "apply_retention"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def settled(camera_id: int) -> bool:
    timeline = [row[:3] for row in segment_rows(camera_id, "size_bytes")]
    return archived_files(camera_id) == row_files(camera_id, timeline)


def test_oldest_footage_goes_first_and_recording_continues(camera_server, settings):
    settings.MEDIA_ENGINE = "embedded"
    camera = CameraFactory(source_url=camera_server.url("cam1"), recording_enabled=True)
    supervisor = SupervisorProcess(RECORDING_SEGMENT_SECONDS="2").start()
    try:
        wait_for(
            lambda: len(segment_rows(camera.pk, "size_bytes")) >= pick(10, 30),
            timeout=pick(90, 180),
        )
        wait_for(lambda: settled(camera.pk))
        before = segment_rows(camera.pk, "size_bytes")
        total = sum(row[3] for row in before)

        # 0. free disk above the floor: nothing is deleted
        free = shutil.disk_usage(settings.RECORDINGS_DIR).free
        apply_retention(max(0, free - 10**9))
        assert {row[0] for row in before} <= {
            row[0] for row in segment_rows(camera.pk, "size_bytes")
        }

        # 1. under the floor with the newer half of this footage inside the kept window: the
        # older half goes, oldest first, rows and files together
        middle = before[len(before) // 2][0]
        keep_s = int(time.time() - middle.timestamp())
        output = apply_retention(free + 10**15, keep_s=keep_s)
        after = segment_rows(camera.pk, "size_bytes")
        deleted = [row for row in before if row[0] not in {r[0] for r in after}]
        assert deleted, output
        assert deleted == before[: len(deleted)]  # a prefix: the oldest first
        assert len(deleted) < len(before)  # the newest were spared
        assert "disk_floor" in output
        wait_for(lambda: settled(camera.pk))
        first_deleted = len(deleted)

        # 2. a floor no deletion can meet (a full disk): all but the last KEEP_S go
        purged_at = time.time()
        output = apply_retention(free + 10**15)
        after = segment_rows(camera.pk, "size_bytes")
        kept_from = min(row[0] for row in after)
        assert kept_from.timestamp() >= purged_at - KEEP_S - 3, (kept_from, purged_at)
        assert "add disk or lower RETENTION_DISK_FLOOR_BYTES" in output
        assert all(row[0] < kept_from for row in before if row not in after)
        wait_for(lambda: settled(camera.pk))

        # recording goes on: new segments after the purge, one pull, no overlap
        wait_for(
            lambda: Segment.objects.filter(
                camera_id=camera.pk, start__gt=datetime.fromtimestamp(purged_at + 2, UTC)
            ).exists(),
            timeout=30,
        )
        assert supervisor.process.poll() is None
        assert rtsp_pulls(camera_server.port) == 1
        assert not overlaps([row[:3] for row in segment_rows(camera.pk, "size_bytes")])
        wait_for(lambda: settled(camera.pk))
        save_figures(
            "disk_floor",
            {
                "segments_before": len(before),
                "footage_bytes_before": total,
                "deleted_keeping_newer_half": first_deleted,
                "kept_after_unreachable_floor_s": round(purged_at - kept_from.timestamp(), 1),
                "recording_continued": True,
            },
        )
    finally:
        supervisor.stop()
        print("--- supervisor", supervisor.tail(40), sep="\n")
