"""Recordings routes, relative to ``/api/`` (``path("api/", include("recordings.urls"))``).

Paths the SPEC writes without a trailing slash answer with and without one.
"""

from django.urls import include, path, re_path
from rest_framework.routers import SimpleRouter

from recordings import views

app_name = "recordings"

router = SimpleRouter()
router.trailing_slash = "/?"
router.register("recordings", views.RecordingViewSet, basename="recording")
router.register("clips", views.ClipViewSet, basename="clip")
router.register("evidence-locks", views.EvidenceLockViewSet, basename="evidence-lock")


urlpatterns = [
    path("recordings/segments/<int:pk>.ts", views.SegmentMediaView.as_view(), name="segment-media"),
    re_path(
        r"^cameras/(?P<pk>\d+)/timeline/?$", views.TimelineView.as_view(), name="camera-timeline"
    ),
    path("cameras/<int:pk>/playback.m3u8", views.PlaybackView.as_view(), name="camera-playback"),
    path("cameras/<int:pk>/snapshot.jpg", views.SnapshotView.as_view(), name="camera-snapshot"),
    path(
        "custody/public-key.pem",
        views.CustodyPublicKeyView.as_view(),
        name="custody-public-key",
    ),
    path("", include(router.urls)),
]
