"""Flow control for HTTP response bodies under Daphne.

Daphne's ``send`` writes each body message into Twisted's transport and returns at once: a
response streamed faster than the client reads it piles up in the server's memory (a 1 GB
clip read by a slow client: 1 GB of RSS). Twisted itself knows when its write buffer is full:
it pauses the request's registered push producer. ``BackpressureMiddleware`` registers one
for each streamed response and makes ``send`` wait while it is paused, so a slow reader holds
at most a buffer or two in memory, whatever the size of the response.

Under another ASGI server (whose ``send`` is not Daphne's) it changes nothing.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from twisted.internet.interfaces import IPushProducer
from twisted.web.http import Request
from zope.interface import implementer


@implementer(IPushProducer)
class _Valve:
    """A push producer for Twisted: closed while the transport's buffer is full."""

    def __init__(self, paused: bool) -> None:
        self._open = asyncio.Event()
        if not paused:
            self._open.set()

    def pauseProducing(self) -> None:  # noqa: N802 - Twisted's interface
        self._open.clear()

    def resumeProducing(self) -> None:  # noqa: N802
        self._open.set()

    def stopProducing(self) -> None:  # noqa: N802 - the connection is gone: stop waiting
        self._open.set()

    async def wait(self) -> None:
        await self._open.wait()


def _daphne_request(send: Any) -> Request | None:
    """The Twisted request behind Daphne's ``send`` (``partial(server.handle_reply, protocol)``)."""
    if isinstance(send, functools.partial) and send.args and isinstance(send.args[0], Request):
        return send.args[0]
    return None


def _unregister(request: Request, valve: _Valve) -> None:
    if request.producer is valve and request.channel is not None:
        request.unregisterProducer()


class BackpressureMiddleware:
    """ASGI middleware: ``send`` of a streamed HTTP body waits while the client is behind."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        request = _daphne_request(send) if scope["type"] == "http" else None
        if request is None:
            await self.app(scope, receive, send)
            return
        valve: _Valve | None = None

        async def paced_send(message: dict) -> None:
            nonlocal valve
            if message["type"] == "http.response.body" and message.get("more_body"):
                if valve is None and request.producer is None and request.channel is not None:
                    valve = _Valve(getattr(request.channel, "_waitingForTransport", False))
                    request.registerProducer(valve, True)
                if valve is not None:
                    await valve.wait()
            elif valve is not None and message["type"] == "http.response.body":
                _unregister(request, valve)  # the last message: Daphne finishes the request
                valve = None
            await send(message)

        try:
            await self.app(scope, receive, paced_send)
        finally:
            if valve is not None:
                _unregister(request, valve)
