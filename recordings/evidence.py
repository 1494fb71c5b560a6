"""Evidence locks: a camera's footage in ``[start, end)`` kept while an investigation needs it.

Retention and the disk floor (``recordings.retention``, ``recordings.queries``) never delete a
segment overlapping an active lock (``LOCKED_SEGMENT_SQL``); they report what they kept.
Locks are created by gestores and admins and deleted only by admins, both audited
(``evidence_lock.create|delete``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext as _
from rest_framework.exceptions import PermissionDenied, ValidationError

from admin_ctx import audit
from admin_ctx.models import Role, User
from cidades.models import Camera
from recordings.models import EvidenceLock

LOCK_CREATE_ROLES = {Role.ADMIN, Role.GESTOR}

# SQL condition: the segment aliased ``s`` overlaps an active lock at ``%(now)s``
LOCKED_SEGMENT_SQL = """EXISTS (
    SELECT 1 FROM recordings_evidencelock AS lock
    WHERE lock.camera_id = s.camera_id AND lock.start < s."end" AND lock."end" > s.start
      AND (lock.expires_at IS NULL OR lock.expires_at > %(now)s)
)"""


def _details(lock: EvidenceLock) -> dict[str, Any]:
    return {
        "lock_id": lock.pk,
        "start": lock.start.isoformat(),
        "end": lock.end.isoformat(),
        "reason": lock.reason,
        "expires_at": lock.expires_at.isoformat() if lock.expires_at else None,
    }


@transaction.atomic
def create_lock(
    camera: Camera,
    start: datetime,
    end: datetime,
    reason: str,
    *,
    expires_at: datetime | None = None,
    actor: User | None,
    request: HttpRequest | None = None,
) -> EvidenceLock:
    """Lock the camera's footage of ``[start, end)`` against deletion (gestor, admin)."""
    if actor is not None and actor.role not in LOCK_CREATE_ROLES:
        raise PermissionDenied(_("Only a manager or an administrator can lock evidence."))
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": [_("Give the reason for keeping this footage.")]})
    if end <= start:
        raise ValidationError({"end": [_("End must be after start.")]})
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationError({"expires_at": [_("The expiry must be in the future.")]})
    lock = EvidenceLock.objects.create(
        camera=camera, start=start, end=end, reason=reason, expires_at=expires_at,
        created_by=actor,
    )  # fmt: skip
    audit.record(
        "evidence_lock.create", actor=actor, request=request, target=camera, details=_details(lock)
    )
    return lock


@transaction.atomic
def delete_lock(
    lock: EvidenceLock, *, actor: User | None, request: HttpRequest | None = None
) -> None:
    """Release a lock (platform admin only): retention may then delete that footage."""
    if actor is not None and not actor.is_platform_admin:
        raise PermissionDenied(_("Only a platform administrator can release an evidence lock."))
    details = _details(lock)
    camera = lock.camera
    lock.delete()
    audit.record("evidence_lock.delete", actor=actor, request=request, target=camera,
                 details=details)  # fmt: skip


def locks_overlapping(camera_id: int, start: datetime, end: datetime) -> list[EvidenceLock]:
    """The camera's active locks overlapping ``[start, end)`` (the timeline shows them)."""
    return list(
        EvidenceLock.objects.active()
        .filter(camera_id=camera_id, start__lt=end, end__gt=start)
        .order_by("start")
    )
