from django.contrib.auth.models import AbstractUser, UserManager
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from gtvision.roles import Role  # the kernel's enum; ``admin_ctx.models.Role`` stays importable
from gtvision.tenancy import TenantQuerySet


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
    # JWTs, media and playback tokens issued before this instant are refused: set when the
    # password changes, the account is deactivated or the user logs out (admin_ctx.tokens).
    tokens_valid_after = models.DateTimeField(_("tokens valid after"), null=True, blank=True)

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
        reason = self._revocation_reason(kwargs.get("update_fields"))
        if reason:
            self.tokens_valid_after = timezone.now()
            if kwargs.get("update_fields") is not None:
                kwargs["update_fields"] = {*kwargs["update_fields"], "tokens_valid_after"}
        super().save(*args, **kwargs)
        if reason:
            from admin_ctx.tokens import revoke_tokens

            revoke_tokens(self, reason, bump=False)

    def _revocation_reason(self, update_fields) -> str | None:
        """``"password"`` or ``"deactivated"`` when this save must revoke the user's tokens.

        Every path that saves a user (API, admin, ``changepassword``, ``set_password``) comes
        here, so none of them can keep old tokens alive.
        """
        if self._state.adding or self.pk is None:
            return None
        if update_fields is not None and not {"password", "is_active"} & set(update_fields):
            return None
        before = User.objects.filter(pk=self.pk).values("password", "is_active").first()
        if before is None:
            return None
        if before["password"] != self.password:
            return "password"
        if before["is_active"] and not self.is_active:
            return "deactivated"
        return None


class AuditEntry(models.Model):
    """One LGPD audit record. Append-only: a database trigger refuses UPDATE and DELETE."""

    # set by ``admin_ctx.audit.record`` before the entry's hash is computed over it
    at = models.DateTimeField(_("when"), default=timezone.now, editable=False, db_index=True)
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
    # Hash chain (admin_ctx.audit): ``chain`` is the prefeitura's id, 0 for the platform's
    # entries; ``seq`` counts from 1 in each chain; ``hash`` is the SHA-256 of the entry's
    # canonical serialization, which includes ``prev_hash``, the hash of entry ``seq - 1``.
    chain = models.PositiveIntegerField(_("chain"), null=True, editable=False)
    seq = models.PositiveBigIntegerField(_("sequence"), null=True, editable=False)
    prev_hash = models.CharField(_("previous hash"), max_length=64, blank=True, editable=False)
    hash = models.CharField(_("hash"), max_length=64, blank=True, editable=False)

    tenant_lookup = "prefeitura_id"
    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = _("audit entry")
        verbose_name_plural = _("audit log")
        indexes = [models.Index(fields=["prefeitura", "-at"])]
        constraints = [
            models.UniqueConstraint(fields=["chain", "seq"], name="one_audit_entry_per_chain_seq")
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor_username or '-'} {self.action}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValueError("audit entries are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("audit entries are append-only")


class AuditChainHead(models.Model):
    """The last entry of one audit chain: locked (``FOR UPDATE``) by every append to the
    chain, so concurrent writers never fork it, and compared by ``verify_audit`` with the
    chain's last entry, so entries deleted from its end are noticed too."""

    chain = models.PositiveIntegerField(_("chain"), primary_key=True)
    seq = models.PositiveBigIntegerField(_("sequence"), default=0)
    hash = models.CharField(_("hash"), max_length=64, blank=True)

    class Meta:
        verbose_name = _("audit chain head")
        verbose_name_plural = _("audit chain heads")

    def __str__(self) -> str:
        return f"audit chain {self.chain} at {self.seq}"


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


class LoginFailureCounter(models.Model):
    """Failed logins of one username or client address in the current window.

    Kept in PostgreSQL so every web process sees the same counts (gtvision.login_guard).
    """

    key = models.CharField(_("key"), max_length=200, primary_key=True)
    failures = models.PositiveIntegerField(_("failures"), default=0)
    window_start = models.DateTimeField(_("window start"), db_index=True)

    class Meta:
        verbose_name = _("login failure counter")
        verbose_name_plural = _("login failure counters")

    def __str__(self) -> str:
        return f"{self.key}: {self.failures}"
