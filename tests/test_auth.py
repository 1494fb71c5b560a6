"""JWT login, refresh, me, throttling, logout and token revocation, and the audit of logins.

Logout and revocation are checked through real HTTP (``requests`` against a live server):
logout is POST with CSRF only, and every JWT issued before a password change (API, admin
form, ``set_password``), a deactivation or a logout is refused afterwards.
"""

import re

import pytest
import requests
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken

from admin_ctx.models import AuditEntry, Role, User
from tests.factories import PASSWORD, AdminFactory, UserFactory
from tests.test_login_throttle import admin_login, dashboard_login

NEW_PASSWORD = "Outra-senha-segura-987"


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
    statuses = [login(api, user.username, "bad").status_code for _ in range(7)]
    assert statuses[:5] == [401] * 5
    assert statuses[5:] == [429, 429]
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
    client.post("/logout/")
    assert client.get("/dashboard/").status_code == 302


def test_failed_session_login_shows_message(client, tenants):
    response = client.post("/", {"username": "ninguem", "password": "x"})
    assert response.status_code == 200
    assert "Usuário ou senha inválidos" in response.content.decode()
    assert AuditEntry.objects.filter(action="auth.login_failed").exists()


# -- through a live server ----------------------------------------------------------------


def tokens(url: str, username: str, password: str = PASSWORD) -> dict[str, str]:
    response = requests.post(
        f"{url}/api/auth/token/", json={"username": username, "password": password}, timeout=30
    )
    assert response.status_code == 200, response.text
    return response.json()


def me(url: str, access: str) -> int:
    headers = {"Authorization": f"Bearer {access}"}
    return requests.get(f"{url}/api/auth/me/", headers=headers, timeout=30).status_code


def refresh(url: str, token: str) -> requests.Response:
    return requests.post(f"{url}/api/auth/token/refresh/", json={"refresh": token}, timeout=30)


def csrf_from(html: str) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)


def assert_revoked(url: str, old: dict[str, str]) -> None:
    assert me(url, old["access"]) == 401
    response = refresh(url, old["refresh"])
    assert response.status_code == 401, response.text


