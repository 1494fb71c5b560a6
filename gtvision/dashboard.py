"""The operators' dashboard pages (server-rendered shells; data comes from the API).

Pages: the camera grid (``/dashboard/``), the live mosaic (``/dashboard/mosaic/``) and the
camera page (``/dashboard/cameras/<id>/``). Every page shows one prefeitura: the user's own,
or, for a platform admin, the one chosen in the top bar (kept in the session).

The pages' JavaScript (``static/js/``) reads the API of SPEC.md and listens to ``ws/events``.
Two small JSON endpoints belong to the dashboard itself: the user's mosaic layout and the
recent events that seed the events panel.
"""

from __future__ import annotations

import json
from functools import wraps

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import get_language, gettext, gettext_noop
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_http_methods, require_POST

from admin_ctx.models import MosaicLayout
from cidades.models import Camera, Prefeitura
from lpr.messages import JS_MESSAGES as LPR_JS_MESSAGES
from recordings.access import reason_required

SESSION_PREFEITURA = "dashboard_prefeitura"
# Up to this many cameras the grid shows live players; more are shown as thumbnails.
LIVE_TILE_LIMIT = 9
RECENT_EVENTS = 30

# Strings of the pages' JavaScript, translated by Django (locale/*/django.po) and handed to
# the scripts as a JSON catalog (``GTV.t("...")``).
# Camera status -> its label on badges (the model's choices are lowercase nouns).
STATUS_LABELS = {
    "online": gettext_noop("Online"),
    "offline": gettext_noop("Offline"),
    "error": gettext_noop("Failure"),
    "disabled": gettext_noop("Disabled"),
}
JS_MESSAGES = [
    *STATUS_LABELS.values(),
    *LPR_JS_MESSAGES,
    gettext_noop("Give the reason for accessing this recorded footage."),
    gettext_noop("Evidence lock: %(reason)s"),
    gettext_noop("Starting…"),
    gettext_noop("Connecting…"),
    gettext_noop("Live"),
    gettext_noop("Recorded"),
    gettext_noop("Stream error"),
    gettext_noop("The stream has stopped."),
    gettext_noop("This camera is disabled."),
    gettext_noop("The video could not be played; trying again…"),
    gettext_noop("No image yet"),
    gettext_noop("No cameras match the filters."),
    gettext_noop("This prefeitura has no cameras yet."),
    gettext_noop("Showing %(shown)s of %(total)s cameras"),
    gettext_noop("Showing %(shown)s of 1 camera"),
    gettext_noop("Stream started"),
    gettext_noop("Stream running"),
    gettext_noop("Stream stopped"),
    gettext_noop("Stream failed"),
    gettext_noop("Export #%(id)s requested"),
    gettext_noop("Export #%(id)s: %(percent)s%%"),
    gettext_noop("Export #%(id)s ready"),
    gettext_noop("Export #%(id)s failed"),
    gettext_noop("Download MP4"),
    gettext_noop("No events yet."),
    gettext_noop("Live events disconnected; reconnecting…"),
    gettext_noop("Empty slot"),
    gettext_noop("Saving…"),
    gettext_noop("Mosaic saved."),
    gettext_noop("The mosaic could not be saved."),
    gettext_noop("Camera for slot %(n)s"),
    gettext_noop("Nothing was recorded from this moment on."),
    gettext_noop("The recording could not be played."),
    gettext_noop("Playing recording from %(time)s"),
    gettext_noop("No recording"),
    gettext_noop("Timeline of %(day)s: %(recorded)s recorded"),
    gettext_noop("Choose a period on the timeline or in the fields below."),
    gettext_noop("The end must be after the start."),
    gettext_noop("Exporting…"),
    gettext_noop("Waiting for the worker…"),
    gettext_noop("The export could not be requested."),
    gettext_noop("Export failed"),
    gettext_noop("Ready"),
    gettext_noop("Snapshot of %(time)s"),
    gettext_noop("Latest snapshot"),
    gettext_noop("Snapshot"),
    gettext_noop("frames/s"),
    gettext_noop("kbit/s"),
    gettext_noop("ms"),
    gettext_noop("unknown"),
    gettext_noop("Session expired: sign in again."),
    gettext_noop("Request failed (%(status)s)."),
]


def current_prefeitura(request: HttpRequest) -> Prefeitura | None:
    """The prefeitura the pages show: the user's own; an admin's choice (or the first)."""
    user = request.user
    if not user.is_platform_admin:
        return user.prefeitura
    visible = Prefeitura.objects.for_user(user)
    chosen = request.session.get(SESSION_PREFEITURA)
    prefeitura = visible.filter(pk=chosen).first() if chosen else None
    if prefeitura is None:
        prefeitura = visible.filter(active=True).first() or visible.first()
        if prefeitura is not None:
            request.session[SESSION_PREFEITURA] = prefeitura.pk
    return prefeitura


