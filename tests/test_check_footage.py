"""Files on disk = rows: ``manage.py check_footage [--repair]`` and retention by stored location.

Files are real MPEG-TS written by FFmpeg (``sample``, and a live recording of the RTSP test
camera); some rows are inserted with SQL and some files copied in by hand, as an operator or
another tool would, not through the indexer.
"""

from __future__ import annotations

import os
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from recordings import footage, retention, storage, tasks
from recordings.models import Clip, Segment
from streaming.ffmpeg import SEGMENT_LIST
from testcamera import INSTALL_HINT, TestCamera
from tests.factories import CameraFactory
from tests.test_recordings_support import (
    backdate,
    listed,
    recorder,
    segment_files,
    supervise,
    synthetic_segment,
)


@pytest.fixture(autouse=True)
def _media_dirs(settings, tmp_path):
    settings.RECORDINGS_DIR = tmp_path / "recordings"
    settings.CLIPS_DIR = tmp_path / "clips"
    settings.FOOTAGE_CHECK_GRACE_S = 0  # the files of these tests were all written just now


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return synthetic_segment(tmp_path_factory.mktemp("sample") / "sample.ts")


def ago(**kwargs) -> datetime:
    return (timezone.now() - timedelta(**kwargs)).replace(microsecond=0)


def root() -> Path:
    return storage.recordings_root()


def copy_in(sample: Path, location: str) -> Path:
    """A file copied in by hand at ``location`` (relative to RECORDINGS_DIR)."""
    path = root() / location
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(sample, path)  # modified now, like a fresh copy
    return path


def insert_row(camera_id: int, start: datetime, seconds: float = 2.0, location: str | None = None):
    """A row inserted with SQL, not by our code (no location column unless given)."""
    columns, values = (
        'camera_id, start, "end", size_bytes',
        [
            camera_id,
            start,
            start + timedelta(seconds=seconds),
            1000,
        ],
    )
    if location is not None:
        columns += ", location"
        values.append(location)
    marks = ", ".join(["%s"] * len(values))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO recordings_segment ({columns}) VALUES ({marks}) RETURNING id",  # noqa: S608
            values,
        )
        return cursor.fetchone()[0]


def files_on_disk() -> set[str]:
    found = set()
    for directory, _dirs, files in os.walk(root()):
        for name in files:
            if name != SEGMENT_LIST:
                found.add(os.path.relpath(os.path.join(directory, name), root()))
    return found


def files_of_rows() -> set[str]:
    return {
        os.path.relpath(storage.segment_file(segment), root()) for segment in Segment.objects.all()
    }


