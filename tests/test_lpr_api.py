"""``/api/lpr/``: reads (search, crops, isolation, audit), the watchlist (CRUD, roles, audit),
read events and watchlist alerts, retention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from admin_ctx.models import AuditEntry
from gtvision import events
from lpr import services
from lpr.models import Read, WatchlistEntry
from tests.api_mixins import APIResourceTests
from tests.conftest import client_for

JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 32 + b"\xff\xd9"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _crop_dir(settings, tmp_path):
    settings.LPR_CROP_DIR = tmp_path / "lpr"


def make_read(camera, plate="ABC1D23", at=None, crop=JPEG) -> Read:
    return services.record_read(
        camera, plate=plate, confidence=0.9, bbox=(10, 20, 120, 30), crop=crop, at=at or T0
    )


class TestWatchlistResource(APIResourceTests):
    url = "/api/lpr/watchlist/"
    model = WatchlistEntry
    roles_write = ("admin", "gestor")

    def make_object(self, tenants, key):
        return WatchlistEntry.objects.create(
            prefeitura=tenants[key]["prefeitura"], plate="ABC1D23", reason="roubado"
        )

    def create_data(self, tenants, role):
        return {"prefeitura": tenants["a"]["prefeitura"].pk, "plate": "xyz-9876", "reason": "r"}

    def update_data(self, tenants, obj):
        return {"reason": "furtado", "active": False}


class TestReadResource(APIResourceTests):
    url = "/api/lpr/reads/"
    model = Read
    creatable = updatable = deletable = False

    def make_object(self, tenants, key):
        return make_read(tenants[key]["camera"])

    def update_data(self, tenants, obj):
        return {"plate": "XYZ9876"}


def test_read_fields_and_crop(tenants):
    read = make_read(tenants["a"]["camera"])
    client = client_for(tenants["a"]["operador"])
    body = client.get(f"/api/lpr/reads/{read.pk}/").json()
    assert body == {
        "id": read.pk,
        "camera_id": tenants["a"]["camera"].pk,
        "plate": "ABC1D23",
        "format": "mercosul",
        "confidence": 0.9,
        "at": "2026-03-01T09:00:00-03:00",
        "bbox": [10, 20, 120, 30],
    }
    response = client.get(f"/api/lpr/reads/{read.pk}/crop.jpg", HTTP_ACCEPT="image/jpeg")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    assert b"".join(response.streaming_content) == JPEG
    other = client_for(tenants["b"]["operador"])
    assert other.get(f"/api/lpr/reads/{read.pk}/crop.jpg").status_code == 404


def test_search_filters_with_old_mercosul_equivalence(tenants):
    camera, other_camera = tenants["a"]["camera"], tenants["b"]["camera"]
    old = make_read(camera, "ABC1234", at=T0)
    mercosul = make_read(camera, "ABC1C34", at=T0 + timedelta(minutes=5))
    near = make_read(camera, "ABC1C35", at=T0 + timedelta(minutes=10))
    unrelated = make_read(camera, "XYZ9J87", at=T0 + timedelta(minutes=15))
    make_read(other_camera, "ABC1234", at=T0)  # another prefeitura's: never seen
    client = client_for(tenants["a"]["gestor"])

    def ids(**params):
        response = client.get("/api/lpr/reads/", params)
        assert response.status_code == 200, response.content
        return {row["id"] for row in response.json()["results"]}

    assert ids() == {old.pk, mercosul.pk, near.pk, unrelated.pk}
    assert ids(plate="abc-1234") == {old.pk, mercosul.pk}
    assert ids(plate="ABC 1C34") == {old.pk, mercosul.pk}
    assert ids(similar="ABC1234") == {old.pk, mercosul.pk, near.pk}
    assert ids(similar="ABC1O34") == {old.pk, mercosul.pk}  # one look-alike away
    assert ids(camera_id=camera.pk, start="2026-03-01T12:04:00Z", end="2026-03-01T12:11:00Z") == {
        mercosul.pk,
        near.pk,
    }
    assert ids(camera_id=other_camera.pk) == set()


@pytest.mark.parametrize(
    "params",
    [
        {"plate": "PROIBIDO"},
        {"similar": "12"},
        {"start": "2026-03-01T12:00:00"},  # no UTC offset
        {"start": "2026-03-01T12:00:00Z", "end": "2026-03-01T11:00:00Z"},
        {"camera_id": "x"},
    ],
)
def test_bad_search_is_400(tenants, params):
    response = client_for(tenants["a"]["operador"]).get("/api/lpr/reads/", params)
    assert response.status_code == 400
    assert set(response.json()) <= set(params)


def test_every_plate_search_is_audited_with_its_query(tenants):
    make_read(tenants["a"]["camera"], "ABC1234")
    user = tenants["a"]["operador"]
    client = client_for(user)
    client.get("/api/lpr/reads/")  # not a plate search
    assert not AuditEntry.objects.filter(action="lpr.search").exists()
    client.get("/api/lpr/reads/", {"plate": "abc-1234"})
    client.get("/api/lpr/reads/", {"similar": "ABC1C35"})
    entries = list(AuditEntry.objects.filter(action="lpr.search").order_by("id"))
    assert [(e.actor_id, e.prefeitura_id) for e in entries] == [
        (user.pk, tenants["a"]["prefeitura"].pk)
    ] * 2
    assert entries[0].details == {"query": {"plate": "ABC1234"}, "results": 1}
    assert entries[1].details["query"] == {"similar": "ABC1C35"}


def test_watchlist_plate_validated_and_normalized(tenants):
    client = client_for(tenants["a"]["gestor"])
    bad = client.post(
        "/api/lpr/watchlist/", {"plate": "TEL 9988-7766", "reason": "x"}, format="json"
    )
    assert bad.status_code == 400 and "plate" in bad.json()
    ok = client.post("/api/lpr/watchlist/", {"plate": "abc-1234", "reason": "x"}, format="json")
    assert ok.status_code == 201, ok.content
    assert ok.json()["plate"] == "ABC1234"
    assert ok.json()["prefeitura"] == tenants["a"]["prefeitura"].pk  # a gestor's own
    naive = client.post(
        "/api/lpr/watchlist/",
        {"plate": "ABC1D23", "reason": "x", "expires_at": "2030-01-01T00:00:00"},
        format="json",
    )
    assert naive.status_code == 400 and "expires_at" in naive.json()
    foreign = client.post(
        "/api/lpr/watchlist/",
        {"plate": "ABC1D23", "reason": "x", "prefeitura": tenants["b"]["prefeitura"].pk},
        format="json",
    )
    assert foreign.status_code == 400
    assert WatchlistEntry.objects.count() == 1


def test_watchlist_prefeitura_filter_does_not_disclose_other_prefeituras(tenants):
    mine = WatchlistEntry.objects.create(
        prefeitura=tenants["a"]["prefeitura"], plate="ABC1D23", reason="x"
    )
    client = client_for(tenants["a"]["operador"])
    own = client.get("/api/lpr/watchlist/", {"prefeitura": tenants["a"]["prefeitura"].pk})
    assert [row["id"] for row in own.json()["results"]] == [mine.pk]
    other = client.get("/api/lpr/watchlist/", {"prefeitura": tenants["b"]["prefeitura"].pk})
    missing = client.get("/api/lpr/watchlist/", {"prefeitura": 999999})
    assert other.status_code == missing.status_code == 400
    assert other.json() == missing.json()


def test_watchlist_changes_are_audited(tenants):
    client = client_for(tenants["a"]["gestor"])
    entry_id = client.post(
        "/api/lpr/watchlist/", {"plate": "ABC1D23", "reason": "roubado"}, format="json"
    ).json()["id"]
    client.patch(f"/api/lpr/watchlist/{entry_id}/", {"active": False}, format="json")
    client.delete(f"/api/lpr/watchlist/{entry_id}/")
    entries = AuditEntry.objects.filter(action__startswith="lpr.watchlist").order_by("id")
    assert [e.action for e in entries] == [
        "lpr.watchlist.create",
        "lpr.watchlist.update",
        "lpr.watchlist.delete",
    ]
    assert entries[0].details["plate"] == "ABC1D23"
    assert entries[1].details == {"changed": {"active": [True, False]}}
    assert {e.target_id for e in entries} == {str(entry_id)}


def test_camera_lpr_enabled_in_the_camera_api(tenants):
    camera = tenants["a"]["camera"]
    client = client_for(tenants["a"]["gestor"])
    assert client.get(f"/api/cameras/{camera.pk}/").json()["lpr_enabled"] is False
    response = client.patch(f"/api/cameras/{camera.pk}/", {"lpr_enabled": True}, format="json")
    assert response.status_code == 200 and response.json()["lpr_enabled"] is True
    camera.refresh_from_db()
    assert camera.lpr_enabled


def test_read_publishes_events_and_alerts_only_active_similar_entries(
    tenants, monkeypatch, django_capture_on_commit_callbacks
):
    sent = []
    monkeypatch.setattr(events, "send_now", sent.append)
    prefeitura = tenants["a"]["prefeitura"]
    exact = WatchlistEntry.objects.create(prefeitura=prefeitura, plate="ABC1234", reason="roubo")
    near = WatchlistEntry.objects.create(prefeitura=prefeitura, plate="ABC1C35", reason="perto")
    WatchlistEntry.objects.create(prefeitura=prefeitura, plate="ABC1C34", reason="x", active=False)
    WatchlistEntry.objects.create(
        prefeitura=prefeitura,
        plate="ABC1C34",
        reason="vencido",
        expires_at=timezone.now() - timedelta(days=1),
    )
    WatchlistEntry.objects.create(
        prefeitura=tenants["b"]["prefeitura"], plate="ABC1C34", reason="outra"
    )
    with django_capture_on_commit_callbacks(execute=True):
        read = make_read(tenants["a"]["camera"], "ABC1C34", at=timezone.now())
    assert [e.type for e in sent] == ["lpr.read", "lpr.alert", "lpr.alert"]
    alerts = [e.message() for e in sent[1:]]
    assert [(a["watchlist_id"], a["reason"]) for a in alerts] == [
        (exact.pk, "roubo"),
        (near.pk, "perto"),
    ]
    assert all(e.prefeitura_id == prefeitura.pk for e in sent)
    assert alerts[0]["read_id"] == read.pk and alerts[0]["plate"] == "ABC1C34"
    assert alerts[0]["camera_id"] == tenants["a"]["camera"].pk


def test_retention_removes_old_reads_and_their_crops(tenants):
    camera = tenants["a"]["camera"]
    now = timezone.now()
    days = camera.prefeitura.retention_days
    old = make_read(camera, "ABC1234", at=now - timedelta(days=days, hours=1))
    kept = make_read(camera, "XYZ1234", at=now - timedelta(days=days - 1))
    old_crop, kept_crop = services.crop_file(old), services.crop_file(kept)
    assert old_crop.is_file() and kept_crop.is_file()
    purges = services.purge_expired(now)
    assert [(p.reads, p.crops) for p in purges] == [(1, 1)]
    assert list(Read.objects.values_list("pk", flat=True)) == [kept.pk]
    assert not old_crop.exists() and kept_crop.is_file()
