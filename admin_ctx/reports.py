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

from django.http import StreamingHttpResponse
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import generics, permissions, renderers, serializers

from admin_ctx.models import AuditEntry, Role
from cidades.models import Camera
from gtvision.api import AwareDateTimeField, RolePermission

ACCESS_ACTIONS = (
    "stream.view",
    "recording.playback",
    "recording.snapshot",
    "clip.create",
    "clip.download",
)
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


class AccessReportView(generics.GenericAPIView):
    permission_classes = [permissions.IsAuthenticated, RolePermission]
    read_roles = {Role.ADMIN, Role.GESTOR}
    renderer_classes = [renderers.JSONRenderer, CSVRenderer]
    serializer_class = AccessRowSerializer
    queryset = AuditEntry.objects.all()

    def filtered(self):
        params = AccessReportQuery(data=self.request.query_params)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        entries = (
            AuditEntry.objects.for_user(self.request.user)
            .filter(action__in=ACCESS_ACTIONS)
            .order_by("-at", "-id")
        )
        if "camera_id" in data:
            entries = entries.filter(target_type="camera", target_id=str(data["camera_id"]))
        if "user" in data:
            user = data["user"]
            entries = (
                entries.filter(actor_id=int(user))
                if user.isdigit()
                else entries.filter(actor_username=user)
            )
        if "start" in data:
            entries = entries.filter(at__gte=data["start"])
        if "end" in data:
            entries = entries.filter(at__lt=data["end"])
        fields = ("id", "at", "actor_id", "actor_username", "action", "prefeitura_id",
                  "target_type", "target_id", "ip", "details")  # fmt: skip
        return entries.values(*fields)

    def handle_exception(self, exc):
        """Errors are JSON (the API's error shape), also when ``?format=csv`` was asked."""
        response = super().handle_exception(exc)
        self.request.accepted_renderer = renderers.JSONRenderer()
        self.request.accepted_media_type = "application/json"
        return response

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
