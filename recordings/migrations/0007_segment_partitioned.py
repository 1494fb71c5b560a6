"""``recordings_segment`` becomes ``PARTITION BY RANGE (start)``, one partition per UTC day
(``recordings.partitions``, docs/scaling-index.md).

The existing table is renamed, a partitioned table of the same shape (columns, defaults,
identity, CHECK constraints) takes its name, partitions are created for every day that has rows
(the last ``KEEP_DAYS``; older rows go to the default partition) and for the days around today,
the rows are copied, then the indexes (built once over the copied rows), the foreign key and
the primary key, now ``(id, start)``, are added and the id sequence continues where it was.
Django's state does not change: ``id`` stays the model's primary key.
"""

from django.db import migrations
from django.utils import timezone

PARENT = "recordings_segment"
OLD = "recordings_segment_unpartitioned"
KEEP_DAYS = 400


def _fetch(cur, sql, params=None):
    cur.execute(sql, params)
    return cur.fetchall()


def _definitions(cur, table):
    """(name, SQL) of the table's indexes not backing a constraint, and (name, SQL) of its
    primary key, unique and foreign key constraints."""
    indexes = _fetch(
        cur,
        "SELECT i.relname, pg_get_indexdef(x.indexrelid) FROM pg_index AS x "
        "JOIN pg_class AS i ON i.oid = x.indexrelid WHERE x.indrelid = %s::regclass "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint AS c WHERE c.conindid = x.indexrelid)",
        [table],
    )
    constraints = _fetch(
        cur,
        "SELECT conname, contype, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = %s::regclass AND contype IN ('p', 'u', 'f') ORDER BY contype DESC",
        [table],
    )
    return indexes, constraints


def _rename_away(cur, table, suffix):
    """Rename the table, its indexes and its identity sequence out of the way."""
    for (index,) in _fetch(
        cur,
        "SELECT i.relname FROM pg_index AS x JOIN pg_class AS i ON i.oid = x.indexrelid "
        "WHERE x.indrelid = %s::regclass",
        [table],
    ):
        cur.execute(f'ALTER INDEX "{index}" RENAME TO "{(index + suffix)[:63]}"')
    (sequence,) = _fetch(cur, "SELECT pg_get_serial_sequence(%s, 'id')", [table])[0]
    cur.execute(f"ALTER SEQUENCE {sequence} RENAME TO {PARENT}_id_seq{suffix}")
    cur.execute(f"ALTER TABLE {table} RENAME TO {table}{suffix}")


def _continue_sequence(cur, old_table):
    """The new identity sequence goes on where the old one was (never called: untouched)."""
    (old_seq,) = _fetch(cur, "SELECT pg_get_serial_sequence(%s, 'id')", [old_table])[0]
    (new_seq,) = _fetch(cur, "SELECT pg_get_serial_sequence(%s, 'id')", [PARENT])[0]
    last, called = _fetch(cur, f"SELECT last_value, is_called FROM {old_seq}")[0]  # noqa: S608
    (top,) = _fetch(cur, f"SELECT coalesce(max(id), 0) FROM {PARENT}")[0]  # noqa: S608
    value = max(last if called else 0, top)
    if value >= 1:
        cur.execute("SELECT setval(%s, %s)", [new_seq, value])


def _restore(cur, indexes, constraints, *, primary_key=None):
    cur.execute("SET LOCAL maintenance_work_mem = '512MB'")
    for name, kind, definition in constraints:
        if kind == "p" and primary_key:
            definition = primary_key
        cur.execute(f'ALTER TABLE {PARENT} ADD CONSTRAINT "{name}" {definition}')
    for _name, definition in indexes:
        cur.execute(definition)


