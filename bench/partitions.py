"""10. Segment index partitioning: purging one day of a city's cameras, insert latency meanwhile,
and the camera-day timeline on the day-partitioned ``recordings_segment``.

Rows are written as the real indexer writes them: one row per ``--segment-seconds`` segment
(10 s: 8,640 a camera-day, so 5,000 cameras are 43.2 M rows a day), time-major, into the
day's partition (loaded bare into the table that becomes the partition, then its indexes
built and the table attached, as ``recordings.partitions`` does). ``--partition-cameras``
cameras of a prefeitura on the 7-day plan; ``--partition-hours`` of the day are loaded (24:
the real day; fewer: a proportionally scaled day, said in the table).

Measured, each with a thread inserting segment rows through the ORM (the indexer's way) into
today's partition at the cameras' rate (capped by what one thread does):
- the new purge: ``recordings.retention.purge_expired`` on the day, now wholly past the
  plan's cutoff: the partition is detached, counted per camera for the audit, its files
  deleted (day directories; the synthetic rows have none) and dropped;
- baseline, the old path on the same shape of rows: the per-row ``DELETE … RETURNING`` by
  10-minute windows (``retention._purge_window``, what a day mixing plans or under an
  evidence lock still uses) on ``--partition-baseline-hours`` of another day of the same
  cameras, extrapolated to the day by its rate.
The timeline of random camera-days of the loaded day: ``queries.TIMELINE_SQL`` on the
partitioned table (plan-time partition pruning) against the same statement on the day's
partition directly (the raw index-only scan, no partitioning in the way).
"""

from __future__ import annotations

import random
import time
from datetime import timedelta

from bench.common import Context, Section, Verdict, fmt, log, make_prefeitura, raw_connection
from bench.index import _Inserter, _pct

PURGE_TARGET_S = 60.0
INSERT_P99_MS = 20.0
TIMELINE_P99_MS = 20.0
SIZE_BYTES = 1_250_000
MAX_INSERT_RATE = 200.0  # rows/s one ORM thread sustains here with room to spare

LOAD_SQL = """
INSERT INTO "{table}" (id, camera_id, start, "end", size_bytes)
SELECT nextval(pg_get_serial_sequence('recordings_segment', 'id')), c,
       %(t0)s + n * %(step)s, %(t0)s + (n + 1) * %(step)s, %(size)s
FROM (SELECT n, unnest(%(ids)s::bigint[]) AS c
      FROM generate_series(%(n0)s::bigint, %(n1)s::bigint - 1) AS n) AS grid
"""  # the set-returning function in the select list keeps the rows time-major


