"""The one way to write the LGPD audit log."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.http import HttpRequest

from admin_ctx.models import AuditEntry, User
from gtvision import login_guard


def client_ip(request: HttpRequest | None) -> str | None:
    """The real client address (X-Forwarded-For only from settings.TRUSTED_PROXIES)."""
    return login_guard.client_ip(request)


def record(
    action: str,
    *,
    actor: User | None = None,
    request: HttpRequest | None = None,
    prefeitura_id: int | None = None,
    target: models.Model | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append an audit entry. ``prefeitura_id`` defaults to the target's, then the actor's."""
    if actor is not None and not actor.is_authenticated:
        actor = None
    if prefeitura_id is None and target is not None:
        prefeitura_id = getattr(target, "prefeitura_id", None)
    if prefeitura_id is None and actor is not None:
        prefeitura_id = actor.prefeitura_id
    return AuditEntry.objects.create(
        actor=actor,
        actor_username=actor.get_username() if actor else "",
        action=action,
        prefeitura_id=prefeitura_id,
        target_type=target._meta.model_name if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        ip=client_ip(request),
        details=details or {},
    )
