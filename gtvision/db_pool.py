"""Options of Django's psycopg connection pool (``DATABASES["default"]["OPTIONS"]["pool"]``).

Each process has its own pool. A request (or a job, or a consumer's database call) borrows a
connection when it first queries and gives it back when Django closes it at its end
(``CONN_MAX_AGE = 0``); at most ``max_size`` connections are open, and a borrower waits up to
``timeout`` seconds for one (then ``OperationalError``). Sizing: README, "Database connections".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import psycopg

if TYPE_CHECKING:  # settings import this module: no Django import at module level
    from django.http import HttpRequest
    from django.http.response import HttpResponseBase

# A connection attempt that keeps failing (database down) backs off 1, 2, 4 ... s; psycopg's
# default gives up after 5 min, so after a long outage the next retry could come a minute or
# two after the database is back. Giving up after 10 s lets the next borrower start a fresh
# attempt at once: measured, 150 s outage, /health's database check back 109 s after the
# restart with the default, under 1 s with 10 s.
RECONNECT_TIMEOUT_S = 10.0


def reset_connection(conn: psycopg.Connection) -> None:
    """Leave no session lock behind on a connection going back to the pool.

    The media supervisor's single-instance lock is a session-level advisory lock: if its
    connection were returned to the pool still holding it (after a failed pass, say), the
    lock would stay taken by an idle pooled connection and the supervisor would stand by.
    """
    conn.execute("SELECT pg_advisory_unlock_all()")


def pool_options(
    *, min_size: int, max_size: int, timeout: float, max_idle: float
) -> dict[str, Any]:
    """The ``pool`` options for Django's PostgreSQL backend (``psycopg_pool.ConnectionPool``)."""
    return {
        "min_size": max(0, min(min_size, max_size)),
        "max_size": max_size,
        "timeout": timeout,
        "max_idle": max_idle,
        "reconnect_timeout": RECONNECT_TIMEOUT_S,
        "reset": reset_connection,
        "name": "gtvision",
    }


class ReleaseConnectionsMiddleware:
    """Outermost middleware: a streamed response gives its database connections back to the
    pool before its body is sent.

    Django closes a request's connections when its response is closed, after the last byte
    was sent: a recorded segment or clip downloaded by a slow client would hold a pooled
    connection for the whole download, and ``DB_POOL_MAX_SIZE`` slow downloads would stop
    every other request. Anything that queries while the body streams borrows one again.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        from django.db import connections

        response = self.get_response(request)
        if response.streaming:
            for conn in connections.all(initialized_only=True):
                if not conn.in_atomic_block:
                    conn.close()
        return response


def use_single_connection(alias: str = "default") -> None:
    """Run this process on one plain connection instead of the pool.

    For a single-threaded loop (the media supervisor): while the database is away, a pass
    fails at once (connection refused, or within ``DB_CONNECT_TIMEOUT``) instead of waiting
    up to ``DB_POOL_TIMEOUT`` for a pooled connection, so the loop goes on supervising its
    FFmpeg processes meanwhile (one that exits is restarted, recording goes on). Call it
    before the process's first query.
    """
    from django.db import connections

    connection = connections[alias]
    connection.close()
    connection.settings_dict.setdefault("OPTIONS", {}).pop("pool", None)
