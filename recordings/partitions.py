"""The segment index partitioned by day: ``recordings_segment`` is ``PARTITION BY RANGE (start)``.

One partition per UTC day (``recordings_segment_pYYYYMMDD``, ``[day, day + 1)``), created
ahead of time by ``maintain`` (the periodic retention task and the migration call it), and a
default partition (``recordings_segment_default``) that catches any row outside them (a
camera clock far in the future, footage indexed long after its day), so an insert never
fails. A day whose every row is past its prefeitura's cutoff is purged by detaching its
partition and dropping it (``recordings.retention``) instead of deleting 43 M rows one by one.

Why a day: retention plans are counted in days, a camera-day timeline touches at most two
partitions, and 30–60 partitions keep planning and the few lookups by id alone (which every
partition's primary key index answers) cheap; hourly partitions would mean ~1,000 of them.

The database's primary key is ``(id, start)`` (a partitioned table's unique indexes must
include the partition key); ``id`` alone stays Django's primary key and stays unique: it is
only ever drawn from the table's identity sequence. Each partition's indexes are named after
the parent's (``one_segment_per_start_20261201``), so plans still name the index they use.

Partition DDL takes short exclusive locks on the parent: every statement here runs with a
``lock_timeout`` and, when it cannot get the lock, gives up until the next run instead of
queueing (a queued ``ACCESS EXCLUSIVE`` request would block the recorders' inserts).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from django.db import connection, transaction
from django.db.utils import OperationalError
from django.utils import timezone

logger = logging.getLogger(__name__)

PARENT = "recordings_segment"
DEFAULT = f"{PARENT}_default"
DAY_PREFIX = f"{PARENT}_p"
# a partition detached by retention whose files are still being deleted (crash: resumed)
PURGING_PREFIX = f"{PARENT}_purge_"
DAYS_AHEAD = 3
DAYS_BEHIND = 1
LOCK_TIMEOUT = "500ms"
_MUTEX = 0x67747650  # advisory lock: one partition maintainer at a time
_DAY = timedelta(days=1)
_BOUND = re.compile(r"FROM \('([^']+)'\) TO \('([^']+)'\)")


@dataclass(frozen=True)
class Partition:
    name: str
    start: datetime
    end: datetime


def day_start(moment: datetime | date) -> datetime:
    """The UTC midnight starting the day of ``moment``."""
    if isinstance(moment, datetime):
        moment = moment.astimezone(UTC).date()
    return datetime(moment.year, moment.month, moment.day, tzinfo=UTC)


def day_name(day: datetime) -> str:
    return f"{DAY_PREFIX}{day_start(day):%Y%m%d}"


def is_partitioned(cursor=None) -> bool:
    def check(cur) -> bool:
        cur.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [PARENT])
        row = cur.fetchone()
        return bool(row) and row[0] == "p"

    if cursor is not None:
        return check(cursor)
    with connection.cursor() as cur:
        return check(cur)


def _parse_bound(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace(" ", "T"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def partitions(cursor=None) -> list[Partition]:
    """The day partitions (the default one excluded), oldest first."""

    def read(cur) -> list[Partition]:
        cur.execute(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits AS i "
            "JOIN pg_class AS c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass(%s)",
            [PARENT],
        )
        found = []
        for name, bound in cur.fetchall():
            match = _BOUND.search(bound or "")
            if match:
                found.append(Partition(name, *(_parse_bound(v) for v in match.groups())))
        return sorted(found, key=lambda p: p.start)

    if cursor is not None:
        return read(cursor)
    with connection.cursor() as cur:
        return read(cur)


def _columns(cur, table: str = PARENT) -> list[str]:
    cur.execute(
        "SELECT quote_ident(attname) FROM pg_attribute WHERE attrelid = to_regclass(%s) "
        "AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        [table],
    )
    return [row[0] for row in cur.fetchall()]


def new_table(cur, name: str) -> None:
    """A standalone table shaped like the parent (no indexes yet): a partition to be."""
    cur.execute(f'CREATE TABLE "{name}" (LIKE {PARENT} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)')


def _suffix(name: str) -> str:
    return "default" if name == DEFAULT else name.removeprefix(DAY_PREFIX)


def create_indexes(cur, name: str) -> None:
    """The parent's plain indexes (not those of its constraints) on the table ``name``, named
    after the parent's (``<index>_<YYYYMMDD>``): attaching the table adopts them."""
    cur.execute(
        "SELECT i.relname, pg_get_indexdef(x.indexrelid) FROM pg_index AS x "
        "JOIN pg_class AS i ON i.oid = x.indexrelid WHERE x.indrelid = to_regclass(%s) "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint AS c WHERE c.conindid = x.indexrelid)",
        [PARENT],
    )
    for index, definition in cur.fetchall():
        own = f"{index}_{_suffix(name)}"[:63]
        definition = definition.replace(f"INDEX {index} ON ONLY", f'INDEX "{own}" ON', 1)
        definition = re.sub(rf"ON (public\.)?{PARENT} ", f'ON "{name}" ', definition, count=1)
        cur.execute(definition)


