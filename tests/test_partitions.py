"""The segment index partitioned by day: the migration, routing, maintenance and retention by
dropping whole days while every prefeitura's retention stays exact (``recordings.partitions``,
``recordings.retention``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from admin_ctx.models import AuditEntry, Role
from cidades.models import Prefeitura
from recordings import evidence, partitions, queries, retention, storage
from recordings.models import Segment
from tests.conftest import client_for
from tests.factories import CameraFactory, PrefeituraFactory, UserFactory
from tests.test_recordings_support import backdate, synthetic_segment

BEFORE, AFTER = (
    ("recordings", "0006_segment_storage_s3"),
    ("recordings", "0007_segment_partitioned"),
)


@pytest.fixture(autouse=True)
def _media_dirs(settings, tmp_path):
    settings.RECORDINGS_DIR = tmp_path / "recordings"
    settings.CLIPS_DIR = tmp_path / "clips"


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return synthetic_segment(tmp_path_factory.mktemp("sample") / "sample.ts")


def midnight(days_ago: int) -> datetime:
    return partitions.day_start(timezone.now() - timedelta(days=days_ago))


def table_of(segment_id: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT tableoid::regclass::text FROM recordings_segment WHERE id = %s",
                       [segment_id])  # fmt: skip
        return cursor.fetchone()[0]


def exists(table: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [table])
        return cursor.fetchone()[0]


def migrate(target) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate([target])


def insert_rows(camera_id: int, starts: list[datetime], location: str = "") -> None:
    with connection.cursor() as cursor:
        for start in starts:
            cursor.execute(
                'INSERT INTO recordings_segment (camera_id, start, "end", size_bytes, location) '
                "VALUES (%s, %s, %s, %s, %s)",
                [camera_id, start, start + timedelta(seconds=10), 1000, location],
            )


def observe(camera, user) -> dict:
    """What the timeline, search and playback lookups answer about the camera's footage."""
    since, until = midnight(3) - timedelta(hours=1), timezone.now() + timedelta(days=2)
    client = client_for(user)
    timeline = client.get(f"/api/cameras/{camera.pk}/timeline",
                          {"start": since.isoformat(), "end": until.isoformat()})  # fmt: skip
    search = client.get("/api/recordings/search", {"camera_id": camera.pk, "page_size": 500,
                        "start": since.isoformat(), "end": until.isoformat()})  # fmt: skip
    assert timeline.status_code == 200 and search.status_code == 200
    rows = list(Segment.objects.order_by("id").values_list("id", "camera_id", "start", "end",
                                                           "size_bytes", "location"))  # fmt: skip
    return {
        "rows": rows,
        "spans": queries.timeline_spans(camera.pk, since, until),
        "timeline": timeline.json()["spans"],
        "search": search.json()["results"],
        "by_id": [Segment.objects.get(pk=row[0]).start for row in rows],
        "overlapping": list(
            Segment.objects.filter(camera=camera)
            .overlapping(since, until)
            .order_by("start")
            .values_list("id", flat=True)
        ),  # fmt: skip
        "oldest": [s.pk for s in queries.oldest_segments(before=until, limit=3)],
    }


