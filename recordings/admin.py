from django.contrib import admin

from gtvision.admin_base import TenantModelAdmin
from recordings.models import Clip, Recording


class ReadOnlyTenantAdmin(TenantModelAdmin):
    """Sessions and clips change through the API (audited), never by hand: no services here,
    so no add, change or delete."""


@admin.register(Recording)
class RecordingAdmin(ReadOnlyTenantAdmin):
    list_display = ["id", "camera", "status", "started_at", "ended_at"]
    list_filter = ["status"]
    list_select_related = ["camera"]


@admin.register(Clip)
class ClipAdmin(ReadOnlyTenantAdmin):
    list_display = ["id", "camera", "start", "end", "status", "size_bytes", "created_by"]
    list_filter = ["status"]
    list_select_related = ["camera", "created_by"]
