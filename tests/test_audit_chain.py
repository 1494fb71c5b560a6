"""Tamper-evident audit log: hash chains per prefeitura and for the platform, checked by
``manage.py verify_audit`` after rows are changed directly in PostgreSQL."""

import importlib
import threading
from io import StringIO
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.core.management import CommandError, call_command
from django.db import connection, connections

from admin_ctx import audit
from admin_ctx.models import AuditChainHead, AuditEntry
from tests.conftest import client_for


def verify() -> tuple[bool, str]:
    out, err = StringIO(), StringIO()
    try:
        call_command("verify_audit", stdout=out, stderr=err)
    except CommandError:
        return False, err.getvalue()
    return True, out.getvalue()


def sql(statement: str, params=()) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def trigger_off() -> None:
    """The append-only trigger, off until the test's transaction rolls back."""
    sql("ALTER TABLE admin_ctx_auditentry DISABLE TRIGGER admin_ctx_auditentry_append_only")


@pytest.fixture
def log(tenants):
    """Entries in two prefeituras' chains and the platform chain, written through the API."""
    gestor = tenants["a"]["gestor"]
    for name in ("Um", "Dois", "Tres"):
        client_for(gestor).patch(
            f"/api/cameras/{tenants['a']['camera'].pk}/", {"name": name}, format="json"
        )
    client_for(tenants["b"]["gestor"]).patch(
        f"/api/cameras/{tenants['b']['camera'].pk}/", {"name": "B"}, format="json"
    )
    audit.record("auth.login_failed", details={"username": "ninguem"})
    audit.record("auth.login_failed", details={"username": "alguem", "n": 1.5})
    chain_a = list(AuditEntry.objects.filter(chain=tenants["a"]["prefeitura"].pk).order_by("seq"))
    assert len(chain_a) >= 3
    return chain_a


def test_entries_carry_the_previous_hash(log, tenants):
    assert [entry.seq for entry in log] == list(range(1, len(log) + 1))
    assert log[0].prev_hash == ""
    for before, after in zip(log, log[1:], strict=False):
        assert after.prev_hash == before.hash
    for entry in log:
        assert entry.hash == audit.entry_hash(vars(entry))
    platform = AuditEntry.objects.filter(chain=0).order_by("seq")
    assert [e.action for e in platform][-2:] == ["auth.login_failed", "auth.login_failed"]
    head = AuditChainHead.objects.get(chain=tenants["a"]["prefeitura"].pk)
    assert (head.seq, head.hash) == (log[-1].seq, log[-1].hash)


def test_clean_chain_verifies(log):
    ok, output = verify()
    assert ok, output
    assert "audit log intact" in output


def test_update_is_named(log):
    victim = log[1]
    trigger_off()
    sql(
        'UPDATE admin_ctx_auditentry SET details = \'{"changed": ["address"]}\' WHERE id = %s',
        [victim.pk],
    )
    ok, output = verify()
    assert not ok
    assert f"entry id {victim.pk} (#{victim.seq}) was changed" in output


def test_update_with_recomputed_hash_is_named(log):
    """Rewriting an entry and its own hash breaks the link from the next entry."""
    victim = log[1]
    victim.actor_username = "outra-pessoa"
    trigger_off()
    sql(
        "UPDATE admin_ctx_auditentry SET actor_username = %s, hash = %s WHERE id = %s",
        [victim.actor_username, audit.entry_hash(vars(victim)), victim.pk],
    )
    ok, output = verify()
    assert not ok
    assert f"entry id {log[2].pk} (#{log[2].seq}) was inserted out of order" in output


def test_delete_in_the_middle_is_named(log):
    trigger_off()
    sql("DELETE FROM admin_ctx_auditentry WHERE id = %s", [log[1].pk])
    ok, output = verify()
    assert not ok
    assert f"entries #{log[1].seq}..{log[1].seq} were deleted before entry id {log[2].pk}" in (
        output
    )


