"""Search, timeline, playback, snapshots and recording sessions over the real recording."""

from __future__ import annotations

import subprocess
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from admin_ctx.models import AuditEntry
from recordings import services, storage
from recordings.models import Recording, Segment
from streaming.ffmpeg import ffmpeg_env, ffmpeg_exe
from tests.conftest import client_for
from tests.factories import CameraFactory
from tests.test_recordings_support import (
    decodes_as_jpeg,
    footage,
    index_footage,
    seconds,
    utc,
)

pytestmark = [pytest.mark.camera, pytest.mark.timeout(120)]


@pytest.fixture(autouse=True)
def _media_dirs(settings, tmp_path):
    settings.RECORDINGS_DIR = tmp_path / "recordings"
    settings.CLIPS_DIR = tmp_path / "clips"


@pytest.fixture
def recording(tmp_path_factory):
    return footage(tmp_path_factory)


@pytest.fixture
def recorded(tenants, recording):
    """Prefeitura A's camera with the session's recording indexed: (camera, segments)."""
    camera = tenants["a"]["camera"]
    return camera, index_footage(recording, camera.pk)


def iso(value) -> str:
    return value.isoformat()


def test_search_returns_overlapping_segments_paginated(tenants, recorded):
    camera, segments = recorded
    client = client_for(tenants["a"]["operador"])
    start, end = segments[1].start + seconds(0.5), segments[3].start + seconds(0.5)
    expected = [s for s in segments if s.start < end and s.end > start]
    assert len(expected) >= 3
    params = {"camera_id": camera.pk, "start": iso(start), "end": iso(end), "page_size": 2}
    response = client.get("/api/recordings/search", params)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["count"] == len(expected) and len(body["results"]) == 2 and body["next"]
    row = body["results"][0]
    assert set(row) == {"id", "camera_id", "start", "end", "duration_s", "size_bytes"}
    assert row["id"] == expected[0].pk and row["camera_id"] == camera.pk
    assert utc(row["start"]) == expected[0].start and row["start"].endswith("-03:00")
    assert row["duration_s"] == expected[0].duration_s
    assert row["size_bytes"] == expected[0].size_bytes
    rest = client.get(body["next"]).json()["results"]
    assert [r["id"] for r in rest] == [s.pk for s in expected[2:4]]
    # [start, end): a segment starting exactly at end is out, one ending at start too
    exact = {"camera_id": camera.pk, "start": iso(segments[1].end), "end": iso(segments[3].start)}
    ids = [r["id"] for r in client.get("/api/recordings/search", exact).json()["results"]]
    assert segments[1].pk not in ids and segments[3].pk not in ids
    # trailing slash too; all visible cameras without camera_id
    assert client.get("/api/recordings/search/", params).status_code == 200
    assert client.get("/api/recordings/search").json()["count"] == len(segments)


def test_search_of_one_page_skips_the_count_query(tenants, recorded):
    camera, segments = recorded
    client = client_for(tenants["a"]["operador"])
    params = {"camera_id": camera.pk, "start": iso(segments[0].start), "page_size": 500}
    with CaptureQueriesContext(connection) as captured:
        body = client.get("/api/recordings/search", params).json()
    assert len(captured) == 2  # the camera, then the page: its length is the count
    assert not any("COUNT(" in query["sql"] for query in captured.captured_queries)
    assert body["count"] == len(segments) and body["next"] is None
    assert [row["id"] for row in body["results"]] == [s.pk for s in segments]
    exact = {**params, "page_size": len(segments)}  # a full first page still counts
    assert client.get("/api/recordings/search", exact).json()["count"] == len(segments)
    assert client.get("/api/recordings/search", {**params, "page": 2}).status_code == 404


@pytest.mark.parametrize(
    "params",
    [
        {"start": "2026-01-01T10:00:00", "end": "2026-01-01T11:00:00-03:00"},
        {"start": "2026-01-01T11:00:00-03:00", "end": "2026-01-01T10:00:00-03:00"},
        {"start": "yesterday"},
        {"camera_id": "abc"},
    ],
)
def test_search_bad_input_is_400(tenants, recorded, params):
    camera, _ = recorded
    response = client_for(tenants["a"]["gestor"]).get(
        "/api/recordings/search", {"camera_id": camera.pk, **params}
    )
    assert response.status_code == 400
    assert set(response.json()) <= {"start", "end", "camera_id"}


