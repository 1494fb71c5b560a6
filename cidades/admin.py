from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from admin_ctx.models import Role
from cidades import services
from cidades.models import Camera, Prefeitura
from cidades.validators import SOURCE_URL_MAX_LENGTH, normalize_cnpj, validate_source_url
from gtvision.admin_base import AdminRefused, TenantModelAdmin, domain_errors, user_role
from streaming import services as streaming_services
from streaming.models import Stream


class CnpjField(forms.CharField):
    """A CNPJ typed with its usual punctuation (``12.345.678/0001-95``) is stored bare."""

    def to_python(self, value: Any) -> str:
        return normalize_cnpj(super().to_python(value))


class PrefeituraAdminForm(forms.ModelForm):
    cnpj = CnpjField(label=_("CNPJ"), max_length=18)

    class Meta:
        model = Prefeitura
        fields = [
            "name", "uf", "ibge_code", "cnpj", "plan", "max_cameras", "active",
            "reason_required_for",
        ]  # fmt: skip


@admin.register(Prefeitura)
class PrefeituraAdmin(TenantModelAdmin):
    form = PrefeituraAdminForm
    list_display = ["name", "uf", "ibge_code", "plan", "retention_days", "max_cameras", "active"]
    list_filter = ["uf", "plan", "active"]
    search_fields = ["name", "ibge_code", "cnpj"]

    create_service = staticmethod(services.create_prefeitura)
    update_service = staticmethod(services.update_prefeitura)
    delete_service = staticmethod(services.delete_prefeitura)


class CameraAdminForm(forms.ModelForm):
    source_url = forms.CharField(
        label=_("Source URL (RTSP)"),
        required=False,
        strip=False,
        max_length=SOURCE_URL_MAX_LENGTH,
        widget=forms.PasswordInput(render_value=False),
        validators=[validate_source_url],
        help_text=_("Stored encrypted. Leave blank to keep the current URL."),
    )
    substream_url = forms.CharField(
        label=_("Substream URL (low resolution)"),
        required=False,
        strip=False,
        max_length=SOURCE_URL_MAX_LENGTH,
        widget=forms.PasswordInput(render_value=False),
        validators=[validate_source_url],
        help_text=_(
            "Optional: grids and mosaics play it. Stored encrypted. "
            "Leave blank to keep the current one."
        ),
    )
    remove_substream = forms.BooleanField(label=_("Remove the substream"), required=False)

    class Meta:
        model = Camera
        fields = [
            "prefeitura",
            "name",
            "code",
            "source_url",
            "substream_url",
            "remove_substream",
            "latitude",
            "longitude",
            "address",
            "enabled",
            "recording_enabled",
            "lpr_enabled",
        ]

    def clean(self):
        cleaned = super().clean()
        if self.instance.pk is None and not cleaned.get("source_url"):
            self.add_error("source_url", _("This field is required."))
        if cleaned.get("remove_substream") and cleaned.get("substream_url"):
            self.add_error("remove_substream", _("Either set a substream or remove it."))
        return cleaned


@admin.register(Camera)
class CameraAdmin(TenantModelAdmin):
    form = CameraAdminForm
    write_roles = {Role.ADMIN, Role.GESTOR}
    list_display = [
        "name",
        "code",
        "prefeitura",
        "source_url_masked",
        "substream_url_masked",
        "status",
        "enabled",
        "recording_enabled",
    ]
    list_filter = ["prefeitura", "status", "enabled", "recording_enabled", "lpr_enabled"]
    list_select_related = ["prefeitura"]
    search_fields = ["name", "code", "address"]
    readonly_fields = ["source_url_masked", "substream_url_masked", "status", "created_at"]
    actions = ["start_live_stream", "stop_live_stream"]

    create_service = staticmethod(services.create_camera)
    update_service = staticmethod(services.update_camera)
    delete_service = staticmethod(services.delete_camera)

    def get_autocomplete_fields(self, request: HttpRequest) -> list[str]:
        # A platform admin picks among every prefeitura; a gestor's list holds its own only.
        return ["prefeitura"] if user_role(request) == Role.ADMIN else []

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        initial = super().get_changeform_initial_data(request)
        if user_role(request) != Role.ADMIN:
            initial.setdefault("prefeitura", request.user.prefeitura_id)
        return initial

    def service_data(self, request: HttpRequest, form: forms.Form, change: bool) -> dict:
        data = super().service_data(request, form, change)
        if form.cleaned_data.get("source_url"):
            data["source_url"] = form.cleaned_data["source_url"]
        if form.cleaned_data.get("substream_url"):
            data["substream_url"] = form.cleaned_data["substream_url"]
        elif form.cleaned_data.get("remove_substream"):
            data["substream_url"] = ""
        return data

    def has_stream_permission(self, request: HttpRequest) -> bool:
        return user_role(request) in {Role.ADMIN, Role.GESTOR}

    @admin.action(description=_("Start live stream"), permissions=["stream"])
    def start_live_stream(self, request: HttpRequest, queryset: QuerySet) -> None:
        """An explicit start, like ``POST /api/streams/start``: it runs until stopped."""
        for camera in queryset:
            try:
                with domain_errors():
                    streaming_services.start_stream(camera, actor=request.user, request=request)
            except AdminRefused as refused:
                self.message_user(request, f"{camera}: {refused}", messages.ERROR)
            else:
                self.message_user(
                    request, _("Live stream started: %(camera)s") % {"camera": camera}
                )

    @admin.action(description=_("Stop live stream"), permissions=["stream"])
    def stop_live_stream(self, request: HttpRequest, queryset: QuerySet) -> None:
        for camera in queryset:
            active = Stream.objects.filter(camera=camera, status__in=Stream.ACTIVE)
            if not active.exists():
                self.message_user(
                    request, _("No active live stream: %(camera)s") % {"camera": camera}
                )
                continue
            for stream in active:
                try:
                    with domain_errors():
                        streaming_services.stop_stream(stream, actor=request.user, request=request)
                except AdminRefused as refused:
                    self.message_user(request, f"{camera}: {refused}", messages.ERROR)
                else:
                    self.message_user(
                        request, _("Live stream stopped: %(camera)s") % {"camera": camera}
                    )
