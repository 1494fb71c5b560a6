"""channels_postgres, made safe for several event loops in one process.

Upstream keeps one module-wide connection pool (and the lock guarding its creation) bound
to whichever event loop created it, and its ``_get_or_create_listener_task`` reports "new
task" to every consumer that calls ``receive()`` before the first listener has connected,
so a burst of connections starts several LISTEN tasks and delivers each event several
times. Here each event loop gets its own pool and exactly one listener.
"""

from __future__ import annotations

import asyncio
import weakref

import psycopg
import psycopg_pool
from channels_postgres.core import PostgresChannelLayer as _UpstreamLayer
from channels_postgres.db import DatabaseLayer


async def _configure(connection: psycopg.AsyncConnection) -> None:
    await connection.set_autocommit(True)


# One pool per event loop, shared by every layer instance of the process.
_pools: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_locks: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class _PerLoopPools(DatabaseLayer):
    async def get_db_pool(self, db_params: dict) -> psycopg_pool.AsyncConnectionPool:
        loop = asyncio.get_running_loop()
        lock = _locks.setdefault(loop, asyncio.Lock())
        async with lock:
            pool = _pools.get(loop)
            if pool is None:
                pool = psycopg_pool.AsyncConnectionPool(
                    conninfo=psycopg.conninfo.make_conninfo("", **db_params),
                    open=False,
                    configure=_configure,
                    **self.psycopg_options,
                )
                # Not wait=True: a cancelled wait would leave a half-open pool behind.
                await pool.open(wait=False)
                _pools[loop] = pool
        return pool

    async def close_pool(self) -> None:
        """Close the running loop's pool (tests and shutdown)."""
        pool = _pools.pop(asyncio.get_running_loop(), None)
        if pool is not None:
            await pool.close(timeout=2)


class PostgresChannelLayer(_UpstreamLayer):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        options = {"min_size": 1, "max_size": 10, **kwargs.get("PSYCOPG_OPTIONS", {})}
        self.django_db = _PerLoopPools(options, self.db_params, logger=self.django_db.logger)

    def _get_or_create_listener_task(self) -> tuple[asyncio.Event, bool]:
        running = asyncio.get_running_loop()
        if self.listener_task_is_running is not None and self.event_loop is running:
            return self.listener_task_is_running, False
        self.event_loop = running
        self.listener_task_is_running = asyncio.Event()
        return self.listener_task_is_running, True

    async def close(self) -> None:
        """Stop this loop's listener and close its pool."""
        current = asyncio.current_task()
        listeners = [
            task
            for task in asyncio.all_tasks()
            if task is not current and "listen_to_all_channels" in repr(task.get_coro())
        ]
        for task in listeners:
            task.cancel()
        await asyncio.gather(*listeners, return_exceptions=True)
        self.listener_task_is_running = None
        await self.django_db.close_pool()
