"""Shared API building blocks: pagination, errors, permissions, the tenant-scoped viewset."""

from __future__ import annotations

from datetime import UTC, datetime

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views import defaults
from rest_framework import permissions, routers, serializers, viewsets
from rest_framework.response import Response

from gtvision.drf import Conflict, Pagination, public_url
from gtvision.roles import Role

__all__ = [
    "Conflict",
    "Pagination",
    "AwareDateTimeField",
    "RolePermission",
    "TenantModelViewSet",
    "PublicAPIRootView",
    "not_found",
]


class PublicAPIRootView(routers.APIRootView):
    """``GET /api/``: the resources' URLs, under ``PUBLIC_URL`` (never the request's Host)."""

    def get(self, request, *args, **kwargs) -> Response:
        links = {}
        for key, url_name in self.api_root_dict.items():
            try:
                links[key] = public_url(reverse(url_name))
            except NoReverseMatch:
                continue
        return Response(links)


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """``handler404``: a JSON body under ``/api/`` (the API's error shape), else Django's page."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": gettext("Not found.")}, status=404)
    return defaults.page_not_found(request, exception)


class AwareDateTimeField(serializers.DateTimeField):
    """ISO 8601 input that must carry a UTC offset; naive times are a 400, and so are times
    outside 1970-2100 (no footage there; and a year like 0241 would come back in the local
    zone's historical offset, -03:06:28, which is not an RFC 3339 time)."""

    default_error_messages = {
        "naive": _("Datetime must include a UTC offset (e.g. 2026-01-31T12:00:00-03:00)."),
        "range": _("Datetime must be between 1970 and 2100."),
    }
    earliest = datetime(1970, 1, 1, tzinfo=UTC)
    latest = datetime(2100, 1, 1, tzinfo=UTC)

    def enforce_timezone(self, value):
        if value.tzinfo is None or value.utcoffset() is None:
            self.fail("naive")
        return super().enforce_timezone(value)

    def to_internal_value(self, value):
        parsed = super().to_internal_value(value)
        if not self.earliest <= parsed < self.latest:
            self.fail("range")
        return parsed


class RolePermission(permissions.BasePermission):
    """Roles per view: ``read_roles`` for safe methods, ``write_roles`` for the others.

    On detail routes the role is checked against the object, after the tenant-scoped
    lookup, so an object of another prefeitura is a 404 before it can be a 403.
    """

    def _allowed(self, request, view) -> bool:
        roles = (
            getattr(view, "read_roles", set(Role.values))
            if request.method in permissions.SAFE_METHODS
            else getattr(view, "write_roles", {Role.ADMIN})
        )
        return request.user.role in roles

    def has_permission(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        if (getattr(view, "lookup_url_kwarg", None) or view.lookup_field) in view.kwargs:
            return True
        return self._allowed(request, view)

    def has_object_permission(self, request, view, obj) -> bool:
        return self._allowed(request, view)


class TenantModelViewSet(viewsets.ModelViewSet):
    """A model viewset whose rows always come through ``Model.objects.for_user``.

    Writes with side effects (audit, events) name their service functions in
    ``create_service``/``update_service``/``delete_service`` (``staticmethod``s taking
    ``actor``, ``request`` and ``data``); without them the plain ORM save is used.
    """

    permission_classes = [permissions.IsAuthenticated, RolePermission]
    read_roles: set[str] = set(Role.values)
    write_roles: set[str] = {Role.ADMIN}
    create_service = update_service = delete_service = None

    def get_queryset(self):
        return self.queryset.for_user(self.request.user)

    def perform_create(self, serializer):
        if self.create_service is None:
            return super().perform_create(serializer)
        serializer.instance = self.create_service(
            actor=self.request.user, data=serializer.validated_data, request=self.request
        )

    def perform_update(self, serializer):
        if self.update_service is None:
            return super().perform_update(serializer)
        serializer.instance = self.update_service(
            serializer.instance,
            actor=self.request.user,
            data=serializer.validated_data,
            request=self.request,
        )

    def perform_destroy(self, instance):
        if self.delete_service is None:
            return super().perform_destroy(instance)
        self.delete_service(instance, actor=self.request.user, request=self.request)


class TenantReadOnlyViewSet(viewsets.ReadOnlyModelViewSet):
    permission_classes = [permissions.IsAuthenticated, RolePermission]
    read_roles: set[str] = set(Role.values)

    def get_queryset(self):
        return self.queryset.for_user(self.request.user)
