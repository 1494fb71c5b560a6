"""Tenant isolation in one place.

Every tenant-owned model uses :class:`TenantQuerySet` and names the lookup to its
prefeitura's id in ``tenant_lookup`` (``"prefeitura_id"``, ``"camera__prefeitura_id"``...);
every API view, WebSocket consumer and media endpoint gets its rows through ``for_user``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import models

if TYPE_CHECKING:
    from admin_ctx.models import User


class TenantQuerySet(models.QuerySet):
    def for_user(self, user: User) -> TenantQuerySet:
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


def user_can_see_prefeitura(user: User, prefeitura_id: int | None) -> bool:
    if user.is_platform_admin:
        return True
    return prefeitura_id is not None and prefeitura_id == user.prefeitura_id


def visible_prefeituras(request):
    """Queryset callable for filters: only prefeituras the requesting user may see.

    An id of another prefeitura is then rejected exactly like an id that does not exist.
    """
    from cidades.models import Prefeitura

    if request is None:
        return Prefeitura.objects.none()
    return Prefeitura.objects.for_user(request.user)
