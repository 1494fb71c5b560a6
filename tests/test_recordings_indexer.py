"""The indexer against real FFmpeg recordings of the RTSP test camera."""

from __future__ import annotations

import asyncio
import os
import shutil
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
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


def _closed_segments(camera_id: int, sample, count: int) -> list[str]:
    """``count`` closed 2 s files and the open one, listed in segments.csv like FFmpeg."""
    rec = storage.record_dir(camera_id)
    names = [f"20260102T0000{2 * k:02d}Z.ts" for k in range(count + 1)]
    rows = []
    for k, name in enumerate(names):
        shutil.copy2(sample, rec / name)
        # the first lasts 2.4 s: each next file opens 0.4 s into its second
        rows.append(f"{name},{2 * k + 0.4 if k else 0:.6f},{2 * k + 2.4:.6f}\n")
    (rec / SEGMENT_LIST).write_text("".join(rows[:-1]))
    return names


def test_index_cameras_batches_every_camera_in_a_few_queries(db, tmp_path):
    sample = synthetic_segment(tmp_path / "sample.ts")
    deleted = CameraFactory()
    synthetic_segment(storage.record_dir(deleted.pk) / "20260102T000000Z.ts")
    deleted_id = deleted.pk
    deleted.delete()

    def batch(cameras: list, alive: bool = True) -> tuple[list[Segment], int]:
        dirs = {c.pk: (storage.record_dir(c.pk), alive) for c in cameras}
        dirs[deleted_id] = (storage.camera_dir(deleted_id) / storage.INCOMING, False)
        dirs[10**9] = (tmp_path / "no-such-dir", True)  # never recorded: nothing to do
        with CaptureQueriesContext(connection) as queries:
            indexed = indexer.index_cameras(dirs)
        return indexed, len(queries)

    few = [CameraFactory() for _ in range(2)]
    many = [CameraFactory() for _ in range(6)]
    names = {c.pk: _closed_segments(c.pk, sample, 3) for c in few + many}
    indexed_few, queries_few = batch(few)
    indexed_many, queries_many = batch(many)
    assert len(indexed_few) == 2 * 3 and len(indexed_many) == 6 * 3
    assert queries_many == queries_few  # one batch: not a query more per camera or segment
    for camera in few + many:
        rows = list(Segment.objects.filter(camera=camera).order_by("start"))
        assert [storage.segment_name(r.start) for r in rows] == names[camera.pk][:3]
        assert archived(camera.pk) == names[camera.pk][:3]  # moved once their rows exist
        assert segment_files(storage.record_dir(camera.pk)) == [names[camera.pk][3]]
        for previous, row in zip(rows, rows[1:], strict=False):
            assert row.start == previous.end  # the same run continues: no gap, no overlap
            assert row.start.microsecond == 400_000
        assert all(len(r.sha256) == 64 for r in rows)
        assert rows[0].sha256 == indexer.file_sha256(storage.segment_path(camera.pk, rows[0].start))
    # the deleted camera's file is left alone and has no row
    assert (storage.camera_dir(deleted_id) / storage.INCOMING / "20260102T000000Z.ts").exists()
    assert not Segment.objects.filter(camera_id=deleted_id).exists()
    # again, with the writers gone: only each camera's last file is new (exactly once)
    again, _ = batch(few, alive=False)
    assert [storage.segment_name(s.start) for s in again] == [names[c.pk][3] for c in few]
    assert Segment.objects.filter(camera__in=few).count() == 2 * 4


def test_index_cameras_completes_a_move_left_by_a_crash(db, tmp_path):
    """A row committed whose file was not moved yet (a crash between the two): the next
    pass moves it and inserts nothing for it; a copy of an archived file is deleted."""
    sample = synthetic_segment(tmp_path / "sample.ts")
    camera = CameraFactory()
    names = _closed_segments(camera.pk, sample, 2)
    rec = storage.record_dir(camera.pk)
    [first, second] = indexer.index_cameras({camera.pk: (rec, True)})
    # put the first back (a duplicate copy) and undo the move of the second (a crash)
    shutil.copy2(storage.segment_path(camera.pk, first.start), rec / names[0])
    os.replace(storage.segment_path(camera.pk, second.start), rec / names[1])
    assert indexer.index_cameras({camera.pk: (rec, True)}) == []
    assert Segment.objects.filter(camera=camera).count() == 2
    assert archived(camera.pk) == names[:2]
    assert segment_files(rec) == [names[2]]


def test_supervisor_sessions_one_query_for_cameras_in_step(db):
    """The supervisor's recorder keeps sessions in step with one query for the cameras
    already in step; a camera changed since (its fresh row says so) is still acted on."""
    from recordings.models import Recording
    from recordings.services import ensure_recording_session
    from streaming.management.commands.media_supervisor import Recorder

    def open_sessions(camera) -> int:
        return Recording.objects.filter(camera=camera, status=Recording.Status.RECORDING).count()

    in_step = [CameraFactory(recording_enabled=True) for _ in range(4)]
    for camera in in_step:
        ensure_recording_session(camera)
    missing = CameraFactory(recording_enabled=True)  # to be recorded, no session yet
    recorder = Recorder()
    with CaptureQueriesContext(connection) as queries:
        for camera in in_step:
            recorder.sessions(camera, camera.pk)
    assert len(queries) == 1
    recorder.sessions(missing, missing.pk)
    assert open_sessions(missing) == 1
    # changed after the snapshot (same pass): the fresh row wins over the snapshot
    changed = in_step[0]
    changed.recording_enabled = False
    changed.save()
    recorder.sessions(changed, changed.pk)
    assert open_sessions(changed) == 0
    # a camera no longer recorded (no row from the pass): checked against the database
    gone = in_step[1]
    gone.enabled = False
    gone.save()
    recorder.sessions(None, gone.pk)
    assert open_sessions(gone) == 0
    assert all(open_sessions(c) == 1 for c in in_step[2:])