@pytest.mark.django_db(transaction=True)
def test_logout_is_post_only_with_csrf(live_server):
    url = live_server.url
    user = UserFactory()
    signed_in = dashboard_login(url, user.username, PASSWORD)
    assert signed_in.status_code == 302
    session = signed_in.session
    page = session.get(f"{url}/dashboard/", timeout=30)
    assert page.status_code == 200
    # The page's logout control is a form posting the CSRF token, not a link.
    form = re.search(
        r'<form class="logout-form" method="post" action="/logout/">.*?</form>', page.text
    )
    assert form and "csrfmiddlewaretoken" in form.group(0)
    assert 'href="/logout/"' not in page.text

    assert session.get(f"{url}/logout/", allow_redirects=False, timeout=30).status_code == 405
    cross_site = requests.post(
        f"{url}/logout/", cookies=session.cookies, allow_redirects=False, timeout=30
    )
    assert cross_site.status_code == 403  # no CSRF token: a foreign page cannot log us out
    assert session.get(f"{url}/dashboard/", allow_redirects=False, timeout=30).status_code == 200

    out = session.post(
        f"{url}/logout/",
        data={"csrfmiddlewaretoken": csrf_from(page.text)},
        headers={"Referer": f"{url}/dashboard/"},
        allow_redirects=False,
        timeout=30,
    )
    assert out.status_code == 302 and out.headers["Location"] == "/"
    assert session.get(f"{url}/dashboard/", allow_redirects=False, timeout=30).status_code == 302
    assert AuditEntry.objects.filter(action="auth.logout", actor_id=user.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_password_change_through_the_api_revokes_jwts(live_server):
    url = live_server.url
    user = UserFactory()
    admin = AdminFactory()
    old = tokens(url, user.username)
    assert me(url, old["access"]) == 200
    admin_access = tokens(url, admin.username)["access"]

    changed = requests.patch(
        f"{url}/api/users/{user.pk}/",
        json={"password": NEW_PASSWORD},
        headers={"Authorization": f"Bearer {admin_access}"},
        timeout=30,
    )
    assert changed.status_code == 200, changed.text
    assert_revoked(url, old)
    assert BlacklistedToken.objects.filter(token__user=user).exists()
    assert me(url, admin_access) == 200  # the admin's own tokens are untouched

    new = tokens(url, user.username, NEW_PASSWORD)
    assert me(url, new["access"]) == 200
    renewed = refresh(url, new["refresh"])
    assert renewed.status_code == 200 and me(url, renewed.json()["access"]) == 200


@pytest.mark.django_db(transaction=True)
def test_password_change_through_the_admin_form_revokes_jwts(live_server):
    url = live_server.url
    gestor = UserFactory(role=Role.GESTOR)
    operador = UserFactory(role=Role.OPERADOR, prefeitura=gestor.prefeitura)
    old = tokens(url, operador.username)
    signed_in = admin_login(url, gestor.username, PASSWORD)
    assert signed_in.status_code == 302
    session = signed_in.session
    form_url = f"{url}/admin/admin_ctx/user/{operador.pk}/password/"
    form = session.get(form_url, timeout=30)
    assert form.status_code == 200
    saved = session.post(
        form_url,
        data={
            "csrfmiddlewaretoken": csrf_from(form.text),
            "password1": NEW_PASSWORD,
            "password2": NEW_PASSWORD,
            "usable_password": "true",
        },
        headers={"Referer": form_url},
        allow_redirects=False,
        timeout=30,
    )
    assert saved.status_code == 302, saved.text[:2000]
    assert_revoked(url, old)
    assert me(url, tokens(url, operador.username, NEW_PASSWORD)["access"]) == 200


@pytest.mark.django_db(transaction=True)
def test_set_password_anywhere_revokes_jwts(live_server):
    """What ``manage.py changepassword`` does: set_password and save."""
    url = live_server.url
    user = UserFactory()
    old = tokens(url, user.username)
    user = User.objects.get(pk=user.pk)
    user.set_password(NEW_PASSWORD)
    user.save()
    assert_revoked(url, old)
    # Saving other fields does not revoke anything.
    fresh = tokens(url, user.username, NEW_PASSWORD)
    user.email = "outro@example.gov.br"
    user.save()
    assert me(url, fresh["access"]) == 200


@pytest.mark.django_db(transaction=True)
def test_deactivation_revokes_jwts_for_good(live_server):
    url = live_server.url
    user = UserFactory()
    admin = AdminFactory()
    old = tokens(url, user.username)
    headers = {"Authorization": f"Bearer {tokens(url, admin.username)['access']}"}
    for active in (False, True):
        response = requests.patch(
            f"{url}/api/users/{user.pk}/", json={"is_active": active}, headers=headers, timeout=30
        )
        assert response.status_code == 200, response.text
    assert_revoked(url, old)  # reactivated: the old tokens stay dead
    assert me(url, tokens(url, user.username)["access"]) == 200


@pytest.mark.django_db(transaction=True)
def test_session_logout_revokes_the_users_jwts(live_server):
    url = live_server.url
    user = UserFactory()
    old = tokens(url, user.username)
    signed_in = dashboard_login(url, user.username, PASSWORD)
    session = signed_in.session
    page = session.get(f"{url}/dashboard/", timeout=30)
    out = session.post(
        f"{url}/logout/",
        data={"csrfmiddlewaretoken": csrf_from(page.text)},
        headers={"Referer": f"{url}/dashboard/"},
        allow_redirects=False,
        timeout=30,
    )
    assert out.status_code == 302
    assert User.objects.get(pk=user.pk).tokens_valid_after is not None
    assert_revoked(url, old)
    assert me(url, tokens(url, user.username)["access"]) == 200


@pytest.mark.django_db(transaction=True)
def test_refresh_of_a_deleted_user_is_401(live_server):
    url = live_server.url
    user = UserFactory()
    old = tokens(url, user.username)
    User.objects.filter(pk=user.pk).delete()
    assert refresh(url, old["refresh"]).status_code == 401
    assert me(url, old["access"]) == 401


def test_revocation_signal_names_the_user_and_reason(db, django_capture_on_commit_callbacks):
    from admin_ctx.signals import tokens_revoked

    received = []

    def listener(sender, user, reason, **kwargs):
        received.append((user.pk, reason))

    tokens_revoked.connect(listener)
    try:
        user = UserFactory()
        with django_capture_on_commit_callbacks(execute=True):
            user.set_password(NEW_PASSWORD)
            user.save()
        with django_capture_on_commit_callbacks(execute=True):
            user.is_active = False
            user.save(update_fields=["is_active"])
    finally:
        tokens_revoked.disconnect(listener)
    assert received == [(user.pk, "password"), (user.pk, "deactivated")]
