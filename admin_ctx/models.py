from django.contrib.auth.models import AbstractUser, UserManager
from django.db import models
from django.utils.translation import gettext_lazy as _

from gtvision.tenancy import TenantQuerySet


class Role(models.TextChoices):
    ADMIN = "admin", _("Platform administrator")
    GESTOR = "gestor", _("Manager")
    OPERADOR = "operador", _("Operator")


class TenantUserManager(UserManager.from_queryset(TenantQuerySet)):
    def create_superuser(self, username, email=None, password=None, **extra_fields):
        extra_fields.setdefault("role", Role.ADMIN)
        return super().create_superuser(username, email, password, **extra_fields)


class User(AbstractUser):
    role = models.CharField(_("role"), max_length=10, choices=Role.choices, default=Role.OPERADOR)
    prefeitura = models.ForeignKey(
        "cidades.Prefeitura",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="users",
        verbose_name=_("prefeitura"),
    )

    tenant_lookup = "prefeitura_id"
    objects = TenantUserManager()

    class Meta:
        ordering = ["username"]
        verbose_name = _("user")
        verbose_name_plural = _("users")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(role="admin", prefeitura__isnull=True)
                | (~models.Q(role="admin") & models.Q(prefeitura__isnull=False)),
                name="user_role_matches_prefeitura",
            )
        ]

    @property
    def is_platform_admin(self) -> bool:
        return self.is_active and self.role == Role.ADMIN

    @property
    def is_gestor(self) -> bool:
        return self.role == Role.GESTOR

    def save(self, *args, **kwargs):
        # Django admin access follows the role: admins and gestores operate the admin site.
        self.is_staff = self.role in (Role.ADMIN, Role.GESTOR)
        self.is_superuser = self.role == Role.ADMIN
        super().save(*args, **kwargs)


class AuditEntry(models.Model):
    """One LGPD audit record. Append-only: a database trigger refuses UPDATE and DELETE."""

    at = models.DateTimeField(_("when"), auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        User,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        related_name="+",
        verbose_name=_("actor"),
    )
    actor_username = models.CharField(_("actor username"), max_length=150, blank=True)
    action = models.CharField(_("action"), max_length=40, db_index=True)
    prefeitura = models.ForeignKey(
        "cidades.Prefeitura",
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        related_name="+",
        verbose_name=_("prefeitura"),
    )
    target_type = models.CharField(_("target type"), max_length=40, blank=True)
    target_id = models.CharField(_("target id"), max_length=64, blank=True)
    ip = models.GenericIPAddressField(_("IP address"), null=True)
    details = models.JSONField(_("details"), default=dict, blank=True)

    tenant_lookup = "prefeitura_id"
    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = _("audit entry")
        verbose_name_plural = _("audit log")
        indexes = [models.Index(fields=["prefeitura", "-at"])]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor_username or '-'} {self.action}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValueError("audit entries are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("audit entries are append-only")


class MosaicLayout(models.Model):
    """A user's live mosaic in the dashboard: grid size and the camera of each slot.

    One row per user and prefeitura (an admin keeps one per prefeitura it looks at).
    ``slots`` always holds 9 entries, row by row, each a camera id or null; a 2x2 mosaic
    shows the first 4, so switching sizes keeps the user's choices.
    """

    SLOTS = 9

    class Size(models.IntegerChoices):
        TWO = 2, "2x2"
        THREE = 3, "3x3"

    user = models.ForeignKey(
        User, on_delete=models.CASCADE, related_name="mosaic_layouts", verbose_name=_("user")
    )
    prefeitura = models.ForeignKey(
        "cidades.Prefeitura",
        on_delete=models.CASCADE,
        related_name="+",
        verbose_name=_("prefeitura"),
    )
    size = models.PositiveSmallIntegerField(_("size"), choices=Size.choices, default=Size.TWO)
    slots = models.JSONField(_("slots"), default=list, blank=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("mosaic layout")
        verbose_name_plural = _("mosaic layouts")
        constraints = [
            models.UniqueConstraint(fields=["user", "prefeitura"], name="one_mosaic_per_user")
        ]

    def __str__(self) -> str:
        return f"mosaic {self.size}x{self.size} of {self.user_id} in {self.prefeitura_id}"
