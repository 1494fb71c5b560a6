"""``/api/lpr/``: plate reads (read-only, searchable, audited) and the watchlist."""

from __future__ import annotations

from django.db.models import Q
from django.http import FileResponse, Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.decorators import action

from admin_ctx.models import Role
from gtvision.api import TenantModelViewSet, TenantReadOnlyViewSet
from lpr import plates, services
from lpr.filters import WatchlistFilterSet
from lpr.models import Read, WatchlistEntry
from lpr.serializers import ReadQuery, ReadSerializer, WatchlistEntrySerializer
from recordings.views import FirstRendererNegotiation

READ_PARAMETERS = [
    OpenApiParameter("camera_id", int),
    OpenApiParameter("start", OpenApiTypes.DATETIME, description="ISO 8601 with UTC offset"),
    OpenApiParameter("end", OpenApiTypes.DATETIME, description="ISO 8601 with UTC offset"),
    OpenApiParameter(
        "plate", str, description="exact plate (case, dashes, spaces and old/Mercosul ignored)"
    ),
    OpenApiParameter("similar", str, description="plates within one character of this one"),
]


class ReadViewSet(TenantReadOnlyViewSet):
    queryset = Read.objects.all()
    serializer_class = ReadSerializer
    filter_backends: list = []  # the query is validated by ReadQuery

    def get_queryset(self):
        queryset = super().get_queryset().select_related(None)
        if self.action != "list":
            return queryset
        query = ReadQuery(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        self.search_query = {
            k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in params.items()
        }
        if "camera_id" in params:
            queryset = queryset.filter(camera_id=params["camera_id"])
        if "start" in params:
            queryset = queryset.filter(at__gte=params["start"])
        if "end" in params:
            queryset = queryset.filter(at__lt=params["end"])
        if "plate" in params:
            queryset = queryset.filter(plate_key=plates.plate_key(params["plate"]))
        if "similar" in params:
            similar = Q()
            for pattern in plates.similar_patterns(params["similar"]):
                similar |= Q(plate_key__regex=pattern)
            queryset = queryset.filter(similar)
        return queryset

    @extend_schema(parameters=READ_PARAMETERS)
    def list(self, request, *args, **kwargs):
        response = super().list(request, *args, **kwargs)
        query = getattr(self, "search_query", {})
        if "plate" in query or "similar" in query:
            services.audit_search(
                actor=request.user,
                request=request,
                query=query,
                results=response.data.get("count", 0) if isinstance(response.data, dict) else 0,
            )
        return response

    @extend_schema(
        responses={(200, "image/jpeg"): OpenApiResponse(OpenApiTypes.BINARY, "the plate crop")}
    )
    @action(
        detail=True,
        methods=["get"],
        url_path="crop.jpg",
        content_negotiation_class=FirstRendererNegotiation,
    )
    def crop(self, request, pk=None):
        read = self.get_object()
        path = services.crop_file(read)
        if path is None or not path.is_file():
            raise Http404
        response = FileResponse(path.open("rb"), content_type="image/jpeg")
        response["Cache-Control"] = "private, no-store"
        return response


class WatchlistViewSet(TenantModelViewSet):
    queryset = WatchlistEntry.objects.all()
    serializer_class = WatchlistEntrySerializer
    filterset_class = WatchlistFilterSet
    read_roles = set(Role.values)
    write_roles = {Role.ADMIN, Role.GESTOR}

    create_service = staticmethod(services.create_watchlist_entry)
    update_service = staticmethod(services.update_watchlist_entry)
    delete_service = staticmethod(services.delete_watchlist_entry)
