"""Streams API (paths kept from the original streaming service) and live media serving."""

from __future__ import annotations

import mimetypes
import re

from django.conf import settings
from django.http import FileResponse, Http404, HttpResponse, QueryDict
from django.shortcuts import get_object_or_404
from django.utils.crypto import constant_time_compare
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import authentication, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.authentication import JWTAuthentication

from admin_ctx.models import User
from cidades.models import Camera
from gtvision.api import RolePermission
from streaming import engine, livehop, services
from streaming.filters import StreamFilterSet
from streaming.models import RecorderStatus, Stream
from streaming.serializers import (
    RecorderStatusSerializer,
    StreamKeepAliveSerializer,
    StreamMetricsSerializer,
    StreamSerializer,
    StreamStartedSerializer,
    StreamStartSerializer,
    StreamURLsSerializer,
)
from streaming.tokens import read_view_token

LIVE_FILE = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,99}\.(m3u8|ts|m4s|mp4)$")


class StreamViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Stream.objects.select_related("camera")
    serializer_class = StreamSerializer
    filterset_class = StreamFilterSet
    permission_classes = [permissions.IsAuthenticated, RolePermission]
    write_roles = read_roles = {"admin", "gestor", "operador"}

    def get_queryset(self):
        return self.queryset.for_user(self.request.user)

    @extend_schema(
        request=StreamStartSerializer,
        responses={
            201: StreamStartedSerializer,
            409: OpenApiResponse(
                description="The camera already has an active stream of that `profile` "
                "(body: `detail`, `stream_id`, `status`, `on_demand`, `profile`: join it) or is "
                "disabled (`camera_id`). "
                "With `on_demand: true` the conflict also counts as a keep-alive; without it, "
                "an on-demand stream becomes explicit (runs until stopped)."
            ),
        },
        description="Start the camera's live stream. Viewers (the dashboard) send "
        '`{"camera_id": N, "on_demand": true}` and then call `POST /api/streams/{id}/keepalive` '
        "every ~15 s while they watch (fetching the live HLS also counts): the stream stops by "
        "itself `VIEWER_IDLE_SECONDS` (default 45) after the last one. Without `on_demand` "
        "(an explicit start) the stream runs until `POST /api/streams/{id}/stop`. "
        'Grids and mosaics ask for `"profile": "sub"`, the camera\'s low-resolution substream '
        "(its main stream when it has none); the camera page for the main one (the default). "
        "Recording never depends on viewers.",
    )
    @action(detail=False, methods=["post"])
    def start(self, request):
        body = StreamStartSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        camera = get_object_or_404(
            Camera.objects.for_user(request.user), pk=body.validated_data["camera_id"]
        )
        stream = services.start_stream(
            camera,
            actor=request.user,
            request=request,
            on_demand=body.validated_data["on_demand"],
            profile=body.validated_data["profile"],
        )
        return Response(StreamStartedSerializer(stream).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=None,
        responses=StreamKeepAliveSerializer,
        description="A viewer still watches: an on-demand stream's idle stop is postponed "
        "(call it every ~15 s). Harmless on an explicit or stopped stream; a `STOPPED` status "
        "tells the viewer to start it again.",
    )
    @action(detail=True, methods=["post"])
    def keepalive(self, request, pk=None):
        stream = services.keep_alive(self.get_object())
        return Response(StreamKeepAliveSerializer(stream).data)

    @extend_schema(request=None, responses=StreamSerializer)
    @action(detail=True, methods=["post"])
    def stop(self, request, pk=None):
        stream = services.stop_stream(self.get_object(), actor=request.user, request=request)
        return Response(StreamSerializer(stream).data)

    @extend_schema(responses=StreamURLsSerializer)
    @action(detail=True, methods=["get"])
    def urls(self, request, pk=None):
        stream = self.get_object()
        services.audit_view(stream, actor=request.user, request=request)
        services.touch_viewed(stream)
        return Response(engine.stream_urls(stream, request.user, request))

    @extend_schema(responses=StreamMetricsSerializer)
    @action(detail=True, methods=["get"])
    def metrics(self, request, pk=None):
        return Response(StreamMetricsSerializer(self.get_object()).data)


@extend_schema_view(
    list=extend_schema(
        parameters=[OpenApiParameter("camera_id", int, description="Only this camera.")]
    )
)
class RecorderStatusViewSet(viewsets.ReadOnlyModelViewSet):
    """What the media supervisor sees of each recorded camera's pull: `ERROR` with a
    `last_error` when it fails, also for a camera that is recorded without a live stream."""

    queryset = RecorderStatus.objects.all()
    serializer_class = RecorderStatusSerializer
    permission_classes = [permissions.IsAuthenticated, RolePermission]
    read_roles = {"admin", "gestor", "operador"}
    write_roles: set[str] = set()
    lookup_field = "camera_id"

    def get_queryset(self):
        queryset = self.queryset.for_user(self.request.user)
        camera_id = self.request.query_params.get("camera_id")
        if self.action == "list" and camera_id is not None:
            if not camera_id.isdigit():
                raise ValidationError({"camera_id": ["A valid integer is required."]})
            queryset = queryset.filter(camera_id=int(camera_id))
        return queryset


