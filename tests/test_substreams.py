"""Substreams (issue 15): a camera's optional low-resolution ``substream_url`` is a secret
like its ``source_url`` (validated, encrypted at rest, masked in answers, never in a log, an
event or the audit log), and live streams have a ``profile``: ``main`` (the camera page) or
``sub`` (grids and mosaics), one active stream per camera and profile.

Through the real server (Daphne, ``manage.py serve``) with ``requests`` and ``websockets``;
the admin as an anonymous visitor who logs in; the dashboard in a real Chromium.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator

import pytest
import requests
import websockets
from django.db import IntegrityError, connection, transaction

from admin_ctx.models import AuditEntry, Role
from cidades.models import Camera
from streaming import services
from streaming.models import Stream
from testcamera import INSTALL_HINT, TestCamera
from tests.factories import CameraFactory, PrefeituraFactory, UserFactory
from tests.live_web import bearer, running_web
from tests.test_admin import AdminBrowser, form_errors
from tests.test_browser import (  # noqa: F401 - the fixtures of the browser suite
    browser,
    browsing,
    camera_server,
    stack,
    wait_playing,
)

pytestmark = [
    pytest.mark.django_db(transaction=True, databases=["default", "channels_postgres"]),
    pytest.mark.timeout(240),
]

MAIN = "rtsp://admin:Main-Pa55@192.0.2.20:554/Streaming/Channels/101"
# (substream URL typed, its masked form)
SUB_USERINFO = (
    "rtsp://viewer:Sub-Userinfo-Pa55@192.0.2.20:554/Streaming/Channels/102",
    "rtsp://viewer:***@192.0.2.20:554/Streaming/Channels/102",
)
SUB_QUERY = (
    "rtsp://192.0.2.21/cam/realmonitor?channel=1&user=admin&password=Sub-Query-Pa55&subtype=1",
    "rtsp://192.0.2.21/cam/realmonitor?channel=1&user=***&password=***&subtype=1",
)
SECRETS = ["Main-Pa55", "Sub-Userinfo-Pa55", "Sub-Query-Pa55"]
BAD_URLS = [
    "http://192.0.2.30/sub",  # not RTSP
    "rtsp://192.0.2.30/sub stream",  # whitespace
    "rtsp:///sub",  # no host
    "rtsp://192.0.2.30:99999/sub",  # bad port
    "rtsp://192.0.2.30/" + "s" * 2048,  # too long
]


@pytest.fixture(autouse=True)
def _fast_password_hasher():
    """Users log in through Daphne, whose hashers are the real ones: keep the default."""


@pytest.fixture(scope="module")
def web(django_db_setup, django_db_blocker) -> Iterator[tuple]:
    with django_db_blocker.unblock(), running_web(LOG_LEVEL="DEBUG") as running:
        yield running


def people():
    a, b = PrefeituraFactory(name="Prefeitura A"), PrefeituraFactory(name="Prefeitura B")
    return {
        "a": a,
        "b": b,
        "gestor_a": UserFactory(prefeitura=a, role=Role.GESTOR),
        "operador_a": UserFactory(prefeitura=a, role=Role.OPERADOR),
        "gestor_b": UserFactory(prefeitura=b, role=Role.GESTOR),
        "operador_b": UserFactory(prefeitura=b, role=Role.OPERADOR),
    }


async def collect_events(url: str, token: str, ready: asyncio.Event, done: asyncio.Event):
    received = []
    ws_url = url.replace("http://", "ws://") + f"/ws/events?token={token}"
    async with websockets.connect(ws_url) as socket:
        ready.set()
        while not done.is_set():
            try:
                received.append(await asyncio.wait_for(socket.recv(), 0.5))
            except TimeoutError:
                continue
        try:  # what is still on its way
            async with asyncio.timeout(2):
                while True:
                    received.append(await socket.recv())
        except TimeoutError:
            pass
    return received


def with_events(url: str, user, work) -> list[dict]:
    """Run ``work()`` while ``user`` listens on ws/events; the events received."""
    token = bearer(user)["Authorization"].split()[1]

    async def scenario():
        ready, done = asyncio.Event(), asyncio.Event()
        listener = asyncio.create_task(collect_events(url, token, ready, done))
        await asyncio.wait_for(ready.wait(), 10)
        try:
            await asyncio.to_thread(work)
        finally:
            done.set()
        return await listener

    return [json.loads(message) for message in asyncio.run(scenario())]


def raw_row(camera_id: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM cidades_camera WHERE id = %s", [camera_id])
        return repr(cursor.fetchone())


def test_substream_url_is_a_secret_like_the_source_url(web):
    url, process = web
    p = people()
    headers = bearer(p["gestor_a"])
    bodies: list[str] = []
    ids: list[int] = []

    def write() -> None:
        created = requests.post(
            f"{url}/api/cameras/",
            json={
                "name": "Sub",
                "code": "sub",
                "source_url": MAIN,
                "substream_url": SUB_USERINFO[0],
            },  # fmt: skip
            headers=headers,
            timeout=10,
        )
        assert created.status_code == 201, created.text
        body = created.json()
        assert body["substream_url_masked"] == SUB_USERINFO[1]
        assert body["has_substream"] is True
        assert "substream_url" not in body and "source_url" not in body
        ids.append(body["id"])
        bodies.append(created.text)
        changed = requests.patch(
            f"{url}/api/cameras/{ids[0]}/",
            json={"substream_url": SUB_QUERY[0]},
            headers=headers,
            timeout=10,
        )
        assert changed.status_code == 200, changed.text
        assert changed.json()["substream_url_masked"] == SUB_QUERY[1]
        bodies.append(changed.text)
        # a write without the field keeps the substream
        renamed = requests.patch(
            f"{url}/api/cameras/{ids[0]}/", json={"name": "Sub 2"}, headers=headers, timeout=10
        )
        assert renamed.json()["substream_url_masked"] == SUB_QUERY[1], renamed.text
        bodies.append(renamed.text)
        # without one from the start
        plain = requests.post(
            f"{url}/api/cameras/",
            json={"name": "Plain", "code": "plain", "source_url": MAIN},
            headers=headers,
            timeout=10,
        )
        assert plain.status_code == 201, plain.text
        assert plain.json()["substream_url_masked"] == ""
        assert plain.json()["has_substream"] is False
        ids.append(plain.json()["id"])

    events = with_events(url, p["gestor_a"], write)
    assert any(e["type"] == "camera.updated" and e["camera_id"] == ids[0] for e in events), events
    bodies.extend(json.dumps(e) for e in events)

    camera = Camera.objects.get(pk=ids[0])
    assert camera.substream_url == SUB_QUERY[0]  # the media plane gets it whole
    assert camera.source_url == MAIN
    assert camera.substream_url_encrypted and SUB_QUERY[0] not in camera.substream_url_encrypted
    row = raw_row(ids[0])
    assert "Sub-Query-Pa55" not in row and camera.substream_url_encrypted in row

    audit = AuditEntry.objects.filter(target_id=str(ids[0])).order_by("id")
    create, update = audit.get(action="camera.create"), audit.filter(action="camera.update")[0]
    assert create.details["substream_url_masked"] == SUB_USERINFO[1]
    assert "substream_url" in update.details["changed"]
    assert update.details["substream_url_masked"] == SUB_QUERY[1]
    bodies.append(str(list(AuditEntry.objects.values())))
    for path in ("/api/cameras/?page_size=50", "/api/audit/?page_size=500", "/api/schema/"):
        response = requests.get(url + path, headers=headers, timeout=10)
        assert response.status_code in (200, 403), response.text[:300]
        bodies.append(response.text)
    bodies.append(requests.get(f"{url}/api/cameras/{ids[0]}/", headers=headers, timeout=10).text)

    # empty removes it (null too), audited with the (empty) masked value
    removed = requests.patch(
        f"{url}/api/cameras/{ids[0]}/", json={"substream_url": ""}, headers=headers, timeout=10
    )
    assert removed.status_code == 200, removed.text
    assert removed.json()["has_substream"] is False
    assert removed.json()["substream_url_masked"] == ""
    camera.refresh_from_db()
    assert camera.substream_url == "" and camera.substream_url_encrypted == ""
    again = requests.patch(
        f"{url}/api/cameras/{ids[0]}/",
        json={"substream_url": SUB_USERINFO[0]},
        headers=headers,
        timeout=10,
    )
    assert again.json()["has_substream"] is True
    nulled = requests.patch(
        f"{url}/api/cameras/{ids[0]}/", json={"substream_url": None}, headers=headers, timeout=10
    )
    assert nulled.status_code == 200 and nulled.json()["has_substream"] is False, nulled.text
    bodies.append(process.output())  # DEBUG logs of the server
    for secret in SECRETS:
        for body in bodies:
            assert secret not in body, (secret, body[:300])


def test_bad_substream_url_is_refused_naming_the_field_and_nothing_changes(web):
    url, _process = web
    p = people()
    headers = bearer(p["gestor_a"])
    camera = CameraFactory(prefeitura=p["a"], source_url=MAIN, substream_url=SUB_USERINFO[0])
    before_row, cameras, audits = raw_row(camera.pk), Camera.objects.count(), AuditEntry.objects
    audit_count = audits.count()
    for bad in BAD_URLS:
        created = requests.post(
            f"{url}/api/cameras/",
            json={"name": "Ruim", "code": "ruim", "source_url": MAIN, "substream_url": bad},
            headers=headers,
            timeout=10,
        )
        assert created.status_code == 400, (bad, created.text)
        assert list(created.json()) == ["substream_url"], created.text
        changed = requests.patch(
            f"{url}/api/cameras/{camera.pk}/",
            json={"name": "Mudou", "substream_url": bad},
            headers=headers,
            timeout=10,
        )
        assert changed.status_code == 400, (bad, changed.text)
        assert list(changed.json()) == ["substream_url"], changed.text
    assert Camera.objects.count() == cameras
    assert raw_row(camera.pk) == before_row
    assert AuditEntry.objects.count() == audit_count
    camera.refresh_from_db()
    assert camera.name != "Mudou" and camera.substream_url == SUB_USERINFO[0]
    # the message is in pt-BR for a Portuguese-speaking client
    pt = requests.post(
        f"{url}/api/cameras/",
        json={"name": "Ruim", "code": "ruim", "source_url": MAIN, "substream_url": BAD_URLS[0]},
        headers={**headers, "Accept-Language": "pt-br"},
        timeout=10,
    )
    assert "rtsp://" in pt.json()["substream_url"][0] and "deve" in pt.json()["substream_url"][0]


def test_tenants_and_roles(web):
    url, _process = web
    p = people()
    camera_a = CameraFactory(prefeitura=p["a"], source_url=MAIN, substream_url=SUB_USERINFO[0])
    gestor_b, operador_a = bearer(p["gestor_b"]), bearer(p["operador_a"])
    patch = {"substream_url": SUB_QUERY[0]}
    other = requests.patch(
        f"{url}/api/cameras/{camera_a.pk}/", json=patch, headers=gestor_b, timeout=10
    )
    assert other.status_code == 404, other.text
    reader = requests.patch(
        f"{url}/api/cameras/{camera_a.pk}/", json=patch, headers=operador_a, timeout=10
    )
    assert reader.status_code == 403, reader.text
    listed = requests.get(f"{url}/api/cameras/?page_size=50", headers=gestor_b, timeout=10)
    assert camera_a.pk not in [c["id"] for c in listed.json()["results"]]
    # a gestor cannot create a camera with a substream in another prefeitura either
    foreign = requests.post(
        f"{url}/api/cameras/",
        json={
            "name": "Intrusa", "code": "intrusa", "prefeitura": p["a"].pk,
            "source_url": MAIN, "substream_url": SUB_QUERY[0],
        },
        headers=gestor_b,
        timeout=10,
    )  # fmt: skip
    assert foreign.status_code == 400 and "prefeitura" in foreign.json(), foreign.text
    assert not Camera.objects.filter(code="intrusa").exists()
    camera_a.refresh_from_db()
    assert camera_a.substream_url == SUB_USERINFO[0]
    # another prefeitura's operador cannot start either profile of the camera
    for profile in ("main", "sub"):
        started = requests.post(
            f"{url}/api/streams/start",
            json={"camera_id": camera_a.pk, "profile": profile},
            headers=bearer(p["operador_b"]),
            timeout=10,
        )
        assert started.status_code == 404, started.text
    assert not Stream.objects.filter(camera=camera_a).exists()


def test_one_active_stream_per_camera_and_profile(web):
    url, _process = web
    p = people()
    headers = bearer(p["operador_a"])
    with_sub = CameraFactory(prefeitura=p["a"], source_url=MAIN, substream_url=SUB_USERINFO[0])
    without = CameraFactory(prefeitura=p["a"], source_url=MAIN)
    answers: dict[str, dict] = {}

    def start(camera, **body) -> requests.Response:
        return requests.post(
            f"{url}/api/streams/start",
            json={"camera_id": camera.pk, **body},
            headers=headers,
            timeout=10,
        )

    def work() -> None:
        sub = start(with_sub, profile="sub", on_demand=True)
        assert sub.status_code == 201, sub.text
        assert sub.json()["profile"] == "sub"
        answers["sub"] = sub.json()
        joined = start(with_sub, profile="sub", on_demand=True)
        assert joined.status_code == 409, joined.text
        assert joined.json()["stream_id"] == answers["sub"]["stream_id"]
        assert joined.json()["profile"] == "sub"
        main = start(with_sub)  # the default profile: main
        assert main.status_code == 201, main.text
        assert main.json()["profile"] == "main"
        assert main.json()["stream_id"] != answers["sub"]["stream_id"]
        answers["main"] = main.json()
        again = start(with_sub, profile="main")
        assert again.status_code == 409, again.text
        assert again.json()["stream_id"] == answers["main"]["stream_id"]
        # a camera without a substream still gets its "sub" stream (the engine plays the main)
        fallback = start(without, profile="sub", on_demand=True)
        assert fallback.status_code == 201 and fallback.json()["profile"] == "sub", fallback.text
        answers["fallback"] = fallback.json()

    events = with_events(url, p["operador_a"], work)
    statuses = {
        e["stream_id"]: e["profile"] for e in events if e["type"] == "stream.status"
    }  # every stream.status says which of the camera's streams it is about
    assert statuses[answers["sub"]["stream_id"]] == "sub"
    assert statuses[answers["main"]["stream_id"]] == "main"

    bad = start(with_sub, profile="hd")
    assert bad.status_code == 400 and list(bad.json()) == ["profile"], bad.text
    sub_id, main_id = answers["sub"]["stream_id"], answers["main"]["stream_id"]
    detail = requests.get(f"{url}/api/streams/{sub_id}", headers=headers, timeout=10).json()
    assert detail["profile"] == "sub" and detail["camera_id"] == with_sub.pk
    listed = requests.get(
        f"{url}/api/streams?camera_id={with_sub.pk}", headers=headers, timeout=10
    ).json()
    rows = listed["results"] if isinstance(listed, dict) else listed
    assert {(s["stream_id"], s["profile"]) for s in rows} == {(sub_id, "sub"), (main_id, "main")}
    # keep-alive and stop are per stream: stopping the substream leaves the main one running
    alive = requests.post(f"{url}/api/streams/{sub_id}/keepalive", headers=headers, timeout=10)
    assert alive.status_code == 200 and alive.json()["status"] == "STARTING", alive.text
    services.set_stream_status(main_id, Stream.Status.RUNNING)  # what the supervisor sees
    with_sub.refresh_from_db()
    assert with_sub.status == Camera.Status.ONLINE
    stopped = requests.post(f"{url}/api/streams/{sub_id}/stop", headers=headers, timeout=10)
    assert stopped.status_code == 200 and stopped.json()["status"] == "STOPPED"
    assert Stream.objects.get(pk=main_id).status == Stream.Status.RUNNING
    with_sub.refresh_from_db()
    assert with_sub.status == Camera.Status.ONLINE  # its main stream still runs
    restarted = start(with_sub, profile="sub", on_demand=True)
    assert restarted.status_code == 201 and restarted.json()["stream_id"] != sub_id
    audit = AuditEntry.objects.filter(action="stream.start", target_id=str(with_sub.pk))
    assert sorted(e.details["profile"] for e in audit) == ["main", "sub", "sub"]
    # the database itself refuses a second active stream of the same camera and profile
    with pytest.raises(IntegrityError), transaction.atomic():
        Stream.objects.create(camera=with_sub, profile="sub", status=Stream.Status.RUNNING)


def test_admin_sets_the_substream_and_shows_it_masked(transactional_db):
    """An anonymous visitor logs in to the admin, gives the camera a substream, sees it
    masked (never the password), then removes it."""
    with running_web() as (url, process):
        prefeitura = PrefeituraFactory(name="Prefeitura do Admin")
        UserFactory(username="gestor.sub", prefeitura=prefeitura, role=Role.GESTOR)
        camera = CameraFactory(prefeitura=prefeitura, name="Pela admin", source_url=MAIN)
        visitor = AdminBrowser(url)
        login = visitor.get("/admin/cidades/camera/", allow_redirects=True)
        assert "/admin/login/" in login.url
        visitor.login("gestor.sub")
        change = f"/admin/cidades/camera/{camera.pk}/change/"
        page = visitor.get(change).text
        assert "Subfluxo (baixa resolução)" in page
        response = visitor.submit(change, {"substream_url": SUB_QUERY[0]})
        assert response.status_code == 302, form_errors(response.text) or response.text[:2000]
        camera.refresh_from_db()
        assert camera.substream_url == SUB_QUERY[0]
        page = visitor.get(change).text
        assert re.search(re.escape(SUB_QUERY[1].replace("&", "&amp;")), page), page[:3000]
        assert SUB_QUERY[1].replace("&", "&amp;") in visitor.get("/admin/cidades/camera/").text
        # a bad URL is a form error on the field; nothing changes
        response = visitor.submit(change, {"substream_url": "http://192.0.2.9/x"})
        assert response.status_code == 200 and "rtsp://" in form_errors(response.text)
        camera.refresh_from_db()
        assert camera.substream_url == SUB_QUERY[0]
        # leaving it blank keeps it; ticking "remove" removes it
        assert visitor.submit(change, {"name": "Renomeada"}).status_code == 302
        camera.refresh_from_db()
        assert camera.name == "Renomeada" and camera.substream_url == SUB_QUERY[0]
        assert visitor.submit(change, {"remove_substream": "on"}).status_code == 302
        camera.refresh_from_db()
        assert not camera.has_substream
        update = AuditEntry.objects.filter(action="camera.update", target_id=str(camera.pk))
        assert SUB_QUERY[1] in [e.details.get("substream_url_masked") for e in update]
        for body in [*visitor.pages, str(list(AuditEntry.objects.values())), process.output()]:
            assert "Sub-Query-Pa55" not in body and "Main-Pa55" not in body


# -- the dashboard in Chromium ----------------------------------------------------------------


@pytest.fixture
def small_camera():
    """A second RTSP test camera at a low resolution: the substreams."""
    assert TestCamera.available(), INSTALL_HINT
    server = TestCamera(mounts=("sub1", "sub2"), width=320, height=180)
    server.start()
    yield server
    server.stop()


@pytest.mark.browser
@pytest.mark.camera
def test_mosaic_plays_substreams_and_the_camera_page_the_main_stream(
    stack,  # noqa: F811
    browsing,  # noqa: F811
    small_camera,
):
    from playwright.sync_api import expect

    prefeitura = PrefeituraFactory(name="Prefeitura dos Subfluxos")
    user = UserFactory(prefeitura=prefeitura, role=Role.OPERADOR)
    cameras = [
        CameraFactory(prefeitura=prefeitura, name=f"Câmera {n}", code=f"sub-{n}",
                      source_url=stack.camera.url(f"cam{n}"),
                      substream_url=small_camera.url(f"sub{n}"), recording_enabled=False)
        for n in (1, 2)
    ] + [
        CameraFactory(prefeitura=prefeitura, name="Câmera 3", code="sub-3",
                      source_url=stack.camera.url("cam3"), recording_enabled=False)
    ]  # fmt: skip
    session = browsing()
    session.login(user)
    page = session.page
    starts: list[dict] = []
    page.on(
        "request",
        lambda request: (
            starts.append({"url": page.url, **json.loads(request.post_data or "{}")})
            if request.url.endswith("/api/streams/start")
            else None
        ),
    )
    page.goto(f"{session.stack.url}/dashboard/mosaic/")
    mosaic = page.locator("#mosaic")
    expect(mosaic.locator(".slot video")).to_have_count(4)
    expect(mosaic.locator('.slot[data-camera-id=""]')).to_have_count(1)  # the 4th: empty
    try:
        wait_playing(page, '#mosaic .slot:not([data-camera-id=""]) video', count=3, timeout=90)
    except Exception as exc:
        raise AssertionError(stack.logs()) from exc
    mosaic_starts = [s for s in starts if "/mosaic/" in s["url"]]
    assert {s["camera_id"] for s in mosaic_starts} == {c.pk for c in cameras}
    assert {s["profile"] for s in mosaic_starts} == {"sub"}, mosaic_starts
    # the substream's picture (320x180) plays where there is one, the main (640x...) elsewhere
    sizes = page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('#mosaic .slot')]
             .filter((s) => s.dataset.cameraId)
             .map((s) => [s.dataset.cameraId, s.querySelector('video').videoWidth]))"""
    )
    assert sizes[str(cameras[0].pk)] == 320 and sizes[str(cameras[1].pk)] == 320, sizes
    assert sizes[str(cameras[2].pk)] > 320, sizes
    for camera in cameras:
        stream = Stream.objects.get(camera=camera, status__in=Stream.ACTIVE)
        assert stream.profile == "sub"
    session.shot("substreams-mosaic")

    starts.clear()
    page.goto(f"{session.stack.url}/dashboard/cameras/{cameras[0].pk}/")
    wait_playing(page, "#player-video", timeout=90)
    assert [s["profile"] for s in starts] == ["main"], starts
    width = page.evaluate("() => document.querySelector('#player-video').videoWidth")
    assert width > 320, width
    main = Stream.objects.get(camera=cameras[0], profile="main", status__in=Stream.ACTIVE)
    assert main.pk != Stream.objects.filter(camera=cameras[0], profile="sub").first().pk

    # the grid plays substreams too
    starts.clear()
    page.goto(f"{session.stack.url}/dashboard/")
    wait_playing(page, "#camera-grid .tile video", count=3, timeout=90)
    assert {s["profile"] for s in starts} == {"sub"}, starts
