"""The LGPD audit log: written by the services, append-only, scoped by prefeitura."""

import pytest
from django.db import IntegrityError, InternalError, ProgrammingError, connection, transaction

from admin_ctx import audit
from admin_ctx.models import AuditEntry
from tests.conftest import client_for
from tests.factories import PASSWORD


def actions(**filters):
    return list(AuditEntry.objects.filter(**filters).values_list("action", flat=True))


def test_camera_lifecycle_is_audited(tenants):
    gestor = tenants["a"]["gestor"]
    client = client_for(gestor)
    created = client.post(
        "/api/cameras/",
        {"name": "Ponte", "code": "ponte", "source_url": "rtsp://u:pw@192.0.2.7/live"},
        format="json",
    ).json()
    client.patch(f"/api/cameras/{created['id']}/", {"name": "Ponte Nova"}, format="json")
    client.patch(
        f"/api/cameras/{created['id']}/", {"source_url": "rtsp://u:pw2@192.0.2.7/x"}, format="json"
    )
    client.delete(f"/api/cameras/{created['id']}/")
    entries = AuditEntry.objects.filter(target_type="camera", target_id=str(created["id"]))
    assert list(entries.order_by("id").values_list("action", flat=True)) == [
        "camera.create",
        "camera.update",
        "camera.update",
        "camera.delete",
    ]
    for entry in entries:
        assert entry.actor_id == gestor.pk
        assert entry.actor_username == gestor.username
        assert entry.prefeitura_id == gestor.prefeitura_id
        assert entry.ip == "127.0.0.1"
    update = entries.filter(action="camera.update").order_by("id")
    assert update[0].details == {"changed": ["name"]}
    assert update[1].details == {"changed": ["source_url"]}


def test_user_lifecycle_is_audited(tenants):
    gestor = tenants["a"]["gestor"]
    client = client_for(gestor)
    created = client.post(
        "/api/users/",
        {"username": "nova", "role": "operador", "password": "Senha-Forte-2026"},
        format="json",
    )
    assert created.status_code == 201
    user_id = created.json()["id"]
    client.patch(f"/api/users/{user_id}/", {"password": "Outra-Senha-2026x"}, format="json")
    client.delete(f"/api/users/{user_id}/")
    assert actions(target_type="user", target_id=str(user_id)) == [
        "user.delete",
        "user.update",
        "user.create",
    ]
    for entry in AuditEntry.objects.filter(target_type="user"):
        assert "Senha" not in str(entry.details)


def test_gestor_cannot_create_admin_or_cross_tenant_user(tenants):
    client = client_for(tenants["a"]["gestor"])
    response = client.post(
        "/api/users/", {"username": "x", "role": "admin", "password": "Senha-Forte-2026"}
    )
    assert response.status_code == 400 and "role" in response.json()
    response = client.post(
        "/api/users/",
        {
            "username": "y",
            "role": "operador",
            "password": "Senha-Forte-2026",
            "prefeitura": tenants["b"]["prefeitura"].pk,
        },
    )
    assert response.status_code == 400
    weak = client.post("/api/users/", {"username": "z", "role": "operador", "password": "123"})
    assert weak.status_code == 400 and "password" in weak.json()


def test_audit_visibility(tenants):
    a_entry = audit.record("camera.update", actor=tenants["a"]["gestor"])
    b_entry = audit.record("camera.update", actor=tenants["b"]["gestor"])
    gestor_ids = {
        r["id"] for r in client_for(tenants["a"]["gestor"]).get("/api/audit/").json()["results"]
    }
    assert a_entry.pk in gestor_ids and b_entry.pk not in gestor_ids
    admin_ids = {r["id"] for r in client_for(tenants["admin"]).get("/api/audit/").json()["results"]}
    assert {a_entry.pk, b_entry.pk} <= admin_ids
    assert client_for(tenants["a"]["operador"]).get("/api/audit/").status_code == 403
    row = client_for(tenants["admin"]).get(f"/api/audit/{a_entry.pk}/").json()
    assert set(row) == {
        "id", "at", "actor", "action", "prefeitura", "target_type", "target_id", "ip", "details",
    }  # fmt: skip
    assert row["actor"] == tenants["a"]["gestor"].username
    assert row["at"].endswith("-03:00")


def test_audit_cannot_be_changed_through_the_api(tenants):
    entry = audit.record("camera.update", actor=tenants["a"]["gestor"])
    client = client_for(tenants["admin"])
    assert client.patch(f"/api/audit/{entry.pk}/", {"action": "x"}).status_code == 405
    assert client.put(f"/api/audit/{entry.pk}/", {"action": "x"}).status_code == 405
    assert client.delete(f"/api/audit/{entry.pk}/").status_code == 405
    assert client.post("/api/audit/", {"action": "x"}).status_code == 405
    entry.refresh_from_db()
    assert entry.action == "camera.update"


@pytest.mark.parametrize(
    "sql", ["UPDATE admin_ctx_auditentry SET action = 'x'", "DELETE FROM admin_ctx_auditentry"]
)
def test_audit_is_append_only_in_the_database(tenants, sql):
    entry = audit.record("camera.update", actor=tenants["a"]["gestor"])
    with (
        pytest.raises((InternalError, IntegrityError, ProgrammingError), match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql)
    entry.refresh_from_db()
    assert entry.action == "camera.update"


def test_audit_is_read_only_in_the_admin(client, tenants):
    entry = audit.record("camera.update", actor=tenants["a"]["gestor"])
    client.login(username=tenants["admin"].username, password=PASSWORD)
    assert client.get("/admin/admin_ctx/auditentry/").status_code == 200
    assert client.get("/admin/admin_ctx/auditentry/add/").status_code == 403
    page = client.get(f"/admin/admin_ctx/auditentry/{entry.pk}/change/")
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    delete = client.post(f"/admin/admin_ctx/auditentry/{entry.pk}/delete/", {"post": "yes"})
    assert delete.status_code == 403
    assert AuditEntry.objects.filter(pk=entry.pk).exists()
