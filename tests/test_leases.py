"""The lease protocol of recorder nodes (streaming/leases.py) against PostgreSQL: claim,
renew, fencing, fair share, bounded rebalancing, drain, node names, concurrent claimers."""

from __future__ import annotations

import itertools
import threading

import pytest
from django.db import connection, connections

from streaming.leases import (
    LeaseKeeper,
    NodeNameTaken,
    Share,
    node_of_cameras,
    nodes_overview,
    releases_for,
    shares,
)
from streaming.models import CameraLease, RecorderNode
from tests.factories import CameraFactory, PrefeituraFactory

pytestmark = pytest.mark.django_db(transaction=True)


def cameras(count: int) -> set[int]:
    prefeitura = PrefeituraFactory()
    return {CameraFactory(prefeitura=prefeitura).pk for _ in range(count)}


def keeper(name: str, **options) -> LeaseKeeper:
    options.setdefault("capacity", 200)
    options.setdefault("ttl_s", 20.0)
    node = LeaseKeeper(name, **options)
    node.register()
    return node


def age_leases(seconds: float, **where) -> None:
    """Move the leases (matching ``where``) ``seconds`` into the past."""
    clause = " AND ".join(f"{column} IS NULL" if value is None else f"{column} = %s"
                          for column, value in where.items()) or "TRUE"  # fmt: skip
    params = [value for value in where.values() if value is not None]
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE streaming_cameralease SET expires_at = expires_at - %s::interval "  # noqa: S608
            f"WHERE {clause}",
            [f"{seconds} seconds", *params],
        )


def owners() -> dict[int, str | None]:
    return {
        lease.camera_id: lease.node.name if lease.node else None
        for lease in CameraLease.objects.select_related("node")
    }


# -- fair share (pure) --------------------------------------------------------------------


def test_shares_even_capped_and_covering():
    assert shares(6, {"a": 200, "b": 200, "c": 200}) == dict.fromkeys("abc", Share(2, 2))
    assert shares(7, {"a": 200, "b": 200, "c": 200})["a"] == Share(2, 3)
    # a small node is capped, the rest goes to the others
    fair = shares(300, {"small": 50, "big1": 500, "big2": 500})
    assert fair["small"] == Share(50, 50) and fair["big1"] == Share(125, 125)
    # more cameras than capacity: every node full
    assert shares(1000, {"a": 100, "b": 200}) == {"a": Share(100, 100), "b": Share(200, 200)}
    for demand, caps in itertools.product(range(0, 40), [(5, 5, 5), (1, 7, 30), (3,), (2, 9)]):
        fair = shares(demand, {str(i): c for i, c in enumerate(caps)})
        lows = sum(s.low for s in fair.values())
        highs = sum(s.high for s in fair.values())
        assert lows <= demand and highs >= min(demand, sum(caps)), (demand, caps, fair)
        assert all(s.low <= s.high <= caps[int(n)] for n, s in fair.items())


def test_releases_are_planned_once_and_bounded():
    fair = shares(6, dict.fromkeys("abcd", 200))  # low 1, high 2
    held = {"a": 2, "b": 2, "c": 2, "d": 0}
    given = {name: releases_for(name, held, fair, free=0, per_tick=2) for name in fair}
    assert sum(given.values()) == 1 and given["a"] == 1  # exactly the deficit, one donor
    # a free camera already covers the deficit: nobody gives anything
    assert all(releases_for(n, held, fair, free=1, per_tick=2) == 0 for n in fair)
    # a big deficit is spread, at most per_tick each
    fair = shares(30, dict.fromkeys("abcd", 200))  # low 7
    held = {"a": 10, "b": 10, "c": 10, "d": 0}
    given = {name: releases_for(name, held, fair, free=0, per_tick=2) for name in fair}
    assert given == {"a": 2, "b": 2, "c": 2, "d": 0}


# -- against PostgreSQL -------------------------------------------------------------------


def test_claim_renew_and_fencing():
    wanted = cameras(4)
    a = keeper("node-a")
    first = a.sync(wanted)
    assert first.claimed == wanted and first.held == wanted and first.live_nodes == 1
    generations = dict(CameraLease.objects.values_list("camera_id", "generation"))
    assert set(generations.values()) == {1}
    # renewed, not claimed again
    again = a.sync(wanted)
    assert again.claimed == set() and again.fenced == set() and again.held == wanted
    assert dict(CameraLease.objects.values_list("camera_id", "generation")) == generations

    # a's lease of one camera lapses (a stalled); b claims it: a is fenced on its next pass
    victim = min(wanted)
    age_leases(60, camera_id=victim)
    RecorderNode.objects.filter(name="node-a").update(heartbeat_at="2000-01-01T00:00:00Z")
    b = keeper("node-b")
    taken = b.sync(wanted)
    assert victim in taken.claimed
    assert CameraLease.objects.get(camera_id=victim).generation == 2
    lost = a.sync(wanted)
    assert victim in lost.fenced and victim not in lost.held
    assert owners()[victim] == "node-b"
    # b's lease is the generation it claimed: renewing it works, a's old generation does not
    assert b.sync(wanted).fenced == set()


