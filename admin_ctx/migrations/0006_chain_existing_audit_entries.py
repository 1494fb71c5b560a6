"""Chain the audit entries written before the hash chain existed, oldest first, per chain.

The append-only trigger is switched off for this one UPDATE pass, inside the migration's
transaction, and back on before it commits.
"""

from django.db import migrations

TABLE = "admin_ctx_auditentry"


def chain_existing(apps, schema_editor):
    from admin_ctx.audit import HASHED_FIELDS, chain_of, entry_hash

    entry_model = apps.get_model("admin_ctx", "AuditEntry")
    head_model = apps.get_model("admin_ctx", "AuditChainHead")
    rows = (
        entry_model.objects.filter(seq=None)
        .order_by("id")
        .values(
            "id", *[name for name in HASHED_FIELDS if name not in ("chain", "seq", "prev_hash")]
        )
    )
    heads = {head.chain: head for head in head_model.objects.all()}
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {TABLE} DISABLE TRIGGER admin_ctx_auditentry_append_only")
        for row in rows.iterator(chunk_size=2000):
            chain = chain_of(row["prefeitura_id"])
            head = heads.get(chain) or head_model(chain=chain, seq=0, hash="")
            heads[chain] = head
            row.update(chain=chain, seq=head.seq + 1, prev_hash=head.hash)
            row_hash = entry_hash(row)
            cursor.execute(
                "UPDATE admin_ctx_auditentry SET chain = %s, seq = %s, prev_hash = %s, hash = %s WHERE id = %s",
                [chain, row["seq"], row["prev_hash"], row_hash, row["id"]],
            )
            head.seq, head.hash = row["seq"], row_hash
        cursor.execute(f"ALTER TABLE {TABLE} ENABLE TRIGGER admin_ctx_auditentry_append_only")
    for head in heads.values():
        head.save()


class Migration(migrations.Migration):
    dependencies = [("admin_ctx", "0005_audit_hash_chain")]

    operations = [migrations.RunPython(chain_existing, migrations.RunPython.noop)]
