"""Query parameters of the recordings endpoints (validated: times need a UTC offset)."""

from __future__ import annotations

import django_filters
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from gtvision.api import AwareDateTimeField
from recordings.access import ReasonFields
from recordings.models import Clip, EvidenceLock


class _RangeChecks:
    def validate(self, attrs):
        start, end = attrs.get("start"), attrs.get("end")
        if start is not None and end is not None and end <= start:
            raise serializers.ValidationError({"end": [_("End must be after start.")]})
        return attrs


class TimeRangeQuery(_RangeChecks, serializers.Serializer):
    """``?start=&end=``: both required."""

    start = AwareDateTimeField()
    end = AwareDateTimeField()


class PlaybackQuery(TimeRangeQuery, ReasonFields):
    """``?start=&end=`` and, where the prefeitura requires it, ``reason`` (``protocol``)."""


class SegmentSearchQuery(_RangeChecks, serializers.Serializer):
    """``?camera_id=&start=&end=``: segments overlapping ``[start, end)``; each is optional."""

    camera_id = serializers.IntegerField(min_value=1, required=False)
    start = AwareDateTimeField(required=False)
    end = AwareDateTimeField(required=False)


class SnapshotQuery(serializers.Serializer):
    at = AwareDateTimeField(required=False)


class ClipFilterSet(django_filters.FilterSet):
    camera_id = django_filters.NumberFilter(field_name="camera_id")

    class Meta:
        model = Clip
        fields = ["camera_id", "status"]


class EvidenceLockFilterSet(django_filters.FilterSet):
    camera_id = django_filters.NumberFilter(field_name="camera_id")

    class Meta:
        model = EvidenceLock
        fields = ["camera_id"]
