"""Password guessing is throttled on every login path, by username and by real client address.

Everything goes through real Daphne processes (``manage.py serve``) with ``requests``, the way
an attacker on the network would: the dashboard's form, the Django admin's form and the API
token endpoint share one guard (gtvision.login_guard) whose counters live in PostgreSQL, so
two web processes see the same failures.
"""

from __future__ import annotations

import itertools
import re

import pytest
import requests

from admin_ctx.models import AuditEntry, Role
from tests.factories import PASSWORD, UserFactory
from tests.live_web import running_web

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(240),
]

WRONG = "not-the-password-42"
TOO_MANY = "Muitas tentativas de login"
_fake_ips = (f"198.18.{n // 250}.{n % 250 + 1}" for n in itertools.count())


@pytest.fixture(autouse=True)
def _fast_password_hasher():
    """Daphne checks passwords with the real hashers: users keep the default one."""


@pytest.fixture
def web():
    with running_web() as (url, _process):
        yield url


def forged() -> dict[str, str]:
    """A new X-Forwarded-For (and X-Real-IP) on every request, as a guesser would send."""
    ip = next(_fake_ips)
    return {"X-Forwarded-For": ip, "X-Real-IP": ip}


def form_login(
    url: str, path: str, username: str, password: str, headers=None
) -> requests.Response:
    """Sign in through an HTML form like a browser: GET it (CSRF cookie), then POST."""
    session = requests.Session()
    page = session.get(f"{url}{path}", timeout=30)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    response = session.post(
        f"{url}{path}",
        data={"csrfmiddlewaretoken": token, "username": username, "password": password},
        headers={"Referer": f"{url}{path}", **(headers or {})},
        allow_redirects=False,
        timeout=30,
    )
    response.session = session
    return response


def dashboard_login(url, username, password, headers=None) -> requests.Response:
    return form_login(url, "/", username, password, headers)


def admin_login(url, username, password, headers=None) -> requests.Response:
    return form_login(url, "/admin/login/?next=/admin/", username, password, headers)


def api_login(url, username, password, headers=None) -> requests.Response:
    return requests.post(
        f"{url}/api/auth/token/",
        json={"username": username, "password": password},
        headers=headers or {},
        timeout=30,
    )


def signed_in(response: requests.Response, url: str, path: str) -> bool:
    page = response.session.get(f"{url}{path}", allow_redirects=False, timeout=30)
    return page.status_code == 200


def test_dashboard_form_refuses_the_right_password_after_15_wrong_ones(web):
    user = UserFactory()
    statuses = []
    for _ in range(15):
        response = dashboard_login(web, user.username, WRONG, forged())
        statuses.append(response.status_code)
        assert not signed_in(response, web, "/dashboard/")
    assert statuses[:5] == [200] * 5 and statuses[5:] == [429] * 10, statuses
    assert "Usuário ou senha inválidos" in dashboard_login(web, "ninguem", WRONG).text

    right = dashboard_login(web, user.username, PASSWORD, forged())
    assert right.status_code == 429
    assert TOO_MANY in right.text and "minutos" in right.text
    assert not signed_in(right, web, "/dashboard/")

    failures = AuditEntry.objects.filter(
        action="auth.login_failed", details__username=user.username
    )
    assert failures.count() == 16
    assert set(failures.values_list("ip", flat=True)) == {"127.0.0.1"}  # not the forged ones
    assert failures.filter(details__reason="throttled").count() == 11
    assert not AuditEntry.objects.filter(details__icontains=WRONG).exists()
    assert not AuditEntry.objects.filter(details__icontains=PASSWORD).exists()
    assert not AuditEntry.objects.filter(action="auth.login", actor_id=user.pk).exists()


def test_admin_form_refuses_the_right_password_after_15_wrong_ones(web):
    gestor = UserFactory(role=Role.GESTOR)
    assert admin_login(web, gestor.username, WRONG).status_code == 200
    for _ in range(14):
        refused = admin_login(web, gestor.username, WRONG, forged())
        assert refused.status_code == 200 and not signed_in(refused, web, "/admin/")
    assert TOO_MANY in refused.text

    right = admin_login(web, gestor.username, PASSWORD, forged())
    assert right.status_code == 200  # the admin form again, with the message
    assert TOO_MANY in right.text
    assert not signed_in(right, web, "/admin/")
    assert (
        AuditEntry.objects.filter(
            action="auth.login_failed", details__username=gestor.username
        ).count()
        == 16
    )


