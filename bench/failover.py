"""12. Recorder node fail-over: a node killed -> every camera of it RUNNING on another node.

Three media supervisors (``manage.py media_supervisor`` with ``GTV_NODE_NAME`` node-a/b/c,
default settings: 1 s pass, ``LEASE_TTL_S`` 20 s) share the recorded cameras of one RTSP test
camera in replay mode (one mount per camera, no per-client encoding) through their leases
(streaming/leases.py). Each run: once every camera is pulled exactly once (as many FFmpeg
children of the nodes as cameras, every recorder ``RUNNING``) and spread evenly, the node with
the most cameras is SIGKILLed; the bench polls PostgreSQL every 0.1 s until each of its cameras
has a lease held by another node and a recorder status ``RUNNING`` written after the kill.
The killed node is then started again under its name (it rejoins and takes its fair share
back, which is timed too) before the next run. The baseline is the lease TTL, the floor of
any fail-over by lease expiry. Target (the issue's): p99 ≤ 60 s.
"""

from __future__ import annotations

import time

from bench.common import (
    Context,
    Section,
    Supervisor,
    Verdict,
    fmt,
    log,
    make_camera,
    make_prefeitura,
    parent_map,
    percentile,
    wait_for,
)

TARGET_S = 60.0
NODES = ("node-a", "node-b", "node-c")


def _owners(camera_ids: list[int]) -> dict[int, str]:
    from streaming.leases import node_of_cameras

    return node_of_cameras(camera_ids)


def _recorders(nodes: dict[str, Supervisor]) -> int:
    """FFmpeg children of the running nodes."""
    pids = {node.proc.pid for node in nodes.values() if node.proc is not None}
    return sum(1 for ppid in parent_map().values() if ppid in pids)


def _running_since(camera_ids: list[int], since: float) -> set[int]:
    from streaming.models import RecorderStatus

    return {
        camera_id
        for camera_id, status, at in RecorderStatus.objects.filter(
            camera_id__in=camera_ids
        ).values_list("camera_id", "status", "updated_at")
        if status == "RUNNING" and at.timestamp() > since
    }


def _state(camera_ids: list[int], nodes: dict[str, Supervisor]) -> dict:
    from streaming.models import RecorderStatus

    for node in nodes.values():
        node.check()
    owners = _owners(camera_ids)
    return {
        "owners": owners,
        "counts": {n: sum(1 for name in owners.values() if name == n) for n in nodes},
        "statuses": dict(
            RecorderStatus.objects.filter(camera_id__in=camera_ids).values_list(
                "camera_id", "status"
            )
        ),
        "recorders": _recorders(nodes),
    }


def _steady(camera_ids: list[int], nodes: dict[str, Supervisor]) -> bool:
    state = _state(camera_ids, nodes)
    counts = list(state["counts"].values())
    return (
        len(state["owners"]) == len(camera_ids)
        and max(counts) - min(counts) <= 1
        and all(state["statuses"].get(c) == "RUNNING" for c in camera_ids)
        and state["recorders"] == len(camera_ids)
    )


def _wait_steady(ctx: Context, camera_ids: list[int], nodes: dict[str, Supervisor], what: str):
    """Until every camera runs once, spread evenly; a timeout says what was still wrong."""
    try:
        wait_for(lambda: _steady(camera_ids, nodes), 180, 0.5, what)
    except TimeoutError as error:
        tails = "\n".join(
            f"--- {node.name}:\n{ctx.procs.log_tail(node.name, 40)}" for node in nodes.values()
        )
        raise TimeoutError(f"{error}; {_state(camera_ids, nodes)}\n{tails}") from None


