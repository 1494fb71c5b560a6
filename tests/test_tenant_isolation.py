"""Walk every API endpoint as users of prefeitura A against objects of prefeitura B.

New endpoints must be added to ``OBJECTS_OF_B`` (the test fails on an unknown one), so
no route can escape the check.
"""

import re
from datetime import timedelta

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone

from admin_ctx import audit
from recordings.models import Clip, Recording
from streaming.models import Stream
from tests.conftest import client_for

OBJECTS_OF_B = {
    "prefeituras": lambda t: t["b"]["prefeitura"],
    "cameras": lambda t: t["b"]["camera"],
    "users": lambda t: t["b"]["operador"],
    "streams": lambda t: Stream.objects.create(camera=t["b"]["camera"]),
    "recordings": lambda t: Recording.objects.create(camera=t["b"]["camera"]),
    "clips": lambda t: Clip.objects.create(
        camera=t["b"]["camera"],
        start=timezone.now(),
        end=timezone.now() + timedelta(seconds=5),
        expires_at=timezone.now() + timedelta(days=1),
    ),
    "audit": lambda t: audit.record(
        "camera.update", actor=t["b"]["gestor"], target=t["b"]["camera"]
    ),
}
NOT_TENANT_DATA = {
    "auth/token/", "auth/token/refresh/", "auth/me/", "schema/", "docs/", "", "media/auth",
}  # fmt: skip


def api_routes() -> list[str]:
    """Every route under /api/ as a template like ``cameras/<pk>/``."""
    routes: list[str] = []

    def walk(patterns, prefix):
        for pattern in patterns:
            text = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, text)
            elif isinstance(pattern, URLPattern):
                routes.append(text)

    walk(get_resolver().url_patterns, "")
    api = [r.removeprefix("api/") for r in routes if r.startswith("api/")]
    cleaned = set()
    for route in api:
        route = route.replace("^", "").replace("$", "").replace("/?", "/")
        route = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"<\1>", route)
        cleaned.add(route)
    return sorted(cleaned)


def fill(route: str, obj) -> str:
    return "/api/" + re.sub(r"<(?:\w+:)?(\w+)>", str(obj.pk), route)


def test_every_route_is_known():
    for route in api_routes():
        resource = route.split("/")[0]
        assert resource in OBJECTS_OF_B or route in NOT_TENANT_DATA, (
            f"{route}: add it to OBJECTS_OF_B in this test"
        )


@pytest.mark.parametrize("role", ["gestor", "operador"])
def test_nothing_of_b_is_readable_or_writable(tenants, role):
    client = client_for(tenants["a"][role])
    objects = {name: make(tenants) for name, make in OBJECTS_OF_B.items()}
    b_ids = {name: obj.pk for name, obj in objects.items()}
    checked = 0
    for route in api_routes():
        resource = route.split("/")[0]
        if resource not in objects:
            continue
        if "<" in route:
            url = fill(route, objects[resource])
            for method in ("get", "put", "patch", "delete", "post"):
                response = getattr(client, method)(url, {}, format="json")
                assert response.status_code in (404, 405), (method, url, response.status_code)
                checked += 1
        else:
            url = "/api/" + route
            response = client.get(url, {"page_size": 500})
            if response.status_code == 405:
                # an action on a camera named in the body (streams/start...): B's camera is 404
                body = {"camera_id": tenants["b"]["camera"].pk}
                posted = client.post(url, body, format="json")
                assert posted.status_code == 404, (url, posted.status_code)
                checked += 1
                continue
            if response.status_code == 403:
                continue
            assert response.status_code == 200, url
            for row in response.json()["results"]:
                assert row["id"] != b_ids[resource], url
                if "prefeitura" in row and resource != "prefeituras":
                    assert row["prefeitura"] == tenants["a"]["prefeitura"].pk, url
            checked += 1
    assert checked >= 20
    # and nothing of B changed
    for name, obj in objects.items():
        assert type(obj).objects.filter(pk=obj.pk).exists(), name
    tenants["b"]["camera"].refresh_from_db()
    assert tenants["b"]["camera"].name.startswith("Câmera")
