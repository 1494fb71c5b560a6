"""LPR writes with their side effects: reads (crop file, events, watchlist alerts), watchlist
changes (audited), plate searches (audited) and retention."""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext as _
from rest_framework.exceptions import ValidationError

from admin_ctx import audit
from admin_ctx.models import User
from cidades.models import Camera, Prefeitura
from gtvision import events
from gtvision.tenancy import user_can_see_prefeitura
from lpr import plates
from lpr.models import Read, WatchlistEntry

logger = logging.getLogger(__name__)

WATCHLIST_AUDIT_FIELDS = ("plate", "reason", "active", "expires_at")


def crop_dir() -> Path:
    """Where crops are stored: ``LPR_CROP_DIR`` (env ``GTV_LPR_CROP_DIR``), default
    ``DATA_DIR/lpr``."""
    configured = getattr(settings, "LPR_CROP_DIR", None) or os.environ.get("GTV_LPR_CROP_DIR")
    return Path(configured) if configured else Path(settings.DATA_DIR) / "lpr"


def crop_file(read: Read) -> Path | None:
    """The read's crop on disk, or None (never outside ``crop_dir``)."""
    if not read.crop_path:
        return None
    root = crop_dir().resolve()
    path = (root / read.crop_path).resolve()
    if root not in path.parents:
        return None
    return path


def _write_crop(camera: Camera, at: datetime, crop: bytes) -> str:
    name = f"{at:%H%M%S%f}-{secrets.token_hex(4)}.jpg"
    relative = Path(str(camera.pk)) / at.strftime("%Y%m%d") / name
    path = crop_dir() / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_bytes(crop)
    os.replace(temporary, path)
    return str(relative)


def matching_watchlist(prefeitura_id: int, plate: str, now: datetime) -> QuerySet:
    """Active, unexpired entries of the prefeitura similar to ``plate`` (exact ones first)."""
    key = plates.plate_key(plate)
    similar = Q()
    for pattern in plates.similar_patterns(plate):
        similar |= Q(plate_key__regex=pattern)
    entries = WatchlistEntry.objects.filter(prefeitura_id=prefeitura_id, active=True).filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=now)
    )
    found = list(entries.filter(similar))
    found.sort(key=lambda e: (e.plate_key != key, e.pk))
    return found


@transaction.atomic
def record_read(
    camera: Camera,
    *,
    plate: str,
    confidence: float,
    bbox: tuple[int, int, int, int] | list[int],
    crop: bytes,
    at: datetime | None = None,
) -> Read:
    """Store one pass's read and publish ``lpr.read`` (and ``lpr.alert`` per watchlist hit)."""
    fmt = plates.plate_format(plate)
    if fmt is None:
        raise ValueError(f"not a plate: {plate!r}")
    at = at or timezone.now()
    read = Read.objects.create(
        camera=camera,
        plate=plate,
        format=fmt,
        confidence=float(confidence),
        at=at,
        bbox=[int(v) for v in bbox],
        crop_path=_write_crop(camera, at, crop) if crop else "",
    )
    events.publish(
        events.LprRead(
            camera_id=camera.pk,
            prefeitura_id=camera.prefeitura_id,
            read_id=read.pk,
            plate=read.plate,
            format=read.format,
            confidence=read.confidence,
            bbox=read.bbox,
        )
    )
    for entry in matching_watchlist(camera.prefeitura_id, plate, at):
        events.publish(
            events.LprAlert(
                camera_id=camera.pk,
                prefeitura_id=camera.prefeitura_id,
                plate=read.plate,
                read_id=read.pk,
                watchlist_id=entry.pk,
                reason=entry.reason,
            )
        )
    return read


def audit_search(
    *, actor: User, request: HttpRequest | None, query: dict[str, Any], results: int
) -> None:
    """``lpr.search``: who looked for which plate (LGPD)."""
    audit.record(
        "lpr.search",
        actor=actor,
        request=request,
        details={"query": query, "results": results},
    )


