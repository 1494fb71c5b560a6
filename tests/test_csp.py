"""Security headers: the Content-Security-Policy in a real Chromium, HSTS and Secure cookies
behind an HTTPS proxy, and the hosts and origins the app answers to.

The browser test drives the whole running system of tests/test_browser.py (Daphne, the media
supervisor, the worker, the RTSP test camera) and records every CSP violation the pages
cause: ``securitypolicyviolation`` events and Chromium's "Refused to ..." console messages.
"""

from __future__ import annotations

import re

import pytest
import requests

from admin_ctx.models import Role
from tests.factories import PASSWORD, AdminFactory, CameraFactory, UserFactory
from tests.live_web import running_web
from tests.test_browser import (  # noqa: F401 - fixtures
    Browsing,
    browser,
    browsing,
    camera_server,
    operador_with_camera,
    stack,
    wait_playing,
)

pytestmark = [
    pytest.mark.django_db(transaction=True, databases=["default", "channels_postgres"]),
    pytest.mark.timeout(300),
]

CSP_LISTENER = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`);
});
"""


@pytest.fixture(autouse=True)
def _fast_password_hasher():
    """Users sign in through Daphne, whose hashers are the real ones: keep the default."""


class CspWatch:
    """Every violation of one browsing session, from events and from the console."""

    def __init__(self, session: Browsing) -> None:
        self.session = session
        self.console: list[str] = []
        self.events: list[str] = []
        session.context.add_init_script(CSP_LISTENER)
        session.page.on("console", self._on_console)

    def _on_console(self, message) -> None:
        text = message.text
        if "Content Security Policy" in text or text.startswith("Refused to"):
            self.console.append(f"{self.session.page.url}: {text}")

    def visit(self, path: str):
        page = self.session.page
        response = page.goto(f"{self.session.stack.url}{path}")
        assert response.status == 200, (path, response.status)
        policy = response.headers.get("content-security-policy", "")
        for directive in ("default-src 'self'", "script-src 'self'", "frame-ancestors 'none'"):
            assert directive in policy, (path, policy)
        return page

    def collect(self) -> None:
        self.events += self.session.page.evaluate("() => window.__csp.splice(0)")

    @property
    def violations(self) -> list[str]:
        self.collect()
        return self.events + self.console


def test_dashboard_live_video_and_admin_pass_the_csp(stack, browsing):  # noqa: F811
    from playwright.sync_api import expect

    gestor, camera = operador_with_camera(stack.camera.url("cam1"), name="Praça Central")
    gestor.role = Role.GESTOR
    gestor.save()
    CameraFactory(prefeitura=camera.prefeitura, source_url=stack.camera.url("cam2"))
    session = browsing()
    watch = CspWatch(session)

    watch.visit("/")
    session.login(gestor)
    page = watch.visit("/dashboard/")
    wait_playing(page, "#camera-grid .tile video", count=2, timeout=60)
    expect(page.locator("#live-indicator")).to_have_attribute("data-state", "open")
    watch.collect()

    page = watch.visit("/dashboard/mosaic/")
    wait_playing(page, "#mosaic .slot video[src]", count=2, timeout=60)
    watch.collect()

    page = watch.visit(f"/dashboard/cameras/{camera.pk}/")
    wait_playing(page, "#player-video")
    expect(page.locator("#live-indicator")).to_have_attribute("data-state", "open")
    watch.collect()

    for path in [
        "/admin/",
        "/admin/admin_ctx/user/",
        f"/admin/admin_ctx/user/{gestor.pk}/change/",
        "/admin/cidades/camera/",
        f"/admin/cidades/camera/{camera.pk}/change/",
        "/admin/cidades/camera/add/",
        "/admin/admin_ctx/auditentry/",
    ]:
        page = watch.visit(path)
        page.wait_for_load_state("networkidle")
        watch.collect()
    session.shot("csp-admin")
    assert watch.violations == []

    # The watch does see a violation: an inline script is refused and reported.
    page.evaluate(
        "() => { const s = document.createElement('script');"
        " s.textContent = 'window.__ran = true'; document.body.appendChild(s); }"
    )
    page.wait_for_function("() => window.__csp.length > 0")
    assert page.evaluate("() => window.__ran") is None
    assert any("script-src" in v for v in watch.violations)


def test_api_docs_pass_the_csp(stack, browsing):  # noqa: F811
    admin = AdminFactory()
    session = browsing()
    watch = CspWatch(session)
    page = session.goto("/admin/login/?next=/api/docs/")
    page.get_by_label("Usuário").fill(admin.username)
    page.get_by_label("Senha").fill(PASSWORD)
    page.get_by_role("button", name="Acessar").click()
    page = watch.visit("/api/docs/")
    page.locator(".swagger-ui .info").wait_for()
    page.wait_for_load_state("networkidle")
    assert watch.violations == []


# -- HTTPS, hosts and origins (no browser) ------------------------------------------------------

HTTPS_HOST = "vms.example.gov.br"


def _https(url: str, path: str, **headers: str) -> requests.Response:
    return requests.get(
        f"{url}{path}",
        headers={"Host": HTTPS_HOST, "X-Forwarded-Proto": "https", **headers},
        allow_redirects=False,
        timeout=30,
    )


def test_behind_a_trusted_https_proxy_hsts_and_secure_cookies():
    user = UserFactory()
    with running_web(PUBLIC_URL=f"https://{HTTPS_HOST}", TRUSTED_PROXIES="127.0.0.1") as (url, _):
        page = _https(url, "/")
        assert page.status_code == 200
        assert page.headers["Strict-Transport-Security"].startswith("max-age=31536000")
        csrf_cookie = page.headers["Set-Cookie"]
        assert "csrftoken=" in csrf_cookie and "Secure" in csrf_cookie
        token = re.search(r"csrftoken=([^;]+)", csrf_cookie).group(1)
        form_token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        login = requests.post(
            f"{url}/",
            data={"csrfmiddlewaretoken": form_token, "username": user.username,
                  "password": PASSWORD},
            headers={"Host": HTTPS_HOST, "X-Forwarded-Proto": "https",
                     "Origin": f"https://{HTTPS_HOST}", "Referer": f"https://{HTTPS_HOST}/",
                     "Cookie": f"csrftoken={token}"},
            allow_redirects=False,
            timeout=30,
        )  # fmt: skip
        assert login.status_code == 302, login.text[:500]
        session_cookie = login.headers["Set-Cookie"]
        assert "sessionid=" in session_cookie
        assert "Secure" in session_cookie and "HttpOnly" in session_cookie
        # the page's WebSocket may go to wss on its own host
        assert f"wss://{HTTPS_HOST}" in page.headers["Content-Security-Policy"]
        # plain HTTP from the proxy: no HSTS (browsers ignore it there anyway)
        plain = _https(url, "/", **{"X-Forwarded-Proto": "http"})
        assert "Strict-Transport-Security" not in plain.headers


def test_forwarded_proto_from_an_untrusted_peer_is_ignored():
    with running_web(PUBLIC_URL=f"https://{HTTPS_HOST}", TRUSTED_PROXIES="10.9.9.9") as (url, _):
        page = _https(url, "/")
        assert page.status_code == 200
        assert "Strict-Transport-Security" not in page.headers


def test_only_the_configured_hosts_and_origins_are_served():
    user = UserFactory()
    with running_web(PUBLIC_URL="http://vms.example.gov.br:8080") as (url, _):
        for host in ("vms.example.gov.br", "localhost", "127.0.0.1"):
            response = requests.get(f"{url}/", headers={"Host": host}, timeout=30)
            assert response.status_code == 200, host
        for host in ("attacker.example", "vms.example.gov.br.attacker.example"):
            response = requests.get(f"{url}/", headers={"Host": host}, timeout=30)
            assert response.status_code == 400, host

        session = requests.Session()
        page = session.get(f"{url}/", timeout=30)
        form_token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        data = {"csrfmiddlewaretoken": form_token, "username": user.username, "password": PASSWORD}
        foreign = session.post(
            f"{url}/", data=data, headers={"Origin": "http://attacker.example"},
            allow_redirects=False, timeout=30,
        )  # fmt: skip
        assert foreign.status_code == 403
        own = session.post(
            f"{url}/", data=data, headers={"Origin": url}, allow_redirects=False, timeout=30
        )
        assert own.status_code == 302
