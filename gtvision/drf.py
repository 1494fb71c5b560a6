"""DRF settings hooks (kept free of view imports: DRF's settings import them early)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urljoin

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.paginator import Page, Paginator
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions, pagination, status
from rest_framework.utils.urls import remove_query_param, replace_query_param
from rest_framework.views import exception_handler as drf_exception_handler

from gtvision.errors import QuotaExceeded
from gtvision.parsers import RequestTooLarge


def public_url(path: str) -> str:
    """``path`` (absolute path, with its query) under ``settings.PUBLIC_URL``: absolute URLs
    are never built from the request's ``Host`` header, which a client can forge."""
    return urljoin(settings.PUBLIC_URL.rstrip("/") + "/", path.lstrip("/"))


class FirstPagePaginator(Paginator):
    """Asks for the first page before counting: when it is not full it holds every row, so
    its length is the count and the ``COUNT(*)`` query is skipped (most lists, and a search
    of one camera-hour, fit in one page)."""

    def page(self, number: Any) -> Page:
        if str(number) != "1":
            return super().page(number)
        rows = list(self.object_list[: self.per_page])
        if len(rows) < self.per_page:
            self.count = len(rows)  # fills the cached_property
        elif not self.count:  # rows vanished since the page was read
            return super().page(number)
        return self._get_page(rows, 1, self)


class Pagination(pagination.PageNumberPagination):
    django_paginator_class = FirstPagePaginator
    page_size_query_param = "page_size"
    max_page_size = 500

    def get_next_link(self) -> str | None:
        if not self.page.has_next():
            return None
        url = public_url(self.request.get_full_path())
        return replace_query_param(url, self.page_query_param, self.page.next_page_number())

    def get_previous_link(self) -> str | None:
        if not self.page.has_previous():
            return None
        url = public_url(self.request.get_full_path())
        number = self.page.previous_page_number()
        if number == 1:
            return remove_query_param(url, self.page_query_param)
        return replace_query_param(url, self.page_query_param, number)


class Conflict(exceptions.APIException):
    """409: the request conflicts with the current state; extra fields go into the body."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = _("Conflict with the current state.")
    default_code = "conflict"

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.extra = extra


class QuotaReached(exceptions.APIException):
    """429: a quota (``gtvision.errors.QuotaExceeded``) is reached; the detail says which."""

    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_detail = _("A quota is reached.")
    default_code = "quota_exceeded"


def exception_handler(exc: Exception, context: dict) -> Any:
    """DRF's handler, with every error body a JSON object: 409 carries its extra fields, and
    a validation error raised without a field (a list) goes under ``non_field_errors``."""
    if isinstance(exc, RequestDataTooBig):  # Django read the body first: the same 413
        exc = RequestTooLarge()
    if isinstance(exc, QuotaExceeded):  # a domain error of a service: 429
        exc = QuotaReached(str(exc))
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, Conflict):
        response.data = {"detail": str(exc.detail), **exc.extra}
    elif isinstance(response.data, list):
        response.data = {"non_field_errors": response.data}
    return response


# --- OpenAPI: the error responses every operation can give, declared in one place ----------
ERROR_COMPONENTS: dict[str, dict] = {
    "Error": {
        "type": "object",
        "description": "An error: `detail` says what went wrong (409 adds the state it "
        "conflicts with, e.g. `stream_id`; 429 may add `wait`).",
        "properties": {"detail": {"type": "string"}},
        "required": ["detail"],
        "additionalProperties": True,
    },
    "ValidationError": {
        "type": "object",
        "description": "A validation error: each invalid field (or `non_field_errors` for "
        "the request as a whole) with its messages.",
        "additionalProperties": {
            "anyOf": [{"type": "array", "items": {}}, {"type": "string"}, {"type": "object"}]
        },
        "example": {"camera_id": ["This field is required."]},
    },
}
ERROR_RESPONSES: dict[str, tuple[str, str]] = {
    "400": ("ValidationError", "Invalid input: nothing was changed."),
    "401": ("Error", "No valid credentials."),
    "403": ("Error", "The caller's role may not do this."),
    "404": ("Error", "Not found, or not visible to the caller (another prefeitura)."),
    "409": ("Error", "Conflicts with the current state."),
    "413": ("Error", "The request body is too large."),
    "429": ("Error", "Too many requests, or a quota is reached: try again later."),
}
UNSAFE_METHODS = {"post", "put", "patch", "delete"}
DIGITS = {"type": "string", "pattern": "^\\d+$"}
PUBLIC_OPERATIONS = {"/api/auth/token/", "/api/auth/token/refresh/"}


def add_error_responses(result: dict, generator: Any, request: Any, public: bool) -> dict:
    """drf-spectacular postprocessing hook: declare the API's error responses (SPEC §2) on
    every operation, with their JSON bodies, unless the view declared them itself."""
    result.setdefault("components", {}).setdefault("schemas", {}).update(ERROR_COMPONENTS)
    for path, item in result.get("paths", {}).items():
        for method, operation in item.items():
            if method not in UNSAFE_METHODS | {"get"}:
                continue
            for parameter in operation.get("parameters", []):
                # ids are integers (SPEC §2), also where a route's regex is ``\d+``
                if parameter.get("in") == "path" and parameter.get("schema") == DIGITS:
                    parameter["schema"] = {"type": "integer"}
            codes = {"400", "401", "404", "429"}
            if path not in PUBLIC_OPERATIONS:
                codes |= {"403"}
            if method in UNSAFE_METHODS or path.rstrip("/").endswith("/download"):
                codes.add("409")
            if "requestBody" in operation:
                codes.add("413")
            responses = operation.setdefault("responses", {})
            for code in sorted(codes):
                component, description = ERROR_RESPONSES[code]
                schema = {"$ref": f"#/components/schemas/{component}"}
                declared = responses.get(code)
                if declared is None or "content" not in declared:
                    responses[code] = {
                        "description": (declared or {}).get("description") or description,
                        "content": {"application/json": {"schema": schema}},
                    }
    return result