def test_delete_at_the_end_is_named(log):
    trigger_off()
    sql("DELETE FROM admin_ctx_auditentry WHERE id = %s", [log[-1].pk])
    ok, output = verify()
    assert not ok
    assert f"entries #{log[-1].seq}..{log[-1].seq} at the end of the chain were deleted" in output


def test_unchained_insert_is_named(log, tenants):
    sql(
        "INSERT INTO admin_ctx_auditentry (at, actor_username, action, prefeitura_id,"
        " target_type, target_id, details, prev_hash, hash)"
        " VALUES (now(), 'x', 'camera.view', %s, '', '', '{}', '', '')",
        [tenants["a"]["prefeitura"].pk],
    )
    inserted = AuditEntry.objects.get(chain=None)
    ok, output = verify()
    assert not ok
    assert f"entry id {inserted.pk} is in no chain" in output


def test_forged_insert_out_of_order_is_named(log, tenants):
    """A row with a well-formed hash and the next seq, linked to an older entry."""
    forged = AuditEntry(
        at=log[0].at,
        actor_username="x",
        action="camera.view",
        prefeitura_id=tenants["a"]["prefeitura"].pk,
        chain=tenants["a"]["prefeitura"].pk,
        seq=log[-1].seq + 1,
        prev_hash=log[0].hash,
        details={},
    )
    forged.hash = audit.entry_hash(vars(forged))
    forged.save()
    ok, output = verify()
    assert not ok
    assert f"entry id {forged.pk} (#{forged.seq}) was inserted out of order" in output


def test_existing_entries_are_chained_by_the_migration(tenants):
    for n in range(3):
        sql(
            "INSERT INTO admin_ctx_auditentry (at, actor_username, action, prefeitura_id,"
            " target_type, target_id, ip, details, prev_hash, hash)"
            " VALUES (now(), 'old', 'camera.update', %s, 'camera', %s, '10.0.0.1',"
            " '{\"changed\": [\"name\"]}', '', '')",
            [tenants["a"]["prefeitura"].pk if n != 1 else None, str(n)],
        )
    assert not verify()[0]
    migration = importlib.import_module("admin_ctx.migrations.0006_chain_existing_audit_entries")
    migration.chain_existing(apps, SimpleNamespace(connection=connection))
    ok, output = verify()
    assert ok, output
    audit.record("auth.login_failed", details={})  # appends after the migrated entries
    assert verify()[0]


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(120)
def test_concurrent_writers_keep_one_chain():
    threads, per_thread = 6, 15
    barrier = threading.Barrier(threads)
    errors = []

    def write(n: int) -> None:
        try:
            barrier.wait()
            for k in range(per_thread):
                audit.record("auth.login_failed", details={"thread": n, "k": k})
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
        finally:
            connections.close_all()

    workers = [threading.Thread(target=write, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []
    seqs = list(AuditEntry.objects.filter(chain=0).order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, threads * per_thread + 1))
    ok, output = verify()
    assert ok, output


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(180)
def test_concurrent_processes_keep_one_chain(tenants):
    """Separate processes (like several web workers) append to one prefeitura's chain."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from tests.test_recordings_clips import database_url

    prefeitura = tenants["a"]["prefeitura"]
    before = AuditEntry.objects.filter(chain=prefeitura.pk).count()
    script = (
        "from admin_ctx import audit\n"
        "for k in range(20):\n"
        f"    audit.record('camera.update', prefeitura_id={prefeitura.pk}, details={{'k': k}})\n"
    )
    env = {**os.environ, "DATABASE_URL": database_url()}
    root = Path(__file__).resolve().parent.parent
    argv = [sys.executable, "manage.py", "shell", "-c", script]
    writers = [
        subprocess.Popen(argv, cwd=root, env=env, stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    for writer in writers:
        assert writer.wait(timeout=120) == 0, writer.stderr.read()
    seqs = list(
        AuditEntry.objects.filter(chain=prefeitura.pk).order_by("seq").values_list("seq", flat=True)
    )
    assert seqs == list(range(1, before + 80 + 1))
    ok, output = verify()
    assert ok, output
