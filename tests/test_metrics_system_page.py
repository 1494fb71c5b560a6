"""The dashboard's "Sistema" page: for admins and gestores only, the prefeitura's cameras offline
or in error with their last errors, recording lag, disk, job queue and processes; in a real
Chromium against a real Daphne it refreshes by itself."""

from __future__ import annotations

import os
import re
from datetime import timedelta

import pytest
from django.utils import timezone

from admin_ctx.models import Role
from recordings.models import Recording
from streaming import services
from streaming.models import RecorderStatus, Stream
from tests.factories import PASSWORD, CameraFactory, PrefeituraFactory, UserFactory
from tests.live_web import running_web
from tests.test_browser import ASYNC_UNSAFE, CHROMIUM, CHROMIUM_ARGS, CHROMIUM_HINT

PAGE = "/dashboard/system/"
API = "/dashboard/api/system/"


@pytest.fixture(autouse=True)
def _fast_password_hasher():
    """The browser logs in through Daphne, whose hashers are the real ones: keep them."""


@pytest.fixture
def city(db):
    prefeitura = PrefeituraFactory()
    gestor = UserFactory(prefeitura=prefeitura, role=Role.GESTOR)
    operador = UserFactory(prefeitura=prefeitura, role=Role.OPERADOR)
    broken = CameraFactory(prefeitura=prefeitura, name="Praça Central")
    lagging = CameraFactory(prefeitura=prefeitura, name="Rodoviária")
    idle = CameraFactory(prefeitura=prefeitura, name="Parada")
    RecorderStatus.objects.create(
        camera=broken, status="ERROR", last_error="Câmera inacessível (recusou a conexão)"
    )
    Recording.objects.create(camera=lagging, started_at=timezone.now() - timedelta(minutes=9))
    RecorderStatus.objects.create(camera=lagging, status="RUNNING")
    other = CameraFactory(name="Câmera de outra cidade")
    RecorderStatus.objects.create(camera=other, status="ERROR", last_error="outra")
    services.heartbeat("media-supervisor@node1", kind="media-supervisor", engine="embedded")
    return {
        "gestor": gestor,
        "operador": operador,
        "broken": broken,
        "lagging": lagging,
        "idle": idle,
        "other": other,
    }


def test_only_admins_and_gestores(client, city):
    assert client.get(PAGE).status_code == 302  # to the login page
    assert client.get(API).status_code == 401
    client.force_login(city["operador"])
    assert client.get(PAGE).status_code == 403
    assert client.get(API).status_code == 403
    assert "/dashboard/system/" not in client.get("/dashboard/").content.decode()
    client.force_login(city["gestor"])
    page = client.get(PAGE)
    assert page.status_code == 200
    html = page.content.decode()
    assert "Sistema" in html and "Câmeras offline ou com falha" in html
    assert 'href="/dashboard/system/" aria-current="page"' in html
    # CSP: scripts only from files; the data blocks are JSON, not code.
    for tag in re.findall(r"<script[^>]*>", html):
        assert "src=" in tag or 'type="application/json"' in tag, tag


def test_status_lists_the_prefeituras_problems(client, city):
    client.force_login(city["gestor"])
    body = client.get(API).json()
    rows = {row["id"]: row for row in body["cameras"]}
    assert set(rows) == {city["broken"].pk, city["lagging"].pk}  # not idle, not another city's
    broken = rows[city["broken"].pk]
    assert broken["pull"] == "ERROR" and "recusou a conexão" in broken["last_error"]
    lagging = rows[city["lagging"].pk]
    assert lagging["lagging"] is True and lagging["recording_lag_s"] >= 9 * 60
    assert body["cameras"][0]["id"] == city["broken"].pk  # errors first
    assert body["disk"]["free_bytes"] > 0 and "floor_bytes" in body["disk"]
    assert body["queue"] == []
    (process,) = body["processes"]
    assert process["name"] == "media-supervisor@node1" and process["ok"] is True


@pytest.mark.browser
@pytest.mark.timeout(120)
@pytest.mark.django_db(transaction=True)
def test_page_shows_and_refreshes_live_in_a_browser(city):
    from playwright.sync_api import expect, sync_playwright

    assert os.path.isfile(CHROMIUM), CHROMIUM_HINT
    saved = os.environ.get(ASYNC_UNSAFE)
    os.environ[ASYNC_UNSAFE] = "true"
    errors: list[str] = []
    try:
        with running_web() as (url, _web), sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            context = chromium.new_context(locale="pt-BR", timezone_id="America/Sao_Paulo")
            page = context.new_page()
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on(
                "response",
                lambda r: r.status >= 400 and errors.append(f"{r.status} {r.url}"),
            )
            # Straight to the page: the grid would open live streams of the cameras.
            page.goto(f"{url}/?next={PAGE}")
            page.get_by_label("Usuário").fill(city["gestor"].username)
            page.get_by_label("Senha").fill(PASSWORD)
            page.get_by_role("button", name="Entrar").click()
            page.wait_for_url(f"**{PAGE}")
            expect(page.get_by_role("link", name="Sistema")).to_have_attribute(
                "aria-current", "page"
            )

            broken = page.locator(f'tr[data-camera-id="{city["broken"].pk}"]')
            expect(broken).to_contain_text("Praça Central")
            expect(broken).to_contain_text("recusou a conexão")
            lagging = page.locator(f'tr[data-camera-id="{city["lagging"].pk}"]')
            expect(lagging).to_have_attribute("data-lagging", "true")
            expect(lagging.locator("td.lag")).to_contain_text("min")
            expect(page.locator("#system-cameras")).not_to_contain_text("outra cidade")
            expect(page.locator("#system-disk-state")).to_be_visible()
            expect(page.locator('tr[data-kind="media-supervisor"]')).to_contain_text("node1")
            expect(page.locator("#system-updated")).to_contain_text("Atualizado às")

            # The camera recovers: the page follows without a reload.
            RecorderStatus.objects.filter(camera=city["broken"]).update(
                status="RUNNING", last_error=""
            )
            stream = Stream.objects.create(
                camera=city["idle"], status="ERROR", last_error="sem sinal"
            )
            expect(broken).to_have_count(0, timeout=20_000)
            expect(page.locator(f'tr[data-camera-id="{stream.camera_id}"]')).to_contain_text(
                "sem sinal", timeout=20_000
            )
            context.close()
            chromium.close()
    finally:
        if saved is None:
            os.environ.pop(ASYNC_UNSAFE, None)
        else:
            os.environ[ASYNC_UNSAFE] = saved
    assert not errors, errors