def test_the_migration_converts_a_table_with_rows_and_queries_answer_the_same(db):
    camera = CameraFactory()
    user = UserFactory(prefeitura=camera.prefeitura, role=Role.OPERADOR)
    migrate(BEFORE)
    assert not partitions.is_partitioned()
    # yesterday across midnight (two spans), an old day, and one row with a stored location
    yesterday = midnight(1)
    insert_rows(camera.pk, [yesterday - timedelta(seconds=30 - 10 * k) for k in range(6)])
    insert_rows(camera.pk, [yesterday + timedelta(hours=3, seconds=10 * k) for k in range(3)])
    insert_rows(camera.pk, [midnight(2) + timedelta(hours=5)], location="elsewhere/a.ts")
    insert_rows(camera.pk, [datetime(2020, 5, 1, tzinfo=UTC)])  # past KEEP_DAYS: default
    before = observe(camera, user)
    assert len(before["rows"]) == 11 and before["spans"]

    migrate(AFTER)

    assert partitions.is_partitioned()
    assert observe(camera, user) == before  # no row lost, same answers
    rows = {row[2]: row[0] for row in before["rows"]}
    assert table_of(rows[yesterday]) == partitions.day_name(yesterday)
    assert table_of(rows[yesterday - timedelta(seconds=30)]) == partitions.day_name(midnight(2))
    assert table_of(rows[datetime(2020, 5, 1, tzinfo=UTC)]) == partitions.DEFAULT
    # the days around today exist; ids continue after the copied ones
    names = {p.name for p in partitions.partitions()}
    for ahead in range(partitions.DAYS_AHEAD + 1):
        assert partitions.day_name(midnight(-ahead)) in names
    now = timezone.now()
    new = Segment.objects.create(
        camera=camera, start=now, end=now + timedelta(seconds=2), size_bytes=1
    )
    assert new.pk > max(rows.values())
    # the index every (camera, time) query scans is there under its name, per partition
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = %s",
                       [partitions.day_name(yesterday)])  # fmt: skip
        indexes = {row[0] for row in cursor.fetchall()}
    assert f"one_segment_per_start_{yesterday:%Y%m%d}" in indexes

    migrate(BEFORE)  # and back
    assert not partitions.is_partitioned()
    assert Segment.objects.count() == 12
    migrate(AFTER)
    assert Segment.objects.count() == 12


def test_inserts_go_to_their_day_ahead_or_to_the_default_partition(db):
    camera = CameraFactory()
    now = timezone.now()
    far_past, far_future = datetime(2021, 3, 4, 5, tzinfo=UTC), now + timedelta(days=400)
    insert_rows(camera.pk, [now, now + timedelta(days=2), far_past, far_future])
    starts = dict(Segment.objects.values_list("start", "id"))
    assert table_of(starts[now]) == partitions.day_name(now)
    assert table_of(starts[now + timedelta(days=2)]) == partitions.day_name(now + timedelta(days=2))
    assert table_of(starts[far_past]) == partitions.DEFAULT
    assert table_of(starts[far_future]) == partitions.DEFAULT
    # still one row per (camera, start)
    with pytest.raises(IntegrityError, match="duplicate key"), transaction.atomic():
        insert_rows(camera.pk, [far_past])

    # creating the day moves its rows out of the default partition
    assert partitions.ensure_days([far_past]) == [partitions.day_name(far_past)]
    assert table_of(starts[far_past]) == partitions.day_name(far_past)
    assert Segment.objects.count() == 4
    assert partitions.ensure_days([far_past]) == []


def test_maintenance_creates_days_ahead_and_drops_empty_old_days(db):
    camera = CameraFactory()
    old, kept = midnight(9), midnight(8)
    partitions.ensure_days([old, kept])
    insert_rows(camera.pk, [kept + timedelta(hours=1)])
    done = partitions.maintain(timezone.now() + timedelta(days=1))
    assert partitions.day_name(midnight(-1 - partitions.DAYS_AHEAD)) in done["created"]
    assert partitions.day_name(old) in done["dropped"]
    assert not exists(partitions.day_name(old))
    assert exists(partitions.day_name(kept))  # it has a row


