"""The PostgreSQL channel layer under churn and faults, through ``websockets`` clients of a real
Daphne (``tests/ws_live.py``): nothing leaks per connection (locks, connections, group rows),
a killed server's rows go, lost database sessions come back."""

from __future__ import annotations

import asyncio
import time

import pytest
from asgiref.sync import sync_to_async
from django.db import connection
from websockets.asyncio.client import connect

from bench.ws_churn import database_load, django_pool_bound
from cidades import services as camera_services
from gtvision.channel_layer import ALIVE_LOCK_CLASS, APPLICATION_NAME
from tests import ws_live
from tests.factories import CameraFactory, PrefeituraFactory, UserFactory
from tests.live_web import running_web
from tests.ws_live import create, next_event, opened, ping, ws_url

pytestmark = [
    pytest.mark.django_db(transaction=True, databases=["default", "channels_postgres"]),
    pytest.mark.timeout(180),
]

web = ws_live.web  # the module's Daphne

CHURN = 3000  # bench/ws_churn.py measures 20,000
CHURN_CONCURRENCY = 20

# -- churn ------------------------------------------------------------------------------------


async def _churn(url: str, count: int, concurrency: int) -> int:
    done = 0

    async def worker(n: int) -> None:
        nonlocal done
        for _ in range(n):
            async with connect(url, open_timeout=20) as socket:
                await socket.send('{"type": "ping"}')
                assert await asyncio.wait_for(socket.recv(), 20) == '{"type": "pong"}'
            done += 1

    share, extra = divmod(count, concurrency)
    await asyncio.gather(*(worker(share + (i < extra)) for i in range(concurrency)))
    return done


async def _settled(groups: int, locks: int | None = None) -> dict[str, int]:
    """The database load once in-flight work is done: ``groups`` group rows, and at most
    ``locks`` locks if given."""
    load = sync_to_async(database_load)
    deadline = time.monotonic() + 15
    while True:
        now = await load()
        done = now["groups"] == groups and (locks is None or now["locks"] <= locks)
        if done or time.monotonic() > deadline:
            return now
        await asyncio.sleep(0.3)


async def test_connect_disconnect_churn_leaks_no_locks_connections_or_groups(web):
    """CHURN connects/disconnects (bench/ws_churn.py measures 20,000): nothing grows.

    The connections of the server's pools (Django's and the channel layer's) are bounded by
    their sizes; a warm-up at twice the concurrency brings them to their working size first.
    """
    user = await create(UserFactory)
    url = ws_url(web, "ws/events", user)
    await _churn(url, 300, 2 * CHURN_CONCURRENCY)
    before = await _settled(groups=0)
    keeper = await opened(url)  # one socket stays open through the churn
    started = time.monotonic()
    assert await _churn(url, CHURN, CHURN_CONCURRENCY) == CHURN
    print(f"{CHURN} connects in {time.monotonic() - started:.1f} s")
    await ping(keeper)  # the layer still delivers to the socket that stayed
    after = await _settled(groups=2, locks=before["locks"])  # the keeper's 2 groups
    assert after["locks"] <= before["locks"], (before, after)
    assert after["groups"] == 2, (before, after)
    assert after["layer"] <= before["layer"] + 1, (before, after)
    # Django's own pools in the server may still grow, up to their sizes: not per connect.
    assert after["connections"] - after["layer"] <= max(
        before["connections"] - before["layer"] + 1, django_pool_bound()
    ), (before, after)
    await keeper.close()
    assert (await _settled(groups=0))["groups"] == 0


async def test_group_rows_of_a_killed_server_are_removed_and_live_ones_kept(web):
    """A Daphne killed with its sockets open leaves no group rows behind (no row and no NOTIFY
    per event for sockets that are gone); a live server's rows stay."""
    prefeitura = await create(PrefeituraFactory)
    user = await create(UserFactory, prefeitura=prefeitura)
    camera = await create(CameraFactory, prefeitura=prefeitura)
    count = sync_to_async(lambda: database_load()["groups"])
    assert await count() == 0
    with running_web(CHANNEL_LAYER_JANITOR_S="1") as doomed:
        orphans = [await opened(ws_url(doomed, "ws/events", user)) for _ in range(3)]
        survivor = await opened(ws_url(web, "ws/events", user))
        assert await count() == 8  # 4 sockets x (user, prefeitura)
        doomed[1].process.kill()
        doomed[1].process.wait()
    assert (await _settled(groups=2))["groups"] == 2
    await asyncio.sleep(2.5)  # more janitor rounds: the live server's rows stay
    assert await count() == 2
    await sync_to_async(camera_services.update_camera)(camera, actor=user, data={"name": "Vivo"})
    assert (await next_event(survivor))["name"] == "Vivo"
    await ping(survivor)
    for socket in [*orphans, survivor]:
        await socket.close()


def _kill_layer_sessions() -> int:
    """Terminate every channel-layer session of the test database (server's and ours)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name = %s",
            [APPLICATION_NAME],
        )
        return cursor.fetchone()[0]


def _listening() -> bool:
    """A listener of the layer is connected (it holds its process's liveness lock)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database"
            " WHERE d.datname = current_database() AND l.locktype = 'advisory'"
            " AND l.classid = %s::oid AND l.granted",
            [ALIVE_LOCK_CLASS],
        )
        return cursor.fetchone()[0] > 0


async def test_the_layer_rides_out_lost_database_sessions(web):
    """Its LISTEN and pooled sessions killed (as in a database restart), the server's layer
    reconnects, puts its group rows back and delivers again."""
    prefeitura = await create(PrefeituraFactory)
    user = await create(UserFactory, prefeitura=prefeitura)
    camera = await create(CameraFactory, prefeitura=prefeitura)
    socket = await opened(ws_url(web, "ws/events", user))
    assert await sync_to_async(_kill_layer_sessions)() >= 2  # at least a listener and a pool
    await asyncio.sleep(3)  # the janitor's rounds while the server held no liveness lock
    deadline = time.monotonic() + 20
    while not await sync_to_async(_listening)():
        assert time.monotonic() < deadline, "the listener did not come back"
        await asyncio.sleep(0.3)
    assert (await _settled(groups=2))["groups"] == 2
    await sync_to_async(camera_services.update_camera)(
        camera, actor=user, data={"name": "De volta"}
    )
    assert (await next_event(socket))["name"] == "De volta"
    await ping(socket)
    await socket.close()
