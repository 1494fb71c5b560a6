from rest_framework import serializers

from streaming import services
from streaming.models import Stream


class StreamSerializer(serializers.ModelSerializer):
    stream_id = serializers.IntegerField(source="pk", read_only=True)
    camera_id = serializers.IntegerField(read_only=True)

    class Meta:
        model = Stream
        fields = ["stream_id", "camera_id", "status", "started_at", "stopped_at", "last_error"]
        read_only_fields = fields


class StreamStartSerializer(serializers.Serializer):
    camera_id = serializers.IntegerField(min_value=1)


class StreamStartedSerializer(serializers.ModelSerializer):
    stream_id = serializers.IntegerField(source="pk", read_only=True)
    camera_id = serializers.IntegerField(read_only=True)

    class Meta:
        model = Stream
        fields = ["stream_id", "camera_id", "status"]
        read_only_fields = fields


class StreamURLsSerializer(serializers.Serializer):
    hls = serializers.CharField(allow_null=True)
    webrtc = serializers.CharField(allow_null=True)
    rtsp = serializers.CharField(allow_null=True)


class StreamMetricsSerializer(serializers.ModelSerializer):
    uptime_s = serializers.SerializerMethodField()

    class Meta:
        model = Stream
        fields = [
            "fps",
            "bitrate_kbps",
            "bytes_received",
            "uptime_s",
            "readers",
            "last_frame_at",
            "latency_ms",
        ]
        read_only_fields = fields

    def get_uptime_s(self, stream: Stream) -> float | None:
        return services.uptime_s(stream)