def name_partition_indexes(cur) -> None:
    """Partition indexes built from the parent's (``CREATE INDEX`` on the parent) get generated
    names: name them after the parent's (``one_segment_per_start_20261201``)."""
    cur.execute(
        "SELECT child.relname, parent_index.relname, child_index.relname "
        "FROM pg_inherits AS t JOIN pg_class AS child ON child.oid = t.inhrelid "
        "JOIN pg_index AS x ON x.indrelid = child.oid "
        "JOIN pg_class AS child_index ON child_index.oid = x.indexrelid "
        "JOIN pg_inherits AS ii ON ii.inhrelid = x.indexrelid "
        "JOIN pg_class AS parent_index ON parent_index.oid = ii.inhparent "
        "WHERE t.inhparent = to_regclass(%s) AND NOT EXISTS "
        "(SELECT 1 FROM pg_constraint AS c WHERE c.conindid = x.indexrelid)",
        [PARENT],
    )
    for child, parent_index, child_index in cur.fetchall():
        wanted = f"{parent_index}_{_suffix(child)}"[:63]
        if wanted != child_index:
            cur.execute(f'ALTER INDEX "{child_index}" RENAME TO "{wanted}"')


def attach_day(cur, name: str, day: datetime) -> None:
    """Attach the table ``name`` as the partition of ``day`` (its indexes built first, its
    bounds proven by a CHECK so that attaching does not scan it again)."""
    lo, hi = day_start(day), day_start(day) + _DAY
    create_indexes(cur, name)
    check = f"{name}_bounds"[:63]
    cur.execute(
        f'ALTER TABLE "{name}" ADD CONSTRAINT "{check}" CHECK (start >= %s AND start < %s)',
        [lo, hi],
    )
    cur.execute(f'ALTER TABLE {PARENT} ATTACH PARTITION "{name}" FOR VALUES FROM (%s) TO (%s)',
                [lo, hi])  # fmt: skip
    cur.execute(f'ALTER TABLE "{name}" DROP CONSTRAINT "{check}"')


def create_day(cur, day: datetime) -> str | None:
    """Create the partition of ``day`` unless it exists, moving the default partition's rows
    of that day into it. Returns its name, None when it existed."""
    name = day_name(day)
    cur.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
    if cur.fetchone()[0]:
        return None
    lo, hi = day_start(day), day_start(day) + _DAY
    new_table(cur, name)
    columns = ", ".join(_columns(cur))
    cur.execute(
        f"WITH moved AS (DELETE FROM {DEFAULT} WHERE start >= %s AND start < %s "  # noqa: S608
        f'RETURNING {columns}) INSERT INTO "{name}" ({columns}) SELECT {columns} FROM moved',
        [lo, hi],
    )
    moved = cur.rowcount
    attach_day(cur, name, day)
    if moved:
        logger.info("partition %s created with %d rows moved from %s", name, moved, DEFAULT)
    return name


def _locked(cur) -> bool:
    """Serialize maintainers, and give up on a lock instead of queueing behind readers."""
    cur.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
    # DDL refuses a table with deferred checks pending (rows inserted earlier in an
    # enclosing transaction): run them now
    cur.execute("SET CONSTRAINTS ALL IMMEDIATE")
    cur.execute("SELECT pg_try_advisory_xact_lock(%s)", [_MUTEX])
    return bool(cur.fetchone()[0])


