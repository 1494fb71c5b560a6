"""Streams API (paths kept from the original streaming service) and live media serving."""

from __future__ import annotations

import mimetypes
import re

from django.conf import settings
from django.http import FileResponse, Http404, HttpResponse, QueryDict
from django.shortcuts import get_object_or_404
from django.utils.crypto import constant_time_compare
from drf_spectacular.utils import extend_schema
from rest_framework import authentication, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.authentication import JWTAuthentication

from admin_ctx.models import User
from cidades.models import Camera
from gtvision.api import RolePermission
from streaming import engine, services
from streaming.filters import StreamFilterSet
from streaming.models import Stream
from streaming.serializers import (
    StreamMetricsSerializer,
    StreamSerializer,
    StreamStartedSerializer,
    StreamStartSerializer,
    StreamURLsSerializer,
)
from streaming.tokens import read_view_token

LIVE_FILE = re.compile(r"^[A-Za-z0-9_.-]+\.(m3u8|ts|m4s|mp4)$")


class StreamViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Stream.objects.select_related("camera")
    serializer_class = StreamSerializer
    filterset_class = StreamFilterSet
    permission_classes = [permissions.IsAuthenticated, RolePermission]
    write_roles = read_roles = {"admin", "gestor", "operador"}

    def get_queryset(self):
        return self.queryset.for_user(self.request.user)

    @extend_schema(request=StreamStartSerializer, responses={201: StreamStartedSerializer})
    @action(detail=False, methods=["post"])
    def start(self, request):
        body = StreamStartSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        camera = get_object_or_404(
            Camera.objects.for_user(request.user), pk=body.validated_data["camera_id"]
        )
        stream = services.start_stream(camera, actor=request.user, request=request)
        return Response(StreamStartedSerializer(stream).data, status=status.HTTP_201_CREATED)

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
        return Response(engine.stream_urls(stream, request.user, request))

    @extend_schema(responses=StreamMetricsSerializer)
    @action(detail=True, methods=["get"])
    def metrics(self, request, pk=None):
        return Response(StreamMetricsSerializer(self.get_object()).data)


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
        path = engine.live_dir(stream.camera_id) / name
        if name.endswith(".m3u8"):
            try:
                text = path.read_text()
            except FileNotFoundError as exc:
                raise Http404 from exc
            if auth is not None:
                text = _with_token(text, auth["token"])
            response = HttpResponse(text, content_type="application/vnd.apple.mpegurl")
            response["Cache-Control"] = "no-cache"
            return response
        try:
            handle = path.open("rb")
        except FileNotFoundError as exc:
            raise Http404 from exc
        content_type = "video/mp2t" if name.endswith(".ts") else mimetypes.guess_type(name)[0]
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
