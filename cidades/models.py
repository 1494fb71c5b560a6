from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from cidades.validators import (
    UF_CHOICES,
    mask_source_url,
    validate_cnpj,
    validate_ibge_code,
)
from gtvision import crypto
from gtvision.tenancy import TenantQuerySet


class ReasonPolicy(models.TextChoices):
    """Who must justify access to recorded footage (playback, clip export): LGPD art. 6."""

    NONE = "none", _("nobody")
    OPERADORES = "operadores", _("operators")
    ALL = "all", _("everyone")


class Prefeitura(models.Model):
    class Plan(models.TextChoices):
        BASICO = "basico", _("Basic")
        PADRAO = "padrao", _("Standard")
        PREMIUM = "premium", _("Premium")

    name = models.CharField(_("name"), max_length=200)
    uf = models.CharField(_("state (UF)"), max_length=2, choices=UF_CHOICES)
    ibge_code = models.CharField(
        _("IBGE code"), max_length=7, unique=True, validators=[validate_ibge_code]
    )
    cnpj = models.CharField(_("CNPJ"), max_length=14, unique=True, validators=[validate_cnpj])
    plan = models.CharField(_("plan"), max_length=10, choices=Plan.choices, default=Plan.BASICO)
    max_cameras = models.PositiveIntegerField(_("camera quota"), default=50)
    active = models.BooleanField(_("active"), default=True)
    reason_required_for = models.CharField(
        _("access reason required for"),
        max_length=10,
        choices=ReasonPolicy.choices,
        default=ReasonPolicy.OPERADORES,
        help_text=_("Who must give a reason to play back recorded footage or export a clip."),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    tenant_lookup = "id"
    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        verbose_name = _("prefeitura")
        verbose_name_plural = _("prefeituras")

    def __str__(self) -> str:
        return f"{self.name}/{self.uf}"

    @property
    def retention_days(self) -> int:
        return settings.PLAN_RETENTION_DAYS[self.plan]


class Camera(models.Model):
    class Status(models.TextChoices):
        ONLINE = "online", _("online")
        OFFLINE = "offline", _("offline")
        ERROR = "error", _("error")
        DISABLED = "disabled", _("disabled")

    prefeitura = models.ForeignKey(
        Prefeitura, on_delete=models.PROTECT, related_name="cameras", verbose_name=_("prefeitura")
    )
    name = models.CharField(_("name"), max_length=200)
    code = models.SlugField(_("code"), max_length=64)
    source_url_encrypted = models.TextField(_("source URL (encrypted)"), editable=False)
    source_url_masked = models.CharField(_("source URL"), max_length=2100, editable=False)
    # Optional low-resolution second stream (grids and mosaics play it): same secrecy.
    substream_url_encrypted = models.TextField(
        _("substream URL (encrypted)"), blank=True, default="", editable=False
    )
    substream_url_masked = models.CharField(
        _("substream URL"), max_length=2100, blank=True, default="", editable=False
    )
    latitude = models.DecimalField(
        _("latitude"), max_digits=9, decimal_places=6, null=True, blank=True
    )
    longitude = models.DecimalField(
        _("longitude"), max_digits=9, decimal_places=6, null=True, blank=True
    )
    address = models.CharField(_("address"), max_length=300, blank=True)
    enabled = models.BooleanField(_("enabled"), default=True)
    recording_enabled = models.BooleanField(_("recording enabled"), default=True)
    lpr_enabled = models.BooleanField(_("plate reading (LPR) enabled"), default=False)
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.OFFLINE, editable=False
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    tenant_lookup = "prefeitura_id"
    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["prefeitura_id", "name", "id"]
        verbose_name = _("camera")
        verbose_name_plural = _("cameras")
        constraints = [
            models.UniqueConstraint(
                fields=["prefeitura", "code"], name="camera_code_per_prefeitura"
            )
        ]
        indexes = [models.Index(fields=["prefeitura", "status"])]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"

    def save(self, *args, **kwargs):
        # A disabled camera is always shown as such; re-enabling starts it as offline.
        if not self.enabled:
            self.status = self.Status.DISABLED
        elif self.status == self.Status.DISABLED:
            self.status = self.Status.OFFLINE
        super().save(*args, **kwargs)

    @property
    def source_url(self) -> str:
        """The camera URL in clear, credentials included: for the media plane only."""
        return crypto.decrypt(self.source_url_encrypted) if self.source_url_encrypted else ""

    @source_url.setter
    def source_url(self, value: str) -> None:
        self.source_url_encrypted = crypto.encrypt(value)
        self.source_url_masked = mask_source_url(value)

    @property
    def substream_url(self) -> str:
        """The low-resolution substream URL in clear ("" when none): media plane only."""
        if not self.substream_url_encrypted:
            return ""
        return crypto.decrypt(self.substream_url_encrypted)

    @substream_url.setter
    def substream_url(self, value: str | None) -> None:
        """Set it (encrypted, masked copy kept); "" or None removes the substream."""
        self.substream_url_encrypted = crypto.encrypt(value) if value else ""
        self.substream_url_masked = mask_source_url(value) if value else ""

    @property
    def has_substream(self) -> bool:
        return bool(self.substream_url_encrypted)
