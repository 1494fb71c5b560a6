from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AdminCtxConfig(AppConfig):
    name = "admin_ctx"
    verbose_name = _("Administration")

    def ready(self) -> None:
        from django.contrib import admin

        from admin_ctx import signals  # noqa: F401
        from gtvision.login_guard import GuardedAdminAuthenticationForm

        admin.site.login_form = GuardedAdminAuthenticationForm  # throttled like every login
