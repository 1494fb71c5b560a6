"""The LPR worker's heartbeat and its ``/health`` check.

The worker writes a ``lpr-worker`` heartbeat (``streaming.services.heartbeat``) every
``LPR_HEARTBEAT_S``; ``/health`` reports ``lpr_worker`` only while at least one enabled camera
has ``lpr_enabled`` (a node without LPR stays healthy without the process), failing when no
heartbeat is newer than ``LPR_HEARTBEAT_STALE_S``.
"""

from __future__ import annotations

from django.conf import settings

from gtvision.env import env_float

HEARTBEAT_KIND = "lpr-worker"


def heartbeat_interval_s() -> float:
    return getattr(settings, "LPR_HEARTBEAT_S", None) or env_float("LPR_HEARTBEAT_S", 5.0)


def heartbeat_stale_s() -> float:
    stale = getattr(settings, "LPR_HEARTBEAT_STALE_S", None)
    return env_float("LPR_HEARTBEAT_STALE_S", 30.0) if stale is None else stale


def lpr_in_use() -> bool:
    from cidades.models import Camera

    return Camera.objects.filter(enabled=True, lpr_enabled=True).exists()


def check_lpr_worker() -> dict | None:
    """None when no camera is read by LPR; else the heartbeat check of the worker."""
    if not lpr_in_use():
        return None
    from gtvision.views import check_heartbeat

    return check_heartbeat(HEARTBEAT_KIND, heartbeat_stale_s(), "no LPR worker has reported")