def run(ctx: Context) -> Section:
    from django.conf import settings
    from django.db import connection

    from testcamera import INSTALL_HINT, TestCamera

    args = ctx.args
    cameras = args.failover_cameras
    section = Section(key="failover", title="12. Recorder node fail-over", method=__doc__ or "")
    if not TestCamera.available():
        raise RuntimeError(INSTALL_HINT)
    mounts = tuple(f"f{i}" for i in range(cameras))
    server = TestCamera(mounts=mounts, replay=True, width=320, height=180, fps=10, keyint=10)
    server.start()
    nodes: dict[str, Supervisor] = {}
    try:
        prefeitura = make_prefeitura("Failover")
        camera_ids = [
            make_camera(prefeitura, f"failover-{i}", server.url(mount), recording=True).pk
            for i, mount in enumerate(mounts)
        ]
        # smoke: a short TTL keeps the tiny run short (its figures mean nothing anyway)
        ttl = 10.0 if ctx.smoke else settings.LEASE_TTL_S
        node_env = {"LEASE_TTL_S": str(ttl)}
        for name in NODES:
            nodes[name] = Supervisor(ctx, name=name, GTV_NODE_NAME=name, **node_env).start()
        connection.close()
        t0 = time.monotonic()
        _wait_steady(ctx, camera_ids, nodes, "cameras spread over 3 nodes")
        spread_s = time.monotonic() - t0
        failovers: list[float] = []
        claims: list[float] = []
        rejoins: list[float] = []
        for run_index in range(args.failover_kills):
            owners = _owners(camera_ids)
            victim = max(NODES, key=lambda n: (sum(1 for o in owners.values() if o == n), n))
            moved = [c for c, o in owners.items() if o == victim]
            time.sleep(2)
            killed = nodes[victim]
            ctx.procs.stop(killed.proc, sig=9, timeout=5)
            killed_at = time.time()
            killed.proc = None
            claimed_at = None
            while True:
                owners = _owners(moved)
                elsewhere = [c for c in moved if owners.get(c) not in (None, victim)]
                if claimed_at is None and len(elsewhere) == len(moved):
                    claimed_at = time.time()
                if len(elsewhere) == len(moved) and _running_since(moved, killed_at) == set(moved):
                    break
                if time.time() - killed_at > 180:
                    raise RuntimeError(f"cameras of {victim} not running elsewhere in 180 s")
                time.sleep(0.1)
            failovers.append(time.time() - killed_at)
            claims.append((claimed_at or time.time()) - killed_at)
            log(f"failover run {run_index + 1}: {len(moved)} cameras of {victim} "
                f"RUNNING elsewhere in {failovers[-1]:.1f} s")  # fmt: skip
            if ctx.smoke:
                break  # the rejoin is timed by full runs (and tested: tests/faults/test_nodes.py)
            # the node comes back under its name and takes its share back
            nodes[victim] = Supervisor(
                ctx, name=f"{victim}-{run_index}", GTV_NODE_NAME=victim, **node_env
            )
            nodes[victim].start()
            t1 = time.monotonic()
            _wait_steady(ctx, camera_ids, nodes, "rebalanced after rejoin")
            rejoins.append(time.monotonic() - t1)
        p50, p99 = percentile(failovers, 50), percentile(failovers, 99)
        section.columns = ["figure", "value"]
        section.rows = [
            ["nodes / cameras", f"{len(NODES)} / {cameras}"],
            ["kills", str(len(failovers))],
            ["first spread over the nodes (s)", fmt(spread_s, 1)],
            ["node killed -> its leases claimed elsewhere, each run (s)",
             ", ".join(fmt(v, 1) for v in claims)],
            ["node killed -> every camera RUNNING elsewhere, each run (s)",
             ", ".join(fmt(v, 1) for v in failovers)],
            ["p50 / p99 (s)", f"{fmt(p50, 1)} / {fmt(p99, 1)}"],
            ["killed node back -> fair share again, each run (s)",
             ", ".join(fmt(v, 1) for v in rejoins) or "— (not in --smoke)"],
            ["lease TTL (s)", fmt(ttl, 0)],
        ]  # fmt: skip
        section.verdicts = [
            Verdict("node killed -> every camera RUNNING elsewhere p50", f"{fmt(p50, 1)} s",
                    f"TTL {fmt(ttl, 0)} s", f"{p50 / ttl:.2f}x", "—", None),
            Verdict("node killed -> every camera RUNNING elsewhere p99", f"{fmt(p99, 1)} s",
                    f"TTL {fmt(ttl, 0)} s", f"{p99 / ttl:.2f}x", f"≤ {TARGET_S:.0f} s",
                    p99 <= TARGET_S),
        ]  # fmt: skip
        section.notes = [
            "Fail-over = lease TTL (the dead node's leases lapse) + up to one pass of the "
            "survivors + FFmpeg's start (RTSP set-up, first keyframe) + one pass to observe it. "
            "A lower `LEASE_TTL_S` shortens it at the price of more renewals (one UPDATE per "
            "node per pass either way) and less tolerance to a stalled node.",
            "A drained node (SIGTERM) hands its cameras over without waiting for the TTL "
            "(tests/faults/test_nodes.py).",
        ]
    finally:
        for node in nodes.values():
            node.stop()
        server.stop()
    return section
