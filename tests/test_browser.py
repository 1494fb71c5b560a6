"""The operators' dashboard in a real Chromium, against the real app and the real test camera.

A module-wide stack runs like production, on the test database: Daphne (``manage.py serve``:
HTTP + ``ws/events``), the media supervisor (FFmpeg per camera) and the job worker (clips).
Playwright drives Debian's Chromium (``scripts/install-test-deps``). Every page is checked
for uncaught JavaScript errors, and screenshots go to ``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import requests
from django.db import connection

from admin_ctx.models import Role
from cidades.models import Camera
from testcamera import INSTALL_HINT, TestCamera, free_port
from tests.factories import PASSWORD, AdminFactory, CameraFactory, PrefeituraFactory, UserFactory
from tests.supervisor import SupervisorProcess, wait_for

pytestmark = [
    pytest.mark.browser,
    pytest.mark.camera,
    pytest.mark.django_db(transaction=True, databases=["default", "channels_postgres"]),
]

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_HINT = (
    f"Chromium is needed at {CHROMIUM} for the browser tests: run scripts/install-test-deps"
)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
DESKTOP = {"width": 1366, "height": 768}
PHONE = {"width": 390, "height": 844}
SAO_PAULO = ZoneInfo("America/Sao_Paulo")
ASYNC_UNSAFE = "DJANGO_ALLOW_ASYNC_UNSAFE"


@pytest.fixture(autouse=True)
def _fast_password_hasher():
    """Users log in through Daphne, whose hashers are the real ones: keep the default."""


# -- the running system ---------------------------------------------------------------------


class ManagedProcess:
    """A ``manage.py`` command in its own process, against the test database."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        self.name = name
        self.argv = [sys.executable, str(ROOT / "manage.py"), *argv]
        self.env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        self.env.pop("DJANGO_SETTINGS_MODULE", None)
        self.env.pop(ASYNC_UNSAFE, None)
        self.log = tempfile.TemporaryFile()
        self.process: subprocess.Popen | None = None

    def start(self) -> ManagedProcess:
        self.process = subprocess.Popen(
            self.argv, env=self.env, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT
        )
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")


@dataclass
class Stack:
    url: str
    web: ManagedProcess
    worker: ManagedProcess
    supervisor: SupervisorProcess
    camera: TestCamera

    def logs(self) -> str:
        return "\n".join(
            f"--- {name} ---\n{process.output()[-4000:]}"
            for name, process in [
                ("web", self.web),
                ("worker", self.worker),
                ("supervisor", self.supervisor),
            ]
        )


@pytest.fixture(scope="module")
def camera_server():
    """One RTSP test camera with four mounts for the whole module."""
    assert TestCamera.available(), INSTALL_HINT
    camera = TestCamera(mounts=("cam1", "cam2", "cam3", "cam4"))
    camera.start()
    yield camera
    camera.stop()