def test_api_token_refuses_the_right_password_after_15_wrong_ones(web):
    user = UserFactory()
    statuses = [api_login(web, user.username, WRONG, forged()).status_code for _ in range(15)]
    assert statuses == [401] * 5 + [429] * 10
    right = api_login(web, user.username, PASSWORD, forged())
    assert right.status_code == 429
    assert TOO_MANY in right.json()["detail"]
    assert 0 < int(right.headers["Retry-After"]) <= 15 * 60
    # Another user from the same address is not locked by this username's failures.
    other = UserFactory()
    assert api_login(web, other.username, PASSWORD).status_code == 200
    # The username's lock is case-insensitive (Alice and alice are one target).
    assert api_login(web, user.username.upper(), PASSWORD).status_code == 429


def test_a_success_clears_the_usernames_failures(web):
    user = UserFactory()
    for _ in range(4):
        assert api_login(web, user.username, WRONG).status_code == 401
    assert api_login(web, user.username, PASSWORD).status_code == 200
    for _ in range(4):
        assert api_login(web, user.username, WRONG).status_code == 401
    assert api_login(web, user.username, PASSWORD).status_code == 200


def test_password_spraying_locks_the_address_on_every_path_and_every_process():
    """Many usernames, one address: forged X-Forwarded-For values do not spread the count,
    and two web processes share it."""
    user = UserFactory()
    gestor = UserFactory(role=Role.GESTOR)
    with (
        running_web(LOGIN_MAX_FAILURES_PER_IP="9") as (one, _),
        running_web(LOGIN_MAX_FAILURES_PER_IP="9") as (two, _),
    ):
        names = (f"spray{n}" for n in itertools.count())
        for url in (one, two, one):  # 9 failures, 3 on each path, in two processes
            assert api_login(url, next(names), WRONG, forged()).status_code == 401
            assert dashboard_login(url, next(names), WRONG, forged()).status_code == 200
            assert admin_login(url, next(names), WRONG, forged()).status_code == 200
        assert api_login(two, next(names), WRONG, forged()).status_code == 429
        for url in (one, two):
            assert api_login(url, user.username, PASSWORD, forged()).status_code == 429
            assert dashboard_login(url, user.username, PASSWORD, forged()).status_code == 429
            refused = admin_login(url, gestor.username, PASSWORD, forged())
            assert TOO_MANY in refused.text and not signed_in(refused, url, "/admin/")
        refresh = requests.post(f"{two}/api/auth/token/refresh/", json={"refresh": "x"}, timeout=30)
        assert refresh.status_code == 429


def test_a_trusted_proxys_forwarded_for_is_honoured():
    """Behind a configured proxy the client is the X-Forwarded-For address: one client's
    failures lock that client only, and audit entries name it."""
    user = UserFactory()
    guesser = {"X-Forwarded-For": "203.0.113.7"}
    with running_web(TRUSTED_PROXIES="127.0.0.1/32,10.0.0.0/8", LOGIN_MAX_FAILURES_PER_IP="6") as (
        url,
        _,
    ):
        for n in range(6):
            assert api_login(url, f"nobody{n}", WRONG, guesser).status_code == 401
        assert api_login(url, user.username, PASSWORD, guesser).status_code == 429
        # a client-written entry left of the real one does not help; a trusted hop is skipped
        for chain in ("192.0.2.1, 203.0.113.7", "203.0.113.7, 10.1.2.3"):
            headers = {"X-Forwarded-For": chain}
            assert api_login(url, user.username, PASSWORD, headers).status_code == 429
        office = {"X-Forwarded-For": "198.51.100.9"}
        assert api_login(url, user.username, PASSWORD, office).status_code == 200
        assert dashboard_login(url, user.username, PASSWORD, office).status_code == 302

    failed_ips = set(
        AuditEntry.objects.filter(action="auth.login_failed").values_list("ip", flat=True)
    )
    assert failed_ips == {"203.0.113.7"}
    logins = AuditEntry.objects.filter(action="auth.login", actor_id=user.pk)
    assert set(logins.values_list("ip", flat=True)) == {"198.51.100.9"}
