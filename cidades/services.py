"""Camera and prefeitura writes with their side effects (audit, events)."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.http import HttpRequest
from django.utils.translation import gettext as _
from rest_framework.exceptions import ValidationError

from admin_ctx import audit
from admin_ctx.models import User
from cidades.models import Camera, Prefeitura
from gtvision import events

CAMERA_AUDIT_FIELDS = (
    "name",
    "code",
    "address",
    "latitude",
    "longitude",
    "enabled",
    "recording_enabled",
    "prefeitura_id",
)


def _camera_event(camera: Camera, *, deleted: bool = False) -> None:
    events.publish(
        events.CameraUpdated(
            camera_id=camera.pk,
            prefeitura_id=camera.prefeitura_id,
            status=camera.status,
            name=camera.name,
            deleted=deleted,
        )
    )


def _check_quota(prefeitura: Prefeitura) -> None:
    # Lock the prefeitura so two concurrent creations cannot both pass the quota.
    locked = Prefeitura.objects.select_for_update().get(pk=prefeitura.pk)
    if Camera.objects.filter(prefeitura=locked).count() >= locked.max_cameras:
        raise ValidationError(
            {
                "prefeitura": [
                    _("Camera quota reached: this prefeitura may have at most %(n)d cameras.")
                    % {"n": locked.max_cameras}
                ]
            }
        )


@transaction.atomic
def create_camera(
    *, actor: User | None, data: dict[str, Any], request: HttpRequest | None = None
) -> Camera:
    data = dict(data)
    source_url = data.pop("source_url")
    _check_quota(data["prefeitura"])
    camera = Camera(**data)
    camera.source_url = source_url
    camera.save()
    audit.record(
        "camera.create",
        actor=actor,
        request=request,
        target=camera,
        details={"name": camera.name, "code": camera.code},
    )
    _camera_event(camera)
    return camera


@transaction.atomic
def update_camera(
    camera: Camera,
    *,
    actor: User | None,
    data: dict[str, Any],
    request: HttpRequest | None = None,
) -> Camera:
    data = dict(data)
    source_url = data.pop("source_url", None)
    new_prefeitura = data.get("prefeitura")
    if new_prefeitura is not None and new_prefeitura.pk != camera.prefeitura_id:
        _check_quota(new_prefeitura)
    before = {f: getattr(camera, f) for f in CAMERA_AUDIT_FIELDS}
    for key, value in data.items():
        setattr(camera, key, value)
    if source_url is not None and source_url != camera.source_url:
        camera.source_url = source_url
    camera.save()
    changed = sorted(f for f in CAMERA_AUDIT_FIELDS if getattr(camera, f) != before[f])
    if source_url is not None:
        changed.append("source_url")
    audit.record(
        "camera.update", actor=actor, request=request, target=camera, details={"changed": changed}
    )
    _camera_event(camera)
    return camera


@transaction.atomic
def delete_camera(
    camera: Camera, *, actor: User | None, request: HttpRequest | None = None
) -> None:
    audit.record(
        "camera.delete",
        actor=actor,
        request=request,
        target=camera,
        details={"name": camera.name, "code": camera.code},
    )
    _camera_event(camera, deleted=True)
    camera.delete()
