"""Evidence locks: API and roles, audited; retention and the disk floor keep locked footage
(real files) and say so; the timeline shows locks; each retention run is audited."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.core.management import call_command

from admin_ctx.models import AuditEntry, Role
from recordings import retention, storage
from recordings.models import EvidenceLock, Segment
from tests.conftest import client_for
from tests.factories import CameraFactory, UserFactory
from tests.test_recordings_retention import ago, files_of
from tests.test_recordings_support import backdate, synthetic_segment

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return synthetic_segment(tmp_path_factory.mktemp("sample") / "sample.ts")


def lock_body(camera, start, end, **extra):
    return {"camera_id": camera.pk, "start": start.isoformat(), "end": end.isoformat(),
            "reason": "Inquérito 12/2026", **extra}  # fmt: skip


def test_lock_roles_scope_and_audit(tenants):
    camera = tenants["a"]["camera"]
    start, end = ago(days=1), ago(hours=20)
    operador = client_for(tenants["a"]["operador"])
    gestor = client_for(tenants["a"]["gestor"])
    admin = client_for(tenants["admin"])
    assert operador.post("/api/evidence-locks/", lock_body(camera, start, end)).status_code == 403
    response = client_for(tenants["b"]["gestor"]).post(
        "/api/evidence-locks/", lock_body(camera, start, end), format="json"
    )
    assert response.status_code == 404  # another prefeitura's camera does not exist
    response = gestor.post("/api/evidence-locks/", lock_body(camera, start, end), format="json")
    assert response.status_code == 201, response.content
    created = response.json()
    assert set(created) == {"id", "camera_id", "start", "end", "reason", "expires_at",
                            "created_by", "created_at"}  # fmt: skip
    assert created["created_by"] == tenants["a"]["gestor"].username
    assert created["expires_at"] is None
    lock_id = created["id"]

    listed = operador.get("/api/evidence-locks/").json()
    assert [lock["id"] for lock in listed["results"]] == [lock_id]
    assert client_for(tenants["b"]["gestor"]).get("/api/evidence-locks/").json()["count"] == 0
    assert (
        client_for(tenants["b"]["operador"]).get(f"/api/evidence-locks/{lock_id}/").status_code
        == 404
    )

    assert gestor.delete(f"/api/evidence-locks/{lock_id}/").status_code == 403
    assert operador.delete(f"/api/evidence-locks/{lock_id}/").status_code == 403
    assert EvidenceLock.objects.filter(pk=lock_id).exists()
    assert admin.delete(f"/api/evidence-locks/{lock_id}/").status_code == 204
    assert not EvidenceLock.objects.exists()
    entries = AuditEntry.objects.filter(action__startswith="evidence_lock").order_by("id")
    assert [(e.action, e.actor_username, e.prefeitura_id) for e in entries] == [
        ("evidence_lock.create", tenants["a"]["gestor"].username, camera.prefeitura_id),
        ("evidence_lock.delete", "platform-admin", camera.prefeitura_id),
    ]
    assert entries[0].details["reason"] == "Inquérito 12/2026"
    assert entries[0].details["lock_id"] == lock_id


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"reason": ""}, "reason"),
        ({"end": "START"}, "end"),
        ({"start": "2026-01-01T00:00:00"}, "start"),
        ({"expires_at": "2020-01-01T00:00:00+00:00"}, "expires_at"),
        ({"camera_id": "x"}, "camera_id"),
    ],
)
def test_bad_locks_are_400_and_change_nothing(tenants, change, field):
    camera = tenants["a"]["camera"]
    body = lock_body(camera, ago(days=1), ago(hours=20))
    if change.get("end") == "START":
        change = {"end": body["start"]}
    response = client_for(tenants["a"]["gestor"]).post(
        "/api/evidence-locks/", {**body, **change}, format="json"
    )
    assert response.status_code == 400 and field in response.json()
    assert not EvidenceLock.objects.exists()


def test_retention_keeps_locked_footage_and_reports_and_audits_it(db, sample, caplog, capsys):
    camera = CameraFactory()  # basico: 7 days
    gestor = UserFactory(prefeitura=camera.prefeitura, role=Role.GESTOR)
    old = ago(days=10)
    starts = [old + timedelta(seconds=2 * k) for k in range(5)]
    segments = backdate(camera.pk, starts, sample)
    expired_lock_start = ago(days=9)
    backdate(camera.pk, [expired_lock_start], sample)
    client = client_for(gestor)
    # locks segments 1 and 2 (overlap), and an expiring lock already past
    assert (
        client.post(
            "/api/evidence-locks/",
            lock_body(camera, starts[1] + timedelta(seconds=1), starts[2] + timedelta(seconds=1)),
        ).status_code
        == 201
    )
    EvidenceLock.objects.create(camera=camera, start=expired_lock_start,
                                end=expired_lock_start + timedelta(seconds=2), reason="x",
                                expires_at=ago(hours=1))  # fmt: skip

    with caplog.at_level(logging.INFO, logger="recordings.retention"):
        call_command("apply_retention")
    out = capsys.readouterr().out
    assert files_of(segments) == [False, True, True, False, False]
    assert (
        list(Segment.objects.filter(camera=camera).values_list("start", flat=True)) == starts[1:3]
    )
    assert f"kept evidence_lock: camera {camera.pk}: 2 segments" in out
    assert "4 segments purged" in out
    assert f"kept evidence_lock: camera {camera.pk}: 2 segments" in caplog.text
    # the day directory of the locked footage stays, with its files
    assert storage.day_dirs(camera.pk)

    [entry] = AuditEntry.objects.filter(action="retention.run")
    assert entry.prefeitura_id == camera.prefeitura_id and entry.actor_id is None
    assert entry.details["retention"]["segments"] == 4
    assert entry.details["retention"]["oldest"] == starts[0].isoformat()
    assert entry.details["evidence_lock"]["segments"] == 2
    assert entry.details["evidence_lock"]["cameras"] == [camera.pk]


def test_disk_floor_never_deletes_locked_footage(db, sample, settings, caplog):
    camera = CameraFactory()
    gestor = UserFactory(prefeitura=camera.prefeitura, role=Role.GESTOR)
    starts = [ago(hours=5), ago(hours=4), ago(hours=3)]
    segments = backdate(camera.pk, starts, sample)
    assert client_for(gestor).post("/api/evidence-locks/", lock_body(
        camera, starts[0], starts[0] + timedelta(seconds=1))).status_code == 201  # fmt: skip
    settings.RETENTION_DISK_FLOOR_BYTES = 10**18  # more than any disk: never reached
    with caplog.at_level(logging.INFO, logger="recordings.retention"):
        purges = retention.apply_retention()
    assert [(p.reason, p.segments) for p in purges] == [("disk_floor", 2)]
    assert files_of(segments) == [True, False, False]
    assert "evidence locks" in caplog.text
    entry = AuditEntry.objects.get(action="retention.run")
    assert entry.details["disk_floor"]["segments"] == 2


def test_timeline_shows_active_locks(tenants, sample):
    camera = tenants["a"]["camera"]
    start = ago(hours=2)
    backdate(camera.pk, [start], sample)
    gestor = client_for(tenants["a"]["gestor"])
    lock = gestor.post("/api/evidence-locks/", lock_body(
        camera, start, start + timedelta(minutes=1))).json()  # fmt: skip
    params = {"start": ago(hours=3).isoformat(), "end": ago(hours=1).isoformat()}
    body = (
        client_for(tenants["a"]["operador"])
        .get(f"/api/cameras/{camera.pk}/timeline", params)
        .json()
    )
    assert len(body["spans"]) == 1
    assert [(lock_["id"], lock_["reason"]) for lock_ in body["locks"]] == [
        (lock["id"], "Inquérito 12/2026")
    ]
    far = {"start": ago(hours=30).isoformat(), "end": ago(hours=29).isoformat()}
    assert gestor.get(f"/api/cameras/{camera.pk}/timeline", far).json()["locks"] == []