def _locale_tag() -> str:
    """BCP 47 tag for ``Intl`` from Django's active language (``pt-br`` -> ``pt-BR``)."""
    language, _sep, region = (get_language() or "pt-br").partition("-")
    return f"{language}-{region.upper()}" if region else language


def _page(request: HttpRequest, template: str, page: str, **extra) -> HttpResponse:
    prefeitura = current_prefeitura(request)
    user = request.user
    config = {
        "page": page,
        "prefeitura": prefeitura.pk if prefeitura else None,
        "isAdmin": user.is_platform_admin,
        "locale": _locale_tag(),
        "timeZone": timezone.get_current_timezone_name(),
        "liveTileLimit": LIVE_TILE_LIMIT,
        "urls": {
            "events": "/ws/events",
            "recentEvents": reverse("dashboard-recent-events"),
            "mosaic": reverse("dashboard-mosaic-layout"),
            "cameraPage": reverse("dashboard-camera", kwargs={"pk": 0}),
        },
        **extra.pop("config", {}),
    }
    context = {
        "page": page,
        "prefeitura": prefeitura,
        "prefeituras": Prefeitura.objects.for_user(user) if user.is_platform_admin else None,
        "page_config": config,
        "js_catalog": {message: gettext(message) for message in JS_MESSAGES},
        **extra,
    }
    return render(request, template, context)


@login_required
@ensure_csrf_cookie
def dashboard(request: HttpRequest) -> HttpResponse:
    """The camera grid: every camera, live status, filters and search; the events panel."""
    return _page(request, "dashboard.html", "grid")


@login_required
@ensure_csrf_cookie
def mosaic(request: HttpRequest) -> HttpResponse:
    """2x2 / 3x3 live mosaic of cameras the user picks (kept per user)."""
    return _page(request, "mosaic.html", "mosaic")


@login_required
@ensure_csrf_cookie
def camera_page(request: HttpRequest, pk: int) -> HttpResponse:
    """One camera: live player, metrics, timeline, playback, snapshot and clip export."""
    camera = get_object_or_404(Camera.objects.for_user(request.user), pk=pk)
    if request.user.is_platform_admin:
        request.session[SESSION_PREFEITURA] = camera.prefeitura_id
    config = {
        "camera": {
            "id": camera.pk,
            "name": camera.name,
            "code": camera.code,
            "address": camera.address,
            "status": camera.status,
            "enabled": camera.enabled,
            "recording_enabled": camera.recording_enabled,
            "prefeitura": camera.prefeitura_id,
            # LGPD: playback and exports ask this user for a reason (recordings.access)
            "reason_required": reason_required(request.user, camera),
        }
    }
    status_label = gettext(STATUS_LABELS.get(camera.status, camera.status))
    return _page(
        request, "camera.html", "camera", camera=camera, status_label=status_label, config=config
    )


@login_required
@require_POST
def choose_prefeitura(request: HttpRequest) -> HttpResponse:
    """A platform admin picks the prefeitura the dashboard shows."""
    if not request.user.is_platform_admin:
        raise Http404
    try:
        pk = int(request.POST.get("prefeitura", ""))
    except ValueError as exc:
        raise Http404 from exc
    prefeitura = get_object_or_404(Prefeitura.objects.for_user(request.user), pk=pk)
    request.session[SESSION_PREFEITURA] = prefeitura.pk
    target = request.POST.get("next", "")
    if "/cameras/" in target or not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = reverse("dashboard")  # a camera page would switch back to its prefeitura
    return redirect(target)


