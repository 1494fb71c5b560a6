"""3. Footage index at city scale: ``/timeline`` and ``/recordings/search`` on tens of millions
of segment rows, through the API and as raw SQL; retention purge with inserts going on.

Rows go into the project's real ``recordings_segment`` table (migrated bench database) with
one ``INSERT ... SELECT generate_series`` over the cameras: ``--segment-seconds`` segments
(default 10 s, the project's default, so a camera-day is 8,640 rows: the timeline's worst
case), time-major like a real recorder (each camera's rows are spread over the heap), a
one-minute hole every ~11 h per camera (several spans a day). A calibration load of a
fraction of the rows measures "insert with the indexes in place" against "insert bare,
then build the indexes"; the full load uses the faster way. The foreign key to the camera is
dropped for the load and added back (validated) afterwards; ``VACUUM ANALYZE`` follows.

Queries: each request asks for a different random camera-day (timeline) or camera-hour
(search, ``page_size=500`` so the whole hour comes back), as an ``operador`` with a JWT,
through Daphne with a keep-alive connection. The raw-SQL baseline sends the statements the
view sends for ``recordings_segment`` (for search: captured from the view itself) through
psycopg, for other random picks of the same kind. The fixed HTTP cost is ``GET
/api/auth/me/`` (JWT check, one query) on the same connection. Target: timeline SQL p99 <
20 ms; API ≤ 2 × raw SQL + the fixed HTTP cost, at p50 and at p99.

Retention: ``recordings.retention.purge_expired`` (what ``manage.py apply_retention`` runs)
purges the oldest day of every camera while a thread inserts segment rows through the ORM
(the indexer's way) at a city's rate; baseline: one SQL ``DELETE`` of the next day. The table
is partitioned by day (section 10): the rows are loaded into their day's partition, and a day
wholly past the plan is purged by dropping its partition.
"""

from __future__ import annotations

import math
import random
import threading
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from bench.common import (
    Context,
    Daphne,
    Http,
    Section,
    Verdict,
    fmt,
    log,
    make_prefeitura,
    make_user,
    median,
    percentile,
    raw_connection,
    token_for,
)

TABLE = "recordings_segment"
SIZE_BYTES = 1_250_000
TIMELINE_P99_MS = 20.0
ROUNDS = 3
HOLE_EVERY = 4096  # segments between one-minute holes, per camera
HOLE_LEN = 6

INSERT_SQL = f"""
INSERT INTO {TABLE} (camera_id, start, "end", size_bytes)
SELECT c, %(t0)s + n * %(step)s, %(t0)s + (n + 1) * %(step)s, %(size)s
FROM (
    SELECT n, unnest(%(ids)s::bigint[]) AS c
    FROM generate_series(%(n0)s::bigint, %(n1)s::bigint - 1) AS n
) AS grid
WHERE (n + c * 7919) %% {HOLE_EVERY} >= {HOLE_LEN}
"""  # noqa: S608 - constant table name
# The set-returning function in the select list (ProjectSet) keeps the rows time-major: every
# camera's n-th segment, then the (n+1)-th, like a live recorder. A plain cross join of
# generate_series and unnest is planned camera-major, which would cluster each camera's rows.


def _constraints(cur) -> list[tuple[str, str, str]]:
    cur.execute(
        "SELECT conname, contype, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = %s::regclass AND contype IN ('p', 'u', 'f')",
        [TABLE],
    )
    return list(cur.fetchall())


def _plain_indexes(cur) -> list[tuple[str, str]]:
    cur.execute(
        "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x JOIN pg_class i ON "
        "i.oid = x.indexrelid WHERE x.indrelid = %s::regclass AND NOT EXISTS "
        "(SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)",
        [TABLE],
    )
    return list(cur.fetchall())


