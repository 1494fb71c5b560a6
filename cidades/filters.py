import django_filters
from django.db.models import Q

from cidades.models import Camera, Prefeitura
from gtvision.tenancy import visible_prefeituras


class PrefeituraFilterSet(django_filters.FilterSet):
    class Meta:
        model = Prefeitura
        fields = ["uf", "plan", "active"]


class CameraFilterSet(django_filters.FilterSet):
    prefeitura = django_filters.ModelChoiceFilter(queryset=visible_prefeituras)
    search = django_filters.CharFilter(method="filter_search")

    class Meta:
        model = Camera
        fields = ["prefeitura", "status", "enabled", "recording_enabled"]

    def filter_search(self, queryset, name, value):
        value = value.strip()
        if not value:
            return queryset
        return queryset.filter(
            Q(name__icontains=value) | Q(code__icontains=value) | Q(address__icontains=value)
        )
