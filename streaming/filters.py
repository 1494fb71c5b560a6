import django_filters

from streaming.models import Stream


class StreamFilterSet(django_filters.FilterSet):
    camera_id = django_filters.NumberFilter(field_name="camera_id")

    class Meta:
        model = Stream
        fields = ["status", "camera_id"]
