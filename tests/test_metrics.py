"""/metrics through real clients: a real Daphne, `promtool check metrics`, and a real Prometheus
scraping the app while the real supervisor records a real RTSP camera."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest
import requests

from cidades.models import Camera
from testcamera import INSTALL_HINT, TestCamera, free_port
from tests.conftest import client_for
from tests.factories import CameraFactory, UserFactory
from tests.live_web import running_web
from tests.supervisor import SupervisorProcess, process_env, wait_for
from tests.test_browser import ManagedProcess

PASSWORD = "Metr1cs-S3cret"
TOKEN = "scrape-token-7f3a"
PROMETHEUS_HINT = "Prometheus is not installed: run scripts/install-test-deps"

pytestmark = pytest.mark.django_db(transaction=True)


def promtool_check_metrics(exposition: bytes) -> subprocess.CompletedProcess:
    assert shutil.which("promtool"), PROMETHEUS_HINT
    return subprocess.run(
        ["promtool", "check", "metrics"], input=exposition, capture_output=True, timeout=30
    )


def test_metrics_open_to_loopback_only_without_token():
    with running_web() as (url, _web):
        response = requests.get(f"{url}/metrics", timeout=10)
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=")
        assert "gtvision_database_up 1.0" in response.text
        assert "gtvision_storage_free_bytes{storage=" in response.text
        checked = promtool_check_metrics(response.content)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        # Labels stay bounded whatever clients send: routes are URL patterns, odd methods
        # are "other".
        requests.request("BREW", f"{url}/api/cameras/12345/", timeout=10)
        requests.get(f"{url}/api/cameras/67890/", timeout=10)
        text = requests.get(f"{url}/metrics", timeout=10).text
        assert 'method="BREW"' not in text and 'method="other"' in text
        assert "12345" not in text and "67890" not in text
        assert 'route="/api/cameras/<pk>/"' in text


def _non_loopback_address() -> str | None:
    """This host's address on its default route (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))
            address = probe.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


def test_metrics_refused_to_a_non_loopback_client_without_token():
    address = _non_loopback_address()
    assert address, "this test needs a non-loopback IPv4 address"
    port = free_port()
    web = ManagedProcess(
        "web", ["serve", "--host", "0.0.0.0", "--port", str(port)], process_env(LOG_LEVEL="ERROR")
    )
    web.start()
    try:

        def up() -> bool:
            assert web.alive(), web.output()[-3000:]
            try:
                return requests.get(f"http://127.0.0.1:{port}/health", timeout=2).ok or True
            except requests.RequestException:
                return False

        wait_for(up, timeout=60, step=0.2)
        remote = requests.get(
            f"http://{address}:{port}/metrics", headers={"Host": "localhost"}, timeout=10
        )
        assert remote.status_code == 401
        assert "gtvision" not in remote.text
        local = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
        assert local.status_code == 200
    finally:
        web.stop()


def test_metrics_token_is_required_when_set():
    with running_web(METRICS_TOKEN=TOKEN) as (url, _web):
        assert requests.get(f"{url}/metrics", timeout=10).status_code == 401
        wrong = {"Authorization": "Bearer not-the-token"}
        assert requests.get(f"{url}/metrics", headers=wrong, timeout=10).status_code == 401
        basic = {"Authorization": f"Basic {TOKEN}"}
        assert requests.get(f"{url}/metrics", headers=basic, timeout=10).status_code == 401
        right = {"Authorization": f"Bearer {TOKEN}"}
        response = requests.get(f"{url}/metrics", headers=right, timeout=10)
        assert response.status_code == 200 and "gtvision_cameras{" in response.text


def test_websocket_connections_gauge_follows_real_sockets():
    from rest_framework_simplejwt.tokens import RefreshToken
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    user = UserFactory()
    token = RefreshToken.for_user(user).access_token

    def gauge(url: str) -> str:
        text = requests.get(f"{url}/metrics", timeout=10).text
        return next(ln for ln in text.splitlines() if ln.startswith("gtvision_websocket_conn"))

    with running_web() as (url, _web):
        assert gauge(url) == "gtvision_websocket_connections 0.0"
        ws_url = url.replace("http://", "ws://") + f"/ws/events?token={token}"
        with connect(ws_url) as first, connect(ws_url):
            first.send('{"type": "ping"}')
            assert "pong" in first.recv(timeout=10)
            assert gauge(url) == "gtvision_websocket_connections 2.0"
        wait_for(lambda: gauge(url) == "gtvision_websocket_connections 0.0", timeout=10)
        refused = url.replace("http://", "ws://") + "/ws/events?token=not-a-token"
        # Accepted, then closed with 4401: never counted.
        with connect(refused) as socket, pytest.raises(ConnectionClosed) as closed:
            socket.recv(timeout=10)
        assert closed.value.rcvd.code == 4401
        assert gauge(url) == "gtvision_websocket_connections 0.0"