def _load_day(conn, ids: list[int], day, seg_s: int, per_camera: int) -> tuple[int, float, float]:
    """Load ``per_camera`` segments of each camera from ``day`` into the day's partition;
    returns (rows, insert seconds, index build + attach seconds)."""
    from recordings import partitions

    name = partitions.day_name(day)
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
        if cur.fetchone()[0]:
            cur.execute(f'ALTER TABLE recordings_segment DETACH PARTITION "{name}"')
            cur.execute(f'DROP TABLE "{name}"')
        partitions.new_table(cur, name)
        started = time.perf_counter()
        rows = 0
        chunk = max(1, 2_000_000 // len(ids))  # a few M rows per statement
        for n0 in range(0, per_camera, chunk):
            cur.execute(LOAD_SQL.format(table=name), {
                "t0": day, "step": timedelta(seconds=seg_s), "size": SIZE_BYTES, "ids": ids,
                "n0": n0, "n1": min(per_camera, n0 + chunk)})  # fmt: skip
            rows += cur.rowcount
        loaded = time.perf_counter() - started
        cur.execute("SET maintenance_work_mem = '1GB'")
        partitions.attach_day(cur, name, day)
        cur.execute(f'VACUUM (ANALYZE) "{name}"')
        cur.execute("RESET maintenance_work_mem")
    return rows, loaded, time.perf_counter() - started - loaded


def _timeline(conn, table: str, camera_id: int, since, until) -> float:
    from recordings import queries
    from recordings.models import segment_lookback

    sql = queries.TIMELINE_SQL.replace("FROM recordings_segment", f'FROM "{table}"', 1)
    params = {"camera_id": camera_id, "since": since, "until": until,
              "lookback": since - segment_lookback(), "gap": queries.gap_tolerance()}  # fmt: skip
    started = time.perf_counter()
    with conn.cursor() as cur:
        cur.execute(sql, params)
        cur.fetchall()
    return time.perf_counter() - started


def _with_inserter(ids, seg_s, base, work):
    rate = min(MAX_INSERT_RATE, len(ids) / seg_s)
    inserter = _Inserter(ids, rate, seg_s, base)
    inserter.start()
    time.sleep(0.5)
    try:
        result = work()
    finally:
        inserter.stop()
    return result, inserter


def run(ctx: Context) -> Section:
    from django.utils import timezone

    from cidades.models import Camera
    from recordings import partitions, retention

    args = ctx.args
    section = Section(key="partitions", title="10. Segment index partitioning",
                      method=__doc__.split("\n\n", 1)[1])  # fmt: skip
    seg_s = args.segment_seconds
    cameras = args.partition_cameras
    hours = args.partition_hours
    base_hours = min(hours, args.partition_baseline_hours)
    per_camera = int(hours * 3600 // seg_s)
    base_per_camera = max(1, int(base_hours * 3600 // seg_s))
    full_day_rows = cameras * (86400 // seg_s)

    prefeitura = make_prefeitura("Bench partitions", plan="basico")
    template = Camera(prefeitura=prefeitura, name="x", code="x")
    template.source_url = "rtsp://127.0.0.1:9/partitions"
    Camera.objects.bulk_create(
        [Camera(prefeitura=prefeitura, name=f"Part {i}", code=f"part-{i}",
                source_url_encrypted=template.source_url_encrypted,
                source_url_masked=template.source_url_masked, recording_enabled=False)
         for i in range(cameras)], batch_size=1000,
    )  # fmt: skip
    ids = list(
        Camera.objects.filter(prefeitura=prefeitura).order_by("id").values_list("id", flat=True)
    )
    now = timezone.now()
    today = partitions.day_start(now)
    partitions.maintain(now)
    day = today - timedelta(days=prefeitura.retention_days + 3)  # wholly past the plan
    base_day = day - timedelta(days=1)
    conn = raw_connection()

    # -- baseline: the per-row DELETE path on another day of the same cameras ---------------
    b_rows, b_load, b_attach = _load_day(conn, ids, base_day, seg_s, base_per_camera)
    log(f"partitions: baseline day loaded, {b_rows:,} rows in {b_load + b_attach:.0f} s")
    cutoff = base_day + timedelta(days=1, minutes=30)

    def per_row() -> tuple[float, int]:
        purges: dict = {}
        since = retention._EPOCH
        started = time.perf_counter()
        while since is not None:
            since = retention._purge_window(ids, cutoff, since, purges, now)
        return time.perf_counter() - started, sum(p.segments for p in purges.values())

    (b_spent, b_deleted), b_ins = _with_inserter(ids, seg_s, today + timedelta(hours=1), per_row)
    b_rate = b_deleted / b_spent if b_spent else 0.0
    log(f"partitions: per-row path {b_deleted:,} rows in {b_spent:.1f} s")

    # -- the day: loaded, timeline measured, purged by dropping its partition ---------------
    rows, loaded, attached = _load_day(conn, ids, day, seg_s, per_camera)
    log(f"partitions: day loaded, {rows:,} rows in {loaded:.0f} + {attached:.0f} s")
    rng = random.Random(9)
    span = timedelta(seconds=per_camera * seg_s)
    room = max(1, int(span.total_seconds()) - 3600)
    picks = [(rng.choice(ids), day + timedelta(seconds=rng.randrange(room)))
             for _ in range(args.requests)]  # fmt: skip
    name = partitions.day_name(day)
    for cid, start in picks[: max(5, len(picks) // 10)]:  # warm-up
        _timeline(conn, "recordings_segment", cid, start, start + timedelta(days=1))
        _timeline(conn, name, cid, start, start + timedelta(days=1))
    parent_t, direct_t = [], []
    for cid, start in picks:
        parent_t.append(
            _timeline(conn, "recordings_segment", cid, start, start + timedelta(days=1))
        )
        direct_t.append(_timeline(conn, name, cid, start, start + timedelta(days=1)))
    t50, t99 = _pct(parent_t)
    d50, d99 = _pct(direct_t)

    def drop() -> tuple[float, int]:
        started = time.perf_counter()
        purges = retention.purge_expired(now)
        spent = time.perf_counter() - started
        return spent, sum(p.segments for p in purges if p.camera_id in set(ids))

    (spent, deleted), ins = _with_inserter(ids, seg_s, today + timedelta(hours=3), drop)
    log(f"partitions: drop path {deleted:,} rows in {spent:.1f} s")
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass(%s) IS NULL", [name])
        gone = cur.fetchone()[0]
    conn.close()

    i50, i99 = _pct(ins.latencies)
    bi50, bi99 = _pct(b_ins.latencies)
    scaled = "" if hours >= 24 else f" (a scaled day: {hours:g} h of the 24 loaded)"
    day_by_rows = spent * full_day_rows / max(1, deleted)
    b_day = full_day_rows / b_rate if b_rate else float("inf")
    section.tables.append((
        f"One day of {cameras:,} cameras: {rows:,} rows loaded{scaled} in {loaded:.0f} s "
        f"(bare insert) + {attached:.0f} s (indexes, attach, VACUUM ANALYZE). Baseline: "
        f"{b_rows:,} rows ({base_hours:g} h) of the day before.",
        ["measure", "value", "baseline (per-row DELETE path)", "ratio"],
        [["rows purged", f"{deleted:,}", f"{b_deleted:,}", ""],
         ["purge time", fmt(spent, 2, "s"), fmt(b_spent, 2, "s"), ""],
         ["purge throughput", fmt(deleted / spent, 0, "rows/s"), fmt(b_rate, 0, "rows/s"),
          fmt((deleted / spent) / b_rate if b_rate else 0, 1, "×")],
         [f"one full day of {cameras:,} cameras ({full_day_rows:,} rows)",
          fmt(spent if hours >= 24 else day_by_rows, 1, "s") + ("" if hours >= 24 else " (×)"),
          fmt(b_day, 1, "s"), fmt(b_day / (spent if hours >= 24 else day_by_rows), 1, "×")],
         ["insert p50 / p99 meanwhile", f"{fmt(i50, 2, 'ms')} / {fmt(i99, 2, 'ms')}",
          f"{fmt(bi50, 2, 'ms')} / {fmt(bi99, 2, 'ms')}", ""],
         ["inserts meanwhile", f"{ins.count:,}", f"{b_ins.count:,}", ""],
         ["partition dropped", "yes" if gone else "NO", "—", ""]],
    ))  # fmt: skip
    section.tables.append((
        f"Timeline of one camera-day (random camera and start within the loaded day), "
        f"{len(picks)} queries each after a warm-up, on a partition of {rows:,} rows.",
        ["measure", "p50", "p99", "baseline", "ratio p99"],
        [["timeline SQL, partitioned table", fmt(t50, 2, "ms"), fmt(t99, 2, "ms"),
          "same SQL on the day's partition", fmt(t99 / d99 if d99 else 0, 2, "×")],
         ["timeline SQL, the partition directly", fmt(d50, 2, "ms"), fmt(d99, 2, "ms"), "", ""]],
    ))  # fmt: skip
    if hours < 24:
        section.notes.append(
            f"(×) extrapolated from {deleted:,} rows: the drop path's time grows with the rows "
            "it counts for the audit (one scan of the detached day); detaching and dropping "
            "are constant."
        )
    slice_rows = cameras * 600 // seg_s
    section.notes.append(
        f"Steady state (docs/scaling-index.md): retention is exact to the 10-minute run, so the "
        f"day the cutoff is in is deleted per row as it expires, {slice_rows:,} rows a run at "
        f"{cameras:,} cameras: {fmt(slice_rows / b_rate if b_rate else 0, 1, 's')} a run at the "
        "baseline's rate; whole days go by the drop path (first run, downtime, plan "
        "downgrade, released lock, backlog), and each emptied day is dropped."
    )
    section.notes.append(
        "The 50 M-row timeline (every day of 30 partitioned) is section 3's `timeline SQL` "
        "row: section 3 loads its rows into day partitions too."
    )
    day_s = spent if hours >= 24 else day_by_rows
    section.verdicts += [
        Verdict(f"purge one day of {cameras:,} cameras" + ("" if hours >= 24 else " (extrap.)"),
                fmt(day_s, 1, "s"), fmt(b_day, 1, "s"), fmt(b_day / day_s, 1, "× faster"),
                f"< {PURGE_TARGET_S:g} s", day_s < PURGE_TARGET_S),
        Verdict("insert p99 during the purge", fmt(i99, 2, "ms"), fmt(bi99, 2, "ms"),
                fmt(i99 / bi99 if bi99 else 0, 2, "×"), f"< {INSERT_P99_MS:g} ms",
                i99 < INSERT_P99_MS),
        Verdict("timeline p99, one camera-day (partitioned)", fmt(t99, 2, "ms"),
                fmt(d99, 2, "ms"), fmt(t99 / d99 if d99 else 0, 2, "×"),
                f"< {TIMELINE_P99_MS:g} ms", t99 < TIMELINE_P99_MS),
    ]  # fmt: skip
    return section
