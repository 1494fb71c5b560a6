"""Generic API tests per resource (NetBox style): subclass and describe the resource."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.conftest import client_for


class APIResourceTests:
    """Subclasses set ``url`` and ``model`` and implement the three hooks below.

    ``roles_read``/``roles_write`` name who may read and write among
    ``admin``, ``gestor`` and ``operador`` (the tenant roles act on prefeitura "a").
    """

    url: str
    model: type
    roles_read = ("admin", "gestor", "operador")
    roles_write = ("admin",)
    creatable = True
    deletable = True
    updatable = True

    def make_object(self, tenants, key: str):
        """A new object owned by prefeitura ``key`` ("a" or "b")."""
        raise NotImplementedError

    def create_data(self, tenants, role: str) -> dict:
        raise NotImplementedError

    def update_data(self, tenants, obj) -> dict:
        raise NotImplementedError

    # --- helpers ----------------------------------------------------------------------
    def actor(self, tenants, role: str):
        return tenants["admin"] if role == "admin" else tenants["a"][role]

    def detail(self, obj) -> str:
        return f"{self.url}{obj.pk}/"

    # --- tests ------------------------------------------------------------------------
    def test_anonymous_gets_401(self, api, tenants):
        assert api.get(self.url).status_code == 401
        obj = self.make_object(tenants, "a")
        assert api.get(self.detail(obj)).status_code == 401

    @pytest.mark.parametrize("role", ["admin", "gestor", "operador"])
    def test_list(self, tenants, role):
        own = self.make_object(tenants, "a")
        other = self.make_object(tenants, "b")
        response = client_for(self.actor(tenants, role)).get(self.url, {"page_size": 500})
        if role not in self.roles_read:
            assert response.status_code == 403
            return
        assert response.status_code == 200
        body = response.json()
        assert set(body) == {"count", "next", "previous", "results"}
        ids = {row["id"] for row in body["results"]}
        assert own.pk in ids
        assert (other.pk in ids) == (role == "admin")

    @pytest.mark.parametrize("role", ["admin", "gestor", "operador"])
    def test_retrieve(self, tenants, role):
        own = self.make_object(tenants, "a")
        response = client_for(self.actor(tenants, role)).get(self.detail(own))
        assert response.status_code == (200 if role in self.roles_read else 403)
        if response.status_code == 200:
            assert response.json()["id"] == own.pk

    @pytest.mark.parametrize("role", ["admin", "gestor", "operador"])
    def test_create(self, tenants, role):
        if not self.creatable:
            response = client_for(tenants["admin"]).post(self.url, {}, format="json")
            assert response.status_code == 405
            return
        before = self.model.objects.count()
        data = self.create_data(tenants, role)
        response = client_for(self.actor(tenants, role)).post(self.url, data, format="json")
        if role not in self.roles_write:
            assert response.status_code == 403, response.content
            assert self.model.objects.count() == before
            return
        assert response.status_code == 201, response.content
        assert self.model.objects.count() == before + 1

    def test_create_invalid_changes_nothing(self, tenants):
        if not self.creatable:
            return
        before = self.model.objects.count()
        response = client_for(tenants["admin"]).post(self.url, {}, format="json")
        assert response.status_code == 400
        assert isinstance(response.json(), dict)
        assert self.model.objects.count() == before

    @pytest.mark.parametrize("role", ["admin", "gestor", "operador"])
    def test_update(self, tenants, role):
        obj = self.make_object(tenants, "a")
        data = self.update_data(tenants, obj)
        response = client_for(self.actor(tenants, role)).patch(
            self.detail(obj), data, format="json"
        )
        if not self.updatable:
            assert response.status_code in (403, 405)
            return
        if role not in self.roles_write:
            assert response.status_code == 403
            return
        assert response.status_code == 200, response.content
        for key, value in data.items():
            if key in response.json():
                assert response.json()[key] == value

    @pytest.mark.parametrize("role", ["admin", "gestor", "operador"])
    def test_delete(self, tenants, role):
        obj = self.make_object(tenants, "a")
        response = client_for(self.actor(tenants, role)).delete(self.detail(obj))
        if not self.deletable:
            assert response.status_code in (403, 405)
            assert self.model.objects.filter(pk=obj.pk).exists()
            return
        if role not in self.roles_write:
            assert response.status_code == 403
            assert self.model.objects.filter(pk=obj.pk).exists()
            return
        assert response.status_code == 204
        assert not self.model.objects.filter(pk=obj.pk).exists()

    @pytest.mark.parametrize("role", ["gestor", "operador"])
    def test_other_prefeitura_is_404(self, tenants, role):
        other = self.make_object(tenants, "b")
        client = client_for(self.actor(tenants, role))
        assert client.get(self.detail(other)).status_code == 404
        assert client.patch(self.detail(other), {}, format="json").status_code in (404, 405)
        assert client.delete(self.detail(other)).status_code in (404, 405)
        assert self.model.objects.filter(pk=other.pk).exists()

    def test_list_query_count_is_constant(self, tenants):
        """N+1 guard: the list costs the same number of queries for 2 rows and for 12."""

        def add(n: int) -> None:
            for _ in range(n):
                self.make_object(tenants, "a")

        assert_constant_queries(client_for(tenants["admin"]), self.url, add)


def assert_constant_queries(client, url: str, add_rows, params: dict | None = None) -> None:
    """N+1 guard for any list: ``GET url`` costs as many queries with 2 rows as with 12.

    ``add_rows(n)`` creates ``n`` more rows the list shows; the response must list them
    (a list that stays empty would pass for the wrong reason)."""
    params = {"page_size": 500, **(params or {})}
    add_rows(2)
    with CaptureQueriesContext(connection) as few:
        first = client.get(url, params)
    assert first.status_code == 200, first.content
    add_rows(10)
    with CaptureQueriesContext(connection) as many:
        second = client.get(url, params)
    assert second.status_code == 200, second.content
    assert _row_count(second) >= _row_count(first) + 10, (url, _row_count(first))
    assert len(many) == len(few), [q["sql"] for q in many.captured_queries]


def _row_count(response) -> int:
    body = response.json()
    for key in ("results", "events"):
        if isinstance(body, dict) and key in body:
            return len(body[key])
    raise AssertionError(f"not a list response: {body!r:.200}")
