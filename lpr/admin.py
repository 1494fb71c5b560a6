from django.contrib import admin

from gtvision.admin_base import TenantModelAdmin
from lpr.models import Read


@admin.register(Read)
class ReadAdmin(TenantModelAdmin):
    """Reads are made by the LPR worker only: the admin lists them, read-only."""

    list_display = ["plate", "format", "camera", "confidence", "at"]
    list_filter = ["format", "camera"]
    search_fields = ["plate"]
    list_select_related = ["camera"]
