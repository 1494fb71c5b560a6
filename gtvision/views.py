from django.conf import settings
from django.contrib.auth import views as auth_views
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache

from gtvision.login_guard import GuardedAuthenticationForm
from gtvision.metrics import check_disk, check_recording_lag


class LoginView(auth_views.LoginView):
    """The dashboard's sign-in form, behind the login guard (429 while locked)."""

    template_name = "login.html"
    redirect_authenticated_user = True
    form_class = GuardedAuthenticationForm

    def form_invalid(self, form):
        response = super().form_invalid(form)
        if form.throttled:
            response.status_code = 429
        return response


class LogoutView(auth_views.LogoutView):
    """POST only, with the CSRF token (Django's default); GET is 405. Logging out also
    revokes the user's tokens (admin_ctx.signals.revoke_on_logout)."""


HEALTH_DB_TIMEOUT_S = 3.0


def check_database() -> dict:
    """``SELECT 1``; through the connection pool, waiting at most ``HEALTH_DB_TIMEOUT_S`` for
    a connection (a request waits up to ``DB_POOL_TIMEOUT``: a monitor would time out first)."""
    try:
        pool = connection.pool
        if pool is not None:
            pool.open()
            with pool.connection(timeout=HEALTH_DB_TIMEOUT_S) as conn:
                conn.execute("SELECT 1")
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        connection.close_if_unusable_or_obsolete()
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": True}


def check_heartbeat(kind: str, stale_after_s: float, missing: str) -> dict:
    """The newest heartbeat of a kind of long-running process, failing when too old."""
    from streaming.models import WorkerHeartbeat

    beat = WorkerHeartbeat.objects.filter(kind=kind).order_by("-beat_at").first()
    if beat is None:
        return {"ok": False, "error": missing}
    age = (timezone.now() - beat.beat_at).total_seconds()
    check = {"ok": age <= stale_after_s, "name": beat.name, "heartbeat_age_s": round(age, 1)}
    if beat.engine:
        check["engine"] = beat.engine
    if not check["ok"]:
        check["error"] = f"no heartbeat for {age:.0f} s"
    return check


def check_supervisor() -> dict:
    return check_heartbeat(
        "media-supervisor",
        settings.SUPERVISOR_HEARTBEAT_STALE_S,
        "no media supervisor has reported",
    )


def check_recorder_nodes() -> dict:
    """The recorder nodes (streaming/leases.py); failing while a node without a heartbeat
    still has cameras assigned (nobody pulls them until another node claims them)."""
    from streaming.leases import nodes_overview

    nodes = nodes_overview()
    orphaned = {
        node["name"]: node["orphaned_cameras"] for node in nodes if node["orphaned_cameras"]
    }
    check = {
        "ok": not orphaned,
        "nodes": [
            {key: node[key] for key in ("name", "cameras", "heartbeat_age_s", "draining", "live")}
            for node in nodes
        ],
    }
    if orphaned:
        check["error"] = f"{sum(orphaned.values())} camera(s) left on node(s) without a " + (
            f"heartbeat: {', '.join(sorted(orphaned))}"
        )
    return check


def check_job_worker() -> dict:
    from gtvision.jobworker import HEARTBEAT_KIND

    return check_heartbeat(
        HEARTBEAT_KIND, settings.JOB_WORKER_HEARTBEAT_STALE_S, "no job worker has reported"
    )


@never_cache
def health(request: HttpRequest) -> JsonResponse:
    from lpr.health import check_lpr_worker
    from streaming.engine import engine_health

    checks = {"database": check_database(), "media_engine": engine_health()}
    if checks["database"]["ok"]:
        checks["media_supervisor"] = check_supervisor()
        checks["recorder_nodes"] = check_recorder_nodes()
        checks["job_worker"] = check_job_worker()
        checks["recording_lag"] = check_recording_lag()
        lpr_worker = check_lpr_worker()
        if lpr_worker is not None:  # only while a camera is read by LPR
            checks["lpr_worker"] = lpr_worker
    checks["disk"] = check_disk()
    healthy = all(check["ok"] for check in checks.values())
    return JsonResponse(
        {"status": "healthy" if healthy else "unhealthy", "checks": checks},
        status=200 if healthy else 503,
    )


@never_cache
def prometheus_metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus exposition (gtvision/metrics/), behind ``METRICS_TOKEN`` or loopback."""
    from gtvision.metrics import metrics_view

    return metrics_view(request)
