import django_filters

from admin_ctx.models import AuditEntry, User
from gtvision.tenancy import visible_prefeituras


class UserFilterSet(django_filters.FilterSet):
    prefeitura = django_filters.ModelChoiceFilter(queryset=visible_prefeituras)

    class Meta:
        model = User
        fields = ["role", "prefeitura", "is_active"]


class AuditEntryFilterSet(django_filters.FilterSet):
    prefeitura = django_filters.ModelChoiceFilter(queryset=visible_prefeituras)
    since = django_filters.IsoDateTimeFilter(field_name="at", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="at", lookup_expr="lt")
    actor = django_filters.CharFilter(field_name="actor_username")

    class Meta:
        model = AuditEntry
        fields = ["action", "prefeitura", "target_type", "target_id"]
