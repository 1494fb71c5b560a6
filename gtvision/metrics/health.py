"""/health checks built on the figures of the metrics: free disk and recording lag."""

from __future__ import annotations

from django.conf import settings
from django.db import DatabaseError, connection

from gtvision.metrics.collector import recording_lags, storage_usage

# -- /health checks built on the same figures ------------------------------------------------


def check_disk() -> dict:
    """Free space on the recordings disk against ``RETENTION_DISK_FLOOR_BYTES``."""
    floor = settings.RETENTION_DISK_FLOOR_BYTES
    try:
        free, _total = storage_usage()["local"]
    except OSError as exc:
        return {"ok": False, "error": f"cannot read the recordings disk ({type(exc).__name__})"}
    check = {"ok": free >= floor, "free_bytes": free, "floor_bytes": floor}
    if not check["ok"]:
        check["error"] = (
            f"{free / 1024**3:.1f} GiB free on the recordings disk, under the floor of "
            f"{floor / 1024**3:.1f} GiB"
        )
    return check


def check_recording_lag() -> dict:
    """Every recorded camera has a segment indexed within ``RECORDING_LAG_MAX_S``."""
    limit = settings.RECORDING_LAG_MAX_S
    try:
        lags = recording_lags()
    except DatabaseError as exc:
        connection.close_if_unusable_or_obsolete()
        return {"ok": False, "error": f"cannot read the recordings index ({type(exc).__name__})"}
    late = {camera_id: lag for camera_id, lag in lags.items() if lag > limit}
    check = {
        "ok": not late,
        "recorded_cameras": len(lags),
        "max_lag_s": round(max(lags.values()), 1) if lags else 0.0,
    }
    if late:
        worst = sorted(late, key=late.get, reverse=True)[:10]
        check["error"] = (
            f"{len(late)} recorded camera(s) with no segment indexed for more than "
            f"{limit:.0f} s: {', '.join(str(c) for c in worst)}"
        )
    return check
