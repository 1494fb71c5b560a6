"""Recorder nodes sharing cameras through leases (streaming/leases.py), as real processes.

Three media supervisors (nodes ``node-a`` .. ``node-c``) and six recorded cameras on one RTSP
test camera: each camera pulled exactly once and spread over the nodes; one node SIGKILLed ->
its cameras RUNNING on the others within 60 s (the issue's bound) and their recording gap at
most that; a fourth node joins -> it gets its fair share with (almost) no restart of the
others' cameras; a node drains (SIGTERM) -> its cameras are claimed before its leases would
have expired. All along, a sampler counts the FFmpeg of each camera: never two for one
camera for longer than a lease period.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime

import pytest
from django.conf import settings
from django.db import connections

from streaming.models import CameraLease, RecorderStatus
from testcamera import INSTALL_HINT, TestCamera
from tests.factories import CameraFactory, PrefeituraFactory
from tests.faults.helpers import holes, rtsp_pulls, save_figures, segment_rows
from tests.supervisor import SupervisorProcess, media_processes, media_sources, wait_for

CAMERAS = 6
KILL_BOUND_S = 60  # the requirement: a killed node's cameras run elsewhere within it
pytestmark = [
    pytest.mark.camera,
    pytest.mark.django_db(transaction=True, databases=["default", "channels_postgres"]),
    pytest.mark.timeout(600),
]


@pytest.fixture
def camera_server():
    assert TestCamera.available(), INSTALL_HINT
    server = TestCamera(
        mounts=tuple(f"cam{i}" for i in range(1, CAMERAS + 1)),
        replay=True,
        fps=10,
        keyint=10,
        width=320,
        height=240,
    )
    server.start()
    yield server
    server.stop()


class Sampler(threading.Thread):
    """Counts each camera's FFmpeg every ~0.3 s (one pass over /proc); keeps the longest
    run of two or more."""

    def __init__(self, fragments: dict[int, str]) -> None:
        super().__init__(daemon=True)
        self.fragments = fragments
        self.stopped = threading.Event()
        self.double_since: dict[int, float] = {}
        self.longest_double_s = 0.0
        self.samples = 0

    def run(self) -> None:
        while not self.stopped.is_set():
            now = time.monotonic()
            sources = list(media_sources().values())
            for camera_id, fragment in self.fragments.items():
                if sum(1 for text in sources if fragment.encode() in text) >= 2:
                    since = self.double_since.setdefault(camera_id, now)
                    self.longest_double_s = max(self.longest_double_s, now - since)
                else:
                    self.double_since.pop(camera_id, None)
            self.samples += 1
            self.stopped.wait(0.3)

    def stop(self) -> None:
        self.stopped.set()
        self.join(10)


def node(name: str) -> SupervisorProcess:
    return SupervisorProcess(GTV_NODE_NAME=name, RECORDING_SEGMENT_SECONDS="2").start()


def leases() -> dict[int, tuple[str | None, int, datetime]]:
    """camera -> (node name, generation, expires_at) of the leases held now."""
    return {
        lease.camera_id: (lease.node.name if lease.node else None, lease.generation,
                          lease.expires_at)
        for lease in CameraLease.objects.select_related("node")
    }  # fmt: skip


def by_node(cameras: list[int]) -> dict[str, set[int]]:
    from streaming.leases import node_of_cameras

    found: dict[str, set[int]] = {}
    for camera_id, name in node_of_cameras(cameras).items():
        found.setdefault(name, set()).add(camera_id)
    return found


def running_on(cameras: list[int], fragments: dict[int, str], *, since: float, away: str):
    """Each camera's recorder RUNNING (observed after ``since``) on a node other than
    ``away``, with exactly one FFmpeg."""
    owners = {c: n for n, cams in by_node(cameras).items() for c in cams}
    statuses = {row.camera_id: row for row in RecorderStatus.objects.filter(camera_id__in=cameras)}
    for camera_id in cameras:
        status = statuses.get(camera_id)
        if owners.get(camera_id) in (None, away) or status is None:
            return False
        if status.status != "RUNNING" or status.updated_at.timestamp() <= since:
            return False
        if len(media_processes(fragments[camera_id])) != 1:
            return False
    return True


def steady(cameras: list[int], fragments: dict[int, str], port: int) -> bool:
    """Every camera pulled exactly once (one FFmpeg each, one RTSP connection each) and its
    recorder RUNNING."""
    if any(len(media_processes(fragments[c])) != 1 for c in cameras):
        return False
    statuses = dict(RecorderStatus.objects.values_list("camera_id", "status"))
    if any(statuses.get(c) != "RUNNING" for c in cameras):
        return False
    return rtsp_pulls(port) == len(cameras)


def test_nodes_share_fail_over_rebalance_and_drain(camera_server):
    prefeitura = PrefeituraFactory()
    cameras = [
        CameraFactory(
            prefeitura=prefeitura,
            source_url=camera_server.url(f"cam{i}"),
            recording_enabled=True,
        ).pk
        for i in range(1, CAMERAS + 1)
    ]
    fragments = {c: f":{camera_server.port}/cam{i}'" for i, c in enumerate(cameras, 1)}
    connections.close_all()
    sampler = Sampler(fragments)
    processes = {name: node(name) for name in ("node-a", "node-b", "node-c")}
    sampler.start()
    figures: dict[str, object] = {"cameras": CAMERAS, "lease_ttl_s": settings.LEASE_TTL_S}
    try:
        # -- spread: each camera pulled once, two per node ---------------------------------
        started = time.monotonic()
        wait_for(lambda: steady(cameras, fragments, camera_server.port), timeout=120)
        wait_for(
            lambda: sorted(len(v) for v in by_node(cameras).values()) == [2, 2, 2], timeout=120
        )
        wait_for(lambda: steady(cameras, fragments, camera_server.port), timeout=60)
        figures["spread_s"] = round(time.monotonic() - started, 1)

        # -- SIGKILL node-a: its cameras run on b and c within 60 s --------------------------
        moved = sorted(by_node(cameras)["node-a"])
        time.sleep(3)  # a few segments on node-a
        processes["node-a"].kill9()
        killed_at = time.time()
        wait_for(
            lambda: running_on(moved, fragments, since=killed_at, away="node-a"),
            timeout=KILL_BOUND_S + 30,
            step=0.2,
        )
        failover_s = time.time() - killed_at
        figures["killed_to_running_elsewhere_s"] = round(failover_s, 1)
        assert failover_s <= KILL_BOUND_S, figures  # the explicit bound

        def recorded_after_kill() -> bool:
            return all(
                # after node-a's last, cut segment (it opened before the kill; its start may
                # be refined up to a second later): a segment of the new node
                any(start.timestamp() > killed_at + 1 for start, _e, _l in segment_rows(c))
                for c in moved
            )

        wait_for(recorded_after_kill, timeout=60)
        gaps = []
        for camera_id in moved:
            hole = [
                length
                for where, length in holes(segment_rows(camera_id), tolerance_s=1.0)
                if where.timestamp() >= killed_at - 10
            ]
            gaps.append(round(max(hole, default=0.0), 1))
        figures["recording_gap_s"] = gaps
        # a killed recorder leaves a hole in each of its cameras, at most the fail-over time
        assert all(0 < gap <= KILL_BOUND_S for gap in gaps), figures
        wait_for(lambda: steady(cameras, fragments, camera_server.port), timeout=60)
        assert sorted(len(v) for v in by_node(cameras).values()) == [3, 3]

        # -- node-d joins: it gets its fair share, the others' cameras barely move ----------
        before = leases()
        joined_at = time.monotonic()
        processes["node-d"] = node("node-d")
        wait_for(lambda: len(by_node(cameras).get("node-d", ())) == 2, timeout=120)
        wait_for(lambda: steady(cameras, fragments, camera_server.port), timeout=60)
        figures["join_to_fair_share_s"] = round(time.monotonic() - joined_at, 1)
        after = leases()
        on_d = by_node(cameras)["node-d"]
        claimed = [c for c in cameras if after[c][1] != before[c][1]]
        restarted_elsewhere = [c for c in claimed if c not in on_d]
        figures["join_claims"] = len(claimed)
        figures["join_restarts_of_other_cameras"] = len(restarted_elsewhere)
        assert sorted(len(v) for v in by_node(cameras).values()) == [2, 2, 2]
        assert len(restarted_elsewhere) <= 1, (before, after)

        # -- SIGTERM node-b: handed over before its leases would have expired -------------
        drained = sorted(by_node(cameras)["node-b"])
        held_until = {c: leases()[c][2] for c in drained}
        term_at = time.time()
        assert processes["node-b"].stop() == 0, processes["node-b"].tail()
        wait_for(lambda: running_on(drained, fragments, since=term_at, away="node-b"), timeout=60)
        figures["drain_to_running_elsewhere_s"] = round(time.time() - term_at, 1)
        for camera_id in drained:
            lease = CameraLease.objects.get(camera_id=camera_id)
            # claimed by another node before node-b's lease would have lapsed: handed over
            assert lease.node.name != "node-b" and lease.acquired_at < held_until[camera_id]
        wait_for(lambda: steady(cameras, fragments, camera_server.port), timeout=60)
    finally:
        sampler.stop()
        for process in processes.values():
            process.stop()
        for name, process in processes.items():
            print(f"--- {name}", process.tail(30), sep="\n")
    figures["longest_double_pull_s"] = round(sampler.longest_double_s, 1)
    figures["samples"] = sampler.samples
    save_figures("nodes", figures)
    print(figures)
    # never two FFmpeg for one camera for longer than a lease period
    assert sampler.samples > 50 and sampler.longest_double_s <= settings.LEASE_TTL_S, figures


def test_live_hls_through_the_node_that_pulls_the_camera(camera_server, tmp_path):
    """No shared live directory: each node writes live HLS into its own directory and serves
    it at its internal URL; the web (another directory) relays what the viewer asks for from
    the node holding the camera's lease (streaming/livehop.py)."""
    import requests

    from admin_ctx.models import Role
    from testcamera import free_port
    from tests.factories import UserFactory
    from tests.live_web import bearer, running_web

    operador = UserFactory(role=Role.OPERADOR)
    camera = CameraFactory(
        prefeitura=operador.prefeitura,
        source_url=camera_server.url("cam1"),
        recording_enabled=False,
    )
    connections.close_all()
    dirs = {name: tmp_path / name for name in ("node-a", "node-b", "web")}
    urls = {name: f"http://127.0.0.1:{free_port()}" for name in ("node-a", "node-b")}
    processes = {
        name: SupervisorProcess(
            GTV_NODE_NAME=name, GTV_LIVE_DIR=str(dirs[name]), GTV_NODE_INTERNAL_URL=urls[name]
        ).start()
        for name in ("node-a", "node-b")
    }
    try:
        with running_web(GTV_LIVE_DIR=str(dirs["web"])) as (web, _process):
            api = requests.Session()
            api.headers.update(bearer(operador))
            started = api.post(f"{web}/api/streams/start", json={"camera_id": camera.pk})
            assert started.status_code == 201, started.text
            stream_id = started.json()["stream_id"]

            def playlist() -> str | None:
                response = api.get(f"{web}/api/streams/{stream_id}/hls/index.m3u8", timeout=10)
                text = response.text if response.status_code == 200 else ""
                return text if text.count(".ts") >= 2 else None

            text = wait_for(playlist, timeout=60)
            node = api.get(f"{web}/api/streams/{stream_id}", timeout=10).json()["node"]
            assert node in ("node-a", "node-b")
            assert not any(dirs["web"].rglob("*.m3u8"))  # nothing local to the web
            owner_files = {p.name for p in dirs[node].rglob("*.ts")}
            segment = [line for line in text.splitlines() if line.endswith(".ts")][-1]
            assert segment in owner_files
            got = api.get(f"{web}/api/streams/{stream_id}/hls/{segment}", timeout=10)
            assert got.status_code == 200 and got.content[:1] == b"\x47"  # MPEG-TS sync byte
            # the node's internal endpoint answers signed requests only
            unsigned = requests.get(f"{urls[node]}/live/{camera.pk}/main/index.m3u8", timeout=5)
            assert unsigned.status_code == 403
            # an unauthorized viewer gets nothing through the hop either
            anonymous = requests.get(f"{web}/api/streams/{stream_id}/hls/index.m3u8", timeout=10)
            assert anonymous.status_code in (401, 403)
    finally:
        for process in processes.values():
            process.stop()