class Loader:
    """Loads synthetic rows, dropping and restoring the table's constraints as needed."""

    def __init__(self, conn, ids: list[int], t0: datetime, step_s: int) -> None:
        self.conn = conn
        self.ids = ids
        self.t0 = t0
        self.step = timedelta(seconds=step_s)
        with conn.cursor() as cur:
            self.constraints = _constraints(cur)
            self.indexes = _plain_indexes(cur)

    def _exec(self, sql: str, params=None) -> float:
        started = time.perf_counter()
        with self.conn.cursor() as cur:
            cur.execute(sql, params)
        return time.perf_counter() - started

    def drop(self, kinds: str) -> None:
        for name, kind, _definition in self.constraints:
            if kind in kinds:
                self._exec(f'ALTER TABLE {TABLE} DROP CONSTRAINT "{name}"')
        if "i" in kinds:
            for name, _definition in self.indexes:
                self._exec(f'DROP INDEX "{name}"')

    def restore(self, kinds: str) -> dict[str, float]:
        spent = {}
        self._exec("SET maintenance_work_mem = '1GB'")
        for name, kind, definition in self.constraints:
            if kind in kinds:
                spent[name] = self._exec(
                    f'ALTER TABLE {TABLE} ADD CONSTRAINT "{name}" {definition}'
                )
        if "i" in kinds:
            for name, definition in self.indexes:
                # a partitioned table's index: built on every partition, not ON ONLY the parent
                spent[name] = self._exec(definition.replace(" ON ONLY ", " ON ", 1))
            from recordings import partitions

            with self.conn.cursor() as cur:
                partitions.name_partition_indexes(cur)
        self._exec("RESET maintenance_work_mem")
        return spent

    def insert(self, n0: int, n1: int, ids: list[int] | None = None) -> tuple[float, int]:
        started = time.perf_counter()
        with self.conn.cursor() as cur:
            params = {"t0": self.t0, "step": self.step, "size": SIZE_BYTES, "n0": n0, "n1": n1,
                      "ids": ids or self.ids}  # fmt: skip
            cur.execute(INSERT_SQL, params)
            rows = cur.rowcount
        return time.perf_counter() - started, rows

    def truncate(self) -> None:
        self._exec(f"TRUNCATE {TABLE}")


def _pct(values: list[float]) -> tuple[float, float]:
    return percentile(values, 50) * 1000, percentile(values, 99) * 1000


