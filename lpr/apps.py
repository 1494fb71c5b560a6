from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class LprConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "lpr"
    verbose_name = _("Plate reading (LPR)")
