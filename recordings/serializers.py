from django.utils.translation import gettext as _
from rest_framework import serializers

from gtvision.api import AwareDateTimeField
from recordings.models import Clip, EvidenceLock, Recording, Segment


class RecordingSerializer(serializers.ModelSerializer):
    recording_id = serializers.IntegerField(source="pk", read_only=True)
    camera_id = serializers.IntegerField(read_only=True)
    segment_count = serializers.IntegerField(source="stats.segment_count", read_only=True)
    size_bytes = serializers.IntegerField(source="stats.size_bytes", read_only=True)
    duration_s = serializers.FloatField(source="stats.duration_s", read_only=True)

    class Meta:
        model = Recording
        fields = [
            "recording_id",
            "camera_id",
            "status",
            "started_at",
            "ended_at",
            "segment_count",
            "size_bytes",
            "duration_s",
        ]
        read_only_fields = fields


class CameraCommandSerializer(serializers.Serializer):
    """Body of ``POST /api/recordings/start|stop``."""

    camera_id = serializers.IntegerField(min_value=1)


class SegmentSerializer(serializers.ModelSerializer):
    camera_id = serializers.IntegerField(read_only=True)
    duration_s = serializers.FloatField(read_only=True)

    class Meta:
        model = Segment
        fields = ["id", "camera_id", "start", "end", "duration_s", "size_bytes"]
        read_only_fields = fields


class ClipSerializer(serializers.ModelSerializer):
    camera_id = serializers.IntegerField(min_value=1)
    start = AwareDateTimeField()
    end = AwareDateTimeField()
    created_by = serializers.CharField(
        source="created_by.username", read_only=True, default=None, allow_null=True
    )

    class Meta:
        model = Clip
        fields = [
            "id",
            "camera_id",
            "start",
            "end",
            "status",
            "progress",
            "size_bytes",
            "duration_s",
            "sha256",
            "error",
            "reason",
            "protocol",
            "created_by",
            "created_at",
            "finished_at",
            "expires_at",
        ]
        read_only_fields = [
            "status",
            "progress",
            "size_bytes",
            "duration_s",
            "sha256",
            "error",
            "created_at",
            "finished_at",
            "expires_at",
        ]

    def validate(self, attrs):
        if attrs["end"] <= attrs["start"]:
            raise serializers.ValidationError({"end": [_("End must be after start.")]})
        return attrs


class SpanSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()


class EvidenceLockSerializer(serializers.ModelSerializer):
    camera_id = serializers.IntegerField(min_value=1)
    start = AwareDateTimeField()
    end = AwareDateTimeField()
    expires_at = AwareDateTimeField(required=False, allow_null=True)
    created_by = serializers.CharField(
        source="created_by.username", read_only=True, default=None, allow_null=True
    )

    class Meta:
        model = EvidenceLock
        fields = [
            "id", "camera_id", "start", "end", "reason", "expires_at", "created_by", "created_at",
        ]  # fmt: skip
        read_only_fields = ["created_at"]

    def validate(self, attrs):
        if attrs["end"] <= attrs["start"]:
            raise serializers.ValidationError({"end": [_("End must be after start.")]})
        return attrs


class LockSpanSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    reason = serializers.CharField()
    expires_at = serializers.DateTimeField(allow_null=True)


class TimelineSerializer(serializers.Serializer):
    spans = SpanSerializer(many=True)
    locks = LockSpanSerializer(many=True, required=False)
