import pytest
from django.conf import settings
from django.core.cache import cache
from rest_framework.test import APIClient

from admin_ctx.models import Role
from tests.factories import AdminFactory, CameraFactory, PrefeituraFactory, UserFactory
from tests.s3 import s3_server, s3_settings  # noqa: F401 - fixtures (real weed mini)


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _media_dirs(settings, tmp_path):
    """Footage written by a test never lands in the real data directory."""
    settings.RECORDINGS_DIR = tmp_path / "recordings"
    settings.CLIPS_DIR = tmp_path / "clips"
    settings.LIVE_DIR = tmp_path / "live"


@pytest.fixture(autouse=True)
def _clear_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(scope="session", autouse=True)
def _channel_layer_on_test_database(django_db_setup, django_db_blocker):
    """channels_postgres copies the DB settings at import: point it at the test database."""
    from channels.layers import channel_layers
    from django.db import connection

    layers = settings.CHANNEL_LAYERS
    postgres_layer = "PostgresChannelLayer" in layers["default"]["BACKEND"]
    if postgres_layer:
        layers["default"]["CONFIG"]["NAME"] = connection.settings_dict["NAME"]
    channel_layers.backends.clear()
    yield
    if postgres_layer:
        # The layer's pool and LISTEN connection would keep the test database from dropping.
        with django_db_blocker.unblock(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )


@pytest.fixture
def api():
    return APIClient()


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def tenants(db):
    """Two prefeituras, each with a gestor, an operador and a camera; plus a platform admin."""
    data = {"admin": AdminFactory(username="platform-admin")}
    for key in ("a", "b"):
        prefeitura = PrefeituraFactory(name=f"Prefeitura {key.upper()}")
        data[key] = {
            "prefeitura": prefeitura,
            "gestor": UserFactory(prefeitura=prefeitura, role=Role.GESTOR),
            "operador": UserFactory(prefeitura=prefeitura, role=Role.OPERADOR),
            "camera": CameraFactory(prefeitura=prefeitura),
        }
    return data


@pytest.fixture
async def channel_layer():
    """A fresh channel layer for one async test (its connections end with the test's loop)."""
    from channels.layers import channel_layers, get_channel_layer

    channel_layers.backends.clear()
    layer = get_channel_layer()
    yield layer
    # Close the pool inside the test's loop: psycopg_pool retries a connection attempt that
    # the loop's shutdown cancels, so an open pool can keep the loop from ever closing.
    close = getattr(layer, "close", None) or getattr(layer, "close_pools", None)
    if close is not None:
        await close()
    channel_layers.backends.clear()
