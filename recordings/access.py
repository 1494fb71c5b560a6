"""Justified access to recorded footage (LGPD art. 6, I and X; art. 37): playback and clip
exports carry a reason, and an optional protocol or process number, where the camera's
prefeitura requires one (``Prefeitura.reason_required_for``); both go into the audit entry."""

from __future__ import annotations

from django.utils.translation import gettext as _
from rest_framework import serializers
from rest_framework.exceptions import ValidationError

from admin_ctx.models import Role, User
from cidades.models import Camera, ReasonPolicy

REASON_MAX_LENGTH = 500
PROTOCOL_MAX_LENGTH = 100


class ReasonFields(serializers.Serializer):
    """``reason`` and ``protocol`` (query parameters or body fields)."""

    reason = serializers.CharField(
        required=False, allow_blank=True, max_length=REASON_MAX_LENGTH,
        help_text="Why the footage is accessed (required where the prefeitura requires it).",
    )  # fmt: skip
    protocol = serializers.CharField(
        required=False, allow_blank=True, max_length=PROTOCOL_MAX_LENGTH,
        help_text="Optional protocol, occurrence or process number.",
    )  # fmt: skip


def reason_required(user: User | None, camera: Camera) -> bool:
    policy = camera.prefeitura.reason_required_for
    if policy == ReasonPolicy.ALL:
        return True
    if policy == ReasonPolicy.OPERADORES:
        return user is None or user.role == Role.OPERADOR
    return False


def justification(
    user: User | None, camera: Camera, reason: str | None, protocol: str | None
) -> dict[str, str]:
    """The audit details ``{"reason", "protocol"}`` (those given); 400 naming ``reason`` when
    the prefeitura requires one from this user and none was given."""
    reason, protocol = (reason or "").strip(), (protocol or "").strip()
    if not reason and reason_required(user, camera):
        raise ValidationError(
            {"reason": [_("Give the reason for accessing this recorded footage.")]}
        )
    if len(reason) > REASON_MAX_LENGTH or len(protocol) > PROTOCOL_MAX_LENGTH:
        raise ValidationError({"reason": [_("The reason or protocol is too long.")]})
    details = {}
    if reason:
        details["reason"] = reason
    if protocol:
        details["protocol"] = protocol
    return details
