"""Swagger UI at /api/docs/ is served by the app itself (drf-spectacular-sidecar): no external
host, no inline script or style, so it works in a closed network and under a strict CSP.

Checked with ``requests`` against the real server, then rendered in Chromium with every
request outside the server refused and a strict Content-Security-Policy on each response.
"""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest
import requests

from tests.live_web import running_web
from tests.test_browser import browser  # noqa: F401 - the suite's Chromium fixture

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "channels_postgres"])

STRICT_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'self'"
)


class Assets(HTMLParser):
    """Every script/stylesheet/icon reference of a page, and any inline script or style."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline: list[str] = []
        self._open: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script":
            if attrs.get("src"):
                self.urls.append(attrs["src"])
            else:
                self._open = "script"
        elif tag == "link" and attrs.get("href"):
            self.urls.append(attrs["href"])
        elif tag == "style":
            self._open = "style"
        if "style" in attrs or any(name.startswith("on") for name in attrs):
            self.inline.append(f"<{tag} {attrs}>")

    def handle_endtag(self, tag):
        self._open = None

    def handle_data(self, data):
        if self._open and data.strip():
            self.inline.append(f"<{self._open}>{data.strip()[:80]}")


@pytest.fixture(scope="module")
def web(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock(), running_web() as running:
        yield running


@pytest.mark.timeout(60)
def test_docs_reference_only_the_app(web):
    url, _process = web
    page = requests.get(f"{url}/api/docs/", timeout=10)
    assert page.status_code == 200
    parser = Assets()
    parser.feed(page.text)
    assert parser.inline == []
    assert len(parser.urls) >= 4, parser.urls  # css, bundle, preset, init script
    for ref in parser.urls:
        absolute = urljoin(page.url, ref)
        assert urlsplit(absolute).netloc == urlsplit(url).netloc, ref
        asset = requests.get(absolute, timeout=10)
        assert asset.status_code == 200, (ref, asset.status_code)
        assert len(asset.content) > 0
        if ref.endswith(".js") or "script=" in ref:
            assert "javascript" in asset.headers["Content-Type"], (ref, asset.headers)
    for ref in parser.urls:  # nothing in the assets points at a CDN
        assert "unpkg" not in ref and "jsdelivr" not in ref and "cdn" not in ref
    schema = requests.get(f"{url}/api/schema/", headers={"Accept": "application/json"}, timeout=10)
    assert schema.status_code == 200 and schema.json()["info"]["title"] == "GT-Vision VMS API"


@pytest.mark.browser
@pytest.mark.timeout(120)
def test_docs_render_offline_under_a_strict_csp(web, browser):  # noqa: F811
    url, _process = web
    origin = urlsplit(url).netloc
    outside: list[str] = []
    console: list[str] = []
    context = browser.new_context()
    page = context.new_page()
    page.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}"))
    page.on("pageerror", lambda exc: console.append(f"pageerror: {exc}"))

    def route(route):
        if urlsplit(route.request.url).netloc != origin:
            outside.append(route.request.url)
            route.abort()
            return
        response = route.fetch()
        headers = {**response.headers, "content-security-policy": STRICT_CSP}
        route.fulfill(response=response, headers=headers)

    try:
        page.route("**/*", route)
        page.goto(f"{url}/api/docs/")
        page.wait_for_selector(".swagger-ui .info .title", timeout=30_000)
        assert "GT-Vision VMS API" in page.inner_text(".swagger-ui .info .title")
        page.wait_for_selector(".opblock-tag", timeout=30_000)
        assert page.locator(".opblock").count() >= 20
    finally:
        context.close()
    assert outside == []
    problems = [m for m in console if "error" in m.split(":")[0] or "Content Security" in m]
    assert problems == [], problems