@pytest.fixture
def stack(camera_server, tmp_path):
    """Web, media supervisor and worker for one test.

    They stop before the test's database is flushed: a flush (TRUNCATE) while they work
    could deadlock with their transactions.
    """
    env = {
        "GTV_DATABASE_NAME": connection.settings_dict["NAME"],
        "GTV_LIVE_DIR": str(tmp_path / "live"),
        "GTV_RECORDINGS_DIR": str(tmp_path / "recordings"),
        "GTV_CLIPS_DIR": str(tmp_path / "clips"),
        "RECORDING_SEGMENT_SECONDS": "2",
        "STREAM_STALL_TIMEOUT_S": "3",
        "LOG_LEVEL": "WARNING",
    }
    port = free_port()
    env["PUBLIC_URL"] = f"http://127.0.0.1:{port}"  # absolute URLs (/urls) are built from it
    web = ManagedProcess("web", ["serve", "--host", "127.0.0.1", "--port", str(port)], env)
    worker = ManagedProcess("worker", ["procrastinate", "worker"], env)
    supervisor = SupervisorProcess(**env)
    supervisor.env.pop(ASYNC_UNSAFE, None)
    running = Stack(f"http://127.0.0.1:{port}", web, worker, supervisor, camera_server)
    try:
        web.start()
        supervisor.start()
        worker.start()

        def web_ready():
            assert web.alive(), running.logs()
            try:
                return requests.get(f"{running.url}/", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        wait_for(web_ready, timeout=60, step=0.1)
        yield running
    finally:
        for process in (web, worker, supervisor):
            process.stop()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import Error, sync_playwright

    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(CHROMIUM_HINT)
    # Playwright's sync API keeps an event loop running in this thread, which Django's ORM
    # takes for async code; the tests' ORM calls are plain synchronous code between steps.
    saved = os.environ.get(ASYNC_UNSAFE)
    os.environ[ASYNC_UNSAFE] = "true"
    playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    except Error as exc:
        playwright.stop()
        pytest.fail(f"{CHROMIUM_HINT}\n{exc}")
    yield chromium
    chromium.close()
    playwright.stop()
    if saved is None:
        os.environ.pop(ASYNC_UNSAFE, None)
    else:
        os.environ[ASYNC_UNSAFE] = saved


class Browsing:
    """One browser context (a user's session) with checks for uncaught JavaScript errors."""

    def __init__(self, browser, stack: Stack, viewport=DESKTOP) -> None:
        self.stack = stack
        self.context = browser.new_context(
            viewport=viewport,
            locale="pt-BR",
            timezone_id="America/Sao_Paulo",
            accept_downloads=True,
        )
        self.context.set_default_timeout(30_000)
        self.errors: list[str] = []
        self.page = self.new_page()

    def new_page(self):
        page = self.context.new_page()
        page.on("pageerror", lambda error: self.errors.append(f"{page.url}: {error}"))
        return page

    def goto(self, path: str):
        self.page.goto(f"{self.stack.url}{path}")
        return self.page

    def login(self, user):
        page = self.goto("/")
        page.get_by_label("Usuário").fill(user.username)
        page.get_by_label("Senha").fill(PASSWORD)
        page.get_by_role("button", name="Entrar").click()
        page.wait_for_url("**/dashboard/")
        return page

    def shot(self, name: str, full_page: bool = False) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=full_page)
        return path

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def browsing(browser, stack):
    sessions: list[Browsing] = []

    def open_session(viewport=DESKTOP) -> Browsing:
        session = Browsing(browser, stack, viewport)
        sessions.append(session)
        return session

    yield open_session
    errors = [error for session in sessions for error in session.errors]
    for session in sessions:
        session.close()
    assert not errors, f"uncaught JavaScript errors: {errors}"


# -- helpers --------------------------------------------------------------------------------

PLAYING_JS = """
([selector, count]) => {
  const videos = [...document.querySelectorAll(selector)];
  if (videos.length < count) return false;
  return videos.every((v) => {
    if (v.readyState < 2 || v.paused) return false;
    if (v._gtvStart === undefined) { v._gtvStart = v.currentTime; return false; }
    return v.currentTime > v._gtvStart + 1.0;
  });
}
"""


def wait_playing(page, selector: str, count: int = 1, timeout: float = 45) -> None:
    """Every video matched is playing: its currentTime advances by more than a second."""
    page.evaluate(
        "(s) => document.querySelectorAll(s).forEach((v) => { delete v._gtvStart; })", selector
    )
    page.wait_for_function(PLAYING_JS, arg=[selector, count], timeout=timeout * 1000, polling=250)


def operador_with_camera(source_url: str, **camera_fields):
    prefeitura = PrefeituraFactory(name="Prefeitura de Teste")
    user = UserFactory(prefeitura=prefeitura, role=Role.OPERADOR)
    camera = CameraFactory(prefeitura=prefeitura, source_url=source_url, **camera_fields)
    return user, camera


