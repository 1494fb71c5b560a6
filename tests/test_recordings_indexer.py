"""The indexer against real FFmpeg recordings of the RTSP test camera."""

from __future__ import annotations

import asyncio
import shutil
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.core.management import call_command
from rest_framework_simplejwt.tokens import AccessToken

from gtvision.asgi import application
from recordings import indexer, queries, storage
from recordings.indexer import read_segment_list
from recordings.models import Segment
from streaming.ffmpeg import SEGMENT_LIST
from testcamera import TestCamera
from tests.factories import CameraFactory, UserFactory
from tests.test_recordings_support import (
    GOP_S,
    SEGMENT_SECONDS,
    footage,
    index_footage,
    install,
    kill_mid_segment,
    listed,
    packet_span,
    recorder,
    segment_files,
    supervise,
    synthetic_segment,
)

pytestmark = [pytest.mark.camera, pytest.mark.timeout(120)]


@pytest.fixture(autouse=True)
def _media_dirs(settings, tmp_path):
    settings.RECORDINGS_DIR = tmp_path / "recordings"
    settings.CLIPS_DIR = tmp_path / "clips"


def archived(camera_id: int) -> list[str]:
    return sorted(p.name for p in storage.camera_dir(camera_id).glob("*/*/*/*.ts"))


def test_live_recording_is_indexed_as_it_closes_then_a_kill_is_caught_up(db, tmp_path):
    """The supervisor's loop: index every pass while FFmpeg records, kill -9, restart."""
    camera = CameraFactory()
    rec = storage.record_dir(camera.pk)
    with TestCamera() as source:
        ffmpeg = recorder(source, rec, tmp_path / "hls")
        ffmpeg.start()

        def indexed_pass():
            ffmpeg.poll()
            indexer.index_camera(camera.pk, rec, writer_alive=ffmpeg.pid is not None)
            return set(listed(rec)) <= set(archived(camera.pk)) and len(listed(rec)) >= 2

        try:
            supervise(ffmpeg, indexed_pass)
            # Only the file FFmpeg is writing waits in the record dir.
            assert segment_files(rec) == [max(segment_files(rec))]
            durations = read_segment_list(rec / SEGMENT_LIST)
            for segment in Segment.objects.filter(camera=camera):
                name = storage.segment_name(segment.start)
                assert segment.duration_s == pytest.approx(durations[name], abs=0.001)
                path = storage.segment_path(camera.pk, segment.start)
                assert segment.size_bytes == path.stat().st_size
            cut = kill_mid_segment(ffmpeg, rec)
            ffmpeg.start()  # the supervisor restarts it: segments.csv starts over
            supervise(ffmpeg, lambda: segment_files(rec)[-1] != cut)
            indexer.index_camera(camera.pk, rec, writer_alive=True)
        finally:
            ffmpeg.stop()
    named = storage.parse_segment_name(cut)
    row = Segment.objects.get(
        camera=camera, start__gte=named, start__lt=named + timedelta(seconds=1)
    )
    path = storage.segment_path(camera.pk, row.start)
    assert path.parent != rec
    assert row.duration_s == pytest.approx(packet_span(path), abs=0.01)
    assert 0 < row.duration_s < SEGMENT_SECONDS + GOP_S
    # exactly once: one row per file, every file has its row, another pass adds nothing
    indexer.index_camera(camera.pk, rec, writer_alive=False)
    names = archived(camera.pk)
    assert len(names) == Segment.objects.filter(camera=camera).count()
    assert indexer.index_camera(camera.pk, rec, writer_alive=False) == []
    assert segment_files(rec) == []


def test_recording_with_outage_and_kill_is_indexed_once_with_true_durations(db, tmp_path_factory):
    recording = footage(tmp_path_factory)
    camera = CameraFactory()
    segments = index_footage(recording, camera.pk)
    names = [storage.segment_name(s.start) for s in segments]
    assert names == recording.first_run + recording.second_run == archived(camera.pk)
    listing = read_segment_list(recording.directory / SEGMENT_LIST)
    for segment, name in zip(segments, names, strict=True):
        path = storage.segment_path(camera.pk, segment.start)
        if name in listing:  # the last run's closed segments: from segments.csv
            assert segment.duration_s == pytest.approx(listing[name], abs=0.001)
        else:  # the first run's (list truncated by the restart) and the one cut by kill -9
            assert segment.duration_s == pytest.approx(packet_span(path), abs=0.01)
    assert recording.cut not in listing
    # The outage is the one hole of the timeline.
    spans = queries.timeline_spans(
        camera.pk, segments[0].start - timedelta(minutes=1), segments[-1].end + timedelta(minutes=1)
    )
    assert len(spans) == 2
    (_, first_end), (second_start, _) = spans
    down, up = recording.outage
    assert first_end <= up and second_start >= down
    assert (second_start - first_end).total_seconds() > 1.5
    # Indexing the same files again (a restart re-copying them) creates nothing.
    install(recording, camera.pk)
    assert indexer.index_camera(camera.pk, storage.record_dir(camera.pk), writer_alive=False) == []
    assert Segment.objects.filter(camera=camera).count() == len(segments)
    assert segment_files(storage.record_dir(camera.pk)) == []


