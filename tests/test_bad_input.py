"""Bad input at every boundary, through HTTP against the real server (Daphne): a clear 4xx,
never a 5xx, and nothing changed (row counts and the audit log stay as they were).

Boundaries: path traversal in the media, segment and clip URLs; forged, tampered, foreign
and expired media tokens; oversized, malformed, deeply nested and non-JSON bodies; naive
datetimes; out-of-range numbers and NUL characters.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.conf import settings
from django.utils import timezone

from admin_ctx.models import AuditEntry
from cidades.models import Camera
from recordings import storage
from recordings.models import Clip, Segment
from streaming import engine
from streaming.models import Stream
from tests.live_web import bearer, running_web

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "channels_postgres"])


@pytest.fixture(autouse=True)
def _fast_password_hasher():
    """Users log in through Daphne, whose hashers are the real ones: keep the default."""


TOKEN_MAX_AGE_S = 6
SECRET_TEXT = "TOP-SECRET-OUTSIDE-THE-MEDIA-DIRECTORIES"


@pytest.fixture(scope="module")
def media_root(tmp_path_factory):
    return tmp_path_factory.mktemp("bad-input-media")


@pytest.fixture(scope="module")
def web(django_db_setup, django_db_blocker, media_root):
    with (
        django_db_blocker.unblock(),
        running_web(
            GTV_LIVE_DIR=str(media_root / "live"),
            GTV_RECORDINGS_DIR=str(media_root / "recordings"),
            GTV_CLIPS_DIR=str(media_root / "clips"),
            MEDIA_VIEW_TOKEN_MAX_AGE_S=str(TOKEN_MAX_AGE_S),
            RECORDING_TOKEN_MAX_AGE_S=str(TOKEN_MAX_AGE_S),
            MEDIA_ENGINE="embedded",
        ) as (url, process),
    ):
        yield url, process


@pytest.fixture
def media(settings, media_root, tenants):
    """A's camera: a recorded segment, a running stream with its live playlist, a finished
    clip; plus secret files next to (outside) each media directory, for traversal to find."""
    settings.LIVE_DIR = media_root / "live"
    settings.RECORDINGS_DIR = media_root / "recordings"
    settings.CLIPS_DIR = media_root / "clips"
    camera = tenants["a"]["camera"]
    start = timezone.now().replace(microsecond=0) - timedelta(minutes=5)
    segment = Segment.objects.create(
        camera=camera, start=start, end=start + timedelta(seconds=4), size_bytes=188
    )
    path = storage.segment_file(segment)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x47" + b"\x00" * 187)
    stream = Stream.objects.create(camera=camera, status=Stream.Status.RUNNING)
    live = engine.live_dir(camera.pk)
    live.mkdir(parents=True, exist_ok=True)
    (live / "index.m3u8").write_text("#EXTM3U\n#EXT-X-VERSION:3\n")
    clip = Clip.objects.create(
        camera=camera,
        start=start,
        end=start + timedelta(seconds=4),
        status=Clip.Status.DONE,
        expires_at=timezone.now() + timedelta(days=1),
    )
    storage.clip_path(clip.pk).parent.mkdir(parents=True, exist_ok=True)
    storage.clip_path(clip.pk).write_bytes(b"mp4")
    for directory in (media_root, media_root / "live", media_root / "recordings"):
        for name in ("secret.m3u8", "secret.ts", "secret.mp4"):
            (directory / name).write_text(SECRET_TEXT)
    return {"camera": camera, "segment": segment, "stream": stream, "clip": clip, "start": start}


def snapshot() -> dict:
    """What a bad request must not change."""
    return {
        "audit": AuditEntry.objects.count(),
        "cameras": Camera.objects.count(),
        "clips": Clip.objects.count(),
        "streams": list(Stream.objects.order_by("pk").values_list("pk", "status")),
        "camera_rows": list(Camera.objects.order_by("pk").values()),
    }


def assert_refused(response: requests.Response, *codes: int) -> None:
    allowed = codes or (400, 401, 403, 404, 405, 413, 415)
    assert response.status_code in allowed, (
        response.request.url[:200],
        response.status_code,
        response.text[:300],
    )
    assert SECRET_TEXT not in response.text


def playback_token(url: str, headers: dict, media: dict) -> str:
    start = media["start"] - timedelta(seconds=1)
    response = requests.get(
        f"{url}/api/cameras/{media['camera'].pk}/playback.m3u8",
        params={
            "start": start.isoformat(),
            "end": (start + timedelta(minutes=1)).isoformat(),
            "reason": "bad input test",
        },
        headers=headers,
        timeout=10,
    )
    assert response.status_code == 200, response.text
    uri = next(line for line in response.text.splitlines() if line.startswith("/"))
    return parse_qs(urlsplit(uri).query)["token"][0]


def view_token(url: str, headers: dict, media: dict) -> str:
    response = requests.get(
        f"{url}/api/streams/{media['stream'].pk}/urls", headers=headers, timeout=10
    )
    assert response.status_code == 200, response.text
    return parse_qs(urlsplit(response.json()["hls"]).query)["token"][0]


@pytest.mark.timeout(120)
def test_path_traversal_in_media_urls(web, media, tenants):
    url, _process = web
    headers = bearer(tenants["a"]["operador"])
    before = snapshot()
    stream, segment, clip = media["stream"].pk, media["segment"].pk, media["clip"].pk
    names = [
        "..%2Fsecret.m3u8", "..%2F..%2Fsecret.m3u8", "%2e%2e%2fsecret.ts", "..%5Csecret.ts",
        "....%2F%2Fsecret.ts", "%252e%252e%252fsecret.m3u8", "secret.m3u8%00.ts",
        "index.m3u8%2F..%2F..%2Fsecret.m3u8", "." * 3 + ".m3u8", "a" * 300 + ".ts",
        "b" * 5000 + ".m3u8",
    ]  # fmt: skip
    for name in names:
        token = view_token(url, headers, media)  # fresh: tokens live TOKEN_MAX_AGE_S here
        for extra in ({}, {"token": token}):
            response = requests.get(
                f"{url}/api/streams/{stream}/hls/{name}",
                params=extra,
                headers={} if extra else headers,
                timeout=10,
            )
            assert_refused(response, 400, 404)
    ok = requests.get(f"{url}/api/streams/{stream}/hls/index.m3u8", headers=headers, timeout=10)
    assert ok.status_code == 200 and "#EXTM3U" in ok.text  # the probe reaches the real view
    media_token = playback_token(url, headers, media)
    for path in [
        f"recordings/segments/..%2F..%2Fsecret.ts?token={media_token}",
        f"recordings/segments/{segment}.ts%2F..%2F..%2Fsecret.ts?token={media_token}",
        f"recordings/segments/{segment}%2F..%2Fsecret.ts?token={media_token}",
        f"recordings/segments/-1.ts?token={media_token}",
        f"recordings/segments/{'9' * 40}.ts?token={media_token}",
        f"clips/..%2F{clip}/download",
        f"clips/{clip}%2F..%2F..%2Fsecret.mp4/download",
        f"clips/{'9' * 40}/download",
        f"cameras/{'9' * 40}/timeline/?start=2026-01-01T00:00Z&end=2026-01-01T01:00Z",
        f"streams/{'9' * 40}/urls",
    ]:
        response = requests.get(f"{url}/api/{path}", headers=headers, timeout=10)
        assert_refused(response, 400, 401, 404)
        if response.headers.get("Content-Type", "").startswith("application/json"):
            assert isinstance(response.json(), dict)
    media_token = playback_token(url, headers, media)
    seg = requests.get(
        f"{url}/api/recordings/segments/{segment}.ts", params={"token": media_token}, timeout=10
    )
    assert seg.status_code == 200  # the probe reaches the real view
    after = snapshot()
    # only the two legitimate views above were audited (urls of the stream: a live view)
    assert after["camera_rows"] == before["camera_rows"] and after["clips"] == before["clips"]


@pytest.mark.timeout(120)
def test_forged_foreign_and_expired_media_tokens(web, media, tenants):
    url, _process = web
    headers = bearer(tenants["a"]["operador"])
    segment_url = f"{url}/api/recordings/segments/{media['segment'].pk}.ts"
    live_url = f"{url}/api/streams/{media['stream'].pk}/hls/index.m3u8"
    playback = playback_token(url, headers, media)
    live = view_token(url, headers, media)
    assert requests.get(segment_url, params={"token": playback}, timeout=10).status_code == 200
    assert requests.get(live_url, params={"token": live}, timeout=10).status_code == 200
    head, _sep, signature = playback.rpartition(":")
    before = snapshot()
    forged = [
        "", "x", "null", "a" * 5000, playback[:-1] + ("A" if playback[-1] != "A" else "B"),
        f"{head}:{'A' * len(signature)}", playback.upper(), f"{playback}:extra",
        live,  # a live view token is not a playback token
    ]  # fmt: skip
    for token in forged:
        assert_refused(requests.get(segment_url, params={"token": token}, timeout=10), 401, 404)
    for token in [*forged[:-1], playback]:  # a playback token does not open live media
        assert_refused(requests.get(live_url, params={"token": token}, timeout=10), 401, 404)
    assert snapshot() == before
    # the token of a user deactivated since does not open the media
    other = playback_token(url, bearer(tenants["admin"]), media)
    tenants["admin"].is_active = False
    tenants["admin"].save()
    before = snapshot()
    assert_refused(requests.get(segment_url, params={"token": other}, timeout=10), 401, 404)
    time.sleep(TOKEN_MAX_AGE_S + 1.5)
    assert_refused(requests.get(segment_url, params={"token": playback}, timeout=10), 401, 404)
    assert_refused(requests.get(live_url, params={"token": live}, timeout=10), 401, 404)
    assert snapshot() == before


@pytest.mark.timeout(120)
def test_oversized_and_malformed_bodies(web, media, tenants):
    url, _process = web
    headers = bearer(tenants["a"]["gestor"])
    camera = media["camera"]
    before = snapshot()
    big = {
        "name": "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 10),
        "code": "grande",
        "source_url": "rtsp://192.0.2.1/x",
    }
    endpoints = [
        ("post", "/api/cameras/"),
        ("patch", f"/api/cameras/{camera.pk}/"),
        ("put", f"/api/cameras/{camera.pk}/"),
        ("post", "/api/streams/start"),
        ("post", "/api/clips/"),
        ("post", "/api/recordings/start"),
        ("post", "/api/users/"),
        ("post", "/api/auth/token/"),
    ]
    raw_bodies = [
        (b"{", "application/json"),
        (b'{"name": "x",}', "application/json"),
        (b"\xff\xfe\x00garbage", "application/json"),
        (b"[" * 100_000 + b"]" * 100_000, "application/json"),
        (b'{"a":' * 50_000 + b"1" + b"}" * 50_000, "application/json"),
        (b"[1, 2, 3]", "application/json"),
        (b'"a string"', "application/json"),
        (b"null", "application/json"),
        (b"name=x&code=y&source_url=rtsp://192.0.2.1/x", "application/x-www-form-urlencoded"),
        (b"--b\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nx\r\n--b--\r\n",
         "multipart/form-data; boundary=b"),
        (b"<camera/>", "application/xml"),
        (b'{"name": "NaN", "latitude": NaN, "longitude": Infinity}', "application/json"),
    ]  # fmt: skip
    for method, path in endpoints:
        response = requests.request(method, url + path, json=big, headers=headers, timeout=30)
        assert_refused(response, 413)
        for body, content_type in raw_bodies:
            response = requests.request(
                method,
                url + path,
                data=body,
                headers={**headers, "Content-Type": content_type},
                timeout=30,
            )
            assert_refused(response, 400, 401, 413, 415)
            if response.status_code != 401:
                assert isinstance(response.json(), dict), (path, body[:20], response.text[:200])
    # values a JSON object may carry that the database would choke on
    for data in [
        {"name": "nul\u0000byte", "code": "nul", "source_url": "rtsp://192.0.2.1/x"},
        {"name": "n", "code": "n", "source_url": "rtsp://192.0.2.1/x\u0000"},
        {"name": "n", "code": "n", "source_url": "rtsp://192.0.2.1/x", "latitude": "1e999"},
        {"name": "n", "code": "n", "source_url": "rtsp://192.0.2.1/x", "prefeitura": 2**70},
        {"name": ["list"], "code": {"a": 1}, "source_url": 12},
        {"name": "n" * 100_000, "code": "n", "source_url": "rtsp://192.0.2.1/x"},
    ]:
        response = requests.post(f"{url}/api/cameras/", json=data, headers=headers, timeout=10)
        assert_refused(response, 400)
    for body in ({"camera_id": 2**70}, {"camera_id": -1}, {"camera_id": "1; DROP"}, {}):
        response = requests.post(f"{url}/api/streams/start", json=body, headers=headers, timeout=10)
        assert_refused(response, 400, 404)
    assert snapshot() == before
    # the dashboard's own JSON endpoint (session: log in through the form)
    session = requests.Session()
    session.get(f"{url}/", timeout=10)
    login = session.post(
        f"{url}/",
        data={
            "username": tenants["a"]["gestor"].username,
            "password": "Senha-de-teste-123",
            "csrfmiddlewaretoken": session.cookies.get("csrftoken", ""),
        },
        headers={"Referer": f"{url}/"},
        timeout=10,
    )
    assert login.status_code == 200 and session.cookies.get("sessionid"), login.status_code
    csrf = {"X-CSRFToken": session.cookies.get("csrftoken", ""), "Referer": f"{url}/"}
    before = snapshot()  # the login itself is audited
    for body in (b"[" * 100_000, b"{", b"x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 10)):
        response = session.put(f"{url}/dashboard/api/mosaic/", data=body, headers=csrf)
        assert_refused(response, 400, 413)
    assert snapshot() == before


@pytest.mark.timeout(120)
def test_naive_datetimes_are_refused(web, media, tenants):
    url, _process = web
    headers = bearer(tenants["a"]["operador"])
    camera = media["camera"]
    naive = datetime.now().replace(microsecond=0) - timedelta(minutes=10)
    aware = timezone.now() - timedelta(minutes=5)
    before = snapshot()
    ranges = [
        {"start": naive.isoformat(), "end": (naive + timedelta(minutes=1)).isoformat()},
        {"start": naive.isoformat(), "end": aware.isoformat()},
        {"start": (aware - timedelta(minutes=1)).isoformat(), "end": naive.isoformat()},
        {"start": "2026-02-30T10:00:00Z", "end": aware.isoformat()},
        {"start": "yesterday", "end": aware.isoformat()},
        {"start": "0241-01-06T11:43:01Z", "end": aware.isoformat()},  # LMT offsets
        {"start": aware.isoformat(), "end": "9999-12-31T23:59:59+14:00"},
    ]
    for params in ranges:
        for path in (
            f"/api/cameras/{camera.pk}/timeline/",
            f"/api/cameras/{camera.pk}/playback.m3u8",
            "/api/recordings/search",
        ):
            response = requests.get(
                url + path, params={**params, "reason": "x"}, headers=headers, timeout=10
            )
            assert_refused(response, 400)
            assert {"start", "end"} & set(response.json()), response.text
        response = requests.post(
            f"{url}/api/clips/",
            json={"camera_id": camera.pk, "reason": "x", **params},
            headers=headers,
            timeout=10,
        )
        assert_refused(response, 400)
        assert {"start", "end"} & set(response.json()), response.text
    # the access report's CSV form answers its errors in JSON too
    for user, code in ((tenants["a"]["gestor"], 400), (tenants["a"]["operador"], 403)):
        response = requests.get(
            f"{url}/api/reports/access/",
            params={"format": "csv", "start": naive.isoformat()},
            headers=bearer(user),
            timeout=10,
        )
        assert_refused(response, code)
        assert response.headers["Content-Type"].startswith("application/json"), response.headers
        assert isinstance(response.json(), dict)
    response = requests.get(
        f"{url}/api/cameras/{camera.pk}/snapshot.jpg",
        params={"at": naive.isoformat()},
        headers=headers,
        timeout=10,
    )
    assert_refused(response, 400)
    assert "at" in response.json()
    assert snapshot() == before
