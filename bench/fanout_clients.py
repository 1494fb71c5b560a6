"""A swarm of event listeners in one asyncio process (no Django).

``python -m bench.fanout_clients --mode ws|pg|redis --clients N --target T --out FILE``

* ``ws``: WebSocket clients of ``T`` (``ws://host:port/path?token=...``), written here on
  asyncio streams (RFC 6455 client: handshake, unmasked server frames, masked pong/close).
  A ``stream.status`` message's ``last_error`` is its tag.
* ``pg``: one PostgreSQL connection per client, ``LISTEN`` on a channel; ``T`` is
  ``conninfo|channel``. The payload is the tag.
* ``redis``: one Redis connection per client, ``SUBSCRIBE``; ``T`` is ``url|channel``.

Prints ``READY <n>`` when every client is connected, then records ``time.monotonic()`` of
every tagged message per tag; on ``DONE`` (stdin) writes ``{tag: [times]}`` to ``FILE``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import struct
import sys
import time
from collections import defaultdict
from urllib.parse import urlsplit

CONNECT_CONCURRENCY = 25


class WSClient:
    def __init__(self, url: str, received: dict) -> None:
        self.url = urlsplit(url)
        self.received = received
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def connect(self) -> None:
        host, port = self.url.hostname, self.url.port or 80
        self.reader, self.writer = await asyncio.open_connection(host, port)
        key = base64.b64encode(os.urandom(16)).decode()
        path = self.url.path + (f"?{self.url.query}" if self.url.query else "")
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\nOrigin: http://{host}:{port}\r\n\r\n"
        )
        self.writer.write(request.encode())
        await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = head.split(b"\r\n", 1)[0]
        if b" 101 " not in status + b" ":
            raise ConnectionError(f"handshake refused: {status!r}")

    def _send(self, opcode: int, payload: bytes = b"") -> None:
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        assert len(payload) < 126
        self.writer.write(bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked)

    async def _frame(self) -> tuple[int, bytes]:
        reader = self.reader
        b1, b2 = await reader.readexactly(2)
        length = b2 & 0x7F
        if length == 126:
            (length,) = struct.unpack(">H", await reader.readexactly(2))
        elif length == 127:
            (length,) = struct.unpack(">Q", await reader.readexactly(8))
        mask = await reader.readexactly(4) if b2 & 0x80 else None
        payload = await reader.readexactly(length)
        if mask:
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        return b1, payload

    async def listen(self) -> None:
        buffer = b""
        try:
            while True:
                b1, payload = await self._frame()
                opcode = b1 & 0x0F
                if opcode == 0x9:
                    self._send(0xA, payload)
                    continue
                if opcode == 0x8:
                    return
                buffer += payload
                if not b1 & 0x80:
                    continue  # fragmented: wait for the last frame
                message, buffer = buffer, b""
                at = time.monotonic()
                try:
                    event = json.loads(message)
                except ValueError:
                    continue
                if event.get("type") == "stream.status" and event.get("last_error"):
                    self.received[event["last_error"]].append(at)
        except (asyncio.IncompleteReadError, ConnectionError):
            return

    async def close(self) -> None:
        if self.writer is not None:
            try:
                self._send(0x8, struct.pack(">H", 1000))
                await self.writer.drain()
                self.writer.close()
            except (ConnectionError, RuntimeError):
                pass


async def _ws(args, received) -> list:
    clients = [WSClient(args.target, received) for _ in range(args.clients)]
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def connect(client):
        async with gate:
            for attempt in range(5):
                try:
                    await client.connect()
                    return
                except (ConnectionError, OSError, asyncio.IncompleteReadError):
                    if attempt == 4:
                        raise
                    await asyncio.sleep(0.5)

    await asyncio.gather(*(connect(c) for c in clients))
    tasks = [asyncio.create_task(c.listen()) for c in clients]

    async def close():
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
        for task in tasks:
            task.cancel()

    return [close]


async def _pg(args, received) -> list:
    import psycopg

    conninfo, channel = args.target.rsplit("|", 1)
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    conns = []

    async def connect():
        async with gate:
            conn = await psycopg.AsyncConnection.connect(conninfo, autocommit=True)
            await conn.execute(f'LISTEN "{channel}"')
            conns.append(conn)

    await asyncio.gather(*(connect() for _ in range(args.clients)))

    async def listen(conn):
        try:
            async for note in conn.notifies():
                received[note.payload].append(time.monotonic())
        except (psycopg.Error, asyncio.CancelledError):
            return

    tasks = [asyncio.create_task(listen(c)) for c in conns]

    async def close():
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(c.close() for c in conns), return_exceptions=True)

    return [close]


async def _redis(args, received) -> list:
    import redis.asyncio as aioredis

    url, channel = args.target.rsplit("|", 1)
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    subs = []

    async def connect():
        async with gate:
            client = aioredis.Redis.from_url(url)
            pubsub = client.pubsub()
            await pubsub.subscribe(channel)
            await pubsub.get_message(timeout=5)  # the subscribe confirmation
            subs.append((client, pubsub))

    await asyncio.gather(*(connect() for _ in range(args.clients)))

    async def listen(pubsub):
        try:
            while True:
                message = await pubsub.get_message(timeout=None)
                if message and message["type"] == "message":
                    received[message["data"].decode()].append(time.monotonic())
        except asyncio.CancelledError:
            return

    tasks = [asyncio.create_task(listen(p)) for _, p in subs]

    async def close():
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for client, pubsub in subs:
            await pubsub.aclose()
            await client.aclose()

    return [close]


async def main(args) -> None:
    received: dict[str, list[float]] = defaultdict(list)
    setup = {"ws": _ws, "pg": _pg, "redis": _redis}[args.mode]
    (close,) = await setup(args, received)
    print(f"READY {args.clients}", flush=True)
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line or line.strip() == "DONE":
            break
    with open(args.out, "w") as handle:
        json.dump(received, handle)
    await close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["ws", "pg", "redis"], required=True)
    parser.add_argument("--clients", type=int, required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--out", required=True)
    asyncio.run(main(parser.parse_args()))