def test_a_joining_node_gets_its_share_with_bounded_churn():
    wanted = cameras(6)
    nodes = [keeper(f"node-{n}") for n in "abc"]
    for _ in range(3):
        for node in nodes:
            node.release(node.sync(wanted).release)
            age_leases(2, node_id=None)  # past the hand-over gap
    held = {node.name: set(node.held) for node in nodes}
    assert sorted(len(h) for h in held.values()) == [2, 2, 2]
    claims_before = sum(CameraLease.objects.values_list("generation", flat=True))

    d = keeper("node-d")
    nodes.append(d)
    for _ in range(4):
        for node in nodes:
            node.release(node.sync(wanted).release)
        age_leases(2, node_id=None)
    counts = sorted(len(node.held) for node in nodes)
    assert counts == [1, 1, 2, 2] and len(d.held) >= 1
    assert set().union(*(set(node.held) for node in nodes)) == wanted
    # one camera moved: one new claim (its generation), the others untouched
    assert sum(CameraLease.objects.values_list("generation", flat=True)) == claims_before + 1


def test_a_killed_node_leaves_its_cameras_to_the_others():
    wanted = cameras(6)
    a, b, c = (keeper(f"node-{n}") for n in "abc")
    for _ in range(3):
        for node in (a, b, c):
            node.release(node.sync(wanted).release)
        age_leases(2, node_id=None)
    orphaned = set(a.held)
    assert orphaned
    # a stops beating and renewing (SIGKILL): after the TTL its leases and itself lapse
    age_leases(25, node_id=a.node_id)
    RecorderNode.objects.filter(pk=a.node_id).update(heartbeat_at="2000-01-01T00:00:00Z")
    overview = {row["name"]: row for row in nodes_overview()}
    assert overview["node-a"]["orphaned_cameras"] == len(orphaned)
    for node in (b, c):
        node.sync(wanted)
    assert set(b.held) | set(c.held) == wanted and not set(b.held) & set(c.held)
    assert sorted([len(b.held), len(c.held)]) == [3, 3]
    assert set(node_of_cameras()) == wanted and "node-a" not in node_of_cameras().values()


def test_drain_hands_over_at_once_and_capacity_is_respected():
    wanted = cameras(5)
    a = keeper("node-a", capacity=3)
    a.sync(wanted)
    assert len(a.held) == 3  # capacity
    b = keeper("node-b", capacity=10)
    b.sync(wanted)
    assert set(a.held) | set(b.held) == wanted
    a.drain()
    assert RecorderNode.objects.get(name="node-a").draining
    assert not CameraLease.objects.filter(node__name="node-a").exists()
    age_leases(2, node_id=None)
    assert b.sync(wanted).held == wanted


def test_node_names_are_exclusive_and_a_restart_adopts_its_leases():
    wanted = cameras(3)
    a = keeper("node-a")
    a.sync(wanted)
    errors = []

    def second_process():
        try:
            keeper("node-a")
        except NodeNameTaken as exc:
            errors.append(str(exc))
        finally:
            connections.close_all()

    thread = threading.Thread(target=second_process)
    thread.start()
    thread.join()
    assert errors and "node-a" in errors[0]

    connection.close()  # the process dies: its session and name lock go
    again = keeper("node-a")
    adopted = again.sync(wanted)  # its leases are still valid, yet taken back at once
    assert adopted.claimed == wanted
    assert set(CameraLease.objects.values_list("generation", flat=True)) == {2}


def test_concurrent_claimers_never_share_a_camera():
    wanted = cameras(60)
    results: dict[str, set[int]] = {}
    barrier = threading.Barrier(3)

    def node(name: str) -> None:
        try:
            worker = keeper(name)
            barrier.wait()
            for _ in range(5):
                worker.release(worker.sync(wanted).release)
            results[name] = set(worker.held)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=node, args=(f"node-{n}",)) for n in "abc"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    held = list(results.values())
    assert len(held) == 3
    for one, other in itertools.combinations(held, 2):
        assert not one & other
    owned = owners()
    for name, mine in results.items():
        assert all(owned[camera] == name for camera in mine)


# -- what the API, /health, /metrics and the Sistema page show (a real Daphne) -------------