def no_overflow(page) -> None:
    width, inner = page.evaluate("() => [document.documentElement.scrollWidth, innerWidth]")
    assert width <= inner, f"horizontal overflow: {width} > {inner}"


def to_input(value: datetime) -> str:
    return value.astimezone(SAO_PAULO).strftime("%Y-%m-%dT%H:%M:%S")


# -- tests ----------------------------------------------------------------------------------


def test_login_grid_live_video_and_status_follows_the_camera(stack, browsing):
    """Log in; the grid shows the camera live; its badge flips on an outage and back."""
    from playwright.sync_api import expect

    street = TestCamera(mounts=("street",))
    street.start()
    try:
        user, camera = operador_with_camera(
            street.url("street"),
            name="Praça da Matriz",
            code="praca-matriz",
            address="Praça da Matriz, Centro",
        )
        neighbours = [
            CameraFactory(
                prefeitura=camera.prefeitura, name=name, code=code, address=address,
                source_url=stack.camera.url(mount),
            )
            for name, code, address, mount in [
                ("Av. Getúlio Vargas x Rua XV", "getulio-xv", "Av. Getúlio Vargas, 1200", "cam1"),
                ("Terminal Central de Ônibus", "terminal-central", "Rua do Terminal, s/n", "cam2"),
                ("Escola Municipal Monteiro Lobato", "escola-lobato", "Rua das Flores, 85", "cam3"),
            ]
        ]  # fmt: skip
        CameraFactory(name="Câmera de outra cidade")  # another prefeitura: never shown
        session = browsing()
        page = session.goto("/")
        expect(page.get_by_role("heading", name="Central de videomonitoramento")).to_be_visible()
        session.shot("01-login")
        camera_reads = []
        page.on(
            "request",
            lambda request: (
                camera_reads.append(request.url) if "/api/cameras/" in request.url else None
            ),
        )
        received = []
        page.on(
            "websocket",
            lambda ws: ws.on("framereceived", lambda frame: received.append(frame)),
        )
        session.login(user)
        tile = page.locator(f'.tile[data-camera-id="{camera.pk}"]')
        expect(tile.locator(".tile-link")).to_have_text("Praça da Matriz")
        expect(tile.locator(".tile-code")).to_have_text("praca-matriz")
        expect(tile.locator(".tile-address")).to_have_text("Praça da Matriz, Centro")
        expect(page.get_by_text("Câmera de outra cidade")).to_have_count(0)
        expect(page.locator("#grid-count")).to_have_text("Mostrando 4 de 4 câmeras")
        expect(tile.locator(".badge")).to_have_text("Online", timeout=45_000)
        wait_playing(page, "#camera-grid .tile video", count=4, timeout=60)
        for neighbour in neighbours:
            expect(page.locator(f'.tile[data-camera-id="{neighbour.pk}"] .badge')).to_have_text(
                "Online"
            )
        expect(page.locator("#live-indicator")).to_have_attribute("data-state", "open")
        session.shot("02-grid")

        street.stop()  # the camera goes down
        expect(tile.locator(".badge")).to_have_text("Falha", timeout=30_000)
        expect(tile).to_have_attribute("data-status", "error")
        expect(tile.locator(".tile-overlay")).to_contain_text("Falha na transmissão")
        expect(page.locator("#events-list")).to_contain_text("Falha na transmissão")
        session.shot("03-grid-camera-down")

        street.start()  # and comes back
        expect(tile.locator(".badge")).to_have_text("Online", timeout=60_000)
        wait_playing(page, f'.tile[data-camera-id="{camera.pk}"] video', timeout=60)
        # The status came through ws/events: the camera list was read once, never polled.
        assert len([url for url in camera_reads if "/api/cameras/?" in url]) == 1, camera_reads
        assert any(
            '"camera.updated"' in str(frame) and '"error"' in str(frame) for frame in received
        )

        page.get_by_role("button", name="Sair").click()  # a POST form (CSRF), not a link
        page.wait_for_url(f"{stack.url}/")
        expect(page.get_by_role("button", name="Entrar")).to_be_visible()
        session.goto("/dashboard/")
        assert "/?next=/dashboard/" in page.url
    finally:
        street.stop()


