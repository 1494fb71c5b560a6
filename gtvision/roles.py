"""The user roles: one enum shared by the kernel (permissions, admin) and every app.

It lives in the kernel so that ``gtvision.api`` and ``gtvision.admin_base`` need no app;
``admin_ctx.models.Role`` re-exports it (the ``User.role`` field's choices).
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

__all__ = ["Role"]


class Role(models.TextChoices):
    ADMIN = "admin", _("Platform administrator")
    GESTOR = "gestor", _("Manager")
    OPERADOR = "operador", _("Operator")
