from django.contrib import admin

from cidades.admin import TenantAdminMixin
from recordings.models import Clip, Recording


class ReadOnlyTenantAdmin(TenantAdminMixin, admin.ModelAdmin):
    """Sessions and clips change through the API (audited), never by hand."""

    write_roles: set[str] = set()


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
