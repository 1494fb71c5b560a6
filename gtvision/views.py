from django.conf import settings
from django.contrib.auth import views as auth_views
from django.db import connection
from django.db.models import Count
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache


class LoginView(auth_views.LoginView):
    template_name = "login.html"
    redirect_authenticated_user = True


class LogoutView(auth_views.LogoutView):
    http_method_names = ["get", "post", "options"]

    def get(self, request, *args, **kwargs):
        return self.post(request, *args, **kwargs)


def check_database() -> dict:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        connection.close_if_unusable_or_obsolete()
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": True}


def check_supervisor() -> dict:
    from streaming.models import WorkerHeartbeat

    beat = WorkerHeartbeat.objects.filter(kind="media-supervisor").order_by("-beat_at").first()
    if beat is None:
        return {"ok": False, "error": "no media supervisor has reported"}
    age = (timezone.now() - beat.beat_at).total_seconds()
    return {
        "ok": age <= settings.SUPERVISOR_HEARTBEAT_STALE_S,
        "name": beat.name,
        "engine": beat.engine,
        "heartbeat_age_s": round(age, 1),
    }


@never_cache
def health(request: HttpRequest) -> JsonResponse:
    from streaming.engine import engine_health

    checks = {"database": check_database(), "media_engine": engine_health()}
    if checks["database"]["ok"]:
        checks["media_supervisor"] = check_supervisor()
    healthy = all(check["ok"] for check in checks.values())
    return JsonResponse(
        {"status": "healthy" if healthy else "unhealthy", "checks": checks},
        status=200 if healthy else 503,
    )


@never_cache
def prometheus_metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text format: counts by status, heartbeat ages (no tenant data)."""
    from cidades.models import Camera
    from streaming.models import Stream, WorkerHeartbeat

    lines = ["# TYPE gtvision_cameras gauge"]
    for row in Camera.objects.values("status").annotate(n=Count("id")).order_by("status"):
        lines.append(f'gtvision_cameras{{status="{row["status"]}"}} {row["n"]}')
    lines.append("# TYPE gtvision_streams gauge")
    for row in Stream.objects.values("status").annotate(n=Count("id")).order_by("status"):
        lines.append(f'gtvision_streams{{status="{row["status"]}"}} {row["n"]}')
    lines.append("# TYPE gtvision_worker_heartbeat_age_seconds gauge")
    now = timezone.now()
    for beat in WorkerHeartbeat.objects.order_by("name"):
        age = (now - beat.beat_at).total_seconds()
        lines.append(
            f'gtvision_worker_heartbeat_age_seconds{{name="{beat.name}",kind="{beat.kind}"}} '
            f"{age:.1f}"
        )
    return HttpResponse("\n".join(lines) + "\n", content_type="text/plain; version=0.0.4")
