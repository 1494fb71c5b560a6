"""Every resource through the generic API tests (list/retrieve/create/update/delete/roles)."""

import pytest

from admin_ctx import audit
from admin_ctx.models import AuditEntry, Role, User
from cidades.models import Camera, Prefeitura
from tests.api_mixins import APIResourceTests
from tests.conftest import client_for
from tests.factories import CameraFactory, PrefeituraFactory, UserFactory, make_cnpj


class TestPrefeituraAPI(APIResourceTests):
    url = "/api/prefeituras/"
    model = Prefeitura
    roles_write = ("admin",)

    def make_object(self, tenants, key):
        return tenants[key]["prefeitura"]

    def create_data(self, tenants, role):
        return {
            "name": "Campinas",
            "uf": "SP",
            "ibge_code": "3509502",
            "cnpj": "51.885.242/0001-40",
            "plan": "premium",
            "max_cameras": 300,
        }

    def update_data(self, tenants, obj):
        return {"plan": "padrao", "max_cameras": 99}

    def test_list_query_count_is_constant(self, tenants):
        # Each make_object here is the same prefeitura: create new ones instead.
        self.make_object = lambda tenants, key: PrefeituraFactory()
        super().test_list_query_count_is_constant(tenants)

    @pytest.mark.parametrize("role", ["admin", "gestor", "operador"])
    def test_delete(self, tenants, role):
        # A prefeitura that still has cameras and users is protected: delete an empty one.
        if role == "admin":
            self.make_object = lambda tenants, key: PrefeituraFactory()
        super().test_delete(tenants, role)

    def test_delete_with_cameras_is_409(self, tenants):
        prefeitura = tenants["a"]["prefeitura"]
        response = client_for(tenants["admin"]).delete(self.detail(prefeitura))
        assert response.status_code == 409
        assert "detail" in response.json()
        assert Prefeitura.objects.filter(pk=prefeitura.pk).exists()


class TestCameraAPI(APIResourceTests):
    url = "/api/cameras/"
    model = Camera
    roles_write = ("admin", "gestor")

    def make_object(self, tenants, key):
        return CameraFactory(prefeitura=tenants[key]["prefeitura"])

    def create_data(self, tenants, role):
        data = {
            "name": "Praça Central",
            "code": f"praca-{role}",
            "source_url": "rtsp://admin:segredo@192.0.2.10:554/stream1",
            "latitude": "-22.905",
            "longitude": "-47.06",
        }
        if role == "admin":
            data["prefeitura"] = tenants["a"]["prefeitura"].pk
        return data

    def update_data(self, tenants, obj):
        return {"name": "Renomeada", "enabled": False}


class TestUserAPI(APIResourceTests):
    url = "/api/users/"
    model = User
    roles_read = ("admin", "gestor")
    roles_write = ("admin", "gestor")

    def make_object(self, tenants, key):
        return UserFactory(prefeitura=tenants[key]["prefeitura"], role=Role.OPERADOR)

    def create_data(self, tenants, role):
        data = {
            "username": f"novo-{role}",
            "email": f"novo-{role}@example.gov.br",
            "role": "operador",
            "password": "Uma-senha-forte-2026",
        }
        if role == "admin":
            data["prefeitura"] = tenants["a"]["prefeitura"].pk
        return data

    def update_data(self, tenants, obj):
        return {"email": "trocado@example.gov.br", "is_active": False}


class TestAuditAPI(APIResourceTests):
    url = "/api/audit/"
    model = AuditEntry
    roles_read = ("admin", "gestor")
    roles_write = ()
    creatable = updatable = deletable = False

    def make_object(self, tenants, key):
        return audit.record(
            "camera.update", actor=tenants[key]["gestor"], target=tenants[key]["camera"]
        )

    def update_data(self, tenants, obj):
        return {"action": "forged"}


def test_make_cnpj_is_valid():
    from cidades.validators import validate_cnpj

    validate_cnpj(make_cnpj(12345678))
