from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AdminCtxConfig(AppConfig):
    name = "admin_ctx"
    verbose_name = _("Administration")

    def ready(self) -> None:
        from admin_ctx import signals  # noqa: F401