class Prometheus:
    """A real Prometheus server scraping ``target`` every second with a bearer token."""

    def __init__(self, target: str, token: str) -> None:
        assert shutil.which("prometheus"), PROMETHEUS_HINT
        self.dir = Path(tempfile.mkdtemp(prefix="gtv-prom-"))
        self.port = free_port()
        (self.dir / "token").write_text(token)
        (self.dir / "prometheus.yml").write_text(
            "global:\n"
            "  scrape_interval: 1s\n"
            "  evaluation_interval: 1s\n"
            "scrape_configs:\n"
            "  - job_name: gtvision\n"
            "    metrics_path: /metrics\n"
            "    authorization:\n"
            f"      credentials_file: {self.dir / 'token'}\n"
            "    static_configs:\n"
            f"      - targets: ['{target}']\n"
        )
        self.log = tempfile.TemporaryFile()
        self.process: subprocess.Popen | None = None

    def start(self) -> Prometheus:
        self.process = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={self.dir / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-3000:]

    def query(self, promql: str) -> list[dict]:
        assert self.process is not None and self.process.poll() is None, self.output()
        try:
            response = requests.get(
                f"http://127.0.0.1:{self.port}/api/v1/query", params={"query": promql}, timeout=5
            )
        except requests.RequestException:
            return []
        body = response.json()
        assert body["status"] == "success", body
        return body["data"]["result"]


@pytest.fixture
def camera_server():
    assert TestCamera.available(), INSTALL_HINT
    server = TestCamera(mounts=("cam1",), user="viewer", password=PASSWORD)
    server.start()
    yield server
    server.stop()


@pytest.mark.camera
@pytest.mark.timeout(240)
def test_prometheus_scrapes_real_figures_of_a_recording_camera(camera_server, settings, tmp_path):
    settings.MEDIA_ENGINE = "embedded"
    operador = UserFactory()
    camera = CameraFactory(
        prefeitura=operador.prefeitura,
        source_url=camera_server.url("cam1"),
        recording_enabled=True,
    )
    shared = tmp_path / "prom-multiproc"
    shared.mkdir()
    common = {"PROMETHEUS_MULTIPROC_DIR": str(shared), "RECORDING_SEGMENT_SECONDS": "2"}
    supervisor = SupervisorProcess(**common).start()
    prometheus = None
    try:
        with running_web(METRICS_TOKEN=TOKEN, **common) as (url, _web):
            response = client_for(operador).post(
                "/api/streams/start", {"camera_id": camera.pk}, format="json"
            )
            assert response.status_code == 201, response.content
            prometheus = Prometheus(url.removeprefix("http://"), TOKEN).start()
            cam = f'camera="{camera.pk}"'

            def scraped(promql: str, timeout: float = 90) -> float:
                """The value of the first series of ``promql``, waiting until one matches
                (a filter such as ``> 0`` makes the series absent until it holds)."""
                result = wait_for(lambda: prometheus.query(promql), timeout=timeout, step=0.5)
                return float(result[0]["value"][1])

            assert scraped('up{job="gtvision"} == 1') == 1
            assert scraped(f"gtvision_camera_up{{{cam}}} == 1") == 1
            assert scraped(f'gtvision_camera_state{{{cam},state="RUNNING"}} == 1') == 1
            assert scraped(f"gtvision_camera_fps{{{cam}}} > 0") > 0
            assert scraped(f"gtvision_camera_bitrate_bytes_per_second{{{cam}}} > 0") > 0
            assert scraped(f"gtvision_camera_received_bytes_total{{{cam}}} > 0") > 0
            assert scraped(f"gtvision_camera_last_frame_age_seconds{{{cam}}} < 30") >= 0
            # Recording: segments get indexed and the lag stays within a few segments.
            assert scraped("gtvision_segments_indexed_total > 0") > 0
            assert scraped('gtvision_footage_bytes{storage="local"} > 0', timeout=120) > 0
            assert scraped(f"gtvision_camera_recording_lag_seconds{{{cam}}} < 30") >= 0
            assert scraped('gtvision_storage_free_bytes{storage="local"} > 0') > 0
            # Figures only the supervisor process knows, through the multiprocess directory.
            assert scraped(f'gtvision_ffmpeg_events_total{{{cam},event="start"}} >= 1') >= 1
            assert scraped("gtvision_supervisor_tick_duration_seconds_count > 0") > 0
            assert scraped("gtvision_segment_index_latency_seconds_count > 0") > 0
            assert scraped("gtvision_segment_index_latency_seconds_sum >= 0") >= 0
            assert (
                scraped('gtvision_worker_heartbeat_age_seconds{kind="media-supervisor"} < 30') >= 0
            )
            assert scraped("gtvision_supervisor_cameras >= 1") >= 1
            # The web process's own: the latency of the route Prometheus scrapes.
            assert scraped('gtvision_http_request_duration_seconds_count{route="/metrics"}') > 0
            assert scraped('gtvision_clips{status="PENDING"}') == 0
            assert scraped('gtvision_cameras{status="online"} >= 1') >= 1

            # The camera is only its id in labels: no URL, credential or tenant name.
            text = requests.get(
                f"{url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
            ).text
            for secret in (PASSWORD, camera_server.url("cam1"), operador.prefeitura.name):
                assert secret not in text
            checked = promtool_check_metrics(text.encode())
            assert checked.returncode == 0, checked.stdout + checked.stderr
            assert Camera.objects.get(pk=camera.pk).status == "online"
    finally:
        if prometheus is not None:
            prometheus.stop()
        supervisor.stop()
        assert PASSWORD not in supervisor.output()
