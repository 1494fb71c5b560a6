"""OpenAPI schema, Swagger UI, /health, the admin site and the pt-BR pages."""

import yaml
from django.core.management import call_command
from django.db import connection
from drf_spectacular.validation import validate_schema

from streaming import services
from streaming.models import Stream
from tests.factories import PASSWORD


def test_openapi_schema_is_valid_and_complete(api, db):
    response = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = (
        response.json() if "json" in response["Content-Type"] else yaml.safe_load(response.content)
    )
    validate_schema(schema)
    paths = set(schema["paths"])
    for expected in [
        "/api/auth/token/",
        "/api/auth/token/refresh/",
        "/api/auth/me/",
        "/api/prefeituras/",
        "/api/prefeituras/{id}/",
        "/api/cameras/",
        "/api/cameras/{id}/",
        "/api/users/",
        "/api/audit/",
    ]:
        assert expected in paths
    camera = schema["components"]["schemas"]["Camera"]["properties"]
    assert "source_url" not in camera and "source_url_masked" in camera
    assert "source_url" in schema["components"]["schemas"]["CameraRequest"]["properties"]


def test_schema_generation_has_no_warnings(capsys, db):
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", "/dev/null")


def test_swagger_ui(api, db):
    response = api.get("/api/docs/")
    assert response.status_code == 200
    assert b"swagger" in response.content.lower()


def test_health_ok(client, db):
    # the media supervisor reports through this same call (see test_streaming_supervisor)
    services.heartbeat("media-supervisor@test", kind="media-supervisor", engine="embedded")
    services.heartbeat("job-worker@test", kind="job-worker")  # see tests/faults
    response = client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "healthy"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["media_engine"] == {
        "ok": True,
        "engine": "embedded",
        "ffmpeg": body["checks"]["media_engine"]["ffmpeg"],
    }
    assert body["checks"]["media_supervisor"]["ok"] is True
    assert body["checks"]["job_worker"]["ok"] is True


def test_health_503_without_a_fresh_job_worker(client, db, settings):
    services.heartbeat("media-supervisor@test", kind="media-supervisor", engine="embedded")
    response = client.get("/health")
    assert response.status_code == 503
    assert response.json()["checks"]["job_worker"] == {
        "ok": False,
        "error": "no job worker has reported",
    }
    services.heartbeat("job-worker@test", kind="job-worker")
    assert client.get("/health").status_code == 200
    settings.JOB_WORKER_HEARTBEAT_STALE_S = 0  # the beat above is now too old
    response = client.get("/health")
    assert response.status_code == 503
    assert response.json()["checks"]["job_worker"]["ok"] is False
    assert response.json()["checks"]["media_supervisor"]["ok"] is True


def test_health_503_without_a_media_supervisor(client, db):
    response = client.get("/health")
    assert response.status_code == 503
    assert response.json()["checks"]["media_supervisor"]["ok"] is False


def test_prometheus_metrics(client, tenants):
    Stream.objects.create(camera=tenants["a"]["camera"], status="RUNNING")
    services.heartbeat("media-supervisor@test", kind="media-supervisor")
    text = client.get("/metrics").content.decode()
    assert 'gtvision_cameras{status="offline"} 2.0' in text
    assert 'gtvision_streams{status="RUNNING"} 1.0' in text
    assert (
        'gtvision_worker_heartbeat_age_seconds{kind="media-supervisor",name="media-supervisor@test"}'
        in text
    )


def test_health_503_when_database_unreachable(client, db):
    """Point the connection at a closed port for one request: a real failure, then restore."""
    settings_dict = connection.settings_dict
    saved = (settings_dict["HOST"], settings_dict["PORT"])
    connection.close()
    settings_dict["HOST"], settings_dict["PORT"] = "127.0.0.1", "1"
    try:
        connection.close()
        response = client.get("/health")
    finally:
        connection.close()
        settings_dict["HOST"], settings_dict["PORT"] = saved
    assert response.status_code == 503
    assert response.json()["checks"]["database"]["ok"] is False
    assert response.json()["status"] == "unhealthy"


def test_admin_pages_in_portuguese(client, tenants):
    client.login(username=tenants["admin"].username, password=PASSWORD)
    index = client.get("/admin/").content.decode()
    assert "Cidades e câmeras" in index and "Administração" in index
    cameras = client.get(
        "/admin/cidades/camera/", {"prefeitura__id__exact": tenants["a"]["prefeitura"].pk}
    )
    assert cameras.status_code == 200
    text = cameras.content.decode()
    assert tenants["a"]["camera"].name in text and tenants["b"]["camera"].name not in text
    assert "***" in text
    assert client.get("/admin/cidades/camera/", {"status__exact": "offline"}).status_code == 200
    assert client.get("/admin/cidades/prefeitura/").status_code == 200
    assert client.get("/admin/admin_ctx/user/").status_code == 200


def test_operador_has_no_admin(client, tenants):
    client.login(username=tenants["a"]["operador"].username, password=PASSWORD)
    assert client.get("/admin/").status_code == 302


def test_gestor_admin_sees_only_its_prefeitura(client, tenants):
    client.login(username=tenants["a"]["gestor"].username, password=PASSWORD)
    text = client.get("/admin/cidades/camera/").content.decode()
    assert tenants["a"]["camera"].name in text
    assert tenants["b"]["camera"].name not in text
    other = client.get(f"/admin/cidades/camera/{tenants['b']['camera'].pk}/change/")
    assert other.status_code == 302  # Django admin redirects a missing object to the list
    users = client.get("/admin/admin_ctx/user/")  # a gestor manages its own users
    assert users.status_code == 200
    page = users.content.decode()
    assert tenants["a"]["operador"].username in page
    assert tenants["b"]["operador"].username not in page
    assert tenants["b"]["gestor"].username not in page
