"""WebSocket churn: connect, ping, disconnect ``ws/events``, many times, on the default layer.

``--ws-churn`` WebSocket clients (the ``websockets`` library, ``--ws-churn-concurrency`` at a
time, from the bench process) each open ``ws/events?token=<JWT>`` on Daphne (channels on the
PostgreSQL layer, ``gtvision/channel_layer.py``), send ``{"type": "ping"}``, wait for the pong
and close. One more socket stays open through the churn and must still answer afterwards.
Before and after (once in-flight work settled, at most 15 s): the locks held by the
database's other sessions (``pg_locks``), its connections (``pg_stat_activity``), the
layer's group rows and Daphne's memory (PSS). A warm-up of a few hundred connects brings the
connection pools to their working size first. Upstream channels_postgres took one advisory
lock per connect and never released it (20 clients reconnecting for a minute: ~16,000 locks,
then "out of shared memory").
"""

from __future__ import annotations

import asyncio
import time

from bench.common import (
    Context,
    Daphne,
    Section,
    Verdict,
    fmt,
    log,
    make_prefeitura,
    make_user,
    token_for,
    tree_pss_mb,
)

TITLE = "7. WebSocket churn"
WARMUP = 500  # at twice the concurrency: the pools reach their working size
SETTLE_S = 15.0


def database_load() -> dict:
    """Locks and connections of the database's other sessions (and of the channel layer),
    sessions by application, and the layer's group rows."""
    from django.db import connection

    from gtvision.channel_layer import APPLICATION_NAME

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE a.datname = current_database() AND l.pid <> pg_backend_pid()"
        )
        locks = cursor.fetchone()[0]
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid()"
        )
        connections = cursor.fetchone()[0]
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND application_name = %s",
            [APPLICATION_NAME],
        )
        layer = cursor.fetchone()[0]
        cursor.execute(
            "SELECT coalesce(nullif(application_name, ''), backend_type), count(*)"
            " FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() GROUP BY 1 ORDER BY 1"
        )
        sessions = ", ".join(f"{name or '?'}: {n}" for name, n in cursor.fetchall())
        cursor.execute("SELECT count(*) FROM channels_postgres_groupchannel")
        groups = cursor.fetchone()[0]
    return {"locks": locks, "connections": connections, "layer": layer, "groups": groups,
            "sessions": sessions}  # fmt: skip


def _settled(groups: int) -> dict:
    deadline = time.monotonic() + SETTLE_S
    while True:
        now = database_load()
        if (now["locks"] <= 1 and now["groups"] == groups) or time.monotonic() > deadline:
            return now
        time.sleep(0.3)


def django_pool_bound() -> int:
    """The most connections Django's pools of one process may hold (0: no pools)."""
    from django.conf import settings

    pools = [db.get("OPTIONS", {}).get("pool") for db in settings.DATABASES.values()]
    return sum(pool.get("max_size", 0) for pool in pools if isinstance(pool, dict))


async def _churn(url: str, count: int, concurrency: int) -> tuple[int, int]:
    """(connects that got their pong, failures)."""
    from websockets.asyncio.client import connect

    ok = failed = 0

    async def worker(n: int) -> None:
        nonlocal ok, failed
        for _ in range(n):
            try:
                async with connect(url, open_timeout=30) as socket:
                    await socket.send('{"type": "ping"}')
                    if await asyncio.wait_for(socket.recv(), 30) == '{"type": "pong"}':
                        ok += 1
                        continue
            except Exception as exc:
                log(f"ws_churn: {type(exc).__name__}: {exc}")
            failed += 1

    share, extra = divmod(count, concurrency)
    await asyncio.gather(*(worker(share + (i < extra)) for i in range(concurrency)))
    return ok, failed


async def _keeper_answers(url: str, run) -> tuple[tuple[int, int], bool]:
    from websockets.asyncio.client import connect

    async with connect(url, open_timeout=30) as keeper:
        result = await run()
        await keeper.send('{"type": "ping"}')
        alive = await asyncio.wait_for(keeper.recv(), 30) == '{"type": "pong"}'
    return result, alive


def run(ctx: Context) -> Section:
    args = ctx.args
    count, concurrency = args.ws_churn, args.ws_churn_concurrency
    section = Section(key="ws_churn", title=TITLE, method=__doc__.split("\n\n", 1)[1])
    prefeitura = make_prefeitura("Bench churn")
    user = make_user(prefeitura, "churn")
    daphne = Daphne(ctx, name="daphne-churn").start()
    try:
        url = f"ws://127.0.0.1:{daphne.port}/ws/events?token={token_for(user)}"
        asyncio.run(_churn(url, min(WARMUP, count), 2 * concurrency))
        before = _settled(groups=0)
        pss_before, _ = tree_pss_mb([daphne.proc.pid])
        log(f"ws_churn: {count} connects, {concurrency} at a time")
        started = time.monotonic()
        (ok, failed), alive = asyncio.run(
            _keeper_answers(url, lambda: _churn(url, count, concurrency))
        )
        seconds = time.monotonic() - started
        after = _settled(groups=0)
        pss_after, _ = tree_pss_mb([daphne.proc.pid])
    finally:
        daphne.stop()

    rate = ok / seconds if seconds else float("nan")
    # Django's own pools in Daphne may still grow, up to their sizes.
    others_before = before["connections"] - before["layer"]
    others_after = after["connections"] - after["layer"]
    others_ok = others_after <= max(others_before + 1, django_pool_bound())
    section.columns = ["figure", "before", "after", "result"]
    section.rows = [
        ["connects (ping/pong, close)", "—", f"{ok:,} ok, {failed:,} failed",
         "PASS" if failed == 0 else "MISS"],
        ["connects/s", "—", fmt(rate, 0), "—"],
        ["pg_locks (other sessions)", str(before["locks"]), str(after["locks"]),
         "PASS" if after["locks"] <= before["locks"] else "MISS"],
        ["connections (pg_stat_activity)", str(before["connections"]),
         str(after["connections"]), "PASS" if others_ok else "MISS"],
        ["… of which the channel layer's", str(before["layer"]), str(after["layer"]),
         "PASS" if after["layer"] <= before["layer"] + 1 else "MISS"],
        ["group rows", str(before["groups"]), str(after["groups"]),
         "PASS" if after["groups"] == before["groups"] else "MISS"],
        ["Daphne PSS", fmt(pss_before, 1, "MB"), fmt(pss_after, 1, "MB"), "—"],
        ["socket open through the churn answers", "—", "yes" if alive else "no",
         "PASS" if alive else "MISS"],
    ]  # fmt: skip
    flat = (
        failed == 0
        and alive
        and after["locks"] <= before["locks"]
        and others_ok
        and after["layer"] <= before["layer"] + 1
        and after["groups"] == before["groups"]
    )
    section.verdicts.append(
        Verdict(
            f"{count:,} WebSocket connects: pg_locks / connections / group rows",
            f"{after['locks']} / {after['connections']} / {after['groups']}",
            f"before {before['locks']} / {before['connections']} / {before['groups']}",
            "—",
            "flat (the layer's connections; Django's within its pools' sizes), no failed connect",
            flat,
        )
    )
    section.notes.append(
        f"{count:,} connects in {seconds:.1f} s ({fmt(rate, 0)} connects/s, client and Daphne "
        "on the same machine); a warm-up of "
        f"{min(WARMUP, count)} connects before the 'before' figures."
    )
    section.notes.append(
        f"Sessions by application before: {before['sessions']}; after: {after['sessions']}."
    )
    return section
