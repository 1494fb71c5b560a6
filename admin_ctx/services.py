"""User writes with their audit entries."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.http import HttpRequest

from admin_ctx import audit
from admin_ctx.models import User

USER_AUDIT_FIELDS = ("username", "email", "role", "prefeitura_id", "is_active")


@transaction.atomic
def create_user(
    *, actor: User | None, data: dict[str, Any], request: HttpRequest | None = None
) -> User:
    data = dict(data)
    password = data.pop("password")
    user = User(**data)
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
    if password:
        user.set_password(password)
    user.save()
    changed = sorted(f for f in USER_AUDIT_FIELDS if getattr(user, f) != before[f])
    if password:
        changed.append("password")
    audit.record(
        "user.update", actor=actor, request=request, target=user, details={"changed": changed}
    )
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
    user.delete()
