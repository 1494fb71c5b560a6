from django.urls import path
from rest_framework.routers import SimpleRouter

from streaming.views import LiveMediaView, MediaAuthView, RecorderStatusViewSet, StreamViewSet


class OptionalSlashRouter(SimpleRouter):
    """The streams API keeps the original service's paths, which have no trailing slash."""

    include_format_suffixes = False

    def __init__(self) -> None:
        super().__init__()
        self.trailing_slash = "/?"


router = OptionalSlashRouter()
router.register("streams", StreamViewSet)
router.register("recorders", RecorderStatusViewSet)

urlpatterns = [
    path("streams/<int:pk>/hls/<str:name>", LiveMediaView.as_view(), name="stream-hls"),
    path("media/auth", MediaAuthView.as_view(), name="media-auth"),
    *router.urls,
]
