from django.urls import path

from admin_ctx.reports import access_page
from gtvision import dashboard, system_status
from lpr.dashboard import lpr_page

urlpatterns = [
    path("dashboard/", dashboard.dashboard, name="dashboard"),
    path("dashboard/mosaic/", dashboard.mosaic, name="dashboard-mosaic"),
    path("dashboard/cameras/<int:pk>/", dashboard.camera_page, name="dashboard-camera"),
    path("dashboard/lpr/", lpr_page, name="dashboard-lpr"),
    path("dashboard/system/", system_status.system_page, name="dashboard-system"),
    path("dashboard/access/", access_page, name="dashboard-access"),
    path("dashboard/prefeitura/", dashboard.choose_prefeitura, name="dashboard-prefeitura"),
    path("dashboard/api/system/", system_status.system_status, name="dashboard-system-status"),
    path("dashboard/api/mosaic/", dashboard.mosaic_layout, name="dashboard-mosaic-layout"),
    path("dashboard/api/events/", dashboard.recent_events, name="dashboard-recent-events"),
]
