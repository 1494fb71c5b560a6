"""Recordings API: sessions, search, timeline, playback, snapshots, clips, recorded media."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import BigIntegerField, Func
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import authentication, exceptions, mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.response import Response
from rest_framework.views import APIView

from admin_ctx.models import Role, User
from cidades.models import Camera
from gtvision import crypto
from gtvision.api import Conflict, RolePermission
from recordings import evidence, media, queries, segment_io, services, storage
from recordings.filters import (
    ClipFilterSet,
    EvidenceLockFilterSet,
    PlaybackQuery,
    SegmentSearchQuery,
    SnapshotQuery,
    TimeRangeQuery,
)
from recordings.http import ranged_file_response
from recordings.models import Clip, EvidenceLock, Recording, Segment
from recordings.playlist import vod_playlist
from recordings.serializers import (
    CameraCommandSerializer,
    ClipSerializer,
    EvidenceLockSerializer,
    RecordingSerializer,
    SegmentSerializer,
    TimelineSerializer,
)
from recordings.tokens import PlaybackGrant, make_playback_token, read_playback_token, revoked

logger = logging.getLogger(__name__)
ALL_ROLES = set(Role.values)
RECORDING_CONTROL_ROLES = {Role.ADMIN, Role.GESTOR}
LAST_FRAME_MARGIN_S = 0.25  # seek this far before a segment's end for its last frame


class StorageUnavailable(exceptions.APIException):
    """503: the storage tier holding the recording cannot be reached now."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = _("The recording storage cannot be reached now; try again shortly.")
    default_code = "storage_unavailable"


@contextmanager
def segment_errors(missing: str) -> Iterator[None]:
    """A segment that cannot be read: 404 with ``missing`` when it is gone, 503 when its
    tier is unreachable or it cannot be copied now (``recordings.segment_io``)."""
    try:
        yield
    except segment_io.SegmentMissing as exc:
        logger.warning("%s", exc)
        raise exceptions.NotFound(missing) from exc
    except segment_io.SegmentReadError as exc:
        logger.warning("%s", exc)
        raise StorageUnavailable from exc


class FirstRendererNegotiation(BaseContentNegotiation):
    """Media endpoints answer whatever a player's ``Accept`` says (errors as JSON)."""

    def select_parser(self, request, parsers):
        return parsers[0]

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class EpochMicroseconds(Func):
    """A timestamp as integer microseconds since the epoch: psycopg loads integers in C, while
    Django's time-zone-aware timestamp loader runs in Python (~10 us a value)."""

    template = "(EXTRACT(EPOCH FROM %(expressions)s) * 1000000)::bigint"
    output_field = BigIntegerField()


SEGMENT_COLUMNS = {
    "start_us": EpochMicroseconds("start"),
    "end_us": EpochMicroseconds("end"),
}
SEGMENT_FIELDS = ("id", "camera_id", "start_us", "end_us", "size_bytes")


UNIX_EPOCH = datetime(1970, 1, 1)
OFFSET_BUCKET_US = 900 * 1_000_000  # UTC offsets change on quarter hours