def _plate(value: str) -> str:
    plate = plates.normalize(value or "")
    if plate is None:
        raise ValidationError(
            {"plate": [_("Enter a plate as ABC1D23 (Mercosul) or ABC-1234 (old).")]}
        )
    return plate


def _scope(actor: User | None, prefeitura: Prefeitura | None) -> Prefeitura:
    if prefeitura is None and actor is not None and actor.prefeitura_id is not None:
        prefeitura = actor.prefeitura
    if prefeitura is None:
        raise ValidationError({"prefeitura": [_("This field is required.")]})
    if actor is not None and not user_can_see_prefeitura(actor, prefeitura.pk):
        raise ValidationError({"prefeitura": [_("This prefeitura does not exist.")]})
    return prefeitura


def _audit_value(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


@transaction.atomic
def create_watchlist_entry(
    *, actor: User | None, data: dict[str, Any], request: HttpRequest | None = None
) -> WatchlistEntry:
    data = dict(data)
    entry = WatchlistEntry(
        prefeitura=_scope(actor, data.pop("prefeitura", None)),
        plate=_plate(data.pop("plate", "")),
        created_by=actor if actor is not None and actor.is_authenticated else None,
        **data,
    )
    entry.save()
    audit.record(
        "lpr.watchlist.create",
        actor=actor,
        request=request,
        target=entry,
        details={f: _audit_value(getattr(entry, f)) for f in WATCHLIST_AUDIT_FIELDS},
    )
    return entry


@transaction.atomic
def update_watchlist_entry(
    entry: WatchlistEntry,
    *,
    actor: User | None,
    data: dict[str, Any],
    request: HttpRequest | None = None,
) -> WatchlistEntry:
    data = dict(data)
    if "prefeitura" in data:
        entry.prefeitura = _scope(actor, data.pop("prefeitura"))
    if "plate" in data:
        entry.plate = _plate(data.pop("plate"))
    before = {f: getattr(entry, f) for f in WATCHLIST_AUDIT_FIELDS}
    before["plate"] = WatchlistEntry.objects.get(pk=entry.pk).plate
    for key, value in data.items():
        setattr(entry, key, value)
    entry.save()
    changed = {
        f: [_audit_value(before[f]), _audit_value(getattr(entry, f))]
        for f in WATCHLIST_AUDIT_FIELDS
        if before[f] != getattr(entry, f)
    }
    audit.record(
        "lpr.watchlist.update",
        actor=actor,
        request=request,
        target=entry,
        details={"changed": changed},
    )
    return entry


@transaction.atomic
def delete_watchlist_entry(
    entry: WatchlistEntry, *, actor: User | None, request: HttpRequest | None = None
) -> None:
    audit.record(
        "lpr.watchlist.delete",
        actor=actor,
        request=request,
        target=entry,
        details={"plate": entry.plate, "reason": entry.reason},
    )
    entry.delete()


@dataclass(frozen=True)
class Purge:
    prefeitura_id: int
    cutoff: datetime
    reads: int
    crops: int


def purge_expired(now: datetime | None = None) -> list[Purge]:
    """Delete reads (rows and crop files) older than their prefeitura's retention."""
    now = now or timezone.now()
    result = []
    for prefeitura in Prefeitura.objects.all():
        cutoff = now - timedelta(days=prefeitura.retention_days)
        old = Read.objects.for_prefeitura(prefeitura.pk).filter(at__lt=cutoff).order_by("id")
        reads = crops = 0
        while batch := list(old[:500]):
            for read in batch:
                path = crop_file(read)
                if path is not None:
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
                        crops += 1
            Read.objects.filter(pk__in=[r.pk for r in batch]).delete()
            reads += len(batch)
        if reads:
            result.append(Purge(prefeitura.pk, cutoff, reads, crops))
    for purge in result:
        logger.info(
            "lpr retention: prefeitura %s, %s reads, %s crops before %s",
            purge.prefeitura_id,
            purge.reads,
            purge.crops,
            purge.cutoff.isoformat(),
        )
        audit.record(
            "lpr.retention",
            prefeitura_id=purge.prefeitura_id,
            details={"cutoff": purge.cutoff.isoformat(), "reads": purge.reads},
        )
    return result
