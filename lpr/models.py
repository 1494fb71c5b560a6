"""Plate reads and watchlists. Both belong to a prefeitura: a read through its camera."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from cidades.models import Camera, Prefeitura
from gtvision.tenancy import TenantQuerySet
from lpr import plates


class PlateFormat(models.TextChoices):
    MERCOSUL = plates.MERCOSUL, _("Mercosul")
    ANTIGA = plates.ANTIGA, _("old (grey)")


class Read(models.Model):
    """One vehicle pass in front of a camera: the voted plate, its box and crop."""

    camera = models.ForeignKey(
        Camera, on_delete=models.CASCADE, related_name="plate_reads", verbose_name=_("camera")
    )
    plate = models.CharField(_("plate"), max_length=7)
    plate_key = models.CharField(_("plate (Mercosul form)"), max_length=7, editable=False)
    format = models.CharField(_("format"), max_length=10, choices=PlateFormat.choices)
    confidence = models.FloatField(_("confidence"))
    at = models.DateTimeField(_("read at"))
    bbox = models.JSONField(_("bounding box"), default=list)  # [x, y, width, height]
    crop_path = models.CharField(_("crop file"), max_length=300, blank=True, editable=False)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    tenant_lookup = "camera__prefeitura_id"
    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = _("plate read")
        verbose_name_plural = _("plate reads")
        indexes = [
            models.Index(fields=["camera", "at"]),
            models.Index(fields=["plate_key", "at"]),
            models.Index(fields=["at"]),
        ]

    def __str__(self) -> str:
        return f"{plates.display(self.plate)} @ {self.camera_id} {self.at:%Y-%m-%d %H:%M:%S}"

    def save(self, *args, **kwargs):
        self.plate_key = plates.plate_key(self.plate)
        super().save(*args, **kwargs)


class WatchlistEntry(models.Model):
    """A plate a prefeitura wants to be alerted about."""

    prefeitura = models.ForeignKey(
        Prefeitura, on_delete=models.CASCADE, related_name="watchlist", verbose_name=_("prefeitura")
    )
    plate = models.CharField(_("plate"), max_length=7)
    plate_key = models.CharField(_("plate (Mercosul form)"), max_length=7, editable=False)
    reason = models.CharField(_("reason"), max_length=300)
    active = models.BooleanField(_("active"), default=True)
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        editable=False,
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    tenant_lookup = "prefeitura_id"
    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["prefeitura_id", "plate", "id"]
        verbose_name = _("watchlist entry")
        verbose_name_plural = _("watchlist")
        indexes = [models.Index(fields=["prefeitura", "active"])]

    def __str__(self) -> str:
        return plates.display(self.plate)

    def save(self, *args, **kwargs):
        self.plate_key = plates.plate_key(self.plate)
        super().save(*args, **kwargs)
