"""Camera and prefeitura writes with their side effects (audit, events)."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import ProtectedError
from django.http import HttpRequest
from django.utils.translation import gettext as _
from rest_framework.exceptions import PermissionDenied, ValidationError

from admin_ctx import audit
from admin_ctx.models import User
from cidades.models import Camera, Prefeitura
from gtvision import events
from gtvision.drf import Conflict
from gtvision.tenancy import user_can_see_prefeitura

CAMERA_AUDIT_FIELDS = (
    "name",
    "code",
    "address",
    "latitude",
    "longitude",
    "enabled",
    "recording_enabled",
    "lpr_enabled",
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


def _check_scope(actor: User | None, prefeitura: Prefeitura | None) -> None:
    """A gestor's cameras belong to its own prefeitura (an unknown one for anything else)."""
    if actor is None or prefeitura is None:
        return
    if not user_can_see_prefeitura(actor, prefeitura.pk):
        raise ValidationError({"prefeitura": [_("This prefeitura does not exist.")]})


@transaction.atomic
def create_camera(
    *, actor: User | None, data: dict[str, Any], request: HttpRequest | None = None
) -> Camera:
    data = dict(data)
    source_url = data.pop("source_url")
    substream_url = data.pop("substream_url", None)
    _check_scope(actor, data["prefeitura"])
    _check_quota(data["prefeitura"])
    camera = Camera(**data)
    camera.source_url = source_url
    camera.substream_url = substream_url
    camera.save()
    details = {"name": camera.name, "code": camera.code}
    if camera.has_substream:  # the masked form only: the audit log never holds a secret
        details["substream_url_masked"] = camera.substream_url_masked
    audit.record("camera.create", actor=actor, request=request, target=camera, details=details)
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
    # Absent: kept; "" or None: removed; a URL: replaced.
    substream_given = "substream_url" in data
    substream_url = data.pop("substream_url", None) or ""
    new_prefeitura = data.get("prefeitura")
    _check_scope(actor, new_prefeitura)
    if new_prefeitura is not None and new_prefeitura.pk != camera.prefeitura_id:
        _check_quota(new_prefeitura)
    before = {f: getattr(camera, f) for f in CAMERA_AUDIT_FIELDS}
    for key, value in data.items():
        setattr(camera, key, value)
    if source_url is not None and source_url != camera.source_url:
        camera.source_url = source_url
    substream_changed = substream_given and substream_url != camera.substream_url
    if substream_changed:
        camera.substream_url = substream_url
    camera.save()
    changed = sorted(f for f in CAMERA_AUDIT_FIELDS if getattr(camera, f) != before[f])
    if source_url is not None:
        changed.append("source_url")
    details: dict[str, Any] = {"changed": changed}
    if substream_changed:
        changed.append("substream_url")
        details["substream_url_masked"] = camera.substream_url_masked  # never the clear URL
    audit.record("camera.update", actor=actor, request=request, target=camera, details=details)
    _camera_event(camera)
    if camera.prefeitura_id != before["prefeitura_id"]:
        events.publish(
            events.CameraMoved(
                camera_id=camera.pk,
                from_prefeitura_id=before["prefeitura_id"],
                to_prefeitura_id=camera.prefeitura_id,
            )
        )
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


PREFEITURA_AUDIT_FIELDS = (
    "name", "uf", "ibge_code", "cnpj", "plan", "max_cameras", "active", "reason_required_for",
)  # fmt: skip


def _require_platform_admin(actor: User | None) -> None:
    if actor is not None and not actor.is_platform_admin:
        raise PermissionDenied(_("Only a platform administrator can manage prefeituras."))


@transaction.atomic
def create_prefeitura(
    *, actor: User | None, data: dict[str, Any], request: HttpRequest | None = None
) -> Prefeitura:
    _require_platform_admin(actor)
    prefeitura = Prefeitura.objects.create(**data)
    audit.record(
        "prefeitura.create",
        actor=actor,
        request=request,
        prefeitura_id=prefeitura.pk,
        target=prefeitura,
        details={"name": prefeitura.name, "ibge_code": prefeitura.ibge_code},
    )
    return prefeitura


@transaction.atomic
def update_prefeitura(
    prefeitura: Prefeitura,
    *,
    actor: User | None,
    data: dict[str, Any],
    request: HttpRequest | None = None,
) -> Prefeitura:
    _require_platform_admin(actor)
    before = {f: getattr(prefeitura, f) for f in PREFEITURA_AUDIT_FIELDS}
    for key, value in data.items():
        setattr(prefeitura, key, value)
    prefeitura.save()
    changed = sorted(f for f in PREFEITURA_AUDIT_FIELDS if getattr(prefeitura, f) != before[f])
    audit.record(
        "prefeitura.update",
        actor=actor,
        request=request,
        prefeitura_id=prefeitura.pk,
        target=prefeitura,
        details={"changed": changed},
    )
    return prefeitura


@transaction.atomic
def delete_prefeitura(
    prefeitura: Prefeitura, *, actor: User | None, request: HttpRequest | None = None
) -> None:
    _require_platform_admin(actor)
    audit.record(
        "prefeitura.delete",
        actor=actor,
        request=request,
        prefeitura_id=prefeitura.pk,
        target=prefeitura,
        details={"name": prefeitura.name, "ibge_code": prefeitura.ibge_code},
    )
    try:
        with transaction.atomic():
            prefeitura.delete()
    except ProtectedError as exc:
        raise Conflict(_("This prefeitura still has cameras or users; remove them first.")) from exc