def test_node_in_api_health_metrics_and_system_page():
    import requests
    from django.test import Client

    from admin_ctx.models import Role
    from streaming.models import Stream
    from tests.factories import UserFactory
    from tests.live_web import bearer, running_web

    prefeitura = PrefeituraFactory()
    gestor = UserFactory(prefeitura=prefeitura, role=Role.GESTOR)
    pulled = CameraFactory(prefeitura=prefeitura, name="Praça Central")
    idle = CameraFactory(prefeitura=prefeitura, name="Parada")
    stream = Stream.objects.create(camera=pulled, status="RUNNING")
    idle_stream = Stream.objects.create(camera=idle, status="STOPPED")
    a = keeper("node-a")
    a.sync({pulled.pk})
    connection.close()  # Daphne reads the rows
    with running_web() as (url, _web):
        api = requests.Session()
        api.headers.update(bearer(gestor))
        detail = api.get(f"{url}/api/streams/{stream.pk}", timeout=10).json()
        assert detail["node"] == "node-a"
        assert api.get(f"{url}/api/streams/{idle_stream.pk}", timeout=10).json()["node"] is None
        listed = api.get(f"{url}/api/streams", timeout=10).json()
        rows = listed["results"] if isinstance(listed, dict) else listed
        assert {row["stream_id"]: row["node"] for row in rows} == {
            stream.pk: "node-a",
            idle_stream.pk: None,
        }

        health = requests.get(f"{url}/health", timeout=10).json()["checks"]["recorder_nodes"]
        assert health["ok"] is True
        assert health["nodes"][0]["name"] == "node-a" and health["nodes"][0]["cameras"] == 1

        metrics = requests.get(f"{url}/metrics", timeout=10).text
        assert f'gtvision_camera_node{{camera="{pulled.pk}",node="node-a"}} 1.0' in metrics
        assert 'gtvision_node_cameras{node="node-a"} 1.0' in metrics
        assert 'gtvision_node_live{node="node-a"} 1.0' in metrics

        django_client = Client()
        django_client.force_login(gestor)  # a session row Daphne reads
        connection.close()
        web = requests.Session()
        web.cookies.set("sessionid", django_client.cookies["sessionid"].value)
        system = web.get(f"{url}/dashboard/api/system/", timeout=10).json()
        [shown] = system["nodes"]
        assert shown["name"] == "node-a" and shown["state"] == "live"
        assert shown["camera_names"] == ["Praça Central"] and shown["cameras"] == 1
        page = web.get(f"{url}/dashboard/system/", headers={"Accept-Language": "pt-br"})
        assert "Nós de gravação" in page.text

        # node-a stops beating with its camera assigned: /health fails and says so
        RecorderNode.objects.filter(name="node-a").update(heartbeat_at="2000-01-01T00:00:00Z")
        age_leases(60, node_id=a.node_id)
        connection.close()
        response = requests.get(f"{url}/health", timeout=10)
        check = response.json()["checks"]["recorder_nodes"]
        assert response.status_code == 503 and check["ok"] is False
        assert "node-a" in check["error"] and check["nodes"][0]["live"] is False
        assert api.get(f"{url}/api/streams/{stream.pk}", timeout=10).json()["node"] is None


def test_without_the_database_a_node_stops_when_its_leases_lapse_unless_alone():
    """Through a database outage a node keeps its cameras only while nobody else can have
    claimed them: alone at its last pass, for the whole outage; with other live nodes, until
    its leases lapse by its own clock (TTL minus a margin after its last renewal)."""
    import time

    from streaming.supervisor.loop import Supervisor

    class Runner:
        name = "fake"

        def __init__(self) -> None:
            self.reconciled: list[set[int]] = []

        def reconcile(self, jobs):
            self.reconciled.append(set(jobs))
            return {}

    node = LeaseKeeper("node-a", capacity=10, ttl_s=20.0)
    runner = Runner()
    supervisor = Supervisor(runner, leases=node)
    supervisor.last_jobs = {1: object(), 2: object()}

    node.renewed_at = time.monotonic() - 19.0  # past TTL minus the margin
    node.alone = True
    supervisor._supervise_without_database()
    assert runner.reconciled[-1] == {1, 2}  # alone: recording goes on

    node.alone = False
    node.renewed_at = time.monotonic() - 5.0  # still within its leases
    supervisor._supervise_without_database()
    assert runner.reconciled[-1] == {1, 2}
    node.renewed_at = time.monotonic() - 19.0
    supervisor._supervise_without_database()
    assert runner.reconciled[-1] == set()  # lapsed: stopped before anyone can claim them
    assert supervisor.last_jobs == {} and node.deadline() is None


def test_rebalancing_gives_settled_cameras_not_the_ones_just_claimed():
    """A camera a node just claimed (still starting) is not moved again while settled ones
    can go instead: a camera is not restarted twice in a row."""
    import time

    wanted = cameras(4)
    a = keeper("node-a", per_tick=1)
    a.sync(wanted)
    settled = sorted(wanted)[:2]
    for camera in settled:
        a.claimed_at[camera] = time.monotonic() - 120  # claimed two minutes ago
    keeper("node-b")
    given = a.sync(wanted).release
    assert len(given) == 1 and given <= set(settled)