def test_grid_filters_search_and_live_badges(stack, browsing):
    """Status filter and search; a change made meanwhile updates the badge without reload."""
    from playwright.sync_api import expect

    prefeitura = PrefeituraFactory(name="Prefeitura de Filtros")
    gestor = UserFactory(prefeitura=prefeitura, role=Role.GESTOR)
    url = "rtsp://127.0.0.1:9/none"  # never pulled: no stream started, not recorded
    cams = {
        "online": CameraFactory(prefeitura=prefeitura, name="Av. Paulista", code="paulista",
                                address="Av. Paulista, 1000", source_url=url),
        "offline": CameraFactory(prefeitura=prefeitura, name="Rua Augusta", code="augusta",
                                 address="Rua Augusta, 500", source_url=url),
        "error": CameraFactory(prefeitura=prefeitura, name="Praça da Sé", code="se",
                               address="Praça da Sé, Centro", source_url=url),
        "disabled": CameraFactory(prefeitura=prefeitura, name="Viaduto do Chá", code="cha",
                                  address="Viaduto do Chá", source_url=url, enabled=False),
    }  # fmt: skip
    for status, camera in cams.items():
        Camera.objects.filter(pk=camera.pk).update(status=status, recording_enabled=False)
    session = browsing()
    page = session.login(gestor)
    page.goto(f"{stack.url}/dashboard/?view=thumbs")  # snapshots: no stream is started
    grid = page.locator("#camera-grid")
    expect(grid.locator(".tile:visible")).to_have_count(4)
    expect(page.locator('[data-count="all"]')).to_have_text("4")
    expect(page.locator('[data-count="error"]')).to_have_text("1")
    for status, camera in cams.items():
        badge = page.locator(f'.tile[data-camera-id="{camera.pk}"] .badge')
        expect(badge).to_have_attribute("data-status", status)
    expect(page.locator(f'.tile[data-camera-id="{cams["disabled"].pk}"] .badge')).to_have_text(
        "Desativada"
    )

    page.locator(".status-filter label", has_text="Com falha").click()
    expect(grid.locator(".tile:visible")).to_have_count(1)
    expect(grid.locator(".tile:visible .tile-link")).to_have_text("Praça da Sé")
    assert "status=error" in page.url
    page.locator(".status-filter label", has_text="Todas").click()

    search = page.get_by_label("Buscar")
    search.fill("paulista")
    expect(grid.locator(".tile:visible .tile-link")).to_have_text(["Av. Paulista"])
    search.fill("PRACA se")  # accents and case do not matter
    expect(grid.locator(".tile:visible .tile-link")).to_have_text(["Praça da Sé"])
    search.fill("centro")  # addresses are searched too
    expect(grid.locator(".tile:visible .tile-link")).to_have_text(["Praça da Sé"])
    search.fill("nada disso")
    expect(page.locator("#grid-empty")).to_have_text("Nenhuma câmera corresponde aos filtros.")
    search.press("Escape")  # the keyboard clears the search
    expect(grid.locator(".tile:visible")).to_have_count(4)
    expect(page.locator(".tile-overlay:visible").first).to_have_text("Ainda sem imagem")

    # A gestor disables a camera (in another tab): the grid follows through ws/events.
    other_tab = session.new_page()
    other_tab.goto(f"{stack.url}/dashboard/?view=thumbs")
    status = other_tab.evaluate(
        """async (id) => {
            const token = document.cookie.match(/csrftoken=([^;]+)/)[1];
            const response = await fetch(`/api/cameras/${id}/`, {method: "PATCH",
              headers: {"Content-Type": "application/json", "X-CSRFToken": token},
              body: JSON.stringify({enabled: false})});
            return response.status;
        }""",
        cams["offline"].pk,
    )
    assert status == 200
    other_tab.close()
    page.bring_to_front()
    badge = page.locator(f'.tile[data-camera-id="{cams["offline"].pk}"] .badge')
    expect(badge).to_have_text("Desativada", timeout=15_000)
    expect(page.locator('[data-count="disabled"]')).to_have_text("2")
    session.shot("04-grid-filters")

    # keyboard only: the skip link jumps to the content, whose first stop is the search box;
    # the status filter is a radio group (arrow keys)
    page.reload()
    page.keyboard.press("Tab")
    expect(page.locator(".skip-link")).to_be_focused()
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    expect(search).to_be_focused()
    page.keyboard.type("augusta")
    expect(grid.locator(".tile:visible .tile-link")).to_have_text(["Rua Augusta"])
    page.keyboard.press("Tab")
    page.keyboard.press("ArrowRight")  # "Todas" -> "Online"
    expect(grid.locator(".tile:visible")).to_have_count(0)
    assert "status=online" in page.url