def test_writer_alive_leaves_the_newest_file_alone(db, tmp_path_factory):
    recording = footage(tmp_path_factory)
    camera = CameraFactory()
    rec = install(recording, camera.pk, recording.second_run)
    indexed = indexer.index_camera(camera.pk, rec, writer_alive=True)
    assert [storage.segment_name(s.start) for s in indexed] == recording.second_run[:-1]
    assert segment_files(rec) == [recording.cut]


def test_empty_and_unreadable_files_are_deleted_not_indexed(db, tmp_path):
    camera = CameraFactory()
    rec = storage.record_dir(camera.pk)
    (rec / "20260101T000000Z.ts").write_bytes(b"")
    (rec / "20260101T000010Z.ts").write_bytes(b"\x47" + bytes(range(256)) * 4)
    synthetic_segment(rec / "20260101T000020Z.ts")
    (rec / "notes.txt").write_text("not a segment")
    indexed = indexer.index_camera(camera.pk, rec, writer_alive=False)
    assert [storage.segment_name(s.start) for s in indexed] == ["20260101T000020Z.ts"]
    assert sorted(p.name for p in rec.iterdir()) == ["notes.txt"]
    assert indexed[0].duration_s == pytest.approx(2.0, abs=0.01)


def test_catch_up_command_indexes_every_camera(db, tmp_path, capsys):
    cameras = [CameraFactory(), CameraFactory()]
    sample = synthetic_segment(tmp_path / "sample.ts")
    for index, camera in enumerate(cameras):
        rec = storage.record_dir(camera.pk)
        for second in (0, 2, 4):
            shutil.copy2(sample, rec / f"2026010{index + 1}T00000{second}Z.ts")
    call_command("index_recordings")  # writers may be alive: each newest file waits
    assert Segment.objects.count() == 4
    call_command("index_recordings", "--writers-stopped")
    assert "indexed 2 segments of 2 cameras" in capsys.readouterr().out
    assert Segment.objects.count() == 6
    assert all(segment_files(storage.record_dir(c.pk)) == [] for c in cameras)


def test_segments_of_a_deleted_camera_are_not_indexed(db, tmp_path):
    camera = CameraFactory()
    rec = storage.record_dir(camera.pk)
    synthetic_segment(rec / "20260101T000000Z.ts")
    camera_id = camera.pk
    camera.delete()
    assert indexer.index_camera(camera_id, rec, writer_alive=False) == []
    assert not Segment.objects.filter(camera_id=camera_id).exists()


@pytest.mark.django_db(transaction=True, databases=["default", "channels_postgres"])
async def test_segment_event_reaches_only_its_prefeitura(channel_layer):
    camera = await sync_to_async(CameraFactory)()
    own = await sync_to_async(UserFactory)(prefeitura=camera.prefeitura)
    other = await sync_to_async(UserFactory)()
    sockets = []
    for user in (own, other):
        path = f"ws/events?token={AccessToken.for_user(user)}"
        communicator = WebsocketCommunicator(application, path, headers=[(b"host", b"localhost")])
        connected, _ = await communicator.connect(timeout=5)
        assert connected
        sockets.append(communicator)
    rec = await sync_to_async(storage.record_dir)(camera.pk)
    await sync_to_async(synthetic_segment)(rec / "20260101T000000Z.ts")
    [segment] = await sync_to_async(indexer.index_camera)(camera.pk, rec, writer_alive=False)
    event = await sockets[0].receive_json_from(timeout=10)
    assert event["type"] == "recording.segment"
    assert event["camera_id"] == camera.pk and event["segment_id"] == segment.pk
    assert event["start"].startswith("2026-01-01T00:00:00")
    assert event["duration_s"] == pytest.approx(2.0, abs=0.01)
    assert event["size_bytes"] == segment.size_bytes
    assert await sockets[1].receive_nothing(timeout=1)
    await asyncio.gather(*(s.disconnect() for s in sockets))
