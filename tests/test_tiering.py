"""Footage tiers: closed segments move to a real SeaweedFS (``weed mini``, tests/s3.py).

Segments are real MPEG-TS files written by FFmpeg and indexed by the indexer (or rows inserted
with SQL, as another tool would); the bucket is checked with a client of its own
(``s3_settings.server.client()``), not through our object store code. Outages are real: the
``weed mini`` process is stopped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from recordings import footage, objectstore, storage, tasks, tiering
from recordings.models import Segment
from tests.factories import CameraFactory
from tests.supervisor import ROOT, process_env, wait_for
from tests.test_recordings_support import backdate, synthetic_segment

S3 = Segment.Storage.S3
LOCAL = Segment.Storage.LOCAL


@pytest.fixture(autouse=True)
def _fresh(settings):
    settings.FOOTAGE_HOT_SECONDS = 3600
    settings.FOOTAGE_CHECK_GRACE_S = 0  # the files of these tests were all written just now
    tiering.reset_state()
    yield
    tiering.reset_state()


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return synthetic_segment(tmp_path_factory.mktemp("sample") / "sample.ts")


def ago(**kwargs):
    return (timezone.now() - timedelta(**kwargs)).replace(microsecond=0)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch(s3, key: str) -> bytes:
    """The object's bytes, read with a client of the test's own."""
    return s3.server.client().get_object(Bucket=s3.bucket, Key=key)["Body"].read()


def object_keys(s3) -> set[str]:
    response = s3.server.client().list_objects_v2(Bucket=s3.bucket)
    return {item["Key"] for item in response.get("Contents", [])}


def insert_row(camera_id, start, size, digest="", location=""):
    """A row inserted with SQL, not by our code."""
    with connection.cursor() as cursor:
        cursor.execute(
            'INSERT INTO recordings_segment (camera_id, start, "end", size_bytes, sha256, location)'
            " VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
            [camera_id, start, start + timedelta(seconds=2), size, digest, location],
        )
        return cursor.fetchone()[0]


def test_cold_segments_move_verified_and_hot_ones_stay(db, s3_settings, sample):
    camera = CameraFactory()
    old = [ago(hours=3), ago(hours=3) + timedelta(seconds=2), ago(hours=2)]
    hot = ago(minutes=5)
    segments = backdate(camera.pk, [*old, hot], sample)
    originals = {s.pk: storage.segment_file(s).read_bytes() for s in segments}

    run = tiering.move_cold_segments()

    assert run.moved == 3 and run.complete and not run.unavailable, run
    for segment in segments:
        segment.refresh_from_db()
    moved, kept = segments[:3], segments[3]
    for segment in moved:
        assert segment.storage == S3
        assert segment.location == storage.canonical_location(camera.pk, segment.start)
        data = fetch(s3_settings, segment.location)
        assert data == originals[segment.pk]
        assert len(data) == segment.size_bytes and sha256(data) == segment.sha256
        head = s3_settings.server.client().head_object(
            Bucket=s3_settings.bucket, Key=segment.location
        )
        assert head["Metadata"]["sha256"] == segment.sha256
        assert not storage.archive_path(camera.pk, segment.start).exists()
    assert kept.storage == LOCAL and storage.segment_file(kept).exists()
    assert object_keys(s3_settings) == {s.location for s in moved}

    again = tiering.move_cold_segments()
    assert again.moved == 0 and again.complete


def test_hot_seconds_zero_moves_every_closed_segment_under_the_prefix(
    db, s3_settings, sample, settings
):
    settings.FOOTAGE_HOT_SECONDS = 0
    settings.S3_PREFIX = "city/footage"
    camera = CameraFactory()
    segments = backdate(camera.pk, [ago(seconds=30), ago(seconds=10)], sample)

    tasks.tier_footage(int(time.time()))  # the periodic job

    for segment in segments:
        segment.refresh_from_db()
        expected = "city/footage/" + storage.canonical_location(camera.pk, segment.start)
        assert (segment.storage, segment.location) == (S3, expected)
        assert sha256(fetch(s3_settings, expected)) == segment.sha256


def test_the_bucket_is_created_when_missing(db, s3_settings, sample, settings):
    settings.S3_BUCKET = f"{s3_settings.bucket}-new"
    camera = CameraFactory()
    (segment,) = backdate(camera.pk, [ago(hours=5)], sample)

    assert tiering.move_cold_segments().moved == 1

    segment.refresh_from_db()
    body = s3_settings.server.client().get_object(Bucket=settings.S3_BUCKET, Key=segment.location)
    assert sha256(body["Body"].read()) == segment.sha256


def test_files_that_do_not_match_their_row_are_not_switched(db, s3_settings, sample):
    camera = CameraFactory()
    flipped, truncated, fine = backdate(
        camera.pk, [ago(hours=4), ago(hours=4) + timedelta(seconds=2), ago(hours=3)], sample
    )
    # bit rot after indexing: same size, other bytes
    path = storage.segment_file(flipped)
    data = bytearray(path.read_bytes())
    data[1000] ^= 0xFF
    path.write_bytes(bytes(data))
    # a file cut short
    cut = storage.segment_file(truncated)
    cut.write_bytes(cut.read_bytes()[:-188])

    run = tiering.move_cold_segments()

    assert run.moved == 1 and sorted(run.mismatched) == sorted([flipped.pk, truncated.pk])
    for segment in (flipped, truncated, fine):
        segment.refresh_from_db()
    assert (flipped.storage, truncated.storage, fine.storage) == (LOCAL, LOCAL, S3)
    assert storage.segment_file(flipped).exists() and storage.segment_file(truncated).exists()
    assert object_keys(s3_settings) == {fine.location}  # nothing stored for the others


def test_a_segment_still_waiting_in_incoming_moves_once_archived(db, s3_settings, sample, settings):
    settings.FOOTAGE_HOT_SECONDS = 0
    camera = CameraFactory()
    start = ago(seconds=20)
    data = sample.read_bytes()
    # the instant between the indexer's commit and its move out of incoming/
    waiting = storage.record_dir(camera.pk) / storage.segment_name(start)
    waiting.write_bytes(data)
    pk = insert_row(camera.pk, start, len(data), sha256(data))

    run = tiering.move_cold_segments()

    assert run.moved == 0 and run.complete
    assert Segment.objects.get(pk=pk).storage == LOCAL and waiting.exists()
    archived = storage.archive_path(camera.pk, start)
    archived.parent.mkdir(parents=True)
    waiting.rename(archived)  # the indexer's move

    assert tiering.move_cold_segments().moved == 1
    assert Segment.objects.get(pk=pk).storage == S3 and not archived.exists()


def test_a_row_without_checksum_gets_it_and_a_large_file_goes_multipart(
    db, s3_settings, sample, settings, tmp_path
):
    settings.S3_MULTIPART_THRESHOLD_BYTES = 5 * 1024**2  # S3's minimum part size
    camera = CameraFactory()
    start = ago(hours=6)
    # a large segment copied in by hand (MPEG-TS concatenates), its row inserted with SQL
    big = storage.archive_path(camera.pk, start)
    big.parent.mkdir(parents=True)
    chunk = sample.read_bytes()
    with big.open("wb") as handle:
        while handle.tell() < 6 * 1024**2:
            handle.write(chunk)
    data = big.read_bytes()
    pk = insert_row(camera.pk, start, len(data))  # no sha256

    run = tiering.move_cold_segments()

    assert run.moved == 1, run
    segment = Segment.objects.get(pk=pk)
    assert segment.storage == S3 and segment.sha256 == sha256(data)
    assert fetch(s3_settings, segment.location) == data
    assert not big.exists()


def test_an_object_left_by_a_crash_before_the_switch_is_overwritten(db, s3_settings, sample):
    camera = CameraFactory()
    (segment,) = backdate(camera.pk, [ago(hours=3)], sample)
    key = storage.canonical_location(camera.pk, segment.start)
    # a previous run crashed mid-way: a partial object under the key, the row still LOCAL
    s3_settings.server.client().put_object(Bucket=s3_settings.bucket, Key=key, Body=b"partial")
    # not an orphan for check_footage: deleting it could race with its upload's switch
    assert footage.check(repair=True) == []
    assert key in object_keys(s3_settings)

    assert tiering.move_cold_segments().moved == 1

    segment.refresh_from_db()
    assert segment.storage == S3 and sha256(fetch(s3_settings, key)) == segment.sha256


def test_a_row_deleted_or_moved_meanwhile_is_not_switched_again(db, s3_settings, sample):
    camera = CameraFactory()
    deleted, raced = backdate(camera.pk, [ago(hours=3), ago(hours=2)], sample)
    rows = tiering._candidates([camera.pk], tiering._EPOCH, timezone.now(), 10)
    run = tiering.TierRun(cutoff=timezone.now())
    uploaded = [tiering._upload(row, row.local_path(), run) for row in rows]
    # meanwhile retention deletes one row, and another uploader moves the other
    Segment.objects.filter(pk=deleted.pk).delete()
    assert tiering.move_cold_segments().moved == 1

    tiering._switch(uploaded, run)  # the slow uploader's UPDATE matches nothing

    assert run.moved == 0
    raced.refresh_from_db()
    assert raced.storage == S3
    key = storage.canonical_location(camera.pk, raced.start)
    assert raced.location == key and sha256(fetch(s3_settings, key)) == raced.sha256
    assert object_keys(s3_settings) == {key}  # the deleted row's object went too


def test_bucket_down_footage_stays_local_then_catches_up(db, s3_settings, sample, settings, caplog):
    camera = CameraFactory()
    starts = [ago(hours=3), ago(hours=2), ago(hours=1, minutes=30)]
    segments = backdate(camera.pk, starts, sample)
    originals = {s.pk: storage.segment_file(s).read_bytes() for s in segments}
    s3_settings.server.stop()  # the process is gone: connections are refused

    with caplog.at_level(logging.WARNING, logger="recordings.tiering"):
        tasks.tier_footage(int(time.time()))  # the job returns, it does not raise
        for _ in range(2):
            run = tiering.move_cold_segments()
            assert run.unavailable and run.moved == 0

    unreachable = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(unreachable) == 1  # once per outage
    for segment in segments:
        segment.refresh_from_db()
        assert segment.storage == LOCAL
        assert storage.segment_file(segment).read_bytes() == originals[segment.pk]

    s3_settings.server.start()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="recordings.tiering"):
        run = tiering.move_cold_segments()

    assert run.moved == 3 and not run.unavailable
    assert any("reachable again" in r.getMessage() for r in caplog.records)
    for segment in segments:
        segment.refresh_from_db()
        assert segment.storage == S3
        assert fetch(s3_settings, segment.location) == originals[segment.pk]
        assert not storage.archive_path(camera.pk, segment.start).exists()


def test_the_job_is_a_no_op_without_object_storage(db, sample, settings):
    settings.S3_ENDPOINT_URL = ""
    settings.S3_BUCKET = ""
    settings.FOOTAGE_HOT_SECONDS = 0
    camera = CameraFactory()
    (segment,) = backdate(camera.pk, [ago(hours=30)], sample)

    assert not objectstore.enabled()
    assert tiering.move_cold_segments() is None
    tasks.tier_footage(int(time.time()))

    segment.refresh_from_db()
    assert segment.storage == LOCAL and storage.segment_file(segment).exists()


def test_delete_footage_removes_files_and_objects(db, s3_settings, sample):
    camera = CameraFactory()
    cold, warm = backdate(camera.pk, [ago(hours=5), ago(minutes=1)], sample)
    tiering.move_cold_segments()
    cold.refresh_from_db()
    rows = [(s.start, s.storage, s.location) for s in (cold, warm)]
    assert cold.storage == S3 and object_keys(s3_settings) == {cold.location}

    assert storage.delete_footage(camera.pk, rows) == 2

    assert object_keys(s3_settings) == set()
    assert not storage.segment_file(warm).exists()


def test_delete_footage_with_the_bucket_down_keeps_the_objects(db, s3_settings, sample, caplog):
    camera = CameraFactory()
    (cold,) = backdate(camera.pk, [ago(hours=5)], sample)
    tiering.move_cold_segments()
    cold.refresh_from_db()
    s3_settings.server.stop()

    with caplog.at_level(logging.WARNING, logger="recordings.storage"):
        assert storage.delete_footage(camera.pk, [(cold.start, cold.storage, cold.location)]) == 0

    assert any("objects left in the bucket" in r.getMessage() for r in caplog.records)
    s3_settings.server.start()
    assert object_keys(s3_settings) == {cold.location}  # check_footage removes it later


def test_check_footage_across_tiers(db, s3_settings, sample, capsys):
    camera = CameraFactory()
    lost, stale, fine, local = backdate(
        camera.pk,
        [ago(hours=6), ago(hours=5), ago(hours=4), ago(minutes=2)],
        sample,
    )
    assert tiering.move_cold_segments().moved == 3
    for segment in (lost, stale, fine):
        segment.refresh_from_db()
    client = s3_settings.server.client()
    # an object lost in the bucket; a local copy left by a crash after the switch;
    # an object of no row (a retention delete while the bucket was down)
    client.delete_object(Bucket=s3_settings.bucket, Key=lost.location)
    copy = storage.archive_path(camera.pk, stale.start)
    copy.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(sample, copy)
    stray = f"cam{camera.pk}/2020/01/01/20200101T000000Z.ts"
    client.put_object(Bucket=s3_settings.bucket, Key=stray, Body=sample.read_bytes())
    gone_camera = f"cam{camera.pk + 1000}/2020/01/01/20200101T000000Z.ts"
    client.put_object(Bucket=s3_settings.bucket, Key=gone_camera, Body=b"x")

    call_command("check_footage")
    out = capsys.readouterr().out
    assert f"row {lost.pk} has no object {lost.location}" in out, out
    assert f"object {stray} has no row" in out
    assert f"object {gone_camera} has no row" in out
    assert f"file {storage.canonical_location(camera.pk, stale.start)} is a stale copy" in out
    assert "1 rows without an object, 2 objects without a row, 1 stale local copies" in out
    assert Segment.objects.filter(pk=lost.pk).exists() and copy.exists()

    call_command("check_footage", "--repair")
    out = capsys.readouterr().out
    assert "2 objects removed" in out, out
    assert not Segment.objects.filter(pk=lost.pk).exists()
    assert not copy.exists()
    assert object_keys(s3_settings) == {stale.location, fine.location}
    assert storage.segment_file(local).exists()  # the local tier as it was
    assert footage.check() == []


def test_check_footage_spares_young_objects_and_survives_the_bucket_down(
    db, s3_settings, sample, settings, caplog
):
    settings.FOOTAGE_CHECK_GRACE_S = 3600
    camera = CameraFactory()
    key = f"cam{camera.pk}/2020/01/01/20200101T000000Z.ts"
    s3_settings.server.client().put_object(Bucket=s3_settings.bucket, Key=key, Body=b"uploading")

    assert footage.check(repair=True) == []  # an upload in progress looks like this
    assert key in object_keys(s3_settings)

    settings.FOOTAGE_CHECK_GRACE_S = 0
    (segment,) = backdate(camera.pk, [ago(hours=1)], sample)
    stray_start = ago(hours=2)
    stray = storage.archive_path(camera.pk, stray_start)
    stray.write_bytes(b"not a segment")
    s3_settings.server.stop()

    with caplog.at_level(logging.WARNING, logger="recordings.footage"):
        (report,) = footage.check(repair=True)  # the local part still runs

    assert report.removed == [storage.canonical_location(camera.pk, stray_start)]
    assert not stray.exists() and storage.segment_file(segment).exists()
    assert [r.getMessage() for r in caplog.records if "not checked" in r.getMessage()] == [
        "check_footage: object storage not checked: list: EndpointConnectionError"
    ]


def test_objectstore_ranges_and_listing(db, s3_settings, tmp_path):
    data = bytes(range(256)) * 4000
    path = tmp_path / "x.ts"
    path.write_bytes(data)
    objectstore.put_file(path, "cam1/x.ts", size=len(data), sha256=sha256(data))

    chunks, total = objectstore.open_object("cam1/x.ts", 10, 19)
    assert (b"".join(chunks), total) == (data[10:20], len(data))
    chunks, total = objectstore.open_object("cam1/x.ts", 1000)
    assert (b"".join(chunks), total) == (data[1000:], len(data))
    assert objectstore.head("cam1/x.ts") == len(data) and objectstore.head("cam1/y.ts") is None
    assert list(objectstore.iter_keys("cam1/")) == [("cam1/x.ts", len(data))]
    objectstore.download("cam1/x.ts", tmp_path / "copy.ts")
    assert (tmp_path / "copy.ts").read_bytes() == data
    with pytest.raises(objectstore.ObjectNotFound):
        objectstore.open_object("cam1/y.ts")
    with pytest.raises(objectstore.ObjectMismatch):
        objectstore.put_file(path, "cam1/z.ts", size=len(data), sha256=sha256(b"other"))
    assert objectstore.head("cam1/z.ts") is None


def test_wrong_credentials_are_refused_and_never_shown(db, s3_settings, settings, sample, caplog):
    settings.S3_SECRET_ACCESS_KEY = "not-the-secret-0000"
    with pytest.raises(objectstore.ObjectStoreError) as refused:
        objectstore.head("cam1/x.ts")
    assert "not-the-secret" not in str(refused.value)
    assert s3_settings.secret_key not in str(refused.value)
    camera = CameraFactory()
    (segment,) = backdate(camera.pk, [ago(hours=3)], sample)

    with caplog.at_level(logging.DEBUG):
        run = tiering.move_cold_segments()  # refused like an outage: no exception

    assert run.unavailable and run.moved == 0
    segment.refresh_from_db()
    assert segment.storage == LOCAL and storage.segment_file(segment).exists()
    assert "not-the-secret" not in caplog.text and "unreachable" in caplog.text


def test_an_unreachable_endpoint_fails_fast(db, s3_settings, settings):
    from testcamera import free_port

    settings.S3_ENDPOINT_URL = f"http://127.0.0.1:{free_port()}"  # nobody listens there
    with pytest.raises(objectstore.ObjectStoreUnavailable):
        objectstore.head("cam1/x.ts")


def test_a_mover_killed_mid_run_loses_nothing(transactional_db, s3_settings, sample):
    """SIGKILL the tiering run (a real process) in the middle: every row still has its
    footage where it says; the next run and check_footage finish the job."""
    camera = CameraFactory()
    data = sample.read_bytes()
    base = ago(hours=5)
    for index in range(120):
        start = base + timedelta(seconds=2 * index)
        path = storage.archive_path(camera.pk, start)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        insert_row(camera.pk, start, len(data), sha256(data))
    env = process_env(
        S3_ENDPOINT_URL=s3_settings.endpoint,
        S3_BUCKET=s3_settings.bucket,
        S3_ACCESS_KEY_ID=s3_settings.access_key,
        S3_SECRET_ACCESS_KEY=s3_settings.secret_key,
        FOOTAGE_HOT_SECONDS="3600",
        FOOTAGE_TIER_BATCH="1",  # one commit per segment: the kill lands between two
    )
    code = "from recordings import tiering; tiering.move_cold_segments()"
    mover = subprocess.Popen(  # noqa: S603
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: Segment.objects.filter(storage=S3).count() >= 5, timeout=120, step=0.02)
    finally:
        mover.kill()
        mover.wait(timeout=30)

    assert Segment.objects.filter(storage=LOCAL).exists()  # the kill landed mid-run
    for segment in Segment.objects.all():
        if segment.storage == S3:
            assert sha256(fetch(s3_settings, segment.location)) == segment.sha256
        else:
            assert storage.segment_file(segment).read_bytes() == data

    assert tiering.move_cold_segments().complete
    footage.check(repair=True)  # a stale local copy, if the kill came between commit and unlink

    assert not Segment.objects.filter(storage=LOCAL).exists()
    assert object_keys(s3_settings) == set(Segment.objects.values_list("location", flat=True))
    assert not any(storage.camera_dir(camera.pk).rglob("*.ts"))
    assert footage.check() == []


def test_metrics_show_footage_per_tier_and_the_moves(db, s3_settings, sample, settings):
    from prometheus_client.parser import text_string_to_metric_families

    from gtvision.metrics import exposition

    def scrape() -> dict[tuple[str, frozenset], float]:
        return {
            (s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(exposition().decode())
            for s in family.samples
        }

    settings.METRICS_FOOTAGE_CACHE_S = 0
    camera = CameraFactory()
    cold, hot = backdate(camera.pk, [ago(hours=3), ago(minutes=3)], sample)
    moved_before = scrape().get(("gtvision_footage_tier_moved_segments_total", frozenset()), 0)

    tiering.move_cold_segments()

    found = scrape()
    assert found[("gtvision_footage_bytes", frozenset({("storage", "s3")}))] == cold.size_bytes
    assert found[("gtvision_footage_bytes", frozenset({("storage", "local")}))] == hot.size_bytes
    assert found[("gtvision_footage_tier_moved_segments_total", frozenset())] == moved_before + 1
    assert found[("gtvision_footage_tier_lag_seconds", frozenset())] == 0


def test_a_deleted_camera_takes_its_objects_along(
    db, s3_settings, sample, django_capture_on_commit_callbacks
):
    from cidades import services as camera_services

    camera, other = CameraFactory(), CameraFactory()
    backdate(camera.pk, [ago(hours=5), ago(hours=4)], sample)
    backdate(other.pk, [ago(hours=5)], sample)
    assert tiering.move_cold_segments().moved == 3
    camera_id = camera.pk

    with django_capture_on_commit_callbacks(execute=True):
        camera_services.delete_camera(camera, actor=None)

    with connection.cursor() as cursor:  # the removal is a job (a camera may hold 100k objects)
        cursor.execute(
            "SELECT args FROM procrastinate_jobs"
            " WHERE task_name = 'recordings.remove_camera_objects'"
        )
        assert [json.loads(row[0]) for row in cursor.fetchall()] == [{"camera_id": camera_id}]
    assert tiering.remove_camera_objects(camera_id) == 2
    assert {key.split("/")[0] for key in object_keys(s3_settings)} == {f"cam{other.pk}"}
