"""Camera URL credentials in every form (userinfo, query or path parameters) never leave in
clear, and absolute URLs come from ``PUBLIC_URL``, never from a forged ``Host`` header.

Through the real server (Daphne, ``manage.py serve``) with ``requests`` and ``websockets``.
"""

from __future__ import annotations

import asyncio
import json

import pytest
import requests
import websockets
from django.db import connection

from admin_ctx.models import AuditEntry
from cidades.models import Camera
from cidades.validators import mask_source_url, url_secrets
from streaming.ffmpeg import redact_url
from streaming.models import Stream
from tests.live_web import bearer, running_web

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "channels_postgres"])

# (URL the gestor types, what source_url_masked must show)
FORMS = [
    (
        "rtsp://admin:Userinfo-Pa55@192.0.2.10:554/live",
        "rtsp://admin:***@192.0.2.10:554/live",
    ),
    (
        "rtsp://192.0.2.11/cam/realmonitor?channel=1&user=admin&password=Query-Pa55&subtype=0",
        "rtsp://192.0.2.11/cam/realmonitor?channel=1&user=***&password=***&subtype=0",
    ),
    (
        "rtsp://192.0.2.12:554/user=admin&PASSWORD=Path-Pa55&channel=1&stream=0.sdp",
        "rtsp://192.0.2.12:554/user=***&PASSWORD=***&channel=1&stream=0.sdp",
    ),
    (
        "rtsp://192.0.2.13/h264?Username=operador&Pwd=Pwd-Pa55&Senha=Senha-Pa55&token=Tok-Pa55",
        "rtsp://192.0.2.13/h264?Username=***&Pwd=***&Senha=***&token=***",
    ),
    (
        "rtsps://u:Both-Pa55@192.0.2.14/x?passwd=Passwd-Pa55&auth=Auth-Pa55&apikey=Key-Pa55",
        "rtsps://u:***@192.0.2.14/x?passwd=***&auth=***&apikey=***",
    ),
]
SECRETS = [
    "Userinfo-Pa55", "Query-Pa55", "Path-Pa55", "Pwd-Pa55", "Senha-Pa55", "Tok-Pa55",
    "Both-Pa55", "Passwd-Pa55", "Auth-Pa55", "Key-Pa55",
]  # fmt: skip


@pytest.mark.parametrize(("url", "masked"), FORMS)
def test_mask_source_url(url, masked):
    assert mask_source_url(url) == masked
    assert mask_source_url(masked) == masked
    assert {s for s in SECRETS if s in url} <= url_secrets(url)
    # FFmpeg's output (last_error, logs) is scrubbed of every form too
    scrubbed = redact_url(f"[rtsp] 401 Unauthorized {url} ({' '.join(SECRETS)})", url)
    assert masked in scrubbed
    assert not any(secret in scrubbed for secret in SECRETS if secret in url), scrubbed


@pytest.fixture(scope="module")
def web(django_db_setup, django_db_blocker):
    with (
        django_db_blocker.unblock(),
        running_web(
            LOG_LEVEL="DEBUG", ALLOWED_HOSTS="*", PUBLIC_URL="https://vms.example.gov.br"
        ) as running,
    ):
        yield running


async def collect_events(url: str, token: str, seconds: float, ready: asyncio.Event) -> list:
    received = []
    ws_url = url.replace("http://", "ws://") + f"/ws/events?token={token}"
    async with websockets.connect(ws_url, origin="https://vms.example.gov.br") as socket:
        ready.set()
        try:
            async with asyncio.timeout(seconds):
                while True:
                    received.append(await socket.recv())
        except TimeoutError:
            pass
    return received


@pytest.mark.timeout(180)
def test_credentials_never_leave_in_clear(web, tenants):
    url, process = web
    gestor = tenants["a"]["gestor"]
    headers = bearer(gestor)
    token = headers["Authorization"].split()[1]
    bodies: list[str] = []

    async def scenario() -> list:
        ready = asyncio.Event()
        listener = asyncio.create_task(collect_events(url, token, 6.0, ready))
        await asyncio.wait_for(ready.wait(), 10)
        await asyncio.to_thread(write_cameras)
        return await listener

    ids: list[int] = []

    def write_cameras() -> None:
        for n, (source, masked) in enumerate(FORMS):
            created = requests.post(
                f"{url}/api/cameras/",
                json={"name": f"Cred {n}", "code": f"cred-{n}", "source_url": source},
                headers=headers,
                timeout=10,
            )
            assert created.status_code == 201, created.text
            assert created.json()["source_url_masked"] == masked
            ids.append(created.json()["id"])
            bodies.append(created.text)
            changed = requests.patch(
                f"{url}/api/cameras/{ids[-1]}/",
                json={"source_url": source + "&v=2" if "?" in source else source + "?v=2"},
                headers=headers,
                timeout=10,
            )
            assert changed.status_code == 200, changed.text
            bodies.append(changed.text)
            bad = requests.post(
                f"{url}/api/cameras/",
                json={"name": "x", "code": f"bad-{n}", "source_url": source + " x"},
                headers=headers,
                timeout=10,
            )
            assert bad.status_code == 400
            bodies.append(bad.text)

    events = asyncio.run(scenario())
    assert any(json.loads(e).get("type") == "camera.updated" for e in events), events
    bodies.extend(events)
    for path in ("/api/cameras/?page_size=500", "/api/audit/?page_size=500"):
        response = requests.get(url + path, headers=headers, timeout=10)
        assert response.status_code == 200
        bodies.append(response.text)
    for camera_id in ids:
        bodies.append(
            requests.get(f"{url}/api/cameras/{camera_id}/", headers=headers, timeout=10).text
        )
    bodies.append(str(list(AuditEntry.objects.values())))
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM cidades_camera WHERE id = ANY(%s)", [ids])
        bodies.append(repr(cursor.fetchall()))
    bodies.append(process.output())
    for secret in SECRETS:
        for body in bodies:
            assert secret not in body, (secret, body[:300])
    # the media plane still gets the whole URL
    assert Camera.objects.get(pk=ids[1]).source_url == FORMS[1][0] + "&v=2"


@pytest.mark.timeout(120)
def test_absolute_urls_ignore_a_forged_host(web, tenants):
    url, _process = web
    operador = tenants["a"]["operador"]
    camera = tenants["a"]["camera"]
    stream = Stream.objects.create(camera=camera, status=Stream.Status.RUNNING)
    forged = {**bearer(operador), "Host": "evil.example", "X-Forwarded-Host": "evil.example"}
    urls = requests.get(f"{url}/api/streams/{stream.pk}/urls", headers=forged, timeout=10)
    assert urls.status_code == 200, urls.text
    assert urls.json()["hls"].startswith("https://vms.example.gov.br/api/streams/"), urls.json()
    # pagination links and the API root
    Camera.objects.create(prefeitura=camera.prefeitura, name="Outra", code="outra")
    page = requests.get(f"{url}/api/cameras/?page_size=1", headers=forged, timeout=10).json()
    assert page["next"].startswith("https://vms.example.gov.br/api/cameras/?"), page["next"]
    second = requests.get(
        page["next"].replace("https://vms.example.gov.br", url), headers=forged, timeout=10
    )
    assert second.json()["previous"].startswith("https://vms.example.gov.br/"), second.json()
    root = requests.get(f"{url}/api/", headers=forged, timeout=10).json()
    assert root and all(v.startswith("https://vms.example.gov.br/api/") for v in root.values())
    for body in (urls.text, json.dumps(page), json.dumps(root)):
        assert "evil.example" not in body
