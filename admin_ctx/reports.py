"""Access reports for the prefeitura's data-protection officer (LGPD art. 37, 41).

``GET /api/reports/access/?camera_id=&user=&start=&end=``: who watched live (``stream.view``),
played back (``recording.playback``, ``recording.snapshot``) or exported (``clip.create``,
``clip.download``) which camera, when, from where and why, read from the audit log. JSON,
paginated; ``?format=csv`` streams every matching row as CSV. Admin: every prefeitura;
gestor: its own (the tenant helper); operador: 403. ``user`` is a user id or username: the
per-user report ("everything user X saw").
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import generics, permissions, renderers, serializers

from admin_ctx.models import AuditEntry, Role, User
from cidades.models import Camera
from gtvision.api import AwareDateTimeField, RolePermission

ACCESS_ACTIONS = (
    "stream.view",
    "recording.playback",
    "recording.snapshot",
    "clip.create",
    "clip.download",
)
ENTRY_FIELDS = (
    "id", "at", "actor_id", "actor_username", "action", "prefeitura_id", "target_type",
    "target_id", "ip", "details",
)  # fmt: skip
COLUMNS = (
    "at", "user_id", "user", "action", "prefeitura_id", "camera_id", "camera", "period_start",
    "period_end", "clip_id", "reason", "protocol", "ip",
)  # fmt: skip


class AccessReportQuery(serializers.Serializer):
    camera_id = serializers.IntegerField(min_value=1, required=False)
    user = serializers.CharField(
        required=False, max_length=150, help_text="User id or username (per-user report)."
    )
    start = AwareDateTimeField(required=False)
    end = AwareDateTimeField(required=False)

    def validate(self, attrs):
        start, end = attrs.get("start"), attrs.get("end")
        if start is not None and end is not None and end <= start:
            raise serializers.ValidationError({"end": [_("End must be after start.")]})
        return attrs


class AccessRowSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    user_id = serializers.IntegerField(allow_null=True)
    user = serializers.CharField()
    action = serializers.CharField()
    prefeitura_id = serializers.IntegerField(allow_null=True)
    camera_id = serializers.IntegerField(allow_null=True)
    camera = serializers.CharField(allow_null=True)
    period_start = serializers.CharField(allow_null=True)
    period_end = serializers.CharField(allow_null=True)
    clip_id = serializers.IntegerField(allow_null=True)
    reason = serializers.CharField(allow_blank=True)
    protocol = serializers.CharField(allow_blank=True)
    ip = serializers.CharField(allow_null=True)


class CSVRenderer(renderers.BaseRenderer):
    """Selected by ``?format=csv``; the view streams the body itself."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        if isinstance(data, dict) and "detail" in data:
            return str(data["detail"]).encode()
        return b"" if data is None else str(data).encode()


def _camera_id(entry: dict[str, Any]) -> int | None:
    target = entry["target_id"]
    return int(target) if entry["target_type"] == "camera" and target.isdigit() else None


