"""Management commands: seed_demo, and the whole run path on the embedded PostgreSQL."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from django.core.management import call_command

from admin_ctx.models import User
from cidades.models import Prefeitura

ROOT = Path(__file__).resolve().parent.parent


def test_seed_demo_is_idempotent_and_prints_passwords_once(db, capsys):
    call_command("seed_demo")
    first = capsys.readouterr().out
    assert first.count("password: ") == 3
    call_command("seed_demo")
    second = capsys.readouterr().out
    assert "password: " not in second and "(password unchanged)" in second
    assert Prefeitura.objects.filter(ibge_code="3550308").count() == 1
    roles = dict(User.objects.values_list("username", "role"))
    assert roles == {"admin": "admin", "gestor": "gestor", "operador": "operador"}
    call_command("seed_demo", "--camera-url", "rtsp://demo:pw@127.0.0.1:8554/cam1")
    assert "demo camera" in capsys.readouterr().out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_run_on_the_embedded_database(tmp_path):
    """DATABASE_URL unset: migrate, seed, runall serve /health and the API, stop cleanly."""
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env.update(GTV_DATA_DIR=str(tmp_path / "data"), PYTHONUNBUFFERED="1")
    env.pop("DJANGO_SETTINGS_MODULE", None)
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], env=env, check=True, timeout=300)
    subprocess.run([*manage, "seed_demo", "--password", "Demo-pass-1"], env=env, check=True)
    port = free_port()
    procfile = tmp_path / "Procfile"
    procfile.write_text(
        f"web: python manage.py serve --port {port}\nmedia: python manage.py media_supervisor\n"
        "worker: python manage.py worker\n"
    )
    runall = subprocess.Popen(
        [*manage, "runall", "--procfile", str(procfile)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        health = None
        while time.monotonic() < deadline:  # the web server, then the supervisor's heartbeat
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    health = json.load(r)
                break
            except urllib.error.HTTPError as error:  # 503 until every check passes
                health = json.load(error)
            except OSError:
                pass
            time.sleep(0.3)
        assert health is not None and health["status"] == "healthy", health
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/auth/token/",
            data=json.dumps({"username": "operador", "password": "Demo-pass-1"}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as r:
            assert "access" in json.load(r)
    finally:
        runall.send_signal(signal.SIGTERM)
        output = runall.communicate(timeout=60)[0].decode()
    assert runall.returncode == 0, output
    # the embedded database was stopped with the system
    assert not (tmp_path / "data" / "pgdata" / "postmaster.pid").exists(), output
    assert (tmp_path / "data" / "field-encryption.key").stat().st_mode & 0o077 == 0


def test_createsuperuser_makes_a_platform_admin(db, monkeypatch):
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "Uma-senha-forte-2026")
    call_command("createsuperuser", "--noinput", username="root", email="root@example.gov.br")
    user = User.objects.get(username="root")
    assert user.role == "admin" and user.prefeitura_id is None
    assert user.is_superuser and user.is_staff
