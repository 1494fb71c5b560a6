"""The LPR page and the watchlist alert banner in a real Chromium against a real Daphne."""

from __future__ import annotations

import io
from types import SimpleNamespace

import pytest
from django.utils import timezone
from PIL import Image

from admin_ctx.models import AuditEntry, Role
from lpr import services
from lpr.models import WatchlistEntry
from tests.factories import CameraFactory, PrefeituraFactory, UserFactory
from tests.live_web import running_web
from tests.test_browser import Browsing, browser  # noqa: F401 - the module's fixture

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, databases=["default", "channels_postgres"]),
    pytest.mark.timeout(240),
]


def jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (160, 52), (240, 240, 240)).save(out, "JPEG")
    return out.getvalue()


@pytest.fixture(autouse=True)
def _fast_password_hasher():
    """Users log in through Daphne, whose hashers are the real ones: keep the default."""


def test_lpr_page_search_watchlist_and_alert_banner(browser, settings, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    settings.LPR_CROP_DIR = tmp_path / "lpr"
    town = PrefeituraFactory()
    gestor = UserFactory(prefeitura=town, role=Role.GESTOR)
    camera = CameraFactory(prefeitura=town, name="Av. Paraná", lpr_enabled=True)
    services.record_read(
        camera, plate="ABC1D23", confidence=0.93, bbox=(1, 2, 3, 4), crop=jpeg(), at=timezone.now()
    )
    env = {"GTV_LPR_CROP_DIR": str(tmp_path / "lpr"), "LOG_LEVEL": "WARNING"}
    with running_web(**env) as (url, web):
        session = Browsing(browser, SimpleNamespace(url=url))
        try:
            page = session.login(gestor)
            page.get_by_role("link", name="Placas").click()
            expect(page.get_by_role("heading", name="Leitura de placas")).to_be_visible()
            results = page.locator("#lpr-results")
            expect(results.locator("tr")).to_have_count(1)
            expect(results).to_contain_text("ABC1D23")
            expect(results).to_contain_text("Av. Paraná")
            crop = results.locator("img.lpr-crop")
            expect(crop).to_have_attribute("alt", "Recorte da placa ABC1D23")
            page.wait_for_function(
                "img => img.complete && img.naturalWidth === 160", arg=crop.element_handle()
            )

            # Search: nothing for another plate; the similar search finds it.
            page.get_by_label("Placa", exact=True).first.fill("ABC1D28")
            page.get_by_role("button", name="Buscar").click()
            expect(page.locator("#lpr-search-status")).to_have_text(
                "Nenhuma leitura corresponde à busca."
            )
            page.get_by_label("Placas semelhantes (um caractere de diferença)").check()
            page.get_by_role("button", name="Buscar").click()
            expect(results).to_contain_text("ABC1D23")

            # The watchlist: add a plate through the form.
            page.locator("#lpr-watch-plate").fill("xyz-1234")
            page.locator("#lpr-watch-reason").fill("furtado")
            page.get_by_role("button", name="Adicionar").click()
            expect(page.locator("#lpr-watchlist")).to_contain_text("XYZ1234")
            entry = WatchlistEntry.objects.get()
            assert (entry.plate, entry.reason, entry.prefeitura_id) == (
                "XYZ1234",
                "furtado",
                town.pk,
            )
            assert AuditEntry.objects.filter(action="lpr.watchlist.create", actor=gestor).exists()

            # On any page, a watched plate's read raises the banner.
            page.get_by_role("link", name="Câmeras").first.click()
            expect(page.locator("#live-indicator")).to_have_attribute("data-state", "open")
            services.record_read(
                camera, plate="XYZ1234", confidence=0.9, bbox=(1, 2, 3, 4), crop=jpeg()
            )
            banner = page.get_by_role("alert").filter(has_text="XYZ1234")
            expect(banner).to_contain_text("Placa monitorada XYZ1234 em Av. Paraná")
            expect(banner).to_contain_text("Motivo: furtado")
            banner.get_by_role("button", name="Fechar").click()
            expect(banner).to_have_count(0)
            session.shot("lpr-page")
        finally:
            errors = list(session.errors)
            session.context.close()
        assert not errors, f"uncaught JavaScript errors: {errors}"
    assert "Traceback" not in web.output(), web.output()[-3000:]
