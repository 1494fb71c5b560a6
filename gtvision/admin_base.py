"""The one base for every ModelAdmin: tenancy, role rights, service writes, domain errors.

- Rows, foreign-key choices, list filters and autocompletes come through
  ``Model.objects.for_user`` (gtvision/tenancy.py), so a gestor sees nothing of another
  prefeitura anywhere in the admin.
- Rights follow the role (``read_roles``/``write_roles``) and never touch attributes an
  anonymous visitor lacks: the login page lists the apps through ``has_module_permission``.
- Writes go through the app's service functions (``create_service``/``update_service``/
  ``delete_service``, like ``TenantModelViewSet``): they validate, audit and publish.
- A domain error a service raises (quota, permission, validation, conflict) is mapped here,
  once, to form errors on the re-rendered form (or to an error message for deletions), and
  the whole request's transaction is rolled back: nothing is written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.actions import delete_selected
from django.core.exceptions import NON_FIELD_ERRORS
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models, transaction
from django.forms import BaseForm
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from rest_framework.exceptions import APIException

from gtvision.roles import Role

REFUSED_ATTR = "_gtv_admin_refused"

ErrorMap = dict[str | None, list[str]]


class AdminRefused(Exception):
    """A service refused an admin write; ``errors`` maps form fields (None: the form)."""

    def __init__(self, errors: ErrorMap) -> None:
        super().__init__("; ".join(m for ms in errors.values() for m in ms))
        self.errors = errors


def _messages(detail: Any) -> list[str]:
    if isinstance(detail, dict):
        return [m for value in detail.values() for m in _messages(value)]
    if isinstance(detail, list | tuple):
        return [m for value in detail for m in _messages(value)]
    return [str(detail)]


def error_map(exc: Exception) -> ErrorMap:
    """The messages of a domain error, by field (``None`` for the whole form)."""
    if isinstance(exc, APIException):
        detail = exc.detail
        if isinstance(detail, dict):
            return {
                (None if key in ("detail", "non_field_errors", NON_FIELD_ERRORS) else key): (
                    _messages(value)
                )
                for key, value in detail.items()
            }
        return {None: _messages(detail)}
    if isinstance(exc, DjangoValidationError):
        if hasattr(exc, "error_dict"):
            return {
                (None if key == NON_FIELD_ERRORS else key): list(value)
                for key, value in exc.message_dict.items()
            }
        return {None: list(exc.messages)}
    return {None: [str(exc)]}


DOMAIN_ERRORS = (APIException, DjangoValidationError)


@contextmanager
def domain_errors() -> Iterator[None]:
    """Turn a service's domain error into :class:`AdminRefused`."""
    try:
        yield
    except DOMAIN_ERRORS as exc:
        raise AdminRefused(error_map(exc)) from exc


def add_form_errors(form: BaseForm, errors: ErrorMap) -> None:
    for field, field_messages in errors.items():
        target = field if field in form.fields else None
        for message in field_messages:
            form.add_error(target, message)


class TenantRelatedFieldListFilter(admin.RelatedFieldListFilter):
    """A foreign-key list filter offering only the rows the user may see."""

    def field_choices(self, field, request, model_admin):
        queryset = field.related_model._default_manager.all()
        if hasattr(queryset, "for_user"):
            queryset = queryset.for_user(request.user)
        ordering = self.field_admin_ordering(field, request, model_admin)
        if ordering:
            queryset = queryset.order_by(*ordering)
        return [(obj.pk, str(obj)) for obj in queryset]


def _tenant_queryset(model: type[models.Model], request: HttpRequest) -> models.QuerySet | None:
    queryset = model._default_manager.all()
    return queryset.for_user(request.user) if hasattr(queryset, "for_user") else None


def user_role(request: HttpRequest) -> str | None:
    """The role of an active, authenticated user; None for anyone else (anonymous included)."""
    user = request.user
    if not (user.is_authenticated and user.is_active):
        return None
    return getattr(user, "role", None)


