"""Justified access (LGPD): playback and clip exports carry a reason where the camera's
prefeitura requires one (default: operadores); the reason lands in the audit entry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from admin_ctx.models import AuditEntry, Role
from cidades.models import Prefeitura
from recordings.models import Clip
from tests.conftest import client_for
from tests.factories import CameraFactory, PrefeituraFactory, UserFactory
from tests.test_recordings_support import backdate, synthetic_segment

pytestmark = pytest.mark.timeout(120)
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def recorded(db, tmp_path):
    """A camera of a prefeitura with the model's default policy, with 3 recorded segments."""
    prefeitura = PrefeituraFactory(reason_required_for=Prefeitura._meta.get_field(
        "reason_required_for").default)  # fmt: skip
    camera = CameraFactory(prefeitura=prefeitura)
    sample = synthetic_segment(tmp_path / "sample.ts")
    backdate(camera.pk, [T0 + timedelta(seconds=2 * k) for k in range(3)], sample)
    return camera


def users(camera):
    return {
        role: UserFactory(prefeitura=camera.prefeitura, role=role)
        for role in (Role.OPERADOR, Role.GESTOR)
    }


def playback(user, camera, **extra):
    params = {"start": T0.isoformat(), "end": (T0 + timedelta(seconds=6)).isoformat(), **extra}
    return client_for(user).get(f"/api/cameras/{camera.pk}/playback.m3u8", params)


def export(user, camera, **extra):
    body = {"camera_id": camera.pk, "start": T0, "end": T0 + timedelta(seconds=4), **extra}
    return client_for(user).post("/api/clips/", body, format="json")


def test_a_new_prefeitura_requires_reasons_from_operadores(tenants):
    response = client_for(tenants["admin"]).post(
        "/api/prefeituras/",
        {"name": "Nova", "uf": "SP", "ibge_code": "3599999", "cnpj": "11222333000181"},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["reason_required_for"] == "operadores"


def test_operador_playback_needs_a_reason_and_it_is_audited(recorded):
    operador = users(recorded)[Role.OPERADOR]
    response = playback(operador, recorded)
    assert response.status_code == 400
    assert "reason" in response.json()
    assert playback(operador, recorded, reason="   ").status_code == 400
    assert not AuditEntry.objects.filter(action="recording.playback").exists()

    response = playback(operador, recorded, reason="Ocorrência de furto", protocol="BO-123/2026")
    assert response.status_code == 200, response.content
    entry = AuditEntry.objects.get(action="recording.playback")
    assert entry.details["reason"] == "Ocorrência de furto"
    assert entry.details["protocol"] == "BO-123/2026"
    assert entry.actor_id == operador.pk
    # the media URIs inside the issued playlist need no reason
    uris = [line for line in response.content.decode().splitlines() if line.startswith("/api/")]
    assert uris
    media = client_for(None).get(uris[0])
    assert media.status_code == 200
    assert b"".join(media.streaming_content)[:1] == b"\x47"  # MPEG-TS sync byte


def test_policy_none_operadores_all(recorded):
    people = users(recorded)
    operador, gestor = people[Role.OPERADOR], people[Role.GESTOR]
    assert playback(gestor, recorded).status_code == 200  # operadores only by default
    prefeitura = recorded.prefeitura
    prefeitura.reason_required_for = "all"
    prefeitura.save()
    response = playback(gestor, recorded)
    assert response.status_code == 400 and "reason" in response.json()
    prefeitura.reason_required_for = "none"
    prefeitura.save()
    assert playback(operador, recorded).status_code == 200


def test_admin_sets_the_policy_through_the_api(tenants):
    prefeitura = tenants["a"]["prefeitura"]
    admin = client_for(tenants["admin"])
    response = admin.patch(
        f"/api/prefeituras/{prefeitura.pk}/", {"reason_required_for": "all"}, format="json"
    )
    assert response.status_code == 200 and response.json()["reason_required_for"] == "all"
    bad = admin.patch(
        f"/api/prefeituras/{prefeitura.pk}/", {"reason_required_for": "x"}, format="json"
    )
    assert bad.status_code == 400 and "reason_required_for" in bad.json()
    gestor = client_for(tenants["a"]["gestor"])
    denied = gestor.patch(
        f"/api/prefeituras/{prefeitura.pk}/", {"reason_required_for": "none"}, format="json"
    )
    assert denied.status_code in (403, 404)
    prefeitura.refresh_from_db()
    assert prefeitura.reason_required_for == "all"


def test_clip_export_needs_a_reason_and_keeps_it(recorded):
    operador = users(recorded)[Role.OPERADOR]
    response = export(operador, recorded)
    assert response.status_code == 400 and "reason" in response.json()
    assert not Clip.objects.exists()
    assert export(operador, recorded, reason="x" * 501).status_code == 400
    assert not Clip.objects.exists()

    response = export(operador, recorded, reason="Pedido da Polícia Civil", protocol="IP 77/2026")
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["reason"] == "Pedido da Polícia Civil" and body["protocol"] == "IP 77/2026"
    clip = Clip.objects.get(pk=body["id"])
    assert (clip.reason, clip.protocol) == ("Pedido da Polícia Civil", "IP 77/2026")
    entry = AuditEntry.objects.get(action="clip.create")
    assert entry.details["reason"] == "Pedido da Polícia Civil"
    assert entry.details["protocol"] == "IP 77/2026"