def test_mosaic_shows_four_players_and_keeps_the_choice(stack, browsing):
    from playwright.sync_api import expect

    prefeitura = PrefeituraFactory(name="Prefeitura do Mosaico")
    user = UserFactory(prefeitura=prefeitura, role=Role.OPERADOR)
    cameras = [
        CameraFactory(prefeitura=prefeitura, name=f"Câmera {n} do centro", code=f"centro-{n}",
                      source_url=stack.camera.url(f"cam{n}"))
        for n in range(1, 5)
    ]  # fmt: skip
    session = browsing()
    session.login(user)
    page = session.goto("/dashboard/mosaic/")
    mosaic = page.locator("#mosaic")
    expect(mosaic.locator(".slot")).to_have_count(4)
    expect(mosaic.locator(".slot video")).to_have_count(4)
    wait_playing(page, "#mosaic .slot video", count=4, timeout=60)
    for slot, camera in zip(mosaic.locator(".slot").all(), cameras, strict=True):
        expect(slot).to_have_attribute("data-camera-id", str(camera.pk))
        expect(slot.locator(".badge")).to_have_text("Online")
    session.shot("05-mosaic-2x2")

    # slot 2 shows camera 4; slot 3 is emptied; the choice is saved for the next visit
    page.get_by_label("Câmera do quadro 2").select_option(str(cameras[3].pk))
    expect(page.locator("#mosaic-status")).to_have_text("Mosaico salvo.")
    # The save of slot 3 is held back until the size has changed too: the saves must still land
    # in order (the 3x3 choice last) and "saved" must wait for the latest one.
    held = []

    def hold_first_save(route):
        if route.request.method == "PUT" and not held:
            held.append(route)
        else:
            route.continue_()

    page.route("**/dashboard/api/mosaic/", hold_first_save)
    page.get_by_label("Câmera do quadro 3").select_option("")
    expect(mosaic.locator('.slot[data-slot="2"] .tile-overlay')).to_have_text("Quadro vazio")
    page.locator("#mosaic-size label", has_text="3×3").click()
    expect(mosaic.locator(".slot")).to_have_count(9)
    expect(page.locator("#mosaic-status")).not_to_have_text("Mosaico salvo.")
    for _ in range(100):
        if held:
            break
        page.wait_for_timeout(50)
    assert held, "the save of slot 3 was never sent"
    held[0].continue_()
    expect(page.locator("#mosaic-status")).to_have_text("Mosaico salvo.")
    page.unroute("**/dashboard/api/mosaic/")
    page.reload()
    expect(mosaic).to_have_attribute("data-size", "3")
    expect(mosaic.locator(".slot")).to_have_count(9)
    expect(page.get_by_label("Câmera do quadro 2")).to_have_value(str(cameras[3].pk))
    expect(page.get_by_label("Câmera do quadro 3")).to_have_value("")
    wait_playing(page, '#mosaic .slot[data-slot="1"] video', timeout=60)
    session.shot("06-mosaic-3x3")
    page.locator("#mosaic-size label", has_text="2×2").click()
    expect(mosaic.locator(".slot")).to_have_count(4)


