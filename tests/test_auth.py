"""JWT login, refresh, me, throttling and the audit of logins."""

from admin_ctx.models import AuditEntry
from tests.factories import PASSWORD, UserFactory


def login(api, username, password):
    return api.post("/api/auth/token/", {"username": username, "password": password}, format="json")


def test_token_refresh_and_me(api, tenants):
    user = tenants["a"]["operador"]
    response = login(api, user.username, PASSWORD)
    assert response.status_code == 200
    tokens = response.json()
    assert set(tokens) == {"access", "refresh"}
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    me = api.get("/api/auth/me/").json()
    assert me == {
        "id": user.pk,
        "username": user.username,
        "role": "operador",
        "prefeitura": user.prefeitura_id,
    }
    refreshed = api.post("/api/auth/token/refresh/", {"refresh": tokens["refresh"]}, format="json")
    assert refreshed.status_code == 200 and "access" in refreshed.json()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {refreshed.json()['access']}")
    assert api.get("/api/auth/me/").status_code == 200


def test_bad_credentials_401_and_audited(api, tenants):
    user = tenants["a"]["gestor"]
    response = login(api, user.username, "wrong-password")
    assert response.status_code == 401
    entry = AuditEntry.objects.filter(action="auth.login_failed").latest("id")
    assert entry.details["username"] == user.username
    assert entry.ip == "127.0.0.1"
    assert "wrong-password" not in str(entry.details)


def test_successful_login_audited(api, tenants):
    user = tenants["b"]["operador"]
    assert login(api, user.username, PASSWORD).status_code == 200
    entry = AuditEntry.objects.filter(action="auth.login").latest("id")
    assert entry.actor_id == user.pk
    assert entry.prefeitura_id == user.prefeitura_id
    assert entry.ip == "127.0.0.1"


def test_garbage_tokens_are_401(api, db):
    assert api.get("/api/auth/me/").status_code == 401
    api.credentials(HTTP_AUTHORIZATION="Bearer not-a-jwt")
    assert api.get("/api/auth/me/").status_code == 401
    bad_refresh = api.post("/api/auth/token/refresh/", {"refresh": "x"}, format="json")
    assert bad_refresh.status_code == 401


def test_inactive_user_cannot_log_in(api, db):
    user = UserFactory(is_active=False)
    assert login(api, user.username, PASSWORD).status_code == 401


def test_login_is_throttled(api, db, settings):
    user = UserFactory()
    statuses = [login(api, user.username, "bad").status_code for _ in range(12)]
    assert statuses[:10] == [401] * 10
    assert statuses[10:] == [429, 429]
    # throttled even with the right password, until the window passes
    assert login(api, user.username, PASSWORD).status_code == 429


def test_session_login_page_leads_to_dashboard(client, tenants):
    page = client.get("/")
    assert page.status_code == 200
    assert "Entrar" in page.content.decode()
    user = tenants["a"]["operador"]
    response = client.post("/", {"username": user.username, "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/dashboard/"
    dashboard = client.get("/dashboard/")
    assert dashboard.status_code == 200
    assert "Painel" in dashboard.content.decode()
    assert AuditEntry.objects.filter(action="auth.login", actor_id=user.pk).exists()
    # the session also authenticates the API (the dashboard uses it)
    assert client.get("/api/auth/me/").json()["username"] == user.username
    client.get("/logout/")
    assert client.get("/dashboard/").status_code == 302


def test_failed_session_login_shows_message(client, tenants):
    response = client.post("/", {"username": "ninguem", "password": "x"})
    assert response.status_code == 200
    assert "Usuário ou senha inválidos" in response.content.decode()
    assert AuditEntry.objects.filter(action="auth.login_failed").exists()
