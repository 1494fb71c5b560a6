"""The dashboard's LPR page (``/dashboard/lpr/``): live reads with crops, plate search and the
watchlist. Data comes from ``/api/lpr/`` and ``ws/events`` (static/js/lpr.js)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import ensure_csrf_cookie

from admin_ctx.models import Role
from gtvision.dashboard import _page


@login_required
@ensure_csrf_cookie
def lpr_page(request: HttpRequest) -> HttpResponse:
    can_edit = request.user.role in (Role.ADMIN, Role.GESTOR)
    return _page(request, "lpr.html", "lpr", can_edit=can_edit, config={"lprCanEdit": can_edit})
