from django import forms
from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from admin_ctx.models import Role
from cidades import services
from cidades.models import Camera, Prefeitura
from cidades.validators import validate_source_url
from gtvision.tenancy import user_can_see_prefeitura


class TenantAdminMixin:
    """Admin rows go through the same tenancy helper as the API; rights follow the role."""

    read_roles = {Role.ADMIN, Role.GESTOR}
    write_roles = {Role.ADMIN}

    def get_queryset(self, request):
        return super().get_queryset(request).for_user(request.user)

    def has_module_permission(self, request):
        return request.user.is_active and request.user.role in self.read_roles

    def has_view_permission(self, request, obj=None):
        return self.has_module_permission(request)

    def has_add_permission(self, request):
        return request.user.is_active and request.user.role in self.write_roles

    def has_change_permission(self, request, obj=None):
        return self.has_add_permission(request)

    def has_delete_permission(self, request, obj=None):
        return self.has_add_permission(request)


@admin.register(Prefeitura)
class PrefeituraAdmin(TenantAdminMixin, admin.ModelAdmin):
    list_display = ["name", "uf", "ibge_code", "plan", "retention_days", "max_cameras", "active"]
    list_filter = ["uf", "plan", "active"]
    search_fields = ["name", "ibge_code", "cnpj"]


class CameraAdminForm(forms.ModelForm):
    source_url = forms.CharField(
        label=_("Source URL (RTSP)"),
        required=False,
        widget=forms.PasswordInput(render_value=False),
        validators=[validate_source_url],
        help_text=_("Stored encrypted. Leave blank to keep the current URL."),
    )

    class Meta:
        model = Camera
        fields = [
            "prefeitura",
            "name",
            "code",
            "source_url",
            "latitude",
            "longitude",
            "address",
            "enabled",
            "recording_enabled",
        ]

    def clean(self):
        cleaned = super().clean()
        if self.instance.pk is None and not cleaned.get("source_url"):
            self.add_error("source_url", _("This field is required."))
        return cleaned


@admin.register(Camera)
class CameraAdmin(TenantAdminMixin, admin.ModelAdmin):
    form = CameraAdminForm
    write_roles = {Role.ADMIN, Role.GESTOR}
    list_display = [
        "name",
        "code",
        "prefeitura",
        "source_url_masked",
        "status",
        "enabled",
        "recording_enabled",
    ]
    list_filter = ["prefeitura", "status", "enabled", "recording_enabled"]
    search_fields = ["name", "code", "address"]
    readonly_fields = ["source_url_masked", "status", "created_at"]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "prefeitura":
            kwargs["queryset"] = Prefeitura.objects.for_user(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        data = {f: form.cleaned_data[f] for f in form.Meta.fields if f in form.cleaned_data}
        if not data.get("source_url"):
            data.pop("source_url", None)
        if not user_can_see_prefeitura(request.user, data["prefeitura"].pk):
            raise PermissionError("prefeitura outside the user's scope")
        if change:
            camera = Camera.objects.get(pk=obj.pk)
            form.instance = services.update_camera(
                camera, actor=request.user, data=data, request=request
            )
        else:
            form.instance = services.create_camera(actor=request.user, data=data, request=request)
        obj.pk = form.instance.pk

    def delete_model(self, request, obj):
        services.delete_camera(obj, actor=request.user, request=request)

    def delete_queryset(self, request, queryset):
        for camera in queryset:
            services.delete_camera(camera, actor=request.user, request=request)
