"""User writes with their audit entries."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.http import HttpRequest
from django.utils.translation import gettext as _
from rest_framework.exceptions import ValidationError

from admin_ctx import audit
from admin_ctx.models import Role, User
from gtvision import events

USER_AUDIT_FIELDS = ("username", "email", "role", "prefeitura_id", "is_active")


def check_user_assignment(actor: User | None, role: str, prefeitura_id: int | None) -> None:
    """Role and prefeitura go together; a gestor assigns only gestor/operador of its own."""
    if actor is not None and not actor.is_platform_admin:
        if role == Role.ADMIN:
            raise ValidationError(
                {"role": [_("A manager can only create managers and operators.")]}
            )
        if prefeitura_id != actor.prefeitura_id:
            raise ValidationError({"prefeitura": [_("This prefeitura does not exist.")]})
    if role == Role.ADMIN and prefeitura_id is not None:
        raise ValidationError(
            {"prefeitura": [_("Platform administrators do not belong to a prefeitura.")]}
        )
    if role != Role.ADMIN and prefeitura_id is None:
        raise ValidationError({"prefeitura": [_("This field is required.")]})


@transaction.atomic
def create_user(
    *, actor: User | None, data: dict[str, Any], request: HttpRequest | None = None
) -> User:
    data = dict(data)
    password = data.pop("password")
    user = User(**data)
    check_user_assignment(actor, user.role, user.prefeitura_id)
    user.set_password(password)
    user.save()
    audit.record(
        "user.create",
        actor=actor,
        request=request,
        target=user,
        details={"username": user.username, "role": user.role},
    )
    return user


@transaction.atomic
def update_user(
    user: User, *, actor: User | None, data: dict[str, Any], request: HttpRequest | None = None
) -> User:
    data = dict(data)
    password = data.pop("password", None)
    before = {f: getattr(user, f) for f in USER_AUDIT_FIELDS}
    for key, value in data.items():
        setattr(user, key, value)
    check_user_assignment(actor, user.role, user.prefeitura_id)
    if password:
        user.set_password(password)
    user.save()
    changed = sorted(f for f in USER_AUDIT_FIELDS if getattr(user, f) != before[f])
    if password:
        changed.append("password")
    audit.record(
        "user.update", actor=actor, request=request, target=user, details={"changed": changed}
    )
    if {"role", "prefeitura_id"} & set(changed):
        # What the user's open sockets were authorized to see changed (password and
        # deactivation are covered by admin_ctx.tokens.revoke_tokens).
        events.publish(events.AccessRevoked(user_id=user.pk, reason="scope"))
    return user


@transaction.atomic
def delete_user(user: User, *, actor: User | None, request: HttpRequest | None = None) -> None:
    audit.record(
        "user.delete",
        actor=actor,
        request=request,
        target=user,
        details={"username": user.username},
    )
    events.publish(events.AccessRevoked(user_id=user.pk, reason="deleted"))
    user.delete()