def forwards(apps, schema_editor):
    from recordings import partitions

    with schema_editor.connection.cursor() as cur:
        if partitions.is_partitioned(cur):
            return
        cur.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no deferred check left on the old table
        indexes, constraints = _definitions(cur, PARENT)
        _rename_away(cur, PARENT, "_unpartitioned")
        cur.execute(
            f"CREATE TABLE {PARENT} (LIKE {OLD} INCLUDING DEFAULTS INCLUDING CONSTRAINTS "
            "INCLUDING IDENTITY INCLUDING STORAGE) PARTITION BY RANGE (start)"
        )
        cur.execute(f"CREATE TABLE {partitions.DEFAULT} PARTITION OF {PARENT} DEFAULT")
        days = [
            row[0]
            for row in _fetch(
                cur,
                f"SELECT DISTINCT date_trunc('day', start, 'UTC') FROM {OLD} "  # noqa: S608
                f"WHERE start >= now() - make_interval(days => {KEEP_DAYS})",
            )
        ]
        today = partitions.day_start(timezone.now())
        around = [today + (k - partitions.DAYS_BEHIND) * partitions._DAY
                  for k in range(partitions.DAYS_BEHIND + partitions.DAYS_AHEAD + 1)]  # fmt: skip
        for day in sorted({partitions.day_start(d) for d in days + around}):
            name = partitions.day_name(day)
            cur.execute(
                f'CREATE TABLE "{name}" PARTITION OF {PARENT} FOR VALUES FROM (%s) TO (%s)',
                [day, day + partitions._DAY],
            )
        columns = ", ".join(partitions._columns(cur, OLD))
        cur.execute(f"INSERT INTO {PARENT} ({columns}) SELECT {columns} FROM {OLD}")  # noqa: S608
        # the primary key must include the partition key; "id" stays unique (identity only)
        _restore(cur, indexes, constraints, primary_key="PRIMARY KEY (id, start)")
        _continue_sequence(cur, OLD)
        cur.execute(f"DROP TABLE {OLD}")
        partitions.name_partition_indexes(cur)
        cur.execute(f"ANALYZE {PARENT}")


def backwards(apps, schema_editor):
    from recordings import partitions

    with schema_editor.connection.cursor() as cur:
        if not partitions.is_partitioned(cur):
            return
        cur.execute("SET CONSTRAINTS ALL IMMEDIATE")
        indexes, constraints = _definitions(cur, PARENT)
        indexes = [(name, d.replace(" ON ONLY ", " ON ")) for name, d in indexes]
        cur.execute(f"ALTER TABLE {PARENT} RENAME TO {PARENT}_partitioned")
        for name, _definition in indexes:
            cur.execute(f'ALTER INDEX "{name}" RENAME TO "{(name + "_partitioned")[:63]}"')
        for name, kind, _d in constraints:
            if kind in "pu":
                cur.execute(f'ALTER INDEX "{name}" RENAME TO "{(name + "_partitioned")[:63]}"')
        (sequence,) = _fetch(cur, "SELECT pg_get_serial_sequence(%s, 'id')",
                             [f"{PARENT}_partitioned"])[0]  # fmt: skip
        cur.execute(f"ALTER SEQUENCE {sequence} RENAME TO {PARENT}_id_seq_partitioned")
        cur.execute(
            f"CREATE TABLE {PARENT} (LIKE {PARENT}_partitioned INCLUDING DEFAULTS "
            "INCLUDING CONSTRAINTS INCLUDING IDENTITY INCLUDING STORAGE)"
        )
        columns = ", ".join(partitions._columns(cur))
        cur.execute(
            f"INSERT INTO {PARENT} ({columns}) SELECT {columns} FROM {PARENT}_partitioned"  # noqa: S608
        )
        _restore(cur, indexes, constraints, primary_key="PRIMARY KEY (id)")
        _continue_sequence(cur, f"{PARENT}_partitioned")
        cur.execute(f"DROP TABLE {PARENT}_partitioned")  # its partitions with it


class Migration(migrations.Migration):
    atomic = True

    dependencies = [
        ("recordings", "0006_segment_storage_s3"),
    ]

    operations = [
        migrations.RunPython(forwards, backwards, elidable=False),
    ]
