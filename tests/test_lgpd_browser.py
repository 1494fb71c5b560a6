"""Justified access in the dashboard (real Chromium, real stack): playback and export ask for
a reason once per session and camera where the prefeitura requires one; the reason reaches
the audit log and the clip."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from admin_ctx.models import AuditEntry
from recordings.models import Clip, EvidenceLock
from tests.supervisor import wait_for
from tests.test_browser import (  # noqa: F401 - the fixtures of the browser suite
    browser,
    browsing,
    camera_server,
    operador_with_camera,
    stack,
    to_input,
    wait_playing,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.camera,
    pytest.mark.django_db(transaction=True, databases=["default", "channels_postgres"]),
    pytest.mark.timeout(300),
]


@pytest.fixture(autouse=True)
def _fast_password_hasher():
    """Users log in through Daphne, whose hashers are the real ones: keep the default."""


def test_playback_and_export_ask_the_reason_once(stack, browsing):  # noqa: F811
    from playwright.sync_api import expect

    user, camera = operador_with_camera(stack.camera.url("cam1"), name="Rodoviária", code="rodo")
    camera.prefeitura.reason_required_for = "operadores"
    camera.prefeitura.save()
    now = timezone.now()
    EvidenceLock.objects.create(
        camera=camera,
        start=now - timedelta(minutes=5),
        end=now + timedelta(minutes=5),
        reason="Inquérito 5/2026",
    )
    session = browsing()
    session.login(user)
    page = session.goto(f"/dashboard/cameras/{camera.pk}/")
    spans = page.locator("#timeline .tl-span")
    expect(spans.first).to_be_attached(timeout=60_000)

    def recorded():
        last = spans.last
        start = datetime.fromisoformat(last.get_attribute("data-start"))
        end = datetime.fromisoformat(last.get_attribute("data-end"))
        return (start, end) if (end - start).total_seconds() >= 8 else None

    start, end = wait_for(recorded, timeout=60)
    page.locator("#timeline-zoom").select_option("300")  # 5 min
    lock = page.locator("#timeline .tl-lock").first
    expect(lock).to_be_attached()
    assert lock.get_attribute("title") == "Bloqueio de evidência: Inquérito 5/2026"
    dialog = page.get_by_role("dialog", name="Justificativa de acesso")

    def click_recording() -> None:
        box = spans.last.bounding_box()
        page.mouse.click(box["x"] + box["width"] * 0.3, box["y"] + box["height"] / 2)

    # cancelled: nothing is played, nothing audited
    click_recording()
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Cancelar").click()
    expect(dialog).to_be_hidden()
    assert not AuditEntry.objects.filter(action="recording.playback").exists()

    # an empty reason is refused in the form
    click_recording()
    dialog.get_by_role("button", name="Continuar").click()
    expect(dialog.get_by_role("alert")).to_contain_text("justificativa")
    dialog.get_by_label("Motivo", exact=True).fill("Ocorrência de trânsito")
    dialog.get_by_label("Número de protocolo ou processo (opcional)").fill("BO 42/2026")
    session.shot("lgpd-reason-dialog")
    dialog.get_by_role("button", name="Continuar").click()
    expect(dialog).to_be_hidden()
    expect(page.locator("#player-mode")).to_have_text("Gravado")
    wait_playing(page, "#player-video")
    entry = wait_for(
        lambda: AuditEntry.objects.filter(action="recording.playback").first(), timeout=10
    )
    assert entry.details["reason"] == "Ocorrência de trânsito"
    assert entry.details["protocol"] == "BO 42/2026"

    # the export reuses the session's reason: no second question
    page.get_by_label("Início").fill(to_input(start))
    page.get_by_label("Fim").fill(to_input(end))
    page.get_by_role("button", name="Exportar MP4").click()
    expect(page.locator("#exports-list li").first).to_be_visible()
    expect(dialog).to_be_hidden()
    clip = wait_for(lambda: Clip.objects.filter(camera=camera).first(), timeout=10)
    assert (clip.reason, clip.protocol) == ("Ocorrência de trânsito", "BO 42/2026")