class ViewTokenAuthentication(authentication.BaseAuthentication):
    """``?token=`` issued by ``/urls``: authenticates its user for one camera's media."""

    def authenticate(self, request):
        token = request.query_params.get("token")
        if not token:
            return None
        parsed = read_view_token(token)
        if parsed is None:
            return None
        user = User.objects.filter(pk=parsed[0], is_active=True).first()
        return (user, {"camera_id": parsed[1], "token": token}) if user else None

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'


class LiveMediaView(APIView):
    """The embedded engine's live HLS of a stream, for authorized users only."""

    authentication_classes = [
        ViewTokenAuthentication,
        JWTAuthentication,
        authentication.SessionAuthentication,
    ]
    permission_classes = [permissions.IsAuthenticated]
    schema = None

    def get(self, request, pk: int, name: str):
        stream = get_object_or_404(Stream.objects.for_user(request.user), pk=pk)
        auth = request.auth if isinstance(request.auth, dict) else None
        if auth is not None and auth["camera_id"] != stream.camera_id:
            raise Http404
        if not LIVE_FILE.match(name) or not stream.is_active:
            raise Http404
        path = engine.stream_live_dir(stream) / name
        services.touch_viewed(stream)  # someone watches: an on-demand stream stays up
        if name.endswith(".m3u8"):
            try:
                text = path.read_text()
            except OSError as exc:  # missing, or a name the filesystem refuses
                remote = livehop.fetch(stream, name)  # written by another node (docs/scaling.md)
                if remote is None:
                    raise Http404 from exc
                text = remote.decode()
            if auth is not None:
                text = _with_token(text, auth["token"])
            response = HttpResponse(text, content_type="application/vnd.apple.mpegurl")
            response["Cache-Control"] = "no-cache"
            return response
        content_type = "video/mp2t" if name.endswith(".ts") else mimetypes.guess_type(name)[0]
        try:
            handle = path.open("rb")
        except OSError as exc:  # missing, or a name the filesystem refuses
            remote = livehop.fetch(stream, name)  # written by another node (docs/scaling.md)
            if remote is None:
                raise Http404 from exc
            return HttpResponse(remote, content_type=content_type or "application/octet-stream")
        return FileResponse(handle, content_type=content_type or "application/octet-stream")


def _with_token(playlist: str, token: str) -> str:
    lines = []
    for line in playlist.splitlines():
        if line and not line.startswith("#"):
            line = f"{line}{'&' if '?' in line else '?'}token={token}"
        lines.append(line)
    return "\n".join(lines) + "\n"


class MediaAuthView(APIView):
    """MediaMTX's HTTP auth callback (``authHTTPAddress``): 2xx allows, 401 denies.

    MediaMTX posts ``{"ip","user","password","token","action","path","protocol","id","query"}``.
    Viewers carry the view token from ``/urls`` (in the query, as a bearer token or as the
    RTSP password); the control API and metrics need the API account; the recorder reads
    with the internal account.
    """

    authentication_classes: list = []
    permission_classes: list = []
    schema = None

    def post(self, request):
        data = request.data if isinstance(request.data, dict) else {}
        action = str(data.get("action", ""))
        user, password = str(data.get("user") or ""), str(data.get("password") or "")
        if action in ("api", "metrics", "pprof"):
            allowed = _secret_matches(user, password, settings.MEDIAMTX_API_USER,
                                      settings.MEDIAMTX_API_PASSWORD)  # fmt: skip
        elif action in ("read", "playback"):
            allowed = _secret_matches(
                user, password, settings.MEDIAMTX_INTERNAL_USER, settings.MEDIAMTX_INTERNAL_PASSWORD
            ) or _viewer_allowed(data, password)
        else:  # publish: cameras are pulled, nobody pushes
            allowed = False
        return HttpResponse(status=200 if allowed else 401)


def _secret_matches(user: str, password: str, expected_user: str, expected_password: str) -> bool:
    if not expected_password:
        return False
    return constant_time_compare(user, expected_user) & constant_time_compare(
        password, expected_password
    )


def _viewer_allowed(data: dict, password: str) -> bool:
    from streaming.mediamtx.integration import path_for

    query = QueryDict(str(data.get("query") or ""))
    candidates = [query.get("token"), data.get("token"), password]
    for token in filter(None, candidates):
        parsed = read_view_token(str(token))
        if parsed is None:
            continue
        user = User.objects.filter(pk=parsed[0], is_active=True).first()
        camera = Camera.objects.for_user(user).filter(pk=parsed[1]).first() if user else None
        if camera is not None and path_for(camera) == str(data.get("path", "")):
            return True
    return False