def test_timeline_merges_segments_into_spans_in_one_query(tenants, recorded, recording):
    camera, segments = recorded
    client = client_for(tenants["a"]["operador"])
    start, end = segments[0].start - timedelta(minutes=5), segments[-1].end + timedelta(minutes=5)
    url = f"/api/cameras/{camera.pk}/timeline"
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url, {"start": iso(start), "end": iso(end)})
    assert response.status_code == 200, response.content
    assert len(captured) == 3  # the camera, the spans, the evidence locks
    spans = [(utc(s["start"]), utc(s["end"])) for s in response.json()["spans"]]
    first_run = len(recording.first_run)
    assert spans == [
        (segments[0].start, max(s.end for s in segments[:first_run])),
        (segments[first_run].start, segments[-1].end),
    ]
    # clipped to the range asked for
    middle = segments[1].start + seconds(0.5)
    clipped = client.get(f"{url}/", {"start": iso(middle), "end": iso(middle + seconds(1))})
    assert [(utc(s["start"]), utc(s["end"])) for s in clipped.json()["spans"]] == [
        (middle, middle + seconds(1))
    ]
    empty = client.get(url, {"start": iso(end), "end": iso(end + timedelta(hours=1))})
    assert empty.json() == {"spans": [], "locks": []}
    assert client.get(url, {"start": iso(start)}).status_code == 400


def test_playback_playlist_plays_with_its_token(tenants, recorded, tmp_path):
    camera, segments = recorded
    user = tenants["a"]["operador"]
    start, end = segments[0].start, segments[-1].end
    response = client_for(user).get(
        f"/api/cameras/{camera.pk}/playback.m3u8", {"start": iso(start), "end": iso(end)}
    )
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/vnd.apple.mpegurl"
    text = response.content.decode()
    lines = text.splitlines()
    assert lines[0] == "#EXTM3U" and "#EXT-X-PLAYLIST-TYPE:VOD" in lines
    assert lines[-1] == "#EXT-X-ENDLIST"
    dates = [line.split(":", 1)[1] for line in lines if line.startswith("#EXT-X-PROGRAM-DATE")]
    assert len(dates) == len(segments)
    for date, segment in zip(dates, segments, strict=True):
        assert abs(utc(date.replace("Z", "+00:00")) - segment.start) < timedelta(milliseconds=1)
    assert lines.count("#EXT-X-DISCONTINUITY") == len(segments) - 1
    uris = [line for line in lines if line and not line.startswith("#")]
    assert len(uris) == len(segments)
    anonymous = APIClient()  # what a player has: the URI and nothing else
    for uri, segment in zip(uris, segments, strict=True):
        media = anonymous.get(uri)
        assert media.status_code == 200, uri
        assert media["Content-Type"] == "video/mp2t"
        body = b"".join(media.streaming_content)
        assert body == storage.segment_path(camera.pk, segment.start).read_bytes()
        (tmp_path / f"{segment.pk}.ts").write_bytes(body)
    assert anonymous.get(uris[0], HTTP_RANGE="bytes=0-187").status_code == 206
    # FFmpeg plays the playlist end to end (URIs mapped to the downloaded files).
    local = text
    for uri, segment in zip(uris, segments, strict=True):
        local = local.replace(uri, f"{segment.pk}.ts")
    (tmp_path / "index.m3u8").write_text(local)
    played = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-i", str(tmp_path / "index.m3u8"), "-c", "copy"]
        + ["-f", "null", "-"],
        capture_output=True,
        env=ffmpeg_env(),
        check=False,
    )
    assert played.returncode == 0, played.stderr
    entry = AuditEntry.objects.get(action="recording.playback")
    assert entry.actor == user and entry.target_id == str(camera.pk)
    assert utc(entry.details["start"]) == start
    # the token is for this user and camera only
    token = uris[0].split("token=")[1]
    assert anonymous.get(uris[0].split("?")[0]).status_code == 401
    assert anonymous.get(uris[0][:-3] + "xyz").status_code == 401
    other = Segment.objects.create(
        camera=CameraFactory(prefeitura=camera.prefeitura), start=start, end=end, size_bytes=1
    )
    assert anonymous.get(f"/api/recordings/segments/{other.pk}.ts?token={token}").status_code == 404


