from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import DefaultRouter

from admin_ctx.reports import AccessReportView
from admin_ctx.views import AuditEntryViewSet, MeView, TokenRefreshView, TokenView, UserViewSet
from cidades.views import CameraViewSet, PrefeituraViewSet
from gtvision import views
from gtvision.api import PublicAPIRootView

router = DefaultRouter()
router.APIRootView = PublicAPIRootView
router.include_format_suffixes = False
router.register("prefeituras", PrefeituraViewSet)
router.register("users", UserViewSet)
router.register("cameras", CameraViewSet)
router.register("audit", AuditEntryViewSet)

api_urlpatterns = [
    path("auth/token/", TokenView.as_view(), name="token_obtain"),
    path("auth/token/refresh/", TokenRefreshView.as_view(), name="token_refresh"),
    path("auth/me/", MeView.as_view(), name="me"),
    path("reports/access/", AccessReportView.as_view(), name="access-report"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path(
        "docs/",
        # The page and its init script apart, no inline script or style (CSP).
        SpectacularSwaggerSplitView.as_view(url_name="schema", template_name="api/swagger_ui.html"),
        name="swagger-ui",
    ),
    path("", include("streaming.urls")),
    path("", include("recordings.urls")),
    path("lpr/", include("lpr.urls")),
    path("", include(router.urls)),
]

urlpatterns = [
    path("", views.LoginView.as_view(), name="login"),
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("", include("gtvision.dashboard_urls")),
    path("health", views.health, name="health"),
    path("metrics", views.prometheus_metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("api/", include(api_urlpatterns)),
    path("i18n/", include("django.conf.urls.i18n")),
]

handler404 = "gtvision.api.not_found"
