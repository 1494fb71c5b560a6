from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CidadesConfig(AppConfig):
    name = "cidades"
    verbose_name = _("Cities and cameras")