def test_playback_errors(tenants, recorded, settings):
    camera, segments = recorded
    client = client_for(tenants["a"]["gestor"])
    url = f"/api/cameras/{camera.pk}/playback.m3u8"
    later = segments[-1].end + timedelta(hours=1)
    nothing = client.get(url, {"start": iso(later), "end": iso(later + timedelta(hours=1))})
    assert nothing.status_code == 404
    naive = client.get(url, {"start": "2026-01-01T00:00:00", "end": iso(later)})
    assert naive.status_code == 400 and "start" in naive.json()
    settings.PLAYBACK_MAX_SECONDS = 60
    too_long = client.get(url, {"start": iso(later), "end": iso(later + timedelta(hours=1))})
    assert too_long.status_code == 400
    assert not AuditEntry.objects.filter(action="recording.playback").exists()


def test_snapshot_of_a_recorded_instant_and_of_the_latest_frame(tenants, recorded, tmp_path):
    camera, segments = recorded
    client = client_for(tenants["a"]["operador"])
    url = f"/api/cameras/{camera.pk}/snapshot.jpg"
    for at in (segments[1].start + seconds(1.2), segments[0].start - timedelta(hours=1), None):
        response = client.get(url, {"at": iso(at)} if at else {})
        assert response.status_code == 200, response.content
        assert response["Content-Type"] == "image/jpeg"
        assert decodes_as_jpeg(response.content, tmp_path)
    entries = AuditEntry.objects.filter(action="recording.snapshot", target_id=str(camera.pk))
    assert entries.count() == 3
    # without `at`: a frame at the end of the newest segment
    assert utc(entries.order_by("at").last().details["start"]) > segments[-1].end - seconds(1)
    assert client.get(url, {"at": "2026-01-01T00:00:00"}).status_code == 400
    nothing = tenants["b"]["camera"]
    assert (
        client_for(tenants["b"]["operador"])
        .get(f"/api/cameras/{nothing.pk}/snapshot.jpg")
        .status_code
        == 404
    )


def test_recording_sessions_start_stop_and_stats(tenants, recorded):
    camera, segments = recorded
    camera.recording_enabled = False
    camera.save()
    gestor = client_for(tenants["a"]["gestor"])
    started = gestor.post("/api/recordings/start", {"camera_id": camera.pk}, format="json")
    assert started.status_code == 201, started.content
    body = started.json()
    assert body["status"] == "RECORDING" and body["camera_id"] == camera.pk
    assert {"recording_id", "started_at"} <= set(body)
    camera.refresh_from_db()
    assert camera.recording_enabled
    again = gestor.post("/api/recordings/start/", {"camera_id": camera.pk}, format="json")
    assert again.status_code == 409
    assert again.json()["recording_id"] == body["recording_id"]
    operador = client_for(tenants["a"]["operador"])
    assert (
        operador.post("/api/recordings/stop", {"camera_id": camera.pk}, format="json").status_code
        == 403
    )
    stopped = gestor.post("/api/recordings/stop", {"camera_id": camera.pk}, format="json")
    assert stopped.status_code == 200
    assert stopped.json()["status"] == "STOPPED" and stopped.json()["ended_at"]
    camera.refresh_from_db()
    assert not camera.recording_enabled
    actions = set(AuditEntry.objects.values_list("action", flat=True))
    assert {"recording.start", "recording.stop"} <= actions
    # stopping again: the same session, nothing changes
    assert (
        gestor.post("/api/recordings/stop", {"camera_id": camera.pk}, format="json").json()[
            "recording_id"
        ]
        == (body["recording_id"])
    )
    # a session's stats count the footage recorded during it
    session = Recording.objects.get(pk=body["recording_id"])
    Recording.objects.filter(pk=session.pk).update(
        started_at=segments[0].start, ended_at=segments[2].start
    )
    detail = operador.get(f"/api/recordings/{session.pk}")
    assert detail.status_code == 200
    stats = detail.json()
    assert stats["segment_count"] == 2
    assert stats["size_bytes"] == segments[0].size_bytes + segments[1].size_bytes
    assert stats["duration_s"] == pytest.approx(segments[0].duration_s + segments[1].duration_s)