def test_camera_page_live_player_metrics_and_keyboard(stack, browsing):
    from playwright.sync_api import expect

    user, camera = operador_with_camera(
        stack.camera.url("cam2"), name="Terminal Rodoviário", code="rodoviaria"
    )
    session = browsing()
    session.login(user)
    page = session.goto(f"/dashboard/cameras/{camera.pk}/")
    expect(page.get_by_role("heading", name="Terminal Rodoviário")).to_be_visible()
    wait_playing(page, "#player-video")
    expect(page.locator("#player-mode")).to_contain_text("Ao vivo")
    expect(page.locator("#camera-status")).to_have_text("Online")
    expect(page.locator('[data-metric="fps"]')).to_contain_text("quadros/s", timeout=20_000)
    expect(page.locator('[data-metric="bitrate_kbps"]')).to_contain_text("kbit/s")
    expect(page.locator('[data-metric="player"]')).to_have_text("HLS")
    no_overflow(page)

    # the timeline is a keyboard slider: arrows move the cursor, its text says where it is
    timeline = page.get_by_role("slider", name="Linha do tempo")
    timeline.focus()
    before = int(timeline.get_attribute("aria-valuenow"))
    page.keyboard.press("ArrowLeft")
    after = int(timeline.get_attribute("aria-valuenow"))
    assert after == before - 30  # 1 h zoom: 30 s steps
    page.keyboard.press("Shift+ArrowLeft")
    assert int(timeline.get_attribute("aria-valuenow")) == after - 180
    assert "/" in timeline.get_attribute("aria-valuetext")  # a pt-BR date
    page.keyboard.press("[")
    expect(page.locator("#export-start")).not_to_have_value("")
    session.shot("07-camera-live")


def test_timeline_click_plays_recording_and_snapshot(stack, browsing):
    """Needs the recordings API (timeline, playback, snapshot) and recording by the supervisor."""
    from playwright.sync_api import expect

    user, camera = operador_with_camera(stack.camera.url("cam3"), name="Praça XV", code="praca-xv")
    session = browsing()
    session.login(user)
    page = session.goto(f"/dashboard/cameras/{camera.pk}/")
    wait_playing(page, "#player-video")
    spans = page.locator("#timeline .tl-span")
    expect(spans.first).to_be_attached(timeout=60_000)

    def recorded_seconds() -> float:
        start, end = spans.last.get_attribute("data-start"), spans.last.get_attribute("data-end")
        return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()

    # the bar grows as segments are recorded (recording.segment events, no reload)
    first = recorded_seconds()
    wait_for(lambda: recorded_seconds() > max(first, 8) + 2, timeout=60)
    page.locator("#timeline-zoom").select_option("300")  # 5 min
    box = spans.last.bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.3, box["y"] + box["height"] / 2)
    expect(page.locator("#player-mode")).to_have_text("Gravado")
    expect(page.locator("#go-live")).to_be_visible()
    wait_playing(page, "#player-video")
    expect(page.locator("#player-position")).to_contain_text("Gravado ·")
    expect(page.locator("#timeline .tl-playhead")).to_be_visible()

    with page.expect_download() as info:
        page.get_by_role("link", name="Salvar imagem").click()
    download = info.value
    assert download.suggested_filename.startswith("praca-xv-")
    assert Path(download.path()).read_bytes()[:3] == b"\xff\xd8\xff"  # JPEG
    session.shot("08-camera-playback")

    page.get_by_role("button", name="Voltar ao vivo").click()
    expect(page.locator("#player-mode")).to_contain_text("Ao vivo", timeout=30_000)
    wait_playing(page, "#player-video")


