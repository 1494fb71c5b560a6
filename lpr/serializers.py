"""LPR API representations and query parameters."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from cidades.models import Prefeitura
from gtvision.api import AwareDateTimeField
from lpr import plates
from lpr.models import Read, WatchlistEntry


class ReadSerializer(serializers.ModelSerializer):
    camera_id = serializers.IntegerField(read_only=True)
    bbox = serializers.ListField(child=serializers.IntegerField(), read_only=True)

    class Meta:
        model = Read
        fields = ["id", "camera_id", "plate", "format", "confidence", "at", "bbox"]
        read_only_fields = fields


def _plate_param(value: str) -> str:
    plate = plates.normalize(value)
    if plate is None:
        raise serializers.ValidationError(
            _("Enter a plate as ABC1D23 (Mercosul) or ABC-1234 (old).")
        )
    return plate


class ReadQuery(serializers.Serializer):
    """``?camera_id=&start=&end=&plate=&similar=`` of ``GET /api/lpr/reads/``."""

    camera_id = serializers.IntegerField(min_value=1, required=False)
    start = AwareDateTimeField(required=False)
    end = AwareDateTimeField(required=False)
    plate = serializers.CharField(required=False, max_length=20)
    similar = serializers.CharField(required=False, max_length=20)

    def validate_plate(self, value: str) -> str:
        return _plate_param(value)

    def validate_similar(self, value: str) -> str:
        return _plate_param(value)

    def validate(self, attrs):
        start, end = attrs.get("start"), attrs.get("end")
        if start is not None and end is not None and end <= start:
            raise serializers.ValidationError({"end": [_("End must be after start.")]})
        return attrs


class WatchlistEntrySerializer(serializers.ModelSerializer):
    prefeitura = serializers.PrimaryKeyRelatedField(
        queryset=Prefeitura.objects.all(), required=False
    )
    plate = serializers.CharField(max_length=20)
    expires_at = AwareDateTimeField(required=False, allow_null=True)

    class Meta:
        model = WatchlistEntry
        fields = ["id", "prefeitura", "plate", "reason", "active", "expires_at"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is not None and request.user.is_authenticated:
            self.fields["prefeitura"].queryset = Prefeitura.objects.for_user(request.user)

    def validate_plate(self, value: str) -> str:
        return _plate_param(value)
