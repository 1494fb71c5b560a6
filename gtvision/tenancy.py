"""Tenant isolation in one place.

Every tenant-owned model uses :class:`TenantQuerySet` and names the lookup to its
prefeitura's id in ``tenant_lookup`` (``"prefeitura_id"``, ``"camera__prefeitura_id"``...);
every API view, WebSocket consumer and media endpoint gets its rows through ``for_user``.
"""

from __future__ import annotations

from typing import Protocol

from django.apps import apps
from django.db import models

# The tenant model, named by its label (like ``AUTH_USER_MODEL``) so the kernel imports no app.
TENANT_MODEL = "cidades.Prefeitura"


class TenantUser(Protocol):
    """What tenancy needs of a user (``admin_ctx.models.User`` provides it)."""

    @property
    def is_authenticated(self) -> bool: ...
    @property
    def is_active(self) -> bool: ...
    @property
    def is_platform_admin(self) -> bool: ...
    @property
    def prefeitura_id(self) -> int | None: ...


class TenantQuerySet(models.QuerySet):
    def for_user(self, user: TenantUser) -> TenantQuerySet:
        """Rows the user may see: all for an admin, only its prefeitura's otherwise."""
        if not user.is_authenticated or not user.is_active:
            return self.none()
        if user.is_platform_admin:
            return self
        if user.prefeitura_id is None:
            return self.none()
        return self.filter(**{self.model.tenant_lookup: user.prefeitura_id})

    def for_prefeitura(self, prefeitura_id: int) -> TenantQuerySet:
        return self.filter(**{self.model.tenant_lookup: prefeitura_id})


def user_can_see_prefeitura(user: TenantUser, prefeitura_id: int | None) -> bool:
    if user.is_platform_admin:
        return True
    return prefeitura_id is not None and prefeitura_id == user.prefeitura_id


def visible_prefeituras(request) -> models.QuerySet:
    """Queryset callable for filters: only prefeituras the requesting user may see.

    An id of another prefeitura is then rejected exactly like an id that does not exist.
    """
    tenant_model = apps.get_model(TENANT_MODEL)
    if request is None:
        return tenant_model.objects.none()
    return tenant_model.objects.for_user(request.user)
