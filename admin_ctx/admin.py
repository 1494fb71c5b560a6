from contextvars import ContextVar
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import SetPasswordMixin, UserCreationForm
from django.contrib.auth.models import Group
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils.translation import gettext_lazy as _
from rest_framework_simplejwt.token_blacklist.admin import (
    BlacklistedTokenAdmin,
    OutstandingTokenAdmin,
)
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from admin_ctx import services
from admin_ctx.models import AuditEntry, Role, User
from gtvision.admin_base import (
    AdminRefused,
    TenantModelAdmin,
    add_form_errors,
    domain_errors,
    user_role,
)

# Roles and groups are the same thing here: Django's groups would be an unaudited side door.
if admin.site.is_registered(Group):
    admin.site.unregister(Group)

_password_request: ContextVar[HttpRequest | None] = ContextVar("password_request", default=None)


class UserAddForm(UserCreationForm):
    """Username, e-mail, role, prefeitura and a password (checked by Django's validators)."""

    class Meta(UserCreationForm.Meta):
        model = User
        fields = ["username", "email", "role", "prefeitura"]


class UserPasswordForm(SetPasswordMixin, forms.Form):
    """The admin's password change, saved through ``services.update_user`` (audited)."""

    required_css_class = "required"
    password1, password2 = SetPasswordMixin.create_password_fields()

    def __init__(self, user: User, *args: Any, **kwargs: Any) -> None:
        self.user = user
        super().__init__(*args, **kwargs)

    def clean(self):
        self.validate_passwords()
        self.validate_password_for_user(self.user)
        self.cleaned_data["set_usable_password"] = True
        return super().clean()

    def save(self, commit: bool = True) -> User:
        request = _password_request.get()
        with domain_errors():
            self.user = services.update_user(
                self.user,
                actor=request.user if request else None,
                data={"password": self.cleaned_data["password1"]},
                request=request,
            )
        return self.user

    @property
    def changed_data(self) -> list[str]:
        return ["password"] if super().changed_data else []


@admin.register(User)
class UserAdmin(TenantModelAdmin, DjangoUserAdmin):
    add_form = UserAddForm
    change_password_form = UserPasswordForm
    write_roles = {Role.ADMIN, Role.GESTOR}
    list_display = ["username", "email", "role", "prefeitura", "is_active", "last_login"]
    list_filter = ["role", "prefeitura", "is_active"]
    list_select_related = ["prefeitura"]
    fieldsets = [
        (None, {"fields": ["username", "password"]}),
        (_("Profile"), {"fields": ["first_name", "last_name", "email"]}),
        (_("Access"), {"fields": ["role", "prefeitura", "is_active"]}),
        (_("Dates"), {"fields": ["last_login", "date_joined"]}),
    ]
    add_fieldsets = [
        (
            None,
            {"fields": ["username", "email", "password1", "password2", "role", "prefeitura"]},
        ),
    ]
    readonly_fields = ["last_login", "date_joined"]
    filter_horizontal = []

    create_service = staticmethod(services.create_user)
    update_service = staticmethod(services.update_user)
    delete_service = staticmethod(services.delete_user)

    def formfield_for_choice_field(self, db_field, request, **kwargs):
        if db_field.name == "role" and user_role(request) != Role.ADMIN:
            kwargs["choices"] = [(r.value, r.label) for r in Role if r != Role.ADMIN]
        return super().formfield_for_choice_field(db_field, request, **kwargs)

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        initial = super().get_changeform_initial_data(request)
        if user_role(request) != Role.ADMIN:
            initial.setdefault("prefeitura", request.user.prefeitura_id)
        return initial

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        actor = request.user

        class AssignmentCheckedForm(form):
            """Role and prefeitura checked by the service's rule before the model's constraint
            (which would only say it is violated)."""

            def clean(self):
                cleaned = super().clean()
                if "role" in self.fields and "prefeitura" in self.fields:
                    prefeitura = cleaned.get("prefeitura")
                    try:
                        with domain_errors():
                            services.check_user_assignment(
                                actor, cleaned.get("role"), prefeitura.pk if prefeitura else None
                            )
                    except AdminRefused as refused:
                        add_form_errors(self, refused.errors)
                return cleaned

        AssignmentCheckedForm.__name__ = form.__name__
        return AssignmentCheckedForm

    def service_data(self, request: HttpRequest, form: forms.Form, change: bool) -> dict:
        data = super().service_data(request, form, change)
        data.pop("password", None)
        if not change:
            data["password"] = form.cleaned_data["password1"]
        return data

    def user_change_password(self, request: HttpRequest, id: str, form_url: str = "") -> Any:
        token = _password_request.set(request)
        try:
            return self._password_view(request, id, form_url)
        finally:
            _password_request.reset(token)

    def _password_view(self, request: HttpRequest, id: str, form_url: str) -> HttpResponse:
        try:
            return super().user_change_password(request, id, form_url)
        except AdminRefused as refused:
            # The service refused the change (nothing written): back to the form, with why.
            self.message_user(request, str(refused), messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())


@admin.register(AuditEntry)
class AuditEntryAdmin(TenantModelAdmin):
    """Read-only for everyone: entries are append-only (and hash-chained)."""

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


class ReadOnlyTokenAdminMixin:
    """Tokens are revoked by logging out (audited), never by editing rows in the admin."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


for _model, _admin in (
    (OutstandingToken, OutstandingTokenAdmin),
    (BlacklistedToken, BlacklistedTokenAdmin),
):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)
    admin.site.register(_model, type(_admin.__name__, (ReadOnlyTokenAdminMixin, _admin), {}))
