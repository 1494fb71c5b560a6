"""Field rules of prefeituras and cameras, through the API."""

import pytest

from cidades.models import Camera, Prefeitura
from tests.conftest import client_for
from tests.factories import CameraFactory, PrefeituraFactory

VALID = {
    "name": "Campinas",
    "uf": "SP",
    "ibge_code": "3509502",
    "cnpj": "51.885.242/0001-40",
    "plan": "basico",
    "max_cameras": 10,
}


def post_prefeitura(tenants, **changes):
    return client_for(tenants["admin"]).post(
        "/api/prefeituras/", {**VALID, **changes}, format="json"
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("uf", "XX"),
        ("uf", "sp"),
        ("ibge_code", "123456"),
        ("ibge_code", "12345678"),
        ("ibge_code", "35O9502"),
        ("cnpj", "51.885.242/0001-41"),
        ("cnpj", "11111111111111"),
        ("cnpj", "5188524200014"),
        ("cnpj", "51885242000140A"),
        ("plan", "gold"),
    ],
)
def test_prefeitura_rejects_bad_field(tenants, field, value):
    before = Prefeitura.objects.count()
    response = post_prefeitura(tenants, **{field: value})
    assert response.status_code == 400
    assert field in response.json()
    assert Prefeitura.objects.count() == before


def test_prefeitura_cnpj_stored_bare_and_plan_sets_retention(tenants):
    response = post_prefeitura(tenants, plan="premium")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["cnpj"] == "51885242000140"
    assert body["retention_days"] == 30
    prefeitura_id = body["id"]
    client = client_for(tenants["admin"])
    for plan, days in [("basico", 7), ("padrao", 15), ("premium", 30)]:
        response = client.patch(f"/api/prefeituras/{prefeitura_id}/", {"plan": plan})
        assert response.json()["retention_days"] == days
    # retention_days is read-only: writing it changes nothing
    response = client.patch(f"/api/prefeituras/{prefeitura_id}/", {"retention_days": 999})
    assert response.json()["retention_days"] == 30


def test_prefeitura_unique_ibge_and_cnpj(tenants):
    assert post_prefeitura(tenants).status_code == 201
    response = post_prefeitura(tenants, cnpj="46.395.000/0001-39")
    assert response.status_code == 400 and "ibge_code" in response.json()
    response = post_prefeitura(tenants, ibge_code="3509503")
    assert response.status_code == 400 and "cnpj" in response.json()


CAMERA = {"name": "Praça", "code": "praca", "source_url": "rtsp://u:p@192.0.2.1/s"}


@pytest.mark.parametrize(
    "url",
    [
        "http://192.0.2.1/stream",
        "rtsp:///nohost",
        "rtsp://192.0.2.1/with space",
        "rtsp://192.0.2.1/ctrl\x07char",
        "rtsp://192.0.2.1/tab\there",
        "rtsp://192.0.2.1:99999/badport",
        "rtsp://192.0.2.1/" + "a" * 2040,
        "",
        "192.0.2.1/stream",
    ],
)
def test_camera_rejects_bad_source_url(tenants, url):
    before = Camera.objects.count()
    response = client_for(tenants["a"]["gestor"]).post(
        "/api/cameras/", {**CAMERA, "source_url": url}, format="json"
    )
    assert response.status_code == 400
    assert "source_url" in response.json()
    assert Camera.objects.count() == before


@pytest.mark.parametrize("url", ["rtsp://192.0.2.1/s", "rtsps://cam.example.gov.br:322/live?x=1"])
def test_camera_accepts_rtsp_and_rtsps(tenants, url):
    response = client_for(tenants["a"]["gestor"]).post(
        "/api/cameras/", {**CAMERA, "source_url": url}, format="json"
    )
    assert response.status_code == 201, response.content