def test_clip_export_progress_and_mp4_download(stack, browsing):
    """Needs the recordings API (clips) and the worker."""
    from playwright.sync_api import expect

    user, camera = operador_with_camera(
        stack.camera.url("cam4"), name="Largo do Rosário", code="rosario"
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
    page.get_by_label("Início").fill(to_input(start))
    page.get_by_label("Fim").fill(to_input(end))
    expect(page.locator("#timeline .tl-selection")).to_be_visible()
    page.get_by_role("button", name="Exportar MP4").click()
    item = page.locator("#exports-list li").first
    expect(item).to_be_visible()
    expect(item.locator("progress, .download-link").first).to_be_visible()
    link = item.get_by_role("link", name="Baixar MP4")
    expect(link).to_be_visible(timeout=90_000)
    expect(item.locator(".export-status")).to_contain_text("Pronto")
    expect(page.locator("#events-list")).to_contain_text("concluída")
    session.shot("09-camera-export", full_page=True)
    with page.expect_download() as info:
        link.click()
    data = Path(info.value.path()).read_bytes()
    assert data[4:8] == b"ftyp", "the download is not an MP4"
    assert len(data) > 10_000


def test_phone_viewport_and_admin_chooses_the_prefeitura(stack, browsing):
    from playwright.sync_api import expect

    a = PrefeituraFactory(name="Prefeitura de Alfa")
    b = PrefeituraFactory(name="Prefeitura de Beta")
    cam_a = CameraFactory(prefeitura=a, name="Câmera Alfa", source_url=stack.camera.url("cam1"))
    cam_b = CameraFactory(prefeitura=b, name="Câmera Beta", source_url=stack.camera.url("cam2"))
    admin = AdminFactory(username="plataforma")
    session = browsing(PHONE)
    page = session.login(admin)
    select = page.get_by_label("Prefeitura", exact=True)
    select.select_option(str(b.pk))
    page.get_by_role("button", name="Mostrar").click()
    page.wait_for_url("**/dashboard/")
    expect(page.get_by_label("Prefeitura", exact=True)).to_have_value(str(b.pk))
    expect(page.locator(".tile .tile-link")).to_have_text(["Câmera Beta"])
    wait_playing(page, f'.tile[data-camera-id="{cam_b.pk}"] video', timeout=60)
    no_overflow(page)
    session.shot("10-phone-grid", full_page=True)
    page.goto(f"{stack.url}/dashboard/cameras/{cam_a.pk}/")  # switches to Alfa
    wait_playing(page, "#player-video", timeout=60)
    no_overflow(page)
    session.shot("11-phone-camera", full_page=True)
    page.goto(f"{stack.url}/dashboard/mosaic/")
    expect(page.get_by_label("Prefeitura", exact=True)).to_have_value(str(a.pk))
    expect(page.locator("#mosaic .slot")).to_have_count(4)
    expect(page.get_by_label("Câmera do quadro 1")).to_have_value(str(cam_a.pk))
    no_overflow(page)
    # the other pages of the menu fit the phone too
    page.goto(f"{stack.url}/dashboard/lpr/")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Prefeitura de Alfa")
    no_overflow(page)
    session.shot("12-phone-plates", full_page=True)
    page.goto(f"{stack.url}/dashboard/system/")
    expect(page.locator("#system")).to_have_attribute("aria-busy", "false")
    no_overflow(page)
    session.shot("13-phone-system", full_page=True)
    page.goto(f"{stack.url}/dashboard/access/")
    expect(page.locator(".access-table tbody tr").first).to_be_visible()
    no_overflow(page)
    session.shot("14-phone-accesses", full_page=True)
