"""A camera's source URL is a secret: encrypted at rest, never returned, logged or audited."""

import logging

from django.db import connection

from admin_ctx.models import AuditEntry
from cidades.models import Camera
from tests.conftest import client_for
from tests.factories import PASSWORD

SECRET = "Sup3r-Secret-Pa55"
URL = f"rtsp://operator:{SECRET}@192.0.2.50:554/Streaming/Channels/101"


def test_source_url_never_leaves_in_clear(client, tenants, caplog):
    caplog.set_level(logging.DEBUG)
    gestor = tenants["a"]["gestor"]
    api = client_for(gestor)
    bodies = []
    created = api.post(
        "/api/cameras/", {"name": "Cofre", "code": "cofre", "source_url": URL}, format="json"
    )
    assert created.status_code == 201
    camera_id = created.json()["id"]
    bodies.append(created.content)
    assert created.json()["source_url_masked"] == (
        "rtsp://operator:***@192.0.2.50:554/Streaming/Channels/101"
    )
    assert "source_url" not in created.json()
    bodies.append(api.get(f"/api/cameras/{camera_id}/").content)
    bodies.append(api.get("/api/cameras/", {"search": "cofre"}).content)
    bodies.append(
        api.patch(f"/api/cameras/{camera_id}/", {"source_url": URL + "?v=2"}, format="json").content
    )
    bad = api.post(
        "/api/cameras/", {"name": "x", "code": "x", "source_url": URL + " bad"}, format="json"
    )
    assert bad.status_code == 400
    bodies.append(bad.content)
    bodies.append(client_for(tenants["admin"]).get("/api/audit/", {"page_size": 500}).content)
    bodies.append(client_for(tenants["admin"]).get("/api/schema/").content)
    client.login(username=tenants["admin"].username, password=PASSWORD)
    bodies.append(client.get("/admin/cidades/camera/").content)
    bodies.append(client.get(f"/admin/cidades/camera/{camera_id}/change/").content)
    for body in bodies:
        assert SECRET.encode() not in body
    for entry in AuditEntry.objects.all():
        assert SECRET not in str(entry.details)
    assert SECRET not in caplog.text

    # at rest: the column holds ciphertext; the model decrypts for the media plane only
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM cidades_camera WHERE id = %s", [camera_id])
        row = cursor.fetchone()
    assert SECRET not in repr(row)
    assert Camera.objects.get(pk=camera_id).source_url == URL + "?v=2"


def test_admin_form_keeps_url_when_left_blank(client, tenants):
    camera = tenants["a"]["camera"]
    original = camera.source_url
    client.login(username=tenants["admin"].username, password=PASSWORD)
    response = client.post(
        f"/admin/cidades/camera/{camera.pk}/change/",
        {
            "prefeitura": camera.prefeitura_id,
            "name": "Nome pelo admin",
            "code": camera.code,
            "source_url": "",
            "address": camera.address,
            "enabled": "on",
            "recording_enabled": "on",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    camera.refresh_from_db()
    assert camera.name == "Nome pelo admin"
    assert camera.source_url == original
    assert AuditEntry.objects.filter(action="camera.update", target_id=str(camera.pk)).exists()


def test_admin_creates_camera_through_the_service(client, tenants):
    client.login(username=tenants["a"]["gestor"].username, password=PASSWORD)
    response = client.post(
        "/admin/cidades/camera/add/",
        {
            "prefeitura": tenants["a"]["prefeitura"].pk,
            "name": "Pelo admin",
            "code": "pelo-admin",
            "source_url": URL,
            "enabled": "on",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    camera = Camera.objects.get(code="pelo-admin")
    assert camera.source_url == URL
    assert AuditEntry.objects.filter(action="camera.create", target_id=str(camera.pk)).exists()
    # a gestor's admin only offers its own prefeitura
    page = client.get("/admin/cidades/camera/add/").content.decode()
    assert tenants["b"]["prefeitura"].name not in page
