from rest_framework import serializers

from streaming import services
from streaming.models import RecorderStatus, Stream


class StreamSerializer(serializers.ModelSerializer):
    stream_id = serializers.IntegerField(source="pk", read_only=True)
    camera_id = serializers.IntegerField(read_only=True)
    node = serializers.SerializerMethodField(
        help_text="The recorder node pulling the camera (null when none does)."
    )

    class Meta:
        model = Stream
        fields = [
            "stream_id",
            "camera_id",
            "profile",
            "status",
            "started_at",
            "stopped_at",
            "last_error",
            "on_demand",
            "last_viewed_at",
            "node",
        ]
        read_only_fields = fields

    def get_node(self, stream: Stream) -> str | None:
        """One query for a whole page of a list, one for a single stream."""
        from streaming.leases import node_of_cameras

        if not stream.is_active:
            return None
        nodes = self.context.get("_nodes")
        if nodes is None:
            listing = isinstance(self.parent, serializers.ListSerializer)
            page = self.parent.instance if listing else None
            ids = [s.camera_id for s in page] if page is not None else [stream.camera_id]
            nodes = node_of_cameras(ids)
            if page is not None:
                self.context["_nodes"] = nodes
        return nodes.get(stream.camera_id)


class StreamStartSerializer(serializers.Serializer):
    camera_id = serializers.IntegerField(min_value=1)
    on_demand = serializers.BooleanField(
        default=False,
        help_text="true: opened for a viewer, who keeps it alive with POST "
        "/api/streams/{id}/keepalive; it stops by itself VIEWER_IDLE_SECONDS (default 45) "
        "after the last keep-alive. false (default): runs until stopped.",
    )
    profile = serializers.ChoiceField(
        choices=Stream.Profile.choices,
        default=Stream.Profile.MAIN,
        help_text='"main" (default): the camera\'s main stream (the camera page). "sub": its '
        "low-resolution substream, for grids and mosaics; a camera without one plays its main "
        "stream. One active stream per camera and profile.",
    )


class StreamKeepAliveSerializer(serializers.ModelSerializer):
    stream_id = serializers.IntegerField(source="pk", read_only=True)
    idle_timeout_s = serializers.SerializerMethodField()

    class Meta:
        model = Stream
        fields = ["stream_id", "status", "on_demand", "last_viewed_at", "idle_timeout_s"]
        read_only_fields = fields

    def get_idle_timeout_s(self, stream: Stream) -> int | None:
        """Seconds without a keep-alive before it stops (null: it runs until stopped)."""
        from django.conf import settings

        return settings.VIEWER_IDLE_SECONDS if stream.on_demand else None


class RecorderStatusSerializer(serializers.ModelSerializer):
    camera_id = serializers.IntegerField(read_only=True)

    class Meta:
        model = RecorderStatus
        fields = ["camera_id", "status", "last_error", "updated_at"]
        read_only_fields = fields


class StreamStartedSerializer(serializers.ModelSerializer):
    stream_id = serializers.IntegerField(source="pk", read_only=True)
    camera_id = serializers.IntegerField(read_only=True)

    class Meta:
        model = Stream
        fields = ["stream_id", "camera_id", "profile", "status", "on_demand"]
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