def test_retention_drops_whole_expired_days_and_deletes_exactly_the_expired_rows_of_others(
    db, sample
):
    basico = CameraFactory(prefeitura=PrefeituraFactory(plan=Prefeitura.Plan.BASICO))  # 7 days
    padrao = CameraFactory(prefeitura=PrefeituraFactory(plan=Prefeitura.Plan.PADRAO))  # 15 days
    gone_day, mixed_day, locked_day = midnight(20), midnight(10), midnight(25)
    partitions.ensure_days([gone_day, mixed_day, locked_day])
    at = [timedelta(hours=h) for h in (1, 12, 23)]
    rows = {}
    for camera in (basico, padrao):
        for day in (gone_day, mixed_day, locked_day):
            rows[camera.pk, day] = backdate(camera.pk, [day + t for t in at], sample)
    # a stored location, deleted where it says
    moved = rows[basico.pk, gone_day][0]
    (storage.recordings_root() / "kept").mkdir()
    (storage.recordings_root() / "kept" / "a.ts").write_bytes(
        storage.segment_file(moved).read_bytes()
    )
    storage.segment_file(moved).unlink()
    Segment.objects.filter(pk=moved.pk).update(location="kept/a.ts")
    moved.location = "kept/a.ts"
    locked = rows[padrao.pk, locked_day][1]
    evidence.create_lock(padrao, locked.start, locked.end, "inquérito 7", actor=None)
    every = [s for segments in rows.values() for s in segments]
    assert all(storage.segment_file(s).exists() for s in every)

    purges = retention.apply_retention()

    # the day past both plans: the partition is gone with its files
    assert not exists(partitions.day_name(gone_day))
    assert not any(exists(f"{partitions.PURGING_PREFIX}{d:%Y%m%d}") for d in (gone_day, locked_day))
    # the locked day: every row but the locked one deleted, row by row; the partition stays
    assert exists(partitions.day_name(locked_day))
    # the mixed day: basico's rows (past 7 days) deleted, padrao's (15 days) kept
    assert exists(partitions.day_name(mixed_day))
    left = set(Segment.objects.values_list("pk", flat=True))
    assert left == {locked.pk, *(s.pk for s in rows[padrao.pk, mixed_day])}
    for segment in every:
        assert storage.segment_file(segment).exists() == (segment.pk in left), segment
    by_camera = {(p.reason, p.camera_id): p for p in purges}
    assert by_camera["retention", basico.pk].segments == 9
    assert by_camera["retention", padrao.pk].segments == 5
    assert by_camera["retention", padrao.pk].size_bytes == sum(
        s.size_bytes for s in every if s.camera_id == padrao.pk and s.pk not in left
    )
    assert by_camera["retention", basico.pk].first_start == locked_day + at[0]
    assert by_camera[retention.KEPT_BY_LOCK, padrao.pk].segments == 1
    audits = AuditEntry.objects.filter(action="retention.run")
    assert {a.prefeitura_id for a in audits} == {basico.prefeitura_id, padrao.prefeitura_id}
    # nothing left to do: the next run changes nothing
    assert [p.reason for p in retention.apply_retention()] == [retention.KEPT_BY_LOCK]
    assert set(Segment.objects.values_list("pk", flat=True)) == left


def test_a_day_is_not_dropped_while_one_camera_still_keeps_it(db, sample):
    basico = CameraFactory(prefeitura=PrefeituraFactory(plan=Prefeitura.Plan.BASICO))
    premium = CameraFactory(prefeitura=PrefeituraFactory(plan=Prefeitura.Plan.PREMIUM))
    day = midnight(20)  # past basico's 7 days, within premium's 30
    partitions.ensure_days([day])
    mine = backdate(basico.pk, [day + timedelta(hours=2)], sample)
    theirs = backdate(premium.pk, [day + timedelta(hours=3)], sample)
    retention.purge_expired()
    assert exists(partitions.day_name(day))
    assert list(Segment.objects.values_list("pk", flat=True)) == [theirs[0].pk]
    assert not storage.segment_file(mine[0]).exists()
    assert storage.segment_file(theirs[0]).exists()


def test_a_detached_day_left_by_an_interrupted_run_is_finished(db, sample):
    camera = CameraFactory(prefeitura=PrefeituraFactory(plan=Prefeitura.Plan.BASICO))
    day = midnight(12)
    partitions.ensure_days([day])
    segments = backdate(camera.pk, [day + timedelta(hours=4), day + timedelta(hours=5)], sample)
    [partition] = [p for p in partitions.partitions() if p.start == day]
    # a check that fails puts the partition back
    assert partitions.detach_for_purge(partition, lambda table: False) is None
    assert table_of(segments[0].pk) == partition.name
    # detached, then the run "crashed" before deleting its files
    detached = partitions.detach_for_purge(partition, lambda table: True)
    assert detached == f"{partitions.PURGING_PREFIX}{day:%Y%m%d}"
    assert not Segment.objects.exists()  # gone from every query at once
    assert all(storage.segment_file(s).exists() for s in segments)

    purges = retention.purge_expired(timezone.now() + timedelta(days=365))
    assert [(p.camera_id, p.segments) for p in purges] == [(camera.pk, 2)]
    assert not exists(detached)
    assert not any(storage.segment_file(s).exists() for s in segments)
