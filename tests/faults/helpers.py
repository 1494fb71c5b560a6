"""Shared pieces of the fault suite: long mode, figures, footage checks, RTSP pulls.

``GTV_FAULTS_LONG=1`` runs the long versions (more flaps, longer outages). Each test writes
what it measured to ``test-artifacts/faults/<test>.json``; docs/reliability.md quotes them.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from django.conf import settings

from testcamera import INSTALL_HINT, TestCamera

ROOT = Path(__file__).resolve().parents[2]
LONG = os.environ.get("GTV_FAULTS_LONG", "") not in ("", "0")
ARTIFACTS = ROOT / "test-artifacts" / "faults"


def pick(quick, long):
    return long if LONG else quick


def save_figures(name: str, figures: dict) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    figures = {
        "mode": "long" if LONG else "quick",
        "at": time.strftime("%FT%TZ", time.gmtime()),
        **figures,
    }
    (ARTIFACTS / f"{name}.json").write_text(json.dumps(figures, indent=2, default=str) + "\n")


Row = tuple[datetime, datetime, str]  # start, end, location ("" = canonical)


def holes(rows: Iterable[Row], tolerance_s: float = 1.0) -> list[tuple[datetime, float]]:
    """``(where, seconds)`` of each gap between consecutive segments longer than tolerance."""
    ordered = sorted(rows)
    found = []
    for previous, current in zip(ordered, ordered[1:], strict=False):
        gap = (current[0] - previous[1]).total_seconds()
        if gap > tolerance_s:
            found.append((previous[1], gap))
    return found


def overlaps(rows: Iterable[Row], tolerance_s: float = 0.05) -> list[tuple[Row, Row]]:
    ordered = sorted(rows)
    return [
        (previous, current)
        for previous, current in zip(ordered, ordered[1:], strict=False)
        if (previous[1] - current[0]).total_seconds() > tolerance_s
    ]


def row_files(camera_id: int, rows: Iterable[Row]) -> set[str]:
    """Paths (relative to RECORDINGS_DIR) the rows say their files are at."""
    from recordings import storage

    return {location or storage.canonical_location(camera_id, start) for start, _, location in rows}


def archived_files(camera_id: int) -> set[str]:
    """Segment files on disk that left ``incoming/`` (the indexer moved them after their row)."""
    from recordings import storage

    root = Path(settings.RECORDINGS_DIR)
    directory = storage.camera_dir(camera_id)
    if not directory.exists():
        return set()
    return {
        str(path.relative_to(root))
        for path in directory.rglob("*.ts")
        if path.parent.name != storage.INCOMING
    }


def rtsp_pulls(port: int) -> int:
    """Established TCP connections from 127.0.0.1 to a camera server's port (one per pull)."""
    target = f"0100007F:{port:04X}"
    count = 0
    for table in ("/proc/net/tcp",):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[2] == target and fields[3] == "01":  # remote address, ESTABLISHED
                count += 1
    return count


def ffmpeg_of(supervisor_pids: Iterable[int]) -> list[int]:
    """PIDs of live FFmpeg processes started by any of these media supervisors (orphans too)."""
    wanted = {f"GTV_SUPERVISOR_PID={pid}".encode() for pid in supervisor_pids}
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            environ = set(Path(f"/proc/{name}/environ").read_bytes().split(b"\0"))
            state = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if environ & wanted and state != "Z":
            found.append(int(name))
    return found


@contextmanager
def serving_camera(**options) -> Iterator[TestCamera]:
    """The RTSP test camera with one mount, ``cam1``, stopped at the end."""
    assert TestCamera.available(), INSTALL_HINT
    server = TestCamera(mounts=("cam1",), **options)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def segment_rows(camera_id: int, *extra: str) -> list[tuple]:
    """The camera's segment rows in time order: ``(start, end, location, *extra)``."""
    from recordings.models import Segment

    return list(
        Segment.objects.filter(camera_id=camera_id)
        .order_by("start")
        .values_list("start", "end", "location", *extra)
    )
