"""DRF settings hooks (kept free of view imports: DRF's settings import them early)."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions, pagination, status
from rest_framework.views import exception_handler as drf_exception_handler


class Pagination(pagination.PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 500


class Conflict(exceptions.APIException):
    """409: the request conflicts with the current state; extra fields go into the body."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = _("Conflict with the current state.")
    default_code = "conflict"

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.extra = extra


def exception_handler(exc: Exception, context: dict) -> Any:
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(exc, Conflict):
        response.data = {"detail": str(exc.detail), **exc.extra}
    return response