def test_check_reports_then_repairs_rows_and_files_not_written_by_our_code(db, sample, capsys):
    camera = CameraFactory()
    base = ago(hours=3)
    indexed = backdate(camera.pk, [base, base + timedelta(seconds=2)], sample)
    # rows inserted with SQL: one whose file never existed, one stored elsewhere by hand
    ghost = insert_row(camera.pk, base + timedelta(minutes=10))
    imported_start = base + timedelta(minutes=20)
    copy_in(sample, f"cam{camera.pk}/imported/evidence-1.ts")
    imported = insert_row(
        camera.pk, imported_start, location=f"cam{camera.pk}/imported/evidence-1.ts"
    )
    # a row inserted with SQL at the canonical place of a file copied in by hand: consistent
    by_hand = base + timedelta(minutes=30)
    copy_in(sample, storage.canonical_location(camera.pk, by_hand))
    insert_row(camera.pk, by_hand)
    # files copied in by hand that no row references
    lost = base + timedelta(minutes=40)
    lost_file = storage.canonical_location(camera.pk, lost)
    copy_in(sample, lost_file)
    misplaced = base + timedelta(minutes=50)
    misplaced_file = f"cam{camera.pk}/2020/01/01/{storage.segment_name(misplaced)}"
    copy_in(sample, misplaced_file)
    duplicate = copy_in(sample, f"cam{camera.pk}/copy/{storage.segment_name(indexed[0].start)}")
    junk = [
        copy_in(sample, f"cam{camera.pk}/{base:%Y/%m/%d}/notes.ts"),
        copy_in(sample, f"cam{camera.pk}/stray.mp4"),
    ]
    (root() / f"cam{camera.pk}" / "empty.ts").write_bytes(b"")
    unknown_camera = copy_in(sample, f"cam999999/{base:%Y/%m/%d}/{storage.segment_name(base)}")
    rows_before = set(Segment.objects.values_list("pk", flat=True))
    files_before = files_on_disk()

    call_command("check_footage")
    out = capsys.readouterr().out
    assert f"row {ghost} has no file" in out
    assert f"file {lost_file} has no row" in out and f"file {misplaced_file} has no row" in out
    assert "cam999999" in out and "notes.ts has no row" in out
    assert (
        f"row {imported} " not in out and storage.canonical_location(camera.pk, by_hand) not in out
    )
    assert "1 rows without a file, 7 files without a row" in out
    # a report changes nothing
    assert set(Segment.objects.values_list("pk", flat=True)) == rows_before
    assert files_on_disk() == files_before

    call_command("check_footage", "--repair")
    out = capsys.readouterr().out
    assert "repaired: 1 rows dropped, 2 files indexed, 5 files removed" in out, out

    assert not Segment.objects.filter(pk=ghost).exists()
    assert Segment.objects.filter(pk=imported).exists()
    adopted = Segment.objects.get(camera=camera, start=lost)
    assert adopted.location == ""  # at its canonical place
    assert 1.5 < adopted.duration_s < 2.5 and adopted.size_bytes == sample.stat().st_size
    moved = Segment.objects.get(camera=camera, start=misplaced)
    assert moved.location == misplaced_file
    assert not duplicate.exists() and not any(path.exists() for path in junk)
    assert not unknown_camera.exists() and not (root() / "cam999999").exists()
    # files on disk = rows, and a second check finds nothing
    assert files_on_disk() == files_of_rows()
    assert footage.check(repair=True) == []
    call_command("check_footage")
    assert capsys.readouterr().out.strip() == (
        "0 rows without a file, 0 files without a row; clips: 0 without a file, 0 stray files"
    )


def test_clip_files_and_rows_are_reconciled_too(db, capsys):
    camera = CameraFactory()
    start = ago(hours=1)

    def clip(status: str, with_file: bool) -> Clip:
        row = Clip.objects.create(
            camera=camera, start=start, end=start + timedelta(seconds=5), status=status,
            expires_at=timezone.now() + timedelta(days=1),
        )  # fmt: skip
        if with_file:
            storage.clip_path(row.pk).write_bytes(b"mp4")
        return row

    kept = clip(Clip.Status.DONE, True)
    lost = clip(Clip.Status.DONE, False)
    running = clip(Clip.Status.RUNNING, False)
    partial = storage.clip_path(running.pk).with_suffix(".mp4.part")
    partial.write_bytes(b"being exported")
    failed = clip(Clip.Status.FAILED, False)
    strays = [storage.clip_path(failed.pk), storage.clip_path(999999), storage.clips_root() / "x"]
    for path in strays:
        path.write_bytes(b"stray")

    call_command("check_footage")
    assert "clips: 1 without a file, 3 stray files" in capsys.readouterr().out
    call_command("check_footage", "--repair")
    lost.refresh_from_db()
    assert lost.status == Clip.Status.FAILED and lost.error
    assert storage.clip_path(kept.pk).exists() and partial.exists()
    assert not any(path.exists() for path in strays)
    assert footage.check_clips().clean


def test_a_file_being_written_or_copied_is_never_touched(db, sample, settings):
    camera = CameraFactory()
    settings.FOOTAGE_CHECK_GRACE_S = 120
    fresh = copy_in(sample, storage.canonical_location(camera.pk, ago(hours=1)))
    waiting = copy_in(sample, f"cam{camera.pk}/incoming/{storage.segment_name(ago(hours=1))}")
    assert footage.check(repair=True) == []
    assert fresh.exists() and waiting.exists() and not Segment.objects.exists()
    old = time.time() - 300
    os.utime(fresh, (old, old))
    [report] = footage.check(repair=True)
    assert report.indexed == [os.path.relpath(fresh, root())]


