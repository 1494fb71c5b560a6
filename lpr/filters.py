import django_filters

from gtvision.tenancy import visible_prefeituras
from lpr.models import WatchlistEntry


class WatchlistFilterSet(django_filters.FilterSet):
    # Another prefeitura's id is rejected exactly like an id that does not exist.
    prefeitura = django_filters.ModelChoiceFilter(queryset=visible_prefeituras)

    class Meta:
        model = WatchlistEntry
        fields = ["prefeitura", "active"]