def ensure_days(days: list[datetime]) -> list[str]:
    """Create the partitions of these days (one transaction each); returns those created.
    A day whose locks were not granted in time is left for the next run."""
    created = []
    for day in sorted({day_start(d) for d in days}):
        try:
            with transaction.atomic(), connection.cursor() as cur:
                if not is_partitioned(cur) or not _locked(cur):
                    return created
                name = create_day(cur, day)
        except OperationalError as exc:  # lock_timeout
            logger.warning("partition of %s not created this time: %s", f"{day:%Y-%m-%d}", exc)
            continue
        if name:
            created.append(name)
    return created


def ensure_range(since: datetime, until: datetime) -> list[str]:
    """Create the partitions of every day from ``since`` to ``until`` (inclusive)."""
    day, last, days = day_start(since), day_start(until), []
    while day <= last:
        days.append(day)
        day += _DAY
    return ensure_days(days)


def drop_empty(before: datetime) -> list[str]:
    """Drop the day partitions that end before ``before`` and hold no row (what per-row
    retention emptied)."""
    dropped = []
    for partition in partitions():
        if partition.end > before:
            break
        try:
            with transaction.atomic(), connection.cursor() as cur:
                if not _locked(cur):
                    return dropped
                cur.execute(f'SELECT EXISTS (SELECT 1 FROM "{partition.name}")')  # noqa: S608
                if cur.fetchone()[0]:
                    continue
                cur.execute(f'ALTER TABLE {PARENT} DETACH PARTITION "{partition.name}"')
                cur.execute(f'DROP TABLE "{partition.name}"')
        except OperationalError as exc:
            logger.warning("empty partition %s not dropped this time: %s", partition.name, exc)
            continue
        dropped.append(partition.name)
    return dropped


def maintain(now: datetime | None = None) -> dict[str, list[str]]:
    """Partitions from ``DAYS_BEHIND`` days ago to ``DAYS_AHEAD`` days ahead; empty ones older
    than that dropped. Run by the periodic retention task and at migrate time."""
    now = now or timezone.now()
    if not is_partitioned():
        return {"created": [], "dropped": []}
    today = day_start(now)
    created = ensure_range(today - DAYS_BEHIND * _DAY, today + DAYS_AHEAD * _DAY)
    dropped = drop_empty(today - DAYS_BEHIND * _DAY)
    for name in created:
        logger.info("segment partition %s created", name)
    for name in dropped:
        logger.info("empty segment partition %s dropped", name)
    return {"created": created, "dropped": dropped}


class _StillNeeded(Exception):
    pass


def detach_for_purge(partition: Partition, check: Callable[[str], bool]) -> str | None:
    """Detach a partition from the index and rename it ``recordings_segment_purge_<day>``,
    committed (its rows are gone from every query) if ``check(new name)``, run in the same
    transaction once detached, still holds. None when it did not, or when the locks were not
    granted in time. The caller then deletes its files and drops it (``drop_purged``)."""
    purging = f"{PURGING_PREFIX}{partition.start:%Y%m%d}"
    try:
        with transaction.atomic(), connection.cursor() as cur:
            if not _locked(cur):
                return None
            cur.execute(f'ALTER TABLE {PARENT} DETACH PARTITION "{partition.name}"')
            cur.execute(f'ALTER TABLE "{partition.name}" RENAME TO "{purging}"')
            if not check(purging):
                raise _StillNeeded
    except _StillNeeded:
        logger.info("partition %s is still needed: kept", partition.name)
        return None
    except OperationalError as exc:
        logger.warning("partition %s not detached this time: %s", partition.name, exc)
        return None
    return purging


def purging_tables() -> list[tuple[str, datetime]]:
    """Detached partitions whose purge has not finished (a crash, or still running)."""
    with connection.cursor() as cur:
        cur.execute(
            "SELECT relname FROM pg_class WHERE relkind = 'r' AND relname LIKE %s "
            "AND relnamespace = 'public'::regnamespace ORDER BY relname",
            [PURGING_PREFIX.replace("_", r"\_") + "%"],
        )
        names = [row[0] for row in cur.fetchall()]
    found = []
    for name in names:
        try:
            day = datetime.strptime(name.removeprefix(PURGING_PREFIX), "%Y%m%d")
        except ValueError:
            continue
        found.append((name, day.replace(tzinfo=UTC)))
    return found


def drop_purged(name: str) -> None:
    if not name.startswith(PURGING_PREFIX):
        raise ValueError(name)
    with connection.cursor() as cur:
        cur.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cur.execute(f'DROP TABLE IF EXISTS "{name}"')
