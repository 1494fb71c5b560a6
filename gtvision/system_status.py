"""The dashboard's "Sistema" page (``/dashboard/system/``) for admins and gestores: cameras
offline or in error with their last errors, recording lag, disk, job queue, the long-running
processes and the recorder nodes with their cameras. ``static/js/system.js`` refreshes it
from ``/dashboard/api/system/`` every few seconds.

Cameras are the prefeitura's the page shows (``current_prefeitura``, through
``Camera.objects.for_user``); disk, queue and processes are the installation's (no tenant data).
"""

from __future__ import annotations

from functools import wraps

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from admin_ctx.models import Role
from cidades.models import Camera
from gtvision.dashboard import _api_login_required, _page, current_prefeitura
from gtvision.metrics import check_disk, job_queue, recording_lags

REFRESH_S = 5
MAX_CAMERAS = 200  # the worst first; the page says how many more there are
NODE_CAMERA_NAMES = 20  # per recorder node, the prefeitura's cameras it pulls


def _staff_only(view):
    """Admins and gestores; operadores get 403."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs):
        if request.user.role not in (Role.ADMIN, Role.GESTOR):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return wrapper


@login_required
@_staff_only
def system_page(request: HttpRequest) -> HttpResponse:
    return _page(
        request,
        "system.html",
        "system",
        config={"systemUrl": reverse("dashboard-system-status"), "refreshS": REFRESH_S},
        system_labels={
            status: gettext(label)
            for status, label in [
                ("STARTING", "starting"),
                ("RUNNING", "running"),
                ("ERROR", "error"),
                ("online", "online"),
                ("offline", "offline"),
                ("error", "error"),
                ("ok", "OK"),
                ("failing", "failing"),
                ("updated", "Updated at %(time)s"),
                ("unreachable", "Could not refresh: %(error)s"),
                ("more", "%(count)s more"),
                ("live", "live"),
                ("draining", "draining"),
                ("stopped", "stopped"),
                ("orphaned", "%(count)s camera(s) waiting for another node"),
            ]
        },
    )


def _cameras(request: HttpRequest, now) -> tuple[list[dict], int]:
    """Enabled cameras of the prefeitura that are pulled but receive nothing, in error, or
    whose recording lags; errors first, then by lag."""
    from streaming.models import RecorderStatus, Stream

    prefeitura = current_prefeitura(request)
    if prefeitura is None:
        return [], 0
    cameras = Camera.objects.for_user(request.user).filter(prefeitura=prefeitura, enabled=True)
    ids = dict(cameras.values_list("pk", "name"))
    statuses = dict(cameras.values_list("pk", "status"))
    lags = {pk: lag for pk, lag in recording_lags(now).items() if pk in ids}
    errors: dict[int, tuple[str, str]] = {}
    for pk, status, error in RecorderStatus.objects.filter(camera_id__in=ids).values_list(
        "camera_id", "status", "last_error"
    ):
        errors[pk] = (status, error)
    for pk, status, error in Stream.objects.filter(
        camera_id__in=ids, status__in=Stream.ACTIVE
    ).values_list("camera_id", "status", "last_error"):
        errors[pk] = (status, error or errors.get(pk, ("", ""))[1])
    rows = []
    limit = settings.RECORDING_LAG_MAX_S
    for pk, name in ids.items():
        pull, error = errors.get(pk, ("", ""))
        lag = lags.get(pk)
        lagging = lag is not None and lag > limit
        # Pulled (live or recorded) but not receiving, in error, or its recording lags; an
        # offline camera nobody pulls is idle, not a problem.
        if pull in ("STARTING", "ERROR") or statuses[pk] == "error" or lagging:
            rows.append(
                {
                    "id": pk,
                    "name": name,
                    "status": statuses[pk],
                    "pull": pull,
                    "last_error": error,
                    "recording_lag_s": None if lag is None else round(lag, 1),
                    "lagging": lagging,
                }
            )
    rows.sort(key=lambda r: (r["pull"] != "ERROR", -(r["recording_lag_s"] or 0), r["id"]))
    return rows[:MAX_CAMERAS], max(0, len(rows) - MAX_CAMERAS)


def _processes(now) -> list[dict]:
    from streaming.models import WorkerHeartbeat

    stale = {
        "media-supervisor": settings.SUPERVISOR_HEARTBEAT_STALE_S,
        "media-supervisor-standby": settings.SUPERVISOR_HEARTBEAT_STALE_S,
        "job-worker": settings.JOB_WORKER_HEARTBEAT_STALE_S,
    }
    rows = []
    for beat in WorkerHeartbeat.objects.order_by("kind", "name"):
        age = (now - beat.beat_at).total_seconds()
        details = beat.details if isinstance(beat.details, dict) else {}
        cameras = details.get("cameras")
        rows.append(
            {
                "name": beat.name,
                "kind": beat.kind,
                "engine": beat.engine,
                "age_s": round(age, 1),
                "ok": age <= stale.get(beat.kind, settings.SUPERVISOR_HEARTBEAT_STALE_S),
                "cameras": cameras if isinstance(cameras, int) else None,
            }
        )
    return rows


def _nodes(request: HttpRequest) -> list[dict]:
    """Recorder nodes (streaming/leases.py) with their cameras: how many in all, and the
    names of the shown prefeitura's (at most ``NODE_CAMERA_NAMES``)."""
    from streaming.leases import node_of_cameras, nodes_overview

    prefeitura = current_prefeitura(request)
    names: dict[int, str] = {}
    if prefeitura is not None:
        names = dict(
            Camera.objects.for_user(request.user)
            .filter(prefeitura=prefeitura)
            .values_list("pk", "name")
        )
    ours: dict[str, list[str]] = {}
    for camera_id, node in sorted(node_of_cameras(list(names)).items()):
        ours.setdefault(node, []).append(names[camera_id])
    rows = []
    for node in nodes_overview():
        mine = ours.get(node["name"], [])
        state = "live" if node["live"] else "draining" if node["draining"] else "stopped"
        rows.append(
            {
                **node,
                "state": state,
                "camera_names": mine[:NODE_CAMERA_NAMES],
                "more_camera_names": max(0, len(mine) - NODE_CAMERA_NAMES),
            }
        )
    return rows


@never_cache
@_api_login_required
@_staff_only
@require_GET
def system_status(request: HttpRequest) -> JsonResponse:
    now = timezone.now()
    cameras, more = _cameras(request, now)
    disk = check_disk()
    return JsonResponse(
        {
            "at": now.isoformat(),
            "cameras": cameras,
            "more_cameras": more,
            "recording_lag_max_s": settings.RECORDING_LAG_MAX_S,
            "disk": disk,
            "queue": [
                {"queue": queue, "waiting": count, "oldest_s": None if age is None else round(age)}
                for queue, count, age in job_queue(now)
            ],
            "processes": _processes(now),
            "nodes": _nodes(request),
        }
    )
