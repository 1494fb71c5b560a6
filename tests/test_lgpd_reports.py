"""Access reports for the DPO: who watched live, played back or exported which camera, with
reasons; admin sees all, gestor its prefeitura, operador nothing; JSON paginated and CSV."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from tests.conftest import client_for
from tests.test_recordings_support import backdate, synthetic_segment

pytestmark = pytest.mark.timeout(120)
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
REPORT = "/api/reports/access/"


@pytest.fixture
def activity(tenants, tmp_path):
    """Through the API: operador A watches live, plays back and exports with reasons; gestor A
    plays back; operador B plays back its own camera."""
    sample = synthetic_segment(tmp_path / "sample.ts")
    for key in ("a", "b"):
        camera = tenants[key]["camera"]
        backdate(camera.pk, [T0, T0 + timedelta(seconds=2)], sample)
        camera.prefeitura.reason_required_for = "operadores"
        camera.prefeitura.save()
    camera = tenants["a"]["camera"]
    operador = client_for(tenants["a"]["operador"])
    period = {"start": T0.isoformat(), "end": (T0 + timedelta(seconds=4)).isoformat()}
    started = operador.post("/api/streams/start", {"camera_id": camera.pk}, format="json")
    assert started.status_code == 201, started.content
    assert operador.get(f"/api/streams/{started.json()['stream_id']}/urls").status_code == 200
    playback = f"/api/cameras/{camera.pk}/playback.m3u8"
    assert operador.get(playback, {**period, "reason": "Acidente na via",
                                   "protocol": "BO 9"}).status_code == 200  # fmt: skip
    clip = operador.post("/api/clips/", {"camera_id": camera.pk, **period,
                                         "reason": "Pedido do MP"}, format="json")  # fmt: skip
    assert clip.status_code == 202, clip.content
    assert client_for(tenants["a"]["gestor"]).get(playback, period).status_code == 200
    other = client_for(tenants["b"]["operador"])
    assert other.get(f"/api/cameras/{tenants['b']['camera'].pk}/playback.m3u8",
                     {**period, "reason": "Ronda"}).status_code == 200  # fmt: skip
    return tenants


def test_gestor_sees_its_prefeitura_with_reasons(activity):
    tenants = activity
    body = client_for(tenants["a"]["gestor"]).get(REPORT).json()
    rows = body["results"]
    assert body["count"] == 4
    operador = tenants["a"]["operador"].username
    assert [(r["action"], r["user"], r["reason"], r["protocol"]) for r in reversed(rows)] == [
        ("stream.view", operador, "", ""),
        ("recording.playback", operador, "Acidente na via", "BO 9"),
        ("clip.create", operador, "Pedido do MP", ""),
        ("recording.playback", tenants["a"]["gestor"].username, "", ""),
    ]
    camera = tenants["a"]["camera"]
    assert {(r["camera_id"], r["camera"]) for r in rows} == {(camera.pk, camera.name)}
    assert datetime.fromisoformat(rows[-2]["period_start"]) == T0
    assert isinstance(rows[1]["clip_id"], int)


def test_admin_sees_all_and_filters(activity):
    tenants = activity
    admin = client_for(tenants["admin"])
    assert admin.get(REPORT).json()["count"] == 5
    by_camera = admin.get(REPORT, {"camera_id": tenants["b"]["camera"].pk}).json()
    assert [r["reason"] for r in by_camera["results"]] == ["Ronda"]
    operador = tenants["a"]["operador"]
    for user in (operador.username, str(operador.pk)):
        per_user = admin.get(REPORT, {"user": user}).json()
        assert per_user["count"] == 3
        assert {r["user_id"] for r in per_user["results"]} == {operador.pk}
    future = (timezone.now() + timedelta(hours=1)).isoformat()
    assert admin.get(REPORT, {"start": future}).json()["count"] == 0
    page = admin.get(REPORT, {"page_size": 2}).json()
    assert len(page["results"]) == 2 and page["next"]


def test_operador_is_refused_and_bad_filters_are_400(activity):
    tenants = activity
    assert client_for(tenants["a"]["operador"]).get(REPORT).status_code == 403
    gestor = client_for(tenants["a"]["gestor"])
    assert "start" in gestor.get(REPORT, {"start": "2026-01-01T00:00:00"}).json()
    assert gestor.get(REPORT, {"camera_id": "x"}).status_code == 400
    # another prefeitura's camera: an empty report, not its entries
    assert gestor.get(REPORT, {"camera_id": tenants["b"]["camera"].pk}).json()["count"] == 0


def test_csv_export(activity):
    tenants = activity
    response = client_for(tenants["a"]["gestor"]).get(REPORT, {"format": "csv"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    text = b"".join(response.streaming_content).decode()
    table = list(csv.DictReader(io.StringIO(text)))
    assert len(table) == 4
    assert {row["reason"] for row in table} == {"", "Acidente na via", "Pedido do MP"}
    assert all(row["camera_id"] == str(tenants["a"]["camera"].pk) for row in table)
    denied = client_for(tenants["a"]["operador"]).get(REPORT, {"format": "csv"})
    assert denied.status_code == 403


def test_dpo_page_in_the_dashboard(activity):
    """The gestor's page (server-rendered, session login): filters, reasons, CSV link."""
    from django.test import Client

    tenants = activity
    browser = Client()
    browser.force_login(tenants["a"]["gestor"])
    page = browser.get("/dashboard/access/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Relatório de acessos" in html
    assert "Acidente na via" in html and "Pedido do MP" in html and "BO 9" in html
    assert "Ronda" not in html  # prefeitura B's access
    assert "assistiu ao vivo" in html
    filtered = browser.get("/dashboard/access/", {"user": tenants["a"]["gestor"].username})
    assert "Acidente na via" not in filtered.content.decode()
    assert "Página 1 de 1 (1 acessos)" in filtered.content.decode()
    csv_url = re.search(r'href="([^"]+)" id="access-csv"', html)
    assert csv_url and csv_url.group(1)
    download = browser.get(csv_url.group(1).replace("&amp;", "&"))
    assert download.status_code == 200 and download["Content-Type"].startswith("text/csv")
    assert "Pedido do MP" in b"".join(download.streaming_content).decode()
    operador = Client()
    operador.force_login(tenants["a"]["operador"])
    assert operador.get("/dashboard/access/").status_code == 403
    assert "/dashboard/access/" not in operador.get("/dashboard/").content.decode()