def rows(entries: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Report rows of audit entries (``values()``), camera names in one query."""
    entries = list(entries)
    ids = {camera_id for entry in entries if (camera_id := _camera_id(entry))}
    names = dict(Camera.objects.filter(pk__in=ids).values_list("pk", "name")) if ids else {}
    result = []
    for entry in entries:
        details = entry["details"] if isinstance(entry["details"], dict) else {}
        camera_id = _camera_id(entry)
        clip_id = details.get("clip_id")
        result.append(
            {
                "at": entry["at"],
                "user_id": entry["actor_id"],
                "user": entry["actor_username"],
                "action": entry["action"],
                "prefeitura_id": entry["prefeitura_id"],
                "camera_id": camera_id,
                "camera": names.get(camera_id),
                "period_start": details.get("start"),
                "period_end": details.get("end"),
                "clip_id": clip_id if isinstance(clip_id, int) else None,
                "reason": str(details.get("reason", "")),
                "protocol": str(details.get("protocol", "")),
                "ip": entry["ip"],
            }
        )
    return result


class _Echo:
    def write(self, value: str) -> str:
        return value


def _csv_lines(queryset) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(COLUMNS)
    batch: list[dict[str, Any]] = []
    for entry in queryset.iterator(chunk_size=2000):
        batch.append(entry)
        if len(batch) == 2000:
            yield from (writer.writerow([r[c] for c in COLUMNS]) for r in rows(batch))
            batch = []
    yield from (writer.writerow([r[c] for c in COLUMNS]) for r in rows(batch))


def access_entries(user: User, filters: dict[str, Any], prefeitura_id: int | None = None):
    """The access entries ``user`` may read (``values()`` rows, newest first), filtered by
    ``camera_id``, ``user`` (id or username), ``start``, ``end`` and ``prefeitura_id``."""
    entries = (
        AuditEntry.objects.for_user(user).filter(action__in=ACCESS_ACTIONS).order_by("-at", "-id")
    )
    if prefeitura_id is not None:
        entries = entries.filter(prefeitura_id=prefeitura_id)
    if filters.get("camera_id"):
        entries = entries.filter(target_type="camera", target_id=str(filters["camera_id"]))
    if who := filters.get("user"):
        entries = (
            entries.filter(actor_id=int(who))
            if who.isdigit()
            else entries.filter(actor_username=who)
        )
    if filters.get("start"):
        entries = entries.filter(at__gte=filters["start"])
    if filters.get("end"):
        entries = entries.filter(at__lt=filters["end"])
    return entries.values(*ENTRY_FIELDS)


class AccessReportView(generics.GenericAPIView):
    permission_classes = [permissions.IsAuthenticated, RolePermission]
    read_roles = {Role.ADMIN, Role.GESTOR}
    renderer_classes = [renderers.JSONRenderer, CSVRenderer]
    serializer_class = AccessRowSerializer
    queryset = AuditEntry.objects.all()

    def handle_exception(self, exc):
        """Errors are JSON (the API's error shape), also when ``?format=csv`` was asked."""
        response = super().handle_exception(exc)
        self.request.accepted_renderer = renderers.JSONRenderer()
        self.request.accepted_media_type = "application/json"
        return response

    def filtered(self):
        params = AccessReportQuery(data=self.request.query_params)
        params.is_valid(raise_exception=True)
        return access_entries(self.request.user, params.validated_data)

    @extend_schema(
        tags=["audit"],
        parameters=[AccessReportQuery, OpenApiParameter("format", str, enum=["json", "csv"])],
        responses={
            200: inline_serializer(  # paginated like every list (SPEC §2)
                "PaginatedAccessRowList",
                fields={
                    "count": serializers.IntegerField(),
                    "next": serializers.URLField(allow_null=True),
                    "previous": serializers.URLField(allow_null=True),
                    "results": AccessRowSerializer(many=True),
                },
            ),
            (200, "text/csv"): OpenApiTypes.STR,
            400: OpenApiResponse(description="Bad filter."),
            403: OpenApiResponse(description="Operadores cannot read access reports."),
        },
    )  # fmt: skip
    def get(self, request):
        entries = self.filtered()
        if request.accepted_renderer.format == "csv":
            response = StreamingHttpResponse(_csv_lines(entries), content_type="text/csv")
            response["Content-Disposition"] = 'attachment; filename="gtvision-acessos.csv"'
            return response
        page = self.paginate_queryset(entries)
        return self.get_paginated_response(AccessRowSerializer(rows(page), many=True).data)


# -- the DPO's page in the dashboard -----------------------------------------------------------


class AccessReportForm(forms.Form):
    """The page's filters; times in the user's time zone (the dashboard's)."""

    camera_id = forms.TypedChoiceField(label=_("Camera"), coerce=int, required=False)
    user = forms.CharField(label=_("User"), max_length=150, required=False)
    start = forms.DateTimeField(
        label=_("From"),
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )
    end = forms.DateTimeField(
        label=_("Until"),
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )

    def __init__(self, *args, cameras=(), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["camera_id"].choices = [("", _("All cameras")), *cameras]


ACTION_LABELS = {
    "stream.view": _("watched live"),
    "recording.playback": _("played back"),
    "recording.snapshot": _("saved a recorded frame"),
    "clip.create": _("exported a clip"),
    "clip.download": _("downloaded a clip"),
}
PAGE_SIZE = 50


@login_required
def access_page(request: HttpRequest) -> HttpResponse:
    """Who saw which camera, when and why (gestor: own prefeitura; admin: the chosen one)."""
    from gtvision.dashboard import _page, current_prefeitura  # dashboard imports the apps

    if request.user.role not in (Role.ADMIN, Role.GESTOR):
        raise PermissionDenied
    prefeitura = current_prefeitura(request)
    cameras = Camera.objects.for_user(request.user).filter(prefeitura=prefeitura).order_by("name")
    form = AccessReportForm(request.GET or None, cameras=cameras.values_list("pk", "name"))
    filters = form.cleaned_data if form.is_bound and form.is_valid() else {}
    entries = access_entries(request.user, filters, prefeitura.pk if prefeitura else -1)
    page = Paginator(entries, PAGE_SIZE).get_page(request.GET.get("page"))
    table = rows(page.object_list)
    for row in table:
        row["action_label"] = ACTION_LABELS.get(row["action"], row["action"])
    api_query = {key: value for key, value in (
        ("camera_id", filters.get("camera_id")), ("user", filters.get("user")),
        ("start", filters["start"].isoformat() if filters.get("start") else None),
        ("end", filters["end"].isoformat() if filters.get("end") else None),
    ) if value}  # fmt: skip
    page_query = {key: value for key, value in request.GET.items() if key != "page"}
    return _page(
        request, "access_report.html", "access", form=form, rows=table, page_obj=page,
        csv_url=f"{reverse('access-report')}?{urlencode({**api_query, 'format': 'csv'})}",
        page_query=urlencode(page_query),
    )  # fmt: skip
