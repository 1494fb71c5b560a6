"""The web process (``manage.py serve``: Daphne) on the test database, for HTTP-level tests.

Tests using it need ``django_db(transaction=True)`` so the rows they make are committed and
seen by the server. Users authenticate with JWTs minted here (no login throttle involved).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import requests
from rest_framework_simplejwt.tokens import RefreshToken

from testcamera import free_port
from tests.supervisor import process_env, wait_for
from tests.test_browser import ManagedProcess


@contextmanager
def running_web(**env: str) -> Iterator[tuple[str, ManagedProcess]]:
    """(base URL, process) of a Daphne serving the app; stopped on exit."""
    port = free_port()
    web = ManagedProcess(
        "web",
        ["serve", "--host", "127.0.0.1", "--port", str(port)],
        process_env(**{"LOG_LEVEL": "WARNING", **env}),
    )
    url = f"http://127.0.0.1:{port}"
    web.start()
    try:

        def ready() -> bool:
            assert web.alive(), web.output()[-4000:]
            try:
                return requests.get(f"{url}/health", timeout=2).status_code in (200, 503)
            except requests.RequestException:
                return False

        wait_for(ready, timeout=60, step=0.2)
        yield url, web
    finally:
        web.stop()


def bearer(user) -> dict[str, str]:
    """Authorization header with a fresh access JWT for ``user``."""
    return {"Authorization": f"Bearer {RefreshToken.for_user(user).access_token}"}