class TenantModelAdmin(admin.ModelAdmin):
    """Base of every GT-Vision ModelAdmin (see the module docstring)."""

    read_roles: set[str] = {Role.ADMIN, Role.GESTOR}
    write_roles: set[str] = {Role.ADMIN}
    create_service: Callable[..., models.Model] | None = None
    update_service: Callable[..., models.Model] | None = None
    delete_service: Callable[..., None] | None = None

    # -- rights -------------------------------------------------------------------------------

    def has_module_permission(self, request: HttpRequest) -> bool:
        return user_role(request) in self.read_roles

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return user_role(request) in self.read_roles | self.write_roles

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self.create_service is not None and user_role(request) in self.write_roles

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.update_service is not None and user_role(request) in self.write_roles

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.delete_service is not None and user_role(request) in self.write_roles

    # -- tenancy ------------------------------------------------------------------------------

    def get_queryset(self, request: HttpRequest) -> models.QuerySet:
        return super().get_queryset(request).for_user(request.user)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if "queryset" not in kwargs:
            queryset = _tenant_queryset(db_field.related_model, request)
            if queryset is not None:
                ordering = self._related_ordering(db_field, request)
                kwargs["queryset"] = queryset.order_by(*ordering) if ordering else queryset
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if "queryset" not in kwargs:
            queryset = _tenant_queryset(db_field.related_model, request)
            if queryset is not None:
                kwargs["queryset"] = queryset
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def _related_ordering(self, db_field, request) -> tuple | list:
        related_admin = self.admin_site._registry.get(db_field.related_model)
        return related_admin.get_ordering(request) if related_admin is not None else ()

    def get_list_filter(self, request: HttpRequest) -> list:
        filters = []
        for item in super().get_list_filter(request):
            if isinstance(item, str):
                field = self._filter_field(item)
                if field is not None and hasattr(
                    field.related_model._default_manager.all(), "for_user"
                ):
                    item = (item, TenantRelatedFieldListFilter)
            filters.append(item)
        return filters

    def _filter_field(self, name: str) -> models.Field | None:
        try:
            field = self.model._meta.get_field(name)
        except Exception:  # a lookup path or a SimpleListFilter's name: left as it is
            return None
        return field if field.is_relation and field.related_model is not None else None

    # -- writes through the services -----------------------------------------------------------

    def service_data(self, request: HttpRequest, form: BaseForm, change: bool) -> dict[str, Any]:
        """The service's ``data``: the form's cleaned values of the model's fields."""
        names = {f.name for f in self.model._meta.get_fields() if f.concrete}
        return {k: v for k, v in form.cleaned_data.items() if k in names}

    def save_model(self, request: HttpRequest, obj: Any, form: BaseForm, change: bool) -> None:
        data = self.service_data(request, form, change)
        with domain_errors():
            if change:
                current = self.get_queryset(request).get(pk=obj.pk)
                saved = self.update_service(current, actor=request.user, data=data, request=request)
            else:
                saved = self.create_service(actor=request.user, data=data, request=request)
        # The admin goes on with ``obj`` (history, redirect): make it the saved row.
        obj.__dict__.update(saved.__dict__)

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        with domain_errors():
            self.delete_service(obj, actor=request.user, request=request)

    def delete_queryset(self, request: HttpRequest, queryset: models.QuerySet) -> None:
        for obj in queryset:
            self.delete_model(request, obj)

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        refused: ErrorMap | None = getattr(request, REFUSED_ATTR, None)
        if not refused:
            return form

        class RefusedForm(form):
            def clean(self):
                cleaned = super().clean()
                add_form_errors(self, refused)
                return cleaned

        RefusedForm.__name__ = form.__name__
        return RefusedForm

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict | None = None,
    ) -> HttpResponse:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except AdminRefused as refused:
            # Everything the first pass wrote was rolled back; render the same submission
            # again with the service's errors on the form (HTTP 200, like any invalid form).
            setattr(request, REFUSED_ATTR, refused.errors)
            return super().changeform_view(request, object_id, form_url, extra_context)

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict | None = None
    ) -> HttpResponse:
        try:
            return super().delete_view(request, object_id, extra_context)
        except AdminRefused as refused:
            self.message_user(request, str(refused), messages.ERROR)
            opts = self.model._meta
            return HttpResponseRedirect(
                reverse(
                    f"{self.admin_site.name}:{opts.app_label}_{opts.model_name}_change",
                    args=[object_id],
                )
            )

    def get_actions(self, request: HttpRequest) -> dict:
        actions = super().get_actions(request)
        if "delete_selected" in actions:
            _func, name, description = actions["delete_selected"]
            actions["delete_selected"] = (_delete_selected_through_services, name, description)
        return actions


def _delete_selected_through_services(
    modeladmin: TenantModelAdmin, request: HttpRequest, queryset: models.QuerySet
) -> HttpResponse | None:
    """Django's bulk delete, all or nothing: a refusal rolls every deletion back."""
    try:
        with transaction.atomic():
            return delete_selected(modeladmin, request, queryset)
    except AdminRefused as refused:
        modeladmin.message_user(request, str(refused), messages.ERROR)
        return None


_delete_selected_through_services.allowed_permissions = ("delete",)  # type: ignore[attr-defined]
_delete_selected_through_services.short_description = delete_selected.short_description  # type: ignore[attr-defined]