def test_camera_code_is_a_slug_unique_per_prefeitura(tenants):
    gestor_a = client_for(tenants["a"]["gestor"])
    assert gestor_a.post("/api/cameras/", {**CAMERA, "code": "não slug"}).status_code == 400
    assert gestor_a.post("/api/cameras/", CAMERA, format="json").status_code == 201
    second = gestor_a.post("/api/cameras/", CAMERA, format="json")
    assert second.status_code == 400 and "code" in second.json()
    # the same code in another prefeitura is fine
    gestor_b = client_for(tenants["b"]["gestor"])
    assert gestor_b.post("/api/cameras/", CAMERA, format="json").status_code == 201


def test_camera_quota(tenants):
    prefeitura = PrefeituraFactory(max_cameras=2)
    CameraFactory(prefeitura=prefeitura)
    client = client_for(tenants["admin"])
    data = {**CAMERA, "prefeitura": prefeitura.pk}
    assert client.post("/api/cameras/", data, format="json").status_code == 201
    response = client.post("/api/cameras/", {**data, "code": "outra"}, format="json")
    assert response.status_code == 400
    assert "2" in str(response.json()["prefeitura"])
    assert Camera.objects.filter(prefeitura=prefeitura).count() == 2


def test_gestor_camera_always_in_own_prefeitura(tenants):
    other = tenants["b"]["prefeitura"]
    response = client_for(tenants["a"]["gestor"]).post(
        "/api/cameras/", {**CAMERA, "prefeitura": other.pk}, format="json"
    )
    # another prefeitura's id is not even a valid choice for this gestor
    assert response.status_code == 400
    assert not Camera.objects.filter(prefeitura=other, code="praca").exists()
    response = client_for(tenants["a"]["gestor"]).post("/api/cameras/", CAMERA, format="json")
    assert response.json()["prefeitura"] == tenants["a"]["prefeitura"].pk


def test_admin_must_name_the_prefeitura(tenants):
    response = client_for(tenants["admin"]).post("/api/cameras/", CAMERA, format="json")
    assert response.status_code == 400 and "prefeitura" in response.json()


def test_camera_filters(tenants):
    prefeitura = tenants["a"]["prefeitura"]
    CameraFactory(prefeitura=prefeitura, name="Terminal Rodoviário", address="Av. Brasil")
    CameraFactory(prefeitura=prefeitura, name="Escola", enabled=False, code="escola-1")
    client = client_for(tenants["a"]["operador"])
    names = lambda r: {c["name"] for c in r.json()["results"]}  # noqa: E731
    assert names(client.get("/api/cameras/", {"search": "rodovi"})) == {"Terminal Rodoviário"}
    assert names(client.get("/api/cameras/", {"search": "brasil"})) == {"Terminal Rodoviário"}
    assert names(client.get("/api/cameras/", {"search": "escola-1"})) == {"Escola"}
    disabled = client.get("/api/cameras/", {"status": "disabled"})
    assert names(disabled) == {"Escola"}
    # another prefeitura's id is answered exactly like an id that does not exist
    other = client.get("/api/cameras/", {"prefeitura": tenants["b"]["prefeitura"].pk})
    missing = client.get("/api/cameras/", {"prefeitura": 999_999})
    assert other.status_code == missing.status_code == 400
    assert other.json() == missing.json()


def test_pagination_page_size_is_capped(tenants):
    client = client_for(tenants["admin"])
    response = client.get("/api/cameras/", {"page_size": 10_000})
    assert response.status_code == 200
    for _ in range(3):
        CameraFactory(prefeitura=tenants["a"]["prefeitura"])
    page = client.get("/api/cameras/", {"page_size": 2}).json()
    assert len(page["results"]) == 2 and page["next"] is not None and page["count"] == 5


def test_camera_coordinates_bounds(tenants):
    client = client_for(tenants["a"]["gestor"])
    response = client.post("/api/cameras/", {**CAMERA, "latitude": "95"}, format="json")
    assert response.status_code == 400 and "latitude" in response.json()
