"""The PostgreSQL channel layer: channels_postgres's tables and trigger, a leak-free client.

channels_postgres (kept installed for its tables and its ``NOTIFY`` trigger) leaks on every
WebSocket connection: ``receive()`` takes a session-level ``pg_try_advisory_lock`` per channel
on a pooled connection and never releases it (``pg_locks`` +1 per connect, until PostgreSQL
runs "out of shared memory"), keeps a queue and a lock flag per channel in module-wide dicts
forever, and starts a task per ``group_discard`` that sleeps 10-20 minutes before a cleanup
query. Here:

* A consumer's channel (``specific.<process>!<id>``) belongs to one process: no lock is
  needed to receive it. A channel shared between processes (no ``!``) is claimed message by
  message with ``DELETE ... RETURNING`` (exactly once, no lock held afterwards).
* Each event loop has one ``LISTEN`` connection, one connection pool and one queue per
  channel that has a receiver in that loop; the queue goes when its receiver goes
  (``receive()`` cancelled: the consumer ended). Notifications for other channels are dropped.
* A process's listener holds one session advisory lock (``ALIVE_LOCK_CLASS``, its channel
  prefix): while it is held, that process's channels are alive. One janitor per loop deletes,
  every ``janitor_interval`` (``CHANNEL_LAYER_JANITOR_S``), expired message rows and the group
  rows of processes that hold no such lock (killed without closing their sockets), so a dead
  Daphne's sockets stop costing a row and a ``NOTIFY`` per event. After an outage the
  listener puts back its own group rows.
* ``group_send`` is one ``INSERT ... SELECT`` (one row, one ``NOTIFY`` per member channel).
* The listener reconnects after a database outage, and then reads the messages it missed.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
import uuid
import weakref
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import msgpack
import psycopg
import psycopg_pool
from channels.layers import BaseChannelLayer
from channels_postgres.models import GroupChannel, Message
from django.db.backends.postgresql.base import DatabaseWrapper
from psycopg import sql

logger = logging.getLogger(__name__)

NOTIFY_CHANNEL = "channels_postgres_messages"
APPLICATION_NAME = "gtvision-channel-layer"
# A group row's ``expire`` is its creation + GROUP_ROW_TTL (never reached: rows go with their
# socket, or with their process); the janitor spares rows younger than two of its rounds.
GROUP_ROW_TTL = timedelta(days=1)
# Advisory lock class of "this process's channels are alive" (held by each listener).
ALIVE_LOCK_CLASS = 0x67747663
CHANNEL_PROCESS = r"\.([0-9a-f]{12})!"
RECONNECT_MAX_S = 10.0
MESSAGES = sql.Identifier(Message._meta.db_table)
GROUPS = sql.Identifier(GroupChannel._meta.db_table)


# Every layer instance of the process: close() stops the running loop's listener of each
# (tests replace the instance, and a process's publisher loop may outlive the one it used).
_instances: weakref.WeakSet[PostgresChannelLayer] = weakref.WeakSet()
# Connection pools, one per event loop and database, shared by the instances.
_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, Any]] = (
    weakref.WeakKeyDictionary()
)
_pool_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


_background: set[asyncio.Task] = set()


def _now() -> datetime:
    return datetime.now(UTC)


async def _configure(connection: psycopg.AsyncConnection) -> None:
    await connection.set_autocommit(True)


@dataclass(eq=False)
class _Item:
    """A notification for a local channel; ``data`` is None when it must be read by id."""

    message_id: int
    data: bytes | None


@dataclass(eq=False)
class _LoopState:
    """What one event loop needs: a listener and the queues of its receivers."""

    queues: dict[str, asyncio.Queue[_Item]] = field(default_factory=dict)
    groups: dict[str, set[str]] = field(default_factory=dict)  # local channel -> group keys
    listener: asyncio.Task | None = None
    janitor: asyncio.Task | None = None
    last_id: int = 0


class PostgresChannelLayer(BaseChannelLayer):
    """Channel layer on PostgreSQL ``LISTEN``/``NOTIFY`` (groups, flush)."""

    extensions = ["groups", "flush"]

    def __init__(
        self,
        prefix: str = "asgi",
        expiry: int = 60,
        capacity: int = 1000,
        janitor_interval: float = 30.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(expiry=expiry, capacity=capacity)
        self.janitor_interval = janitor_interval
        self.prefix = prefix
        # Twelve hex digits: a process's channels never collide with another's.
        self.client_prefix = uuid.uuid4().hex[:12]
        pool_options = {"min_size": 1, "max_size": 10, "timeout": 10.0}
        pool_options.update(kwargs.pop("PSYCOPG_OPTIONS", {}))
        self.pool_options = pool_options
        kwargs.setdefault("OPTIONS", {})
        params = DatabaseWrapper(kwargs).get_connection_params()
        params.pop("cursor_factory", None)
        params.pop("context", None)
        params.setdefault("application_name", APPLICATION_NAME)  # tells its sessions apart
        self.conninfo = psycopg.conninfo.make_conninfo("", **params)
        self._states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = (
            weakref.WeakKeyDictionary()
        )
        _instances.add(self)

    # -- per-loop state --------------------------------------------------------------------

    def _state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        state = self._states.get(loop)
        if state is None:
            state = self._states[loop] = _LoopState()
        return state

    async def _pool(self) -> psycopg_pool.AsyncConnectionPool:
        loop = asyncio.get_running_loop()
        pools = _pools.setdefault(loop, {})
        if self.conninfo not in pools:
            async with _pool_locks.setdefault(loop, asyncio.Lock()):
                if self.conninfo not in pools:
                    pool = psycopg_pool.AsyncConnectionPool(
                        self.conninfo,
                        open=False,
                        configure=_configure,
                        check=psycopg_pool.AsyncConnectionPool.check_connection,
                        **self.pool_options,
                    )
                    # Not wait=True: a cancelled wait would leave a half-open pool behind.
                    await pool.open(wait=False)
                    pools[self.conninfo] = pool
        return pools[self.conninfo]

    async def _execute(self, query: sql.Composable, params: tuple = ()) -> list[tuple]:
        pool = await self._pool()
        async with pool.connection() as conn, conn.cursor() as cursor:
            await cursor.execute(query, params)
            return await cursor.fetchall() if cursor.description else []

    def _ensure_listener(self, state: _LoopState) -> None:
        if state.listener is None or state.listener.done():
            state.listener = asyncio.create_task(self._listen(state), name="channel-layer-listen")
        if state.janitor is None or state.janitor.done():
            state.janitor = asyncio.create_task(self._janitor(), name="channel-layer-janitor")

    # -- the listener ----------------------------------------------------------------------

    async def _listen(self, state: _LoopState) -> None:
        """LISTEN, and route each notification to the queue of its channel (if local)."""
        delay = 0.5
        reconnected = False
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.conninfo, autocommit=True
                ) as conn:
                    await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(NOTIFY_CHANNEL)))
                    # One session lock per process (not per socket): its channels are alive.
                    await conn.execute(
                        "SELECT pg_try_advisory_lock(%s, hashtext(%s))",
                        (ALIVE_LOCK_CLASS, self.client_prefix),
                    )
                    if reconnected:
                        await self._reset_pool()
                        await self._rejoin(state)
                    reconnected = True
                    caught_up = await self._catch_up(state)
                    delay = 0.5
                    async for notify in conn.notifies():
                        self._route(state, notify.payload, caught_up)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database went away: retry with backoff
                logger.warning("channel layer listener: %s; reconnecting", type(exc).__name__)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_S)

    async def _reset_pool(self) -> None:
        """After an outage: a fresh pool. psycopg_pool retries a failed connection with an
        exponential backoff, so after a two-minute outage the old pool stayed empty for ~30 s
        more and every WebSocket connect (``group_add``) failed with PoolTimeout meanwhile
        (tests/faults/test_database_outage.py, long mode)."""
        pool = _pools.get(asyncio.get_running_loop(), {}).pop(self.conninfo, None)
        if pool is not None:
            try:
                await pool.close(timeout=1)
            except Exception:  # noqa: BLE001 - the old pool's state does not matter any more
                logger.debug("closing the channel layer's old pool failed", exc_info=True)

    async def _rejoin(self, state: _LoopState) -> None:
        """After an outage: put back group rows another process's janitor may have removed
        while this process held no lock."""
        rows = [(key, channel) for channel, keys in state.groups.items() for key in keys]
        if not rows:
            return
        pool = await self._pool()
        async with pool.connection() as conn, conn.cursor() as cursor:
            await cursor.executemany(
                sql.SQL(
                    "INSERT INTO {0} (group_key, channel, expire) SELECT %s, %s, %s WHERE NOT"
                    " EXISTS (SELECT 1 FROM {0} WHERE group_key = %s AND channel = %s)"
                ).format(GROUPS),
                [(key, channel, _now() + GROUP_ROW_TTL, key, channel) for key, channel in rows],
            )

    async def _catch_up(self, state: _LoopState) -> set[int]:
        """Queue what local channels were sent while nobody listened (start, outage)."""
        channels = list(state.queues)
        if not channels:
            return set()
        rows = await self._execute(
            sql.SQL(
                "SELECT id, channel, message FROM {} WHERE channel = ANY(%s) AND id > %s"
                " AND expire > %s ORDER BY id"
            ).format(MESSAGES),
            (channels, state.last_id, _now()),
        )
        for message_id, channel, message in rows:
            shared = "!" not in channel
            self._enqueue(state, channel, _Item(message_id, None if shared else bytes(message)))
        return {row[0] for row in rows}

    def _route(self, state: _LoopState, payload: str, skip: set[int]) -> None:
        parts = payload.split(":")
        message_id, channel = int(parts[0]), parts[1]
        state.last_id = max(state.last_id, message_id)
        if channel not in state.queues or message_id in skip:
            return
        data = None
        if len(parts) == 4 and "!" in channel:
            if float(parts[3]) < time.time():
                return
            data = base64.b64decode(parts[2])
        self._enqueue(state, channel, _Item(message_id, data))

    def _enqueue(self, state: _LoopState, channel: str, item: _Item) -> None:
        queue = state.queues.get(channel)
        if queue is None:
            return
        try:
            queue.put_nowait(item)
        except asyncio.QueueFull:
            logger.warning("channel %s is full: message dropped", channel)

    async def _janitor(self) -> None:
        """Every ``janitor_interval``: expired messages, and group rows of dead processes."""
        grace = timedelta(seconds=2 * self.janitor_interval)
        while True:
            await asyncio.sleep(self.janitor_interval)
            try:
                await self._execute(
                    sql.SQL("DELETE FROM {} WHERE expire < %s").format(MESSAGES), (_now(),)
                )
                await self._execute(
                    sql.SQL(
                        "DELETE FROM {} g WHERE g.expire < %s AND g.channel ~ %s AND NOT EXISTS ("
                        " SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory'"
                        " AND l.database = (SELECT oid FROM pg_database"
                        " WHERE datname = current_database())"
                        " AND l.classid = %s::oid AND l.objsubid = 2 AND l.objid ="
                        " (hashtext(substring(g.channel from %s))::bigint & 4294967295)::oid)"
                    ).format(GROUPS),
                    (
                        _now() + GROUP_ROW_TTL - grace,
                        CHANNEL_PROCESS,
                        ALIVE_LOCK_CLASS,
                        CHANNEL_PROCESS,
                    ),
                )
            except Exception as exc:  # the database is away: next round
                logger.warning("channel layer janitor: %s", type(exc).__name__)

    # -- channel layer API -----------------------------------------------------------------

    async def new_channel(self, prefix: str = "specific") -> str:
        channel = f"{prefix}.{self.client_prefix}!{uuid.uuid4().hex}"
        # The queue exists before the consumer joins any group: nothing sent is missed.
        self._state().queues[channel] = asyncio.Queue(maxsize=self.capacity)
        return channel

    async def send(self, channel: str, message: dict) -> None:
        assert isinstance(message, dict), "message is not a dict"
        self.require_valid_channel_name(channel)
        assert "__asgi_channel__" not in message
        await self._execute(
            sql.SQL("INSERT INTO {} (channel, message, expire) VALUES (%s, %s, %s)").format(
                MESSAGES
            ),
            (channel, self.serialize(message), _now() + timedelta(seconds=self.expiry)),
        )

    async def receive(self, channel: str) -> dict:
        self.require_valid_channel_name(channel)
        local = "!" in channel
        if local:
            assert self.non_local_name(channel).endswith(self.client_prefix + "!"), (
                "Wrong client prefix"
            )
        state = self._state()
        queue = state.queues.get(channel)
        if queue is None:
            queue = state.queues[channel] = asyncio.Queue(maxsize=self.capacity)
        self._ensure_listener(state)
        try:
            while True:
                item = await queue.get()
                data = item.data
                if data is None:  # too big for the notification, or shared: claim it
                    rows = await self._execute(
                        sql.SQL("DELETE FROM {} WHERE id = %s AND expire > %s RETURNING message")
                        .format(MESSAGES),
                        (item.message_id, _now()),
                    )  # fmt: skip
                    if not rows:
                        continue  # expired, or another process's receiver took it
                    data = bytes(rows[0][0])
                return self.deserialize(data)
        except asyncio.CancelledError:
            # The receiver is gone (the consumer ended): so is its channel.
            if local and state.queues.get(channel) is queue:
                del state.queues[channel]
                if state.groups.pop(channel, None):  # never discarded: remove its rows
                    task = asyncio.get_running_loop().create_task(self._forget(channel))
                    _background.add(task)
                    task.add_done_callback(_background.discard)
            raise

    async def _forget(self, channel: str) -> None:
        try:
            await self._execute(
                sql.SQL("DELETE FROM {} WHERE channel = %s").format(GROUPS), (channel,)
            )
        except Exception as exc:  # the janitor removes them once the process is gone
            logger.warning("channel layer: could not forget %s: %s", channel, type(exc).__name__)

    async def flush(self) -> None:
        await self._execute(sql.SQL("TRUNCATE TABLE {}, {}").format(MESSAGES, GROUPS))

    async def group_add(self, group: str, channel: str) -> None:
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        await self._execute(
            sql.SQL("INSERT INTO {} (group_key, channel, expire) VALUES (%s, %s, %s)").format(
                GROUPS
            ),
            (self._group_key(group), channel, _now() + GROUP_ROW_TTL),
        )
        if channel in self._state().queues:
            self._state().groups.setdefault(channel, set()).add(self._group_key(group))

    async def group_discard(self, group: str, channel: str) -> None:
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        await self._execute(
            sql.SQL("DELETE FROM {} WHERE group_key = %s AND channel = %s").format(GROUPS),
            (self._group_key(group), channel),
        )
        self._state().groups.get(channel, set()).discard(self._group_key(group))

    async def group_send(self, group: str, message: dict) -> None:
        self.require_valid_group_name(group)
        await self._execute(
            sql.SQL(
                "INSERT INTO {} (channel, message, expire)"
                " SELECT DISTINCT channel, %s, %s FROM {} WHERE group_key = %s"
            ).format(MESSAGES, GROUPS),
            (
                self.serialize(message),
                _now() + timedelta(seconds=self.expiry),
                self._group_key(group),
            ),
        )

    def _group_key(self, group: str) -> str:
        return f"{self.prefix}:group:{group}"

    def serialize(self, message: dict) -> bytes:
        return msgpack.packb(message, use_bin_type=True)

    def deserialize(self, data: bytes) -> dict:
        return msgpack.unpackb(data, raw=False)

    # -- introspection and shutdown --------------------------------------------------------

    def local_channels(self) -> int:
        """Channels with a receiver in the running loop (tests: nothing left behind)."""
        return len(self._state().queues)

    async def close(self) -> None:
        """Stop the running loop's listeners and janitors, and close its pools (every
        instance's: tests and process shutdown)."""
        loop = asyncio.get_running_loop()
        states = [layer._states.pop(loop, None) for layer in list(_instances)]
        for state in filter(None, states):
            tasks = [task for task in (state.listener, state.janitor) if task is not None]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for pool in _pools.pop(loop, {}).values():
            await pool.close(timeout=2)
