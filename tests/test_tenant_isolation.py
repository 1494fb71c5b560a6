"""Walk every API endpoint as users of prefeitura A against objects of prefeitura B.

Every route gets its real object of B (a segment of B's camera for the segment media route,
B's camera for the per-camera routes, a live stream of B with its playlist on disk for the
live media route...) and, where the route needs them, the query parameters or the media
token that would make it answer 200 if isolation were missing: a 404 then proves isolation,
not a missing parameter or file. New endpoints must be added to ``ROUTES`` or
``NOT_TENANT_DATA`` (the test fails on an unknown one), so no route can escape the check.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from rest_framework.test import APIClient

from admin_ctx import audit
from lpr.models import Read, WatchlistEntry
from lpr.services import crop_dir
from recordings import storage
from recordings.models import Clip, EvidenceLock, Recording, Segment
from streaming import engine
from streaming.models import RecorderStatus, Stream
from tests.conftest import client_for

NOT_TENANT_DATA = {
    "auth/token/", "auth/token/refresh/", "auth/me/", "schema/", "docs/", "", "media/auth",
    "custody/public-key.pem",  # the platform's public signing key: public by design
}  # fmt: skip


@dataclass
class World:
    """Objects of both prefeituras, each route's object of B and a segment of A's camera."""

    tenants: dict
    of_b: dict[str, object] = field(default_factory=dict)
    a_segment: Segment | None = None
    b_segment: Segment | None = None


def make_segment(camera, start) -> Segment:
    """A segment row with its file on disk, where the media views look for it."""
    segment = Segment.objects.create(
        camera=camera, start=start, end=start + timedelta(seconds=4), size_bytes=188 * 4
    )
    path = storage.segment_file(segment)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x47" + b"\x00" * 187)
    return segment


def make_read(camera, at, settings) -> Read:
    """A plate read with its crop on disk (``LPR_CROP_DIR``)."""
    settings.LPR_CROP_DIR = str(settings.RECORDINGS_DIR.parent / "lpr")
    read = Read.objects.create(
        camera=camera, plate="ABC1D23", format="mercosul", confidence=0.9, at=at,
        crop_path=f"{camera.pk}/crop.jpg",
    )  # fmt: skip
    path = crop_dir() / read.crop_path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xff\xd8\xff\xd9")
    return read


def build_world(tenants, settings) -> World:
    b = tenants["b"]
    start = timezone.now().replace(microsecond=0) - timedelta(minutes=10)
    world = World(tenants)
    world.a_segment = make_segment(tenants["a"]["camera"], start)
    world.b_segment = make_segment(b["camera"], start)
    stream = Stream.objects.create(camera=b["camera"], status=Stream.Status.RUNNING)
    live = engine.live_dir(b["camera"].pk)
    live.mkdir(parents=True, exist_ok=True)
    (live / "index.m3u8").write_text("#EXTM3U\n")
    world.of_b = {
        "prefeituras": b["prefeitura"],
        "cameras": b["camera"],
        "users": b["operador"],
        "streams": stream,
        "recordings": Recording.objects.create(camera=b["camera"]),
        "segments": world.b_segment,
        "clips": Clip.objects.create(
            camera=b["camera"],
            start=start,
            end=start + timedelta(seconds=4),
            expires_at=timezone.now() + timedelta(days=1),
        ),
        "audit": audit.record("camera.update", actor=b["gestor"], target=b["camera"]),
        "lpr/reads": make_read(b["camera"], start, settings),
        "evidence-locks": EvidenceLock.objects.create(
            camera=b["camera"],
            start=start,
            end=start + timedelta(seconds=4),
            reason="isolation test",
            created_by=b["gestor"],
        ),
        # an access of B's operador to B's camera: A's access report never shows it
        "reports": audit.record(
            "stream.view", actor=b["operador"], target=b["camera"], details={"stream_id": 1}
        ),
        "lpr/watchlist": WatchlistEntry.objects.create(
            prefeitura=b["prefeitura"], plate="XYZ9A87", reason="isolation test"
        ),
        "recorders": RecorderStatus.objects.create(
            camera=b["camera"], status=RecorderStatus.Status.ERROR, last_error="x"
        ),
    }
    return world


def range_query(world: World) -> dict:
    start = world.b_segment.start - timedelta(seconds=1)
    return {
        "start": start.isoformat(),
        "end": (start + timedelta(minutes=1)).isoformat(),
        "reason": "isolation test",
    }


# route template -> (kind of B's object, extra query for a request that would otherwise work)
ROUTES: dict[str, tuple[str, object]] = {
    "cameras/<int:pk>/timeline/": ("cameras", range_query),
    "cameras/<int:pk>/playback.m3u8": ("cameras", range_query),
    "cameras/<int:pk>/snapshot.jpg": ("cameras", None),
    "recordings/segments/<int:pk>.ts": ("segments", None),
    "streams/<int:pk>/hls/<str:name>": ("streams", None),
}
# list routes whose rows are not of the route's first path part
LIST_KIND = {"recordings/search/": "segments"}


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


def kind_of(route: str) -> str | None:
    if route in ROUTES:
        return ROUTES[route][0]
    if route in LIST_KIND:
        return LIST_KIND[route]
    resource = route.split("/")[0]
    if resource == "lpr":
        resource = "/".join(route.split("/")[:2])
    return resource if resource in KINDS else None


KINDS = {
    "prefeituras", "cameras", "users", "streams", "recordings", "segments", "clips", "audit",
    "recorders", "lpr/reads", "lpr/watchlist", "evidence-locks", "reports",
}  # fmt: skip


def fill(route: str, obj) -> str:
    url = re.sub(r"<(?:\w+:)?name>", "index.m3u8", route)
    return "/api/" + re.sub(r"<(?:\w+:)?\w+>", str(obj.pk), url)


def test_every_route_is_known():
    for route in api_routes():
        assert kind_of(route) is not None or route in NOT_TENANT_DATA, (
            f"{route}: add it to ROUTES in this test"
        )


def playback_token(client: APIClient, camera, world: World) -> str:
    """The media token of a real playlist of ``camera``, as its user gets it."""
    response = client.get(f"/api/cameras/{camera.pk}/playback.m3u8", range_query(world))
    assert response.status_code == 200, response.content
    uri = next(line for line in response.content.decode().splitlines() if line.startswith("/"))
    return parse_qs(urlsplit(uri).query)["token"][0]


def check_segment_route(world: World, role: str) -> int:
    """A's user holds a valid token for B's camera (issued while the camera was A's): B's
    segment is still a 404, and A's own segment with A's token works (the probe is live)."""
    tenants = world.tenants
    user = tenants["a"][role]
    client = client_for(user)
    own = playback_token(client, tenants["a"]["camera"], world)
    anonymous = APIClient()
    ok = anonymous.get(f"/api/recordings/segments/{world.a_segment.pk}.ts", {"token": own})
    assert ok.status_code == 200, ok.status_code
    camera_b = tenants["b"]["camera"]
    camera_b.prefeitura = tenants["a"]["prefeitura"]
    camera_b.save()
    token_for_b = playback_token(client, camera_b, world)
    camera_b.prefeitura = tenants["b"]["prefeitura"]
    camera_b.save()
    url = f"/api/recordings/segments/{world.b_segment.pk}.ts"
    for token in (own, token_for_b):
        for method in ("get", "put", "patch", "delete", "post"):
            response = getattr(anonymous, method)(f"{url}?token={token}")
            assert response.status_code in (404, 405), (method, url, response.status_code)
    return 2


@pytest.mark.parametrize("role", ["gestor", "operador"])
def test_nothing_of_b_is_readable_or_writable(tenants, settings, role):
    world = build_world(tenants, settings)
    client = client_for(tenants["a"][role])
    checked = 0
    for route in api_routes():
        kind = kind_of(route)
        if kind is None:
            continue
        if route == "recordings/segments/<int:pk>.ts":
            continue  # last: it moves B's camera for a moment (see check_segment_route)
        obj = world.of_b[kind]
        query_of = ROUTES.get(route, (None, None))[1]
        query = query_of(world) if query_of else {}
        if "<" in route:
            url = fill(route, obj)
            for method in ("get", "put", "patch", "delete", "post"):
                if method == "get":
                    response = client.get(url, query)
                else:
                    response = getattr(client, method)(url, {}, format="json")
                assert response.status_code in (404, 405), (method, url, response.status_code)
                checked += 1
            continue
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
        rows = response.json()["results"]
        for row in rows:
            assert row.get("id", row.get("stream_id")) != obj.pk, (url, row)
            if "prefeitura" in row and kind != "prefeituras":
                assert row["prefeitura"] == tenants["a"]["prefeitura"].pk, url
            if "prefeitura_id" in row:
                assert row["prefeitura_id"] == tenants["a"]["prefeitura"].pk, (url, row)
            if "camera_id" in row:
                assert row["camera_id"] != tenants["b"]["camera"].pk, (url, row)
        if kind == "segments":
            # the search of A's segments works, and naming B's camera is a 404
            assert world.a_segment.pk in {row["id"] for row in rows}, rows
            named = client.get(url, {"camera_id": tenants["b"]["camera"].pk})
            assert named.status_code == 404, (url, named.status_code)
        checked += 1
    checked += check_segment_route(world, role)
    assert checked >= 20
    # and nothing of B changed
    for name, obj in world.of_b.items():
        assert type(obj).objects.filter(pk=obj.pk).exists(), name
    tenants["b"]["camera"].refresh_from_db()
    assert tenants["b"]["camera"].name.startswith("Câmera")
    assert tenants["b"]["camera"].prefeitura == tenants["b"]["prefeitura"]