def test_ensure_recording_session_follows_the_camera(tenants):
    camera = tenants["a"]["camera"]
    assert camera.recording_enabled and camera.enabled
    session = services.ensure_recording_session(camera)
    assert session.status == Recording.Status.RECORDING and session.started_by is None
    assert services.ensure_recording_session(camera) == session
    camera.enabled = False
    camera.save()
    assert services.ensure_recording_session(camera) is None
    session.refresh_from_db()
    assert session.status == Recording.Status.STOPPED and session.ended_at
    camera.enabled = True
    camera.save()
    assert services.ensure_recording_session(camera) != session
    assert Recording.objects.filter(camera=camera, status="RECORDING").count() == 1


def test_starting_a_disabled_camera_or_stopping_an_idle_one_is_409(tenants):
    camera = tenants["a"]["camera"]
    camera.enabled = False
    camera.recording_enabled = False
    camera.save()
    client = client_for(tenants["a"]["gestor"])
    assert (
        client.post("/api/recordings/start", {"camera_id": camera.pk}, format="json").status_code
        == 409
    )
    assert (
        client.post("/api/recordings/stop", {"camera_id": camera.pk}, format="json").status_code
        == 409
    )
    assert client.post("/api/recordings/start", {}, format="json").status_code == 400
    assert not Recording.objects.exists()


def test_every_recordings_path_hides_other_prefeituras(tenants, recorded, recording):
    """A's users get 404 for B's cameras, sessions, segments and clips."""
    camera_b = tenants["b"]["camera"]
    segments_b = index_footage(recording, camera_b.pk)
    session_b = services.ensure_recording_session(camera_b)
    clip_b = services.create_clip(
        camera_b, segments_b[0].start, segments_b[1].end, actor=tenants["b"]["operador"]
    )
    window = {"start": iso(segments_b[0].start), "end": iso(segments_b[-1].end)}
    gets = [
        (f"/api/cameras/{camera_b.pk}/timeline", window),
        (f"/api/cameras/{camera_b.pk}/playback.m3u8", window),
        (f"/api/cameras/{camera_b.pk}/snapshot.jpg", {}),
        ("/api/recordings/search", {"camera_id": camera_b.pk}),
        (f"/api/recordings/{session_b.pk}", {}),
        (f"/api/clips/{clip_b.pk}", {}),
        (f"/api/clips/{clip_b.pk}/download", {}),
    ]
    posts = [
        ("/api/recordings/start", {"camera_id": camera_b.pk}),
        ("/api/recordings/stop", {"camera_id": camera_b.pk}),
        ("/api/clips/", {"camera_id": camera_b.pk, **window}),
    ]
    for role in ("gestor", "operador"):
        client = client_for(tenants["a"][role])
        for url, params in gets:
            assert client.get(url, params).status_code == 404, (role, url)
        for url, body in posts:
            assert client.post(url, body, format="json").status_code == 404, (role, url)
        listed = client.get("/api/clips/").json()["results"]
        assert clip_b.pk not in [c["id"] for c in listed]
        found = client.get("/api/recordings/search").json()["results"]
        assert {r["camera_id"] for r in found} == {recorded[0].pk}
    # B's playback token does not open A's segments
    token = (
        client_for(tenants["b"]["operador"])
        .get(f"/api/cameras/{camera_b.pk}/playback.m3u8", window)
        .content.decode()
        .split("token=")[1]
        .split()[0]
    )
    own_segment = recorded[1][0]
    url = f"/api/recordings/segments/{own_segment.pk}.ts?token={token}"
    assert APIClient().get(url).status_code == 404
    camera_b.refresh_from_db()
    assert camera_b.recording_enabled
    assert Recording.objects.get(pk=session_b.pk).status == "RECORDING"


def test_openapi_schema_has_no_warnings(db):
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", "/dev/null")


def test_admin_lists_sessions_and_clips_read_only(client, tenants):
    services.ensure_recording_session(tenants["a"]["camera"])
    services.ensure_recording_session(tenants["b"]["camera"])
    client.force_login(tenants["a"]["gestor"])
    page = client.get("/admin/recordings/recording/")
    assert page.status_code == 200
    assert page.context["cl"].result_count == 1
    assert client.get("/admin/recordings/clip/").status_code == 200
    assert client.get("/admin/recordings/recording/add/").status_code == 403
