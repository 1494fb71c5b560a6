"""Retention by plan, the disk floor, orphan sweeping and the purge command."""

from __future__ import annotations

import logging
import shutil
from datetime import datetime, timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from cidades.models import Prefeitura
from recordings import queries, retention, storage
from recordings.models import Segment
from tests.factories import CameraFactory, PrefeituraFactory
from tests.test_recordings_support import backdate, synthetic_segment


@pytest.fixture(autouse=True)
def _media_dirs(settings, tmp_path):
    settings.RECORDINGS_DIR = tmp_path / "recordings"
    settings.CLIPS_DIR = tmp_path / "clips"


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return synthetic_segment(tmp_path_factory.mktemp("sample") / "sample.ts")


def ago(**kwargs) -> datetime:
    return (timezone.now() - timedelta(**kwargs)).replace(microsecond=0)


def files_of(segments: list[Segment]) -> list[bool]:
    return [storage.segment_path(s.camera_id, s.start).exists() for s in segments]


def test_segments_past_the_plan_are_purged_and_a_plan_change_applies_next_run(db, sample, caplog):
    premium = CameraFactory(prefeitura=PrefeituraFactory(plan=Prefeitura.Plan.PREMIUM))
    padrao = CameraFactory(prefeitura=PrefeituraFactory(plan=Prefeitura.Plan.PADRAO))
    old, week, recent = ago(days=20), ago(days=10), ago(hours=1)
    on_premium = backdate(premium.pk, [old, old + timedelta(seconds=2), week, recent], sample)
    on_padrao = backdate(padrao.pk, [old, week, recent], sample)
    assert all(files_of(on_premium + on_padrao))

    with caplog.at_level(logging.INFO, logger="recordings.retention"):
        purges = retention.apply_retention()
    # padrao keeps 15 days, premium 30
    assert [(p.reason, p.camera_id, p.segments) for p in purges] == [("retention", padrao.pk, 1)]
    assert f"retention: camera {padrao.pk}: 1 segments" in caplog.text
    assert files_of(on_padrao) == [False, True, True]
    assert list(Segment.objects.filter(camera=padrao).values_list("start", flat=True)) == [
        week,
        recent,
    ]
    assert Segment.objects.filter(camera=premium).count() == 4

    premium.prefeitura.plan = Prefeitura.Plan.BASICO  # 7 days from the next run on
    premium.prefeitura.save()
    purges = retention.apply_retention()
    assert [(p.camera_id, p.segments, p.first_start) for p in purges] == [(premium.pk, 3, old)]
    assert purges[0].size_bytes == sum(s.size_bytes for s in on_premium[:3])
    assert files_of(on_premium) == [False, False, False, True]
    assert list(Segment.objects.filter(camera=premium).values_list("start", flat=True)) == [recent]
    assert retention.apply_retention() == []
    # the emptied day directories are gone
    assert [day for day, _ in storage.day_dirs(premium.pk)] == [
        recent.replace(hour=0, minute=0, second=0)
    ]


def test_purge_spans_many_windows_of_several_cameras_and_keeps_a_segment_astride_the_cutoff(
    db, sample
):
    plan = PrefeituraFactory(plan=Prefeitura.Plan.PADRAO)
    cameras = [CameraFactory(prefeitura=plan), CameraFactory(prefeitura=plan)]
    now = ago(hours=0)
    cutoff = now - timedelta(days=plan.retention_days)
    # every 7 minutes over an hour before the cutoff (several purge windows), then one that
    # starts a second before the cutoff and ends after it
    expired = [cutoff - timedelta(minutes=60) + timedelta(minutes=7 * k) for k in range(9)]
    astride = cutoff - timedelta(seconds=1)
    footage = {c.pk: backdate(c.pk, [*expired, astride], sample) for c in cameras}
    assert all(segments[-1].end > cutoff for segments in footage.values())

    purges = retention.purge_expired(now)

    assert [(p.camera_id, p.segments, p.first_start) for p in purges] == [
        (c.pk, len(expired), expired[0]) for c in sorted(cameras, key=lambda c: c.pk)
    ]
    for camera in cameras:
        assert list(Segment.objects.filter(camera=camera).values_list("start", flat=True)) == [
            astride
        ]
        assert files_of(footage[camera.pk]) == [False] * len(expired) + [True]


def test_disk_floor_deletes_the_oldest_footage_first_and_spares_the_last_hour(
    db, sample, settings, caplog
):
    first, second = CameraFactory(), CameraFactory()
    kept = backdate(first.pk, [ago(minutes=20)], sample) + backdate(
        second.pk, [ago(minutes=10)], sample
    )
    oldest = backdate(second.pk, [ago(hours=5)], sample)
    older = backdate(first.pk, [ago(hours=3), ago(hours=2)], sample)
    assert [s.pk for s in queries.oldest_segments(before=ago(hours=1), limit=2)] == [
        oldest[0].pk,
        older[0].pk,
    ]
    settings.RETENTION_DISK_FLOOR_BYTES = 10**18  # more than any disk: never reached
    with caplog.at_level(logging.INFO, logger="recordings.retention"):
        purges = retention.apply_retention()
    assert {(p.reason, p.camera_id, p.segments) for p in purges} == {
        ("disk_floor", first.pk, 2),
        ("disk_floor", second.pk, 1),
    }
    assert not any(files_of(oldest + older))
    assert all(files_of(kept))
    assert set(Segment.objects.values_list("pk", flat=True)) == {s.pk for s in kept}
    assert "under the floor" in caplog.text
    settings.RETENTION_DISK_FLOOR_BYTES = 0
    assert retention.apply_retention() == []


def test_orphan_files_in_purged_days_are_swept(db, sample):
    camera = CameraFactory()
    old = ago(days=9)
    [segment] = backdate(camera.pk, [old], sample)
    orphan = storage.archive_path(camera.pk, old - timedelta(hours=1))
    orphan.parent.mkdir(parents=True, exist_ok=True)  # the hour before may be another day
    shutil.copy2(sample, orphan)  # a file whose row was deleted by a crashed purge
    retention.apply_retention()
    assert not orphan.exists() and not storage.segment_path(camera.pk, segment.start).exists()
    assert storage.day_dirs(camera.pk) == []


def test_apply_retention_command_reports_what_it_removed(db, sample, capsys):
    camera = CameraFactory()
    backdate(camera.pk, [ago(days=8), ago(days=8) + timedelta(seconds=2)], sample)
    call_command("apply_retention")
    out = capsys.readouterr().out
    assert f"retention: camera {camera.pk}: 2 segments" in out
    assert "2 segments purged, 0 expired clips deleted" in out
    assert not Segment.objects.exists()


def test_deleting_a_camera_deletes_its_footage_rows_then_files(
    db, sample, django_capture_on_commit_callbacks
):
    camera, other = CameraFactory(), CameraFactory()
    backdate(camera.pk, [ago(hours=2), ago(hours=1)], sample)
    kept = backdate(other.pk, [ago(hours=1)], sample)
    with django_capture_on_commit_callbacks(execute=True):
        camera.delete()
    assert list(Segment.objects.all()) == kept
    assert not storage.camera_dir(camera.pk).exists() and all(files_of(kept))