def _api_login_required(view):
    """JSON endpoints answer 401 instead of redirecting to the login page."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs):
        if not request.user.is_authenticated or not request.user.is_active:
            return JsonResponse({"detail": gettext("Authentication required.")}, status=401)
        return view(request, *args, **kwargs)

    return wrapper


def _layout_data(request: HttpRequest, prefeitura: Prefeitura) -> dict:
    layout = MosaicLayout.objects.filter(user=request.user, prefeitura=prefeitura).first()
    visible = set(
        Camera.objects.for_user(request.user)
        .filter(prefeitura=prefeitura)
        .values_list("pk", flat=True)
    )
    if layout is None:
        first = list(
            Camera.objects.for_user(request.user)
            .filter(prefeitura=prefeitura)
            .order_by("name", "id")
            .values_list("pk", flat=True)[: MosaicLayout.SLOTS]
        )
        return {"size": 2, "slots": _pad(first), "saved": False}
    # Cameras deleted since the layout was saved leave their slot empty.
    slots = [pk if pk in visible else None for pk in _pad(layout.slots)]
    return {"size": layout.size, "slots": slots, "saved": True}


def _pad(slots: list) -> list:
    slots = list(slots)[: MosaicLayout.SLOTS]
    return slots + [None] * (MosaicLayout.SLOTS - len(slots))


def _validate_layout(request: HttpRequest, prefeitura: Prefeitura, body) -> tuple[dict, dict]:
    errors: dict[str, list[str]] = {}
    if not isinstance(body, dict):
        return {}, {"non_field_errors": [gettext("Expected a JSON object.")]}
    size = body.get("size")
    if size not in (2, 3):
        errors["size"] = [gettext("The size must be 2 (2x2) or 3 (3x3).")]
    slots = body.get("slots")
    if (
        not isinstance(slots, list)
        or len(slots) > MosaicLayout.SLOTS
        or not all(s is None or (isinstance(s, int) and not isinstance(s, bool)) for s in slots)
    ):
        errors["slots"] = [gettext("Slots must be a list of at most 9 camera ids or nulls.")]
    else:
        wanted = {s for s in slots if s is not None}
        visible = set(
            Camera.objects.for_user(request.user)
            .filter(prefeitura=prefeitura, pk__in=wanted)
            .values_list("pk", flat=True)
        )
        if wanted - visible:
            errors["slots"] = [gettext("Unknown camera.")]
    return {"size": size, "slots": _pad(slots) if not errors else []}, errors


@never_cache
@_api_login_required
@require_http_methods(["GET", "PUT", "POST"])
def mosaic_layout(request: HttpRequest) -> JsonResponse:
    """GET the user's mosaic; PUT/POST ``{"size": 2|3, "slots": [camera id|null, ...]}``."""
    prefeitura = current_prefeitura(request)
    if prefeitura is None:
        raise Http404
    if request.method == "GET":
        return JsonResponse(_layout_data(request, prefeitura))
    try:
        body = json.loads(request.body or b"null")
    except (ValueError, RecursionError):  # malformed, or nested deeper than the stack
        body = None
    data, errors = _validate_layout(request, prefeitura, body)
    if errors:
        return JsonResponse(errors, status=400)
    MosaicLayout.objects.update_or_create(user=request.user, prefeitura=prefeitura, defaults=data)
    return JsonResponse(_layout_data(request, prefeitura))


def _iso(value) -> str | None:
    return value.isoformat() if value else None


@never_cache
@_api_login_required
@require_http_methods(["GET"])
def recent_events(request: HttpRequest) -> JsonResponse:
    """Latest stream states and exports of the prefeitura, shaped like ``ws/events`` messages.

    The panel shows these first and then adds what arrives on the WebSocket.
    """
    from recordings.models import Clip
    from streaming.models import Stream

    prefeitura = current_prefeitura(request)
    if prefeitura is None:
        return JsonResponse({"events": []})
    items = []
    streams = (
        Stream.objects.for_user(request.user)
        .filter(camera__prefeitura=prefeitura)
        .order_by("-id")[:RECENT_EVENTS]
    )
    for stream in streams:
        at = stream.stopped_at or stream.running_since or stream.started_at
        items.append(
            {
                "_at": at,
                "type": "stream.status",
                "at": _iso(at),
                "camera_id": stream.camera_id,
                "stream_id": stream.pk,
                "status": stream.status,
                "last_error": stream.last_error,
                "profile": stream.profile,
            }
        )
    clips = (
        Clip.objects.for_user(request.user)
        .filter(camera__prefeitura=prefeitura)
        .order_by("-id")[:RECENT_EVENTS]
    )
    for clip in clips:
        if clip.status in (Clip.Status.DONE, Clip.Status.FAILED):
            items.append(
                {
                    "_at": clip.finished_at or clip.updated_at,
                    "type": "clip.done",
                    "at": _iso(clip.finished_at or clip.updated_at),
                    "camera_id": clip.camera_id,
                    "clip_id": clip.pk,
                    "status": clip.status,
                    "size_bytes": clip.size_bytes,
                    "duration_s": clip.duration_s,
                    "sha256": clip.sha256,
                    "error": clip.error,
                }
            )
        else:
            items.append(
                {
                    "_at": clip.updated_at,
                    "type": "clip.progress",
                    "at": _iso(clip.updated_at),
                    "camera_id": clip.camera_id,
                    "clip_id": clip.pk,
                    "status": clip.status,
                    "progress": round(clip.progress, 3),
                }
            )
    items.sort(key=lambda item: item["_at"], reverse=True)
    for item in items:
        del item["_at"]
    return JsonResponse({"events": items[:RECENT_EVENTS]})