def run(ctx: Context) -> Section:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from rest_framework.test import APIClient

    from cidades.models import Camera
    from recordings import queries
    from recordings.models import segment_lookback

    args = ctx.args
    section = Section(key="index", title="3. Footage index at city scale",
                      method=__doc__.split("\n\n", 1)[1])  # fmt: skip
    seg_s = args.segment_seconds
    per_day = 86400 // seg_s
    cameras = args.index_cameras or max(2, round(args.segments_rows / (args.days * per_day)))
    per_camera = max(per_day // 4, args.segments_rows // cameras)
    full_days = per_camera // per_day
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    t0 = today - timedelta(days=math.ceil(per_camera / per_day))

    prefeitura = make_prefeitura("Bench index", plan="premium")
    operador = make_user(prefeitura, "index")
    template = Camera(prefeitura=prefeitura, name="x", code="x")
    template.source_url = "rtsp://127.0.0.1:9/index"
    Camera.objects.bulk_create(
        [Camera(prefeitura=prefeitura, name=f"Index {i}", code=f"index-{i}",
                source_url_encrypted=template.source_url_encrypted,
                source_url_masked=template.source_url_masked, recording_enabled=False)
         for i in range(cameras)]
    )  # fmt: skip
    ids = list(
        Camera.objects.filter(prefeitura=prefeitura).order_by("id").values_list("id", flat=True)
    )
    conn = raw_connection()
    # the table is partitioned by day (recordings.partitions): the days of the load get theirs
    from recordings import partitions

    partitions.ensure_range(t0, today + timedelta(days=partitions.DAYS_AHEAD))
    loader = Loader(conn, ids, t0, seg_s)

    # -- calibration: with indexes vs build after ------------------------------------------
    cal_n = max(per_day // 8, min(per_camera // 10, 2_000_000 // cameras))
    loader.drop("f")
    with_idx, cal_rows = loader.insert(0, cal_n)
    loader.truncate()
    loader.drop("pui")
    bare, _ = loader.insert(0, cal_n)
    build = sum(loader.restore("pui").values())
    loader.truncate()
    build_after = bare + build < with_idx
    log(f"index: calibration {cal_rows} rows: with indexes {with_idx:.1f} s, "
        f"bare {bare:.1f} s + build {build:.1f} s")  # fmt: skip

    # -- the full load ---------------------------------------------------------------------
    log(f"index: loading {cameras} cameras x {per_camera} segments ({t0:%Y-%m-%d}..)")
    steps: list[list[str]] = []
    load_started = time.perf_counter()
    if build_after:
        loader.drop("pui")
    elapsed, rows = loader.insert(0, per_camera)
    steps.append(["INSERT ... SELECT generate_series", fmt(elapsed, 1, "s"),
                  f"{rows:,} rows, {rows / elapsed:,.0f} rows/s"])  # fmt: skip
    if build_after:
        for name, spent in loader.restore("pui").items():
            steps.append([f"build {name}", fmt(spent, 1, "s"), ""])
    for name, spent in loader.restore("f").items():
        steps.append([f"add + validate {name}", fmt(spent, 1, "s"), ""])
    spent = loader._exec(f"VACUUM (ANALYZE) {TABLE}")
    steps.append(["VACUUM (ANALYZE)", fmt(spent, 1, "s"), "sets the visibility map"])
    load_total = time.perf_counter() - load_started
    with conn.cursor() as cur:
        cur.execute("SELECT pg_table_size(%s), pg_indexes_size(%s)", [TABLE, TABLE])
        heap, idx = cur.fetchone()
    steps.append(["total", fmt(load_total, 1, "s"),
                  f"heap {heap / 2**30:.2f} GiB, indexes {idx / 2**30:.2f} GiB"])  # fmt: skip
    log(f"index: loaded {rows:,} rows in {load_total:.0f} s")
    section.tables.append((
        f"Generation of {rows:,} rows ({cameras} cameras × {per_camera:,} segments of {seg_s} s, "
        f"{per_camera * seg_s / 86400:.1f} days). Calibration on {cal_rows:,} rows: insert with "
        f"the indexes in place {with_idx:.1f} s; bare insert {bare:.1f} s + index build "
        f"{build:.1f} s = {bare + build:.1f} s → the full load "
        f"{'builds the indexes after' if build_after else 'inserts with the indexes in place'}.",
        ["step", "time", ""], steps,
    ))  # fmt: skip

    # -- queries ---------------------------------------------------------------------------
    daphne = Daphne(ctx, name="daphne-index").start()
    token = token_for(operador)
    http = Http(daphne.url, token)
    client = APIClient(HTTP_HOST="127.0.0.1")  # an allowed host (ALLOWED_HOSTS)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    rng = random.Random(6)
    days_available = max(1, full_days)

    def camera_day():
        day = t0 + timedelta(days=rng.randrange(days_available))
        return rng.choice(ids), day, day + timedelta(days=1)

    def camera_hour():
        hour = t0 + timedelta(hours=rng.randrange(days_available * 24))
        return rng.choice(ids), hour, hour + timedelta(hours=1)

    def q(start, end, **extra) -> str:
        return urlencode({**extra, "start": start.isoformat(), "end": end.isoformat()})

    def api_timeline() -> float:
        cid, start, end = camera_day()
        return http.timed_get(f"/api/cameras/{cid}/timeline?{q(start, end)}")

    def raw_timeline() -> float:
        cid, since, until = camera_day()
        params = {
            "camera_id": cid,
            "since": since,
            "until": until,
            "lookback": since - segment_lookback(),
            "gap": queries.gap_tolerance(),
        }
        started = time.perf_counter()
        with conn.cursor() as cur:
            cur.execute(queries.TIMELINE_SQL, params)
            cur.fetchall()
        return time.perf_counter() - started

    def api_search() -> float:
        cid, start, end = camera_hour()
        return http.timed_get(
            f"/api/recordings/search?{q(start, end, camera_id=cid, page_size=500)}"
        )

    def search_statements() -> list[str]:
        cid, start, end = camera_hour()
        with CaptureQueriesContext(connection) as captured:
            response = client.get(
                f"/api/recordings/search?{q(start, end, camera_id=cid, page_size=500)}"
            )
        assert response.status_code == 200, response.content[:300]
        return [item["sql"] for item in captured.captured_queries if TABLE in item["sql"]]

    def raw_search(statements: list[str]) -> float:
        started = time.perf_counter()
        with conn.cursor() as cur:
            for sql in statements:
                cur.execute(sql)
                cur.fetchall()
        return time.perf_counter() - started

    def me() -> float:
        return http.timed_get("/api/auth/me/")

    warm = max(5, args.requests // 10)
    for _ in range(warm):
        api_timeline(), raw_timeline(), api_search(), raw_search(search_statements()), me()
    rounds = 1 if ctx.smoke else ROUNDS
    kinds = ["timeline API", "timeline SQL", "search API", "search SQL", "HTTP fixed (/me)"]
    per_round: dict[str, list[tuple[float, float]]] = {k: [] for k in kinds}
    search_sql_count = 0
    for r in range(rounds):
        samples: dict[str, list[float]] = {k: [] for k in kinds}
        prepared = [search_statements() for _ in range(args.requests)]
        search_sql_count = len(prepared[0])
        for i in range(args.requests):
            samples["timeline API"].append(api_timeline())
            samples["timeline SQL"].append(raw_timeline())
            samples["search API"].append(api_search())
            samples["search SQL"].append(raw_search(prepared[i]))
            samples["HTTP fixed (/me)"].append(me())
        for kind in kinds:
            per_round[kind].append(_pct(samples[kind]))
        log(f"index: query round {r + 1}/{rounds} done")
    p = {k: (median(a for a, _ in v), median(b for _, b in v)) for k, v in per_round.items()}
    http.close()
    daphne.stop()

    def row(kind, baseline_kind=None):
        p50, p99 = p[kind]
        if baseline_kind is None:
            return [kind, fmt(p50, 2, "ms"), fmt(p99, 2, "ms"), "", "", ""]
        b50, b99 = p[baseline_kind]
        return [kind, fmt(p50, 2, "ms"), fmt(p99, 2, "ms"), baseline_kind,
                fmt(p50 / b50, 2, "×"), fmt(p99 / b99, 2, "×")]  # fmt: skip

    section.tables.append((
        f"Latency, median over {rounds} rounds of the per-round p50/p99 of {args.requests} "
        f"requests each (after {warm} warm-up requests of each kind).",
        ["measure", "p50", "p99", "baseline", "ratio p50", "ratio p99"],
        [row("timeline SQL"), row("timeline API", "timeline SQL"), row("search SQL"),
         row("search API", "search SQL"), row("HTTP fixed (/me)")],
    ))  # fmt: skip
    t50, t99 = p["timeline SQL"]
    fixed50, fixed99 = p["HTTP fixed (/me)"]
    section.verdicts.append(
        Verdict(
            "timeline SQL p99 (one camera-day)",
            fmt(t99, 2, "ms"),
            "—",
            "—",
            f"< {TIMELINE_P99_MS:g} ms",
            t99 < TIMELINE_P99_MS,
        )
    )
    for name, sql_kind in (("timeline", "timeline SQL"), ("search", "search SQL")):
        api50, api99 = p[f"{name} API"]
        s50, s99 = p[sql_kind]
        for label, api, sql, fixed in (("p50", api50, s50, fixed50), ("p99", api99, s99, fixed99)):
            limit = 2 * sql + fixed
            section.verdicts.append(Verdict(
                f"{name} API {label}", fmt(api, 2, "ms"),
                f"SQL {fmt(sql, 2, 'ms')} + HTTP {fmt(fixed, 2, 'ms')}",
                fmt(api / sql, 2, "× SQL"), f"≤ 2×SQL + HTTP = {fmt(limit, 2, 'ms')}",
                api <= limit,
            ))  # fmt: skip
    with conn.cursor() as cur:
        cid, since, until = camera_day()
        params = {
            "camera_id": cid,
            "since": since,
            "until": until,
            "lookback": since - segment_lookback(),
            "gap": queries.gap_tolerance(),
        }
        cur.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + queries.TIMELINE_SQL, params)
        plan = "\n".join(r[0] for r in cur.fetchall())
        cur.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + search_statements()[-1])
        search_plan = "\n".join(r[0] for r in cur.fetchall())
    section.extra += ["<details><summary>EXPLAIN ANALYZE of the timeline query (one camera-day)"
                      "</summary>", "", "```", plan, "```", "", "</details>", "",
                      "<details><summary>EXPLAIN ANALYZE of the search page query (one "
                      "camera-hour)</summary>", "", "```", search_plan, "```", "",
                      "</details>"]  # fmt: skip
    section.notes.append(
        f"The search request runs {search_sql_count} statement(s) on `{TABLE}` (the page; "
        "a COUNT only when the page is full); the raw baseline replays them."
    )

    # -- retention with inserts going on ---------------------------------------------------
    retention_days = prefeitura.retention_days
    rate = max(100.0, cameras / seg_s)
    purge_runs = min(args.purge_runs, max(1, full_days // 2))
    purge_rows: list[float] = []
    raw_rows: list[float] = []
    insert_lat: list[float] = []
    purge_notes = []
    for k in range(purge_runs):
        retention_day, raw_day = 2 * k, 2 * k + 1
        order = ["retention", "raw"] if k % 2 == 0 else ["raw", "retention"]
        for what in order:
            inserter = _Inserter(
                # rows of their own: an hour after today per run and side (a run lasts minutes)
                ids,
                rate,
                seg_s,
                today + timedelta(days=1, hours=2 * k + (what == "raw")),
            )
            inserter.start()
            time.sleep(0.5)
            if what == "retention":
                spent, deleted = _purge_retention(t0, retention_day, retention_days)
                purge_rows.append(deleted / spent)
            else:
                spent, deleted = _purge_raw(conn, ids, t0, raw_day)
                raw_rows.append(deleted / spent)
            inserter.stop()
            insert_lat += inserter.latencies
            purge_notes.append(
                f"{what} day {raw_day if what == 'raw' else retention_day}: "
                f"{deleted:,} rows in {spent:.1f} s, {inserter.count} inserts"
            )
            log(f"index: {purge_notes[-1]}")
    ret, raw = median(purge_rows), median(raw_rows)
    i50, i99 = _pct(insert_lat)
    section.tables.append((
        f"Retention purge of one day of every camera ({cameras} cameras), median of {purge_runs} "
        f"runs, while a thread inserts {rate:.0f} segment rows/s.",
        ["measure", "value", "baseline (one SQL DELETE)", "ratio"],
        [["purge throughput", fmt(ret, 0, "rows/s"), fmt(raw, 0, "rows/s"), fmt(ret / raw, 2, "×")],
         ["one day of all cameras", fmt(per_day * cameras / ret, 1, "s"),
          fmt(per_day * cameras / raw, 1, "s"), ""],
         ["insert latency during purges", f"p50 {fmt(i50, 2, 'ms')}", f"p99 {fmt(i99, 2, 'ms')}",
          ""]],
    ))  # fmt: skip
    section.verdicts.append(Verdict("retention purge, one day of all cameras",
                                    fmt(per_day * cameras / ret, 1, "s"),
                                    fmt(per_day * cameras / raw, 1, "s"),
                                    fmt(ret / raw, 2, "× faster") if ret >= raw
                                    else fmt(raw / ret, 2, "× slower"), "(no target)",
                                    None))  # fmt: skip
    section.notes += purge_notes
    conn.close()
    return section


def _purge_retention(t0: datetime, day: int, retention_days: int) -> tuple[float, int]:
    from recordings import retention

    now = t0 + timedelta(days=day + 1 + retention_days)
    started = time.perf_counter()
    purges = retention.purge_expired(now)
    spent = time.perf_counter() - started
    return spent, sum(p.segments for p in purges)


def _purge_raw(conn, ids: list[int], t0: datetime, day: int) -> tuple[float, int]:
    since, cutoff = t0 + timedelta(days=day), t0 + timedelta(days=day + 1)
    started = time.perf_counter()
    with conn.cursor() as cur:
        cur.execute(f'DELETE FROM {TABLE} WHERE camera_id = ANY(%s) AND start >= %s '  # noqa: S608
                    f'AND start < %s AND "end" <= %s', [ids, since, cutoff, cutoff])  # fmt: skip
        deleted = cur.rowcount
    return time.perf_counter() - started, deleted


class _Inserter(threading.Thread):
    """Inserts segment rows through the ORM at ``rate`` rows/s (its own DB connection)."""

    def __init__(self, ids: list[int], rate: float, seg_s: int, base: datetime) -> None:
        super().__init__(daemon=True)
        self.ids = ids
        self.rate = rate
        self.seg_s = seg_s
        self.base = base
        self.halt = threading.Event()
        self.latencies: list[float] = []
        self.count = 0

    def run(self) -> None:
        from django.db import connection

        from recordings.models import Segment

        try:
            started = time.monotonic()
            while not self.halt.is_set():
                camera_id = self.ids[self.count % len(self.ids)]
                k = self.count // len(self.ids)
                start = self.base + timedelta(seconds=self.seg_s * k)
                t = time.perf_counter()
                Segment.objects.create(camera_id=camera_id, start=start,
                                       end=start + timedelta(seconds=self.seg_s),
                                       size_bytes=SIZE_BYTES)  # fmt: skip
                self.latencies.append(time.perf_counter() - t)
                self.count += 1
                delay = started + self.count / self.rate - time.monotonic()
                if delay > 0:
                    self.halt.wait(delay)
        finally:
            connection.close()

    def stop(self) -> None:
        self.halt.set()
        self.join(30)
