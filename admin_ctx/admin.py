from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.utils.translation import gettext_lazy as _

from admin_ctx.models import AuditEntry, User


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    list_display = ["username", "email", "role", "prefeitura", "is_active", "last_login"]
    list_filter = ["role", "prefeitura", "is_active"]
    fieldsets = [
        (None, {"fields": ["username", "password"]}),
        (_("Profile"), {"fields": ["first_name", "last_name", "email"]}),
        (_("Access"), {"fields": ["role", "prefeitura", "is_active"]}),
        (_("Dates"), {"fields": ["last_login", "date_joined"]}),
    ]
    add_fieldsets = [
        (None, {"fields": ["username", "password1", "password2", "role", "prefeitura"]}),
    ]
    readonly_fields = ["last_login", "date_joined"]

    def get_queryset(self, request):
        return super().get_queryset(request).for_user(request.user)

    def has_module_permission(self, request):
        return request.user.is_platform_admin

    def has_view_permission(self, request, obj=None):
        return request.user.is_platform_admin

    def has_add_permission(self, request):
        return request.user.is_platform_admin

    def has_change_permission(self, request, obj=None):
        return request.user.is_platform_admin

    def has_delete_permission(self, request, obj=None):
        return request.user.is_platform_admin


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = [
        "at",
        "actor_username",
        "action",
        "prefeitura",
        "target_type",
        "target_id",
        "ip",
    ]
    list_filter = ["action", "prefeitura"]
    search_fields = ["actor_username", "action", "target_id"]
    date_hierarchy = "at"

    def get_queryset(self, request):
        return super().get_queryset(request).for_user(request.user)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