def segment_rows(rows) -> list[dict]:
    """``SegmentSerializer``'s output for ``SEGMENT_FIELDS`` tuples, built directly: a page of
    500 segments took ~20 ms in per-field serializer calls and model instances.

    Times are formatted as DRF's ``DateTimeField`` does with ``DATETIME_FORMAT="iso-8601"``
    (the current time zone, ``Z`` for UTC). The zone's offset is looked up once per quarter
    hour of the page instead of once per value."""
    tz = timezone.get_current_timezone()
    offsets: dict[int, tuple[timedelta, str]] = {}

    def time(us: int) -> str:
        bucket = us // OFFSET_BUCKET_US
        if bucket not in offsets:
            aware = datetime.fromtimestamp(bucket * OFFSET_BUCKET_US // 1_000_000, tz)
            suffix = aware.isoformat()[19:]
            offsets[bucket] = (aware.utcoffset(), "Z" if suffix == "+00:00" else suffix)
        offset, suffix = offsets[bucket]
        return (UNIX_EPOCH + timedelta(microseconds=us) + offset).isoformat() + suffix

    return [
        {"id": pk, "camera_id": camera_id, "start": time(start), "end": time(end),
         "duration_s": round((end - start) / 1_000_000, 3), "size_bytes": size_bytes}
        for pk, camera_id, start, end, size_bytes in rows
    ]  # fmt: skip


def visible_camera(request, pk: int) -> Camera:
    return get_object_or_404(Camera.objects.for_user(request.user), pk=pk)


def query(serializer_class, request) -> dict:
    serializer = serializer_class(data=request.query_params)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class RecordingViewSet(mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = Recording.objects.all()
    serializer_class = RecordingSerializer
    permission_classes = [permissions.IsAuthenticated, RolePermission]
    read_roles = write_roles = ALL_ROLES  # start/stop check the role after the camera
    lookup_value_regex = r"\d+"

    def get_queryset(self):
        return self.queryset.for_user(self.request.user)

    def _command_camera(self, request) -> Camera:
        body = CameraCommandSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        camera = visible_camera(request, body.validated_data["camera_id"])
        if request.user.role not in RECORDING_CONTROL_ROLES:
            raise exceptions.PermissionDenied
        return camera

    @extend_schema(request=CameraCommandSerializer, responses={201: RecordingSerializer})
    @action(detail=False, methods=["post"])
    def start(self, request):
        camera = self._command_camera(request)
        recording = services.start_recording(camera, actor=request.user, request=request)
        return Response(RecordingSerializer(recording).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=CameraCommandSerializer, responses=RecordingSerializer)
    @action(detail=False, methods=["post"])
    def stop(self, request):
        camera = self._command_camera(request)
        recording = services.stop_recording(camera, actor=request.user, request=request)
        return Response(RecordingSerializer(recording).data)

    @extend_schema(parameters=[SegmentSearchQuery], responses=SegmentSerializer(many=True))
    @action(detail=False, methods=["get"], serializer_class=SegmentSerializer)
    def search(self, request):
        params = query(SegmentSearchQuery, request)
        segments = Segment.objects.for_user(request.user)
        if "camera_id" in params:
            segments = segments.filter(camera=visible_camera(request, params["camera_id"]))
        start, end = params.get("start"), params.get("end")
        if start and end:
            segments = segments.overlapping(start, end)
        elif start:
            segments = segments.filter(end__gt=start)
        elif end:
            segments = segments.filter(start__lt=end)
        rows = (
            segments.order_by("start", "camera_id")
            .annotate(**SEGMENT_COLUMNS)
            .values_list(*SEGMENT_FIELDS)
        )
        return self.get_paginated_response(segment_rows(self.paginate_queryset(rows)))


class ClipViewSet(
    mixins.CreateModelMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    queryset = Clip.objects.select_related("camera", "created_by")
    serializer_class = ClipSerializer
    filterset_class = ClipFilterSet
    permission_classes = [permissions.IsAuthenticated, RolePermission]
    read_roles = write_roles = ALL_ROLES  # operadores export clips
    content_negotiation_class = FirstRendererNegotiation
    lookup_value_regex = r"\d+"

    def get_queryset(self):
        return self.queryset.for_user(self.request.user)

    @extend_schema(responses={202: ClipSerializer})
    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        camera = visible_camera(request, data["camera_id"])
        clip = services.create_clip(
            camera,
            data["start"],
            data["end"],
            actor=request.user,
            request=request,
            reason=data.get("reason"),
            protocol=data.get("protocol"),
        )
        return Response(self.get_serializer(clip).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses={(200, "video/mp4"): OpenApiTypes.BINARY, 206: OpenApiTypes.BINARY})
    @action(detail=True, methods=["get"])
    def download(self, request, pk=None):
        clip = self.get_object()
        if clip.status != Clip.Status.DONE:
            raise Conflict(_("This clip is not ready."), status=clip.status)
        path = storage.clip_path(clip.pk)
        stamp = clip.start.strftime("%Y%m%dT%H%M%S")
        name = f"gtvision-{clip.camera.code}-{stamp}-clip{clip.pk}.mp4"
        response = ranged_file_response(request, path, "video/mp4", filename=name)
        services.audit_clip_download(clip, actor=request.user, request=request)
        return response

    @extend_schema(
        responses={
            (200, "application/json"): OpenApiTypes.OBJECT,
            409: OpenApiResponse(description="The clip is not DONE: no manifest yet."),
        },
        description="The clip's chain-of-custody manifest, signed with the platform's Ed25519 "
        "key (`/api/custody/public-key.pem`); see docs/lgpd.md.",
    )
    @action(detail=True, methods=["get"])
    def manifest(self, request, pk=None):
        clip = self.get_object()
        if clip.status != Clip.Status.DONE or not clip.custody_manifest:
            raise Conflict(_("This clip has no custody manifest yet."), status=clip.status)
        response = HttpResponse(clip.custody_manifest, content_type="application/json")
        response["Content-Disposition"] = (
            f'attachment; filename="gtvision-clip{clip.pk}-manifest.json"'
        )
        return response


class CustodyPublicKeyView(APIView):
    """The platform's Ed25519 public key, which verifies clips' custody manifests (public)."""

    authentication_classes: list = []
    permission_classes = [permissions.AllowAny]
    content_negotiation_class = FirstRendererNegotiation

    @extend_schema(
        auth=[],
        responses={(200, "application/x-pem-file"): OpenApiTypes.STR},
        description="Ed25519 public key (PEM) that verifies `GET /api/clips/{id}/manifest`.",
    )
    def get(self, request):
        response = HttpResponse(crypto.public_key_pem(), content_type="application/x-pem-file")
        response["Content-Disposition"] = 'inline; filename="gtvision-custody-public-key.pem"'
        return response


class EvidenceLockViewSet(
    mixins.CreateModelMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Evidence locks: list (any role of the prefeitura), create (gestor, admin), delete (admin);
    retention and the disk floor never delete locked footage."""

    queryset = EvidenceLock.objects.select_related("created_by")
    serializer_class = EvidenceLockSerializer
    filterset_class = EvidenceLockFilterSet
    permission_classes = [permissions.IsAuthenticated, RolePermission]
    read_roles = ALL_ROLES
    write_roles = RECORDING_CONTROL_ROLES  # delete: the service allows admins only
    lookup_value_regex = r"\d+"

    def get_queryset(self):
        return self.queryset.for_user(self.request.user)

    def perform_create(self, serializer):
        data = serializer.validated_data
        camera = visible_camera(self.request, data["camera_id"])
        serializer.instance = evidence.create_lock(
            camera, data["start"], data["end"], data["reason"],
            expires_at=data.get("expires_at"), actor=self.request.user, request=self.request,
        )  # fmt: skip

    def perform_destroy(self, instance):
        evidence.delete_lock(instance, actor=self.request.user, request=self.request)


class CameraRecordingView(APIView):
    """Base of the per-camera recording endpoints: any role of the camera's prefeitura."""

    permission_classes = [permissions.IsAuthenticated]
    content_negotiation_class = FirstRendererNegotiation


class TimelineView(CameraRecordingView):
    @extend_schema(parameters=[TimeRangeQuery], responses=TimelineSerializer)
    def get(self, request, pk: int):
        camera = visible_camera(request, pk)
        params = query(TimeRangeQuery, request)
        spans = queries.timeline_spans(camera.pk, params["start"], params["end"])
        locks = evidence.locks_overlapping(camera.pk, params["start"], params["end"])
        data = {"spans": [{"start": start, "end": end} for start, end in spans], "locks": locks}
        return Response(TimelineSerializer(data).data)


class PlaybackView(CameraRecordingView):
    @extend_schema(
        parameters=[PlaybackQuery],
        responses={
            (200, "application/vnd.apple.mpegurl"): OpenApiTypes.STR,
            400: OpenApiResponse(description="Bad range, or a required `reason` is missing."),
            404: OpenApiResponse(description="Nothing recorded in the range."),
        },
    )
    def get(self, request, pk: int):
        camera = visible_camera(request, pk)
        params = query(PlaybackQuery, request)
        start, end = params["start"], params["end"]
        limit = settings.PLAYBACK_MAX_SECONDS
        if (end - start).total_seconds() > limit:
            message = _("A playlist covers at most %(n)d seconds.") % {"n": limit}
            raise exceptions.ValidationError({"end": [message]})
        justified = services.playback_justification(
            camera, actor=request.user, reason=params.get("reason"), protocol=params.get("protocol")
        )
        segments = list(
            Segment.objects.filter(camera=camera).overlapping(start, end).order_by("start")
        )
        if not segments:
            raise exceptions.NotFound(_("Nothing was recorded in this period."))
        token = make_playback_token(request.user.pk, camera.pk, start, end)
        entries = [
            (segment, f"{reverse('recordings:segment-media', args=[segment.pk])}?token={token}")
            for segment in segments
        ]
        services.audit_playback(
            camera, start, end, actor=request.user, request=request, justified=justified
        )
        response = HttpResponse(vod_playlist(entries), content_type="application/vnd.apple.mpegurl")
        response["Cache-Control"] = "private, no-store"
        return response


def nearest_frame(camera: Camera, at: datetime | None) -> tuple[Segment, float] | None:
    """The segment holding the recorded frame nearest ``at`` (latest without), and its offset."""
    segments = Segment.objects.filter(camera=camera)
    if at is None:
        latest = segments.order_by("-start").first()
        return (latest, latest.duration_s - LAST_FRAME_MARGIN_S) if latest else None
    before = segments.filter(start__lte=at).order_by("-start").first()
    if before is not None and before.end > at:
        offset = (at - before.start).total_seconds()
        return before, min(offset, before.duration_s - LAST_FRAME_MARGIN_S)
    after = segments.filter(start__gt=at).order_by("start").first()
    if before is None and after is None:
        return None
    if after is None or (before is not None and at - before.end <= after.start - at):
        return before, before.duration_s - LAST_FRAME_MARGIN_S
    return after, 0.0


class SnapshotView(CameraRecordingView):
    @extend_schema(
        parameters=[SnapshotQuery],
        responses={
            (200, "image/jpeg"): OpenApiTypes.BINARY,
            404: OpenApiResponse(),
            503: OpenApiResponse(description="The storage tier of that recording is unreachable."),
        },
    )
    def get(self, request, pk: int):
        camera = visible_camera(request, pk)
        at = query(SnapshotQuery, request).get("at")
        found = nearest_frame(camera, at)
        if found is None:
            raise exceptions.NotFound(_("Nothing was recorded by this camera."))
        segment, offset = found
        unreadable = _("No frame could be read from the recording.")
        try:
            with (
                segment_errors(unreadable),
                segment_io.local_copy([segment]) as [path],
            ):
                jpeg = media.snapshot(path, offset)
        except media.MediaError as exc:  # a damaged file: no frame there, not a server fault
            raise exceptions.NotFound(unreadable) from exc
        frame_at = segment.start + timedelta(seconds=max(offset, 0.0))
        services.audit_playback(
            camera, frame_at, frame_at, actor=request.user, request=request, kind="snapshot"
        )
        response = HttpResponse(jpeg, content_type="image/jpeg")
        response["Cache-Control"] = "private, no-store"
        return response


class PlaybackTokenAuthentication(authentication.BaseAuthentication):
    """``?token=`` from a playback playlist: its user, for one camera's recorded media in the
    playlist's time range, until it expires or the user logs out or changes password."""

    def authenticate(self, request):
        grant = read_playback_token(request.query_params.get("token", ""))
        if grant is None:
            return None
        user = User.objects.filter(pk=grant.user_id, is_active=True).first()
        if user is None or revoked(grant, user):
            return None
        return user, grant

    def authenticate_header(self, request):
        return "Token"


class SegmentMediaView(APIView):
    """One recorded MPEG-TS segment, for the holder of a playlist's token (audited there)."""

    authentication_classes = [PlaybackTokenAuthentication]
    permission_classes = [permissions.IsAuthenticated]
    content_negotiation_class = FirstRendererNegotiation
    schema = None

    def get(self, request, pk: int):
        segment = get_object_or_404(Segment.objects.for_user(request.user), pk=pk)
        grant = request.auth if isinstance(request.auth, PlaybackGrant) else None
        if grant is None or not grant.covers(segment.camera_id, segment.start, segment.end):
            raise exceptions.NotFound
        with segment_errors(_("This recorded segment is no longer available.")):
            return segment_io.segment_response(request, segment, "video/mp2t")
