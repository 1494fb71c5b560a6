"""DRF settings hooks (kept free of view imports: DRF's settings import them early)."""

from __future__ import annotations

from typing import Any

from django.core.paginator import Page, Paginator
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions, pagination, status
from rest_framework.views import exception_handler as drf_exception_handler


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