def test_retention_deletes_each_file_where_its_row_says(db, sample):
    camera = CameraFactory()  # basico: 7 days
    old = ago(days=9)
    # a row whose start is not its file's name (inserted by hand), and one with no location
    elsewhere = copy_in(sample, f"cam{camera.pk}/imported/{storage.segment_name(old)}")
    insert_row(camera.pk, old + timedelta(seconds=5), location=os.path.relpath(elsewhere, root()))
    canonical = copy_in(sample, storage.canonical_location(camera.pk, old + timedelta(minutes=1)))
    insert_row(camera.pk, old + timedelta(minutes=1))
    # a stored location inside a day directory past the cutoff is not an orphan for the sweep
    kept_start = ago(hours=1)
    in_old_day = copy_in(
        sample, f"cam{camera.pk}/{old:%Y/%m/%d}/{storage.segment_name(kept_start)}"
    )
    insert_row(camera.pk, kept_start, location=os.path.relpath(in_old_day, root()))

    purges = retention.apply_retention()

    assert [(p.camera_id, p.segments) for p in purges] == [(camera.pk, 2)]
    assert not elsewhere.exists() and not canonical.exists()
    assert in_old_day.exists()
    assert files_on_disk() == files_of_rows()


def test_disk_floor_deletes_by_stored_location(db, sample, settings):
    camera = CameraFactory()
    start = ago(hours=5)
    moved = copy_in(sample, f"cam{camera.pk}/imported/{storage.segment_name(start)}")
    insert_row(camera.pk, start, location=os.path.relpath(moved, root()))
    settings.RETENTION_DISK_FLOOR_BYTES = 10**18
    retention.enforce_disk_floor()
    assert not moved.exists() and not Segment.objects.exists()


def test_the_hourly_job_repairs(db, sample):
    camera = CameraFactory()
    ghost = insert_row(camera.pk, ago(hours=2))
    lost = ago(hours=1)
    copy_in(sample, storage.canonical_location(camera.pk, lost))
    tasks.check_footage(int(time.time()))
    assert not Segment.objects.filter(pk=ghost).exists()
    assert Segment.objects.filter(camera=camera, start=lost).exists()
    assert files_on_disk() == files_of_rows()


@pytest.mark.camera
@pytest.mark.timeout(120)
def test_repair_during_a_live_recording_never_touches_the_open_segment(db, tmp_path):
    if not TestCamera.available():
        pytest.fail(INSTALL_HINT)
    camera_row = CameraFactory()
    incoming = storage.record_dir(camera_row.pk)
    with TestCamera() as camera:
        ffmpeg = recorder(camera, incoming, tmp_path / "hls")
        ffmpeg.start()
        try:
            for _ in range(4):
                count = len(segment_files(incoming))
                supervise(ffmpeg, lambda c=count: len(segment_files(incoming)) > max(c, 1))
                footage.check(repair=True)
                # what FFmpeg writes now is still in its directory, never moved
                assert len(segment_files(incoming)) >= 1
            count = len(segment_files(incoming)) + len(Segment.objects.filter(camera=camera_row))
            supervise(  # and it keeps recording
                ffmpeg,
                lambda: (
                    len(segment_files(incoming)) + Segment.objects.filter(camera=camera_row).count()
                    > count
                ),
            )
        finally:
            ffmpeg.stop()
    rows = list(Segment.objects.filter(camera=camera_row).order_by("start"))
    assert len(rows) >= 3
    closed = set(listed(incoming))
    for row in rows:
        # only segments FFmpeg had closed became rows, each with the whole file
        assert storage.segment_name(row.start) in closed
        assert row.size_bytes == storage.segment_file(row).stat().st_size
    assert all(
        a.end <= b.start + timedelta(milliseconds=1) for a, b in zip(rows, rows[1:], strict=False)
    )
    assert datetime.now(UTC) - rows[-1].end < timedelta(seconds=60)
    left = [os.path.relpath(incoming / name, root()) for name in segment_files(incoming)]
    assert files_on_disk() == files_of_rows() | set(left)


@pytest.mark.parametrize("location", ["/etc/passwd", "cam1/../../etc/passwd", ".."])
def test_a_row_cannot_point_outside_the_recordings_directory(db, location):
    camera = CameraFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        insert_row(camera.pk, ago(hours=1), location=location)
