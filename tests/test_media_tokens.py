"""Playback tokens are bound to the playlist's range, short-lived and revoked on logout and
password change; every media route answers 404 to an odd or oversized name.

Through a real Daphne (``manage.py serve``) with ``requests``: the dashboard's login form, the
playlist a player gets, its segment URIs fetched without any cookie (as a player or anyone
holding the URI would), logout by POST.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
import requests
from django.utils import timezone

from admin_ctx.models import Role
from recordings import storage
from recordings.tokens import lifetime, make_playback_token, read_playback_token
from streaming.models import Stream
from tests.factories import PASSWORD, AdminFactory, CameraFactory, UserFactory
from tests.live_web import bearer, running_web
from tests.test_login_throttle import dashboard_login
from tests.test_recordings_support import backdate, synthetic_segment

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]

REFUSED = (401, 403, 404)


@pytest.fixture(autouse=True)
def _media_dirs(settings, tmp_path):
    settings.RECORDINGS_DIR = tmp_path / "recordings"
    settings.CLIPS_DIR = tmp_path / "clips"


@pytest.fixture(autouse=True)
def _fast_password_hasher():
    """Daphne checks passwords with the real hashers: users keep the default one."""


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return synthetic_segment(tmp_path_factory.mktemp("sample") / "sample.ts")


@pytest.fixture
def web():
    with running_web() as (url, _process):
        yield url


@pytest.fixture
def footage(sample):
    """A camera recorded yesterday at 10:00, 10:02 and 11:00 UTC, and its operador."""
    camera = CameraFactory()
    day = (timezone.now() - timedelta(days=1)).astimezone(UTC)
    ten = datetime(day.year, day.month, day.day, 10, 0, tzinfo=UTC)
    segments = backdate(
        camera.pk, [ten, ten + timedelta(minutes=2), ten + timedelta(hours=1)], sample
    )
    user = UserFactory(prefeitura=camera.prefeitura, role=Role.OPERADOR)
    return camera, segments, user, ten


def playlist_uris(session, url: str, camera_id: int, start: datetime, end: datetime, **kw):
    response = session.get(
        f"{url}/api/cameras/{camera_id}/playback.m3u8",
        params={"start": start.isoformat(), "end": end.isoformat()},
        timeout=30,
        **kw,
    )
    assert response.status_code == 200, response.text
    return [line for line in response.text.splitlines() if line and not line.startswith("#")]


def fetch(url: str, uri: str) -> requests.Response:
    return requests.get(f"{url}{uri}", timeout=30)  # no cookie, no header: the URI alone


def test_a_playlist_token_opens_only_its_range_and_dies_with_the_session(web, footage):
    camera, segments, user, ten = footage
    login = dashboard_login(web, user.username, PASSWORD)
    assert login.status_code == 302, login.text
    session = login.session
    uris = playlist_uris(session, web, camera.pk, ten, ten + timedelta(minutes=5))
    assert [re.search(r"/segments/(\d+)\.ts", uri).group(1) for uri in uris] == [
        str(segments[0].pk),
        str(segments[1].pk),
    ]
    first = fetch(web, uris[0])
    assert first.status_code == 200
    assert first.content == storage.segment_file(segments[0]).read_bytes()

    # the same token on the 11:00 segment of the same camera: outside its range
    eleven = uris[0].replace(f"/{segments[0].pk}.ts", f"/{segments[2].pk}.ts")
    assert fetch(web, eleven).status_code in REFUSED

    page = session.get(f"{web}/dashboard/", timeout=30)
    csrf = session.cookies.get("csrftoken")
    logout = session.post(
        f"{web}/logout/",
        data={"csrfmiddlewaretoken": csrf},
        headers={"Referer": page.url},
        allow_redirects=False,
        timeout=30,
    )
    assert logout.status_code in (200, 302), logout.text
    assert fetch(web, uris[0]).status_code in REFUSED
    assert fetch(web, uris[1]).status_code in REFUSED

    # a new session gets new tokens that work
    again = dashboard_login(web, user.username, PASSWORD).session
    uris = playlist_uris(again, web, camera.pk, ten, ten + timedelta(minutes=5))
    assert fetch(web, uris[0]).status_code == 200


def test_a_password_change_revokes_the_tokens_issued_before(web, footage):
    camera, segments, user, ten = footage
    uris = playlist_uris(
        requests, web, camera.pk, ten, ten + timedelta(minutes=3), headers=bearer(user)
    )
    assert fetch(web, uris[0]).status_code == 200
    changed = requests.patch(
        f"{web}/api/users/{user.pk}/",
        json={"password": "Outra-senha-forte-456"},
        headers=bearer(AdminFactory()),
        timeout=30,
    )
    assert changed.status_code == 200, changed.text
    assert fetch(web, uris[0]).status_code in REFUSED


def test_tokens_expire_with_their_playlist(settings):
    settings.RECORDING_TOKEN_MARGIN_S = 600
    settings.RECORDING_TOKEN_MAX_AGE_S = 3600
    start = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
    now = timezone.now()
    short = make_playback_token(1, 2, start, start + timedelta(minutes=5), now=now)
    assert lifetime(start, start + timedelta(minutes=5)) == timedelta(minutes=15)
    assert read_playback_token(short, now=now + timedelta(minutes=14)) is not None
    assert read_playback_token(short, now=now + timedelta(minutes=15)) is None
    # a long playlist's token is capped
    assert lifetime(start, start + timedelta(hours=20)) == timedelta(hours=1)
    # forged or garbage tokens are nothing
    assert read_playback_token(short[:-2] + "xx") is None
    assert read_playback_token("x" * 5000) is None


def test_odd_or_oversized_names_on_media_routes_are_404(web, footage):
    camera, segments, user, ten = footage
    stream = Stream.objects.create(camera=camera, status=Stream.Status.RUNNING)
    auth = bearer(user)
    uris = playlist_uris(requests, web, camera.pk, ten, ten + timedelta(minutes=3), headers=auth)
    token = uris[0].split("token=")[1]
    long_digits, huge = "9" * 300, "9" * 19  # past bigint
    when = {"start": ten.isoformat(), "end": (ten + timedelta(minutes=1)).isoformat()}
    paths = [
        f"/api/recordings/segments/{long_digits}.ts?token={token}",
        f"/api/recordings/segments/{huge}.ts?token={token}",
        f"/api/recordings/segments/{'a' * 300}.ts?token={token}",
        f"/api/recordings/segments/{segments[0].pk}.ts.mp4?token={token}",
        f"/api/recordings/segments/..%2F..%2Fetc%2Fpasswd.ts?token={token}",
        f"/api/clips/{long_digits}/download",
        f"/api/clips/{huge}/download",
        f"/api/recordings/{long_digits}",
        f"/api/cameras/{long_digits}/playback.m3u8",
        f"/api/cameras/{huge}/snapshot.jpg",
        f"/api/cameras/{huge}/timeline",
        f"/api/streams/{stream.pk}/hls/{'a' * 300}.ts",  # live HLS (streaming app)
        f"/api/streams/{stream.pk}/hls/..%2F..%2Fsecret.ts",
        f"/api/streams/{long_digits}/hls/index.m3u8",
    ]
    for path in paths:
        response = requests.get(f"{web}{path}", params=when, headers=auth, timeout=30)
        assert response.status_code == 404, (path[:80], response.status_code)
    # an oversized or forged token is no authentication, never an error
    for bad in ("x" * 5000, token[:-3] + "abc", ""):
        response = fetch(web, f"/api/recordings/segments/{segments[0].pk}.ts?token={bad}")
        assert response.status_code in (401, 403), response.status_code
