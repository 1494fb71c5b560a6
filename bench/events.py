"""4. Live events: one stream status change fanned out to hundreds of ``ws/events`` clients.

``--clients`` WebSocket clients (one asyncio process, ``bench/fanout_clients.py``) connect to
Daphne's ``ws/events?token=<JWT>`` as users of one prefeitura. A separate process
(``bench/publisher.py``) commits ``streaming.services.set_stream_status`` — the media
supervisor's call — and notes ``time.monotonic()`` right after COMMIT (an ``on_commit`` hook
registered before the service's own); each client notes when the ``stream.status`` message
carrying that change arrives. Latency = arrival − commit, for every client and every change;
p50/p99 per run, median of the runs. Done with the default layer (channels_postgres on the
project database) and with channels_redis (``REDIS_URL=redis://127.0.0.1:6379/15``), each
with its own Daphne. Baselines, with the same client process: a raw PostgreSQL ``NOTIFY``
to as many ``LISTEN`` connections, and a Redis ``PUBLISH`` to as many subscribers.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import time

from bench.common import (
    PYTHON,
    ROOT,
    Context,
    Daphne,
    Section,
    Verdict,
    conninfo,
    fmt,
    log,
    make_camera,
    make_prefeitura,
    make_user,
    median,
    percentile,
    token_for,
)

TARGET_P99_MS = 250.0
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
INTERVAL_S = 0.3


def _read_line(proc: subprocess.Popen, timeout: float, what: str) -> str:
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        raise TimeoutError(f"{what}: no answer within {timeout:g} s")
    line = proc.stdout.readline().decode().strip()
    if not line:
        raise RuntimeError(f"{what}: exited ({proc.poll()})")
    return line


class _Pipe:
    """A helper process driven through stdin/stdout lines."""

    def __init__(self, ctx: Context, name: str, argv: list[str], env: dict) -> None:
        self.ctx = ctx
        self.name = name
        self.proc = ctx.procs.spawn(argv, name=name, env=env, stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE)  # fmt: skip

    def ready(self, timeout: float) -> str:
        try:
            return _read_line(self.proc, timeout, self.name)
        except (TimeoutError, RuntimeError) as exc:
            raise RuntimeError(f"{exc}\n{self.ctx.procs.log_tail(self.name)}") from exc

    def send(self, line: str) -> None:
        self.proc.stdin.write(f"{line}\n".encode())
        self.proc.stdin.flush()

    def ask(self, line: str, timeout: float = 30) -> str:
        self.send(line)
        return _read_line(self.proc, timeout, self.name)

    def finish(self, timeout: float = 60) -> None:
        try:
            self.send("DONE")
            self.proc.wait(timeout)
        except (BrokenPipeError, subprocess.TimeoutExpired):
            pass
        self.ctx.procs.stop(self.proc, timeout=5)


def _measure(ctx: Context, label: str, swarm_argv: list[str], pub_argv: list[str], env: dict,
             clients: int) -> dict:  # fmt: skip
    """Start the swarm and the publisher, send the changes, return per-run latencies."""
    args = ctx.args
    out = ctx.path("events") / f"{label}.json"
    swarm = _Pipe(ctx, f"swarm-{label}", [*swarm_argv, "--out", str(out)], env)
    started = time.monotonic()
    swarm.ready(timeout=180)
    connect_s = time.monotonic() - started
    publisher = _Pipe(ctx, f"publisher-{label}", pub_argv, env)
    publisher.ready(timeout=60)
    runs = []
    try:
        publisher.ask("bench-warmup")  # first change: connections, camera status event
        time.sleep(0.2 if ctx.smoke else 1.0)
        for run in range(args.event_runs):
            commits = {}
            for i in range(args.events):
                tag = f"bench-{label}-{run}-{i}"
                reply = publisher.ask(tag)
                commits[tag] = float(reply.split()[1])
                time.sleep(INTERVAL_S)
            runs.append(commits)
        time.sleep(0.5 if ctx.smoke else 2.0)
    finally:
        publisher.finish()
        swarm.finish()
    received = json.loads(out.read_text())
    results = []
    for commits in runs:
        latencies = [
            (arrival - at) * 1000
            for tag, at in commits.items()
            for arrival in received.get(tag, [])
        ]
        expected = clients * len(commits)
        results.append({
            "p50": percentile(latencies, 50), "p99": percentile(latencies, 99),
            "max": max(latencies) if latencies else float("nan"),
            "delivered": len(latencies) / expected if expected else 0.0,
        })  # fmt: skip
    return {"runs": results, "connect_s": connect_s}


def _redis_available() -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping())
    except Exception:
        return False


def _summary(result: dict) -> dict:
    runs = result["runs"]
    return {key: median(r[key] for r in runs) for key in ("p50", "p99", "max", "delivered")}


def run(ctx: Context) -> Section:
    from django.db import connection

    from streaming import services

    args = ctx.args
    section = Section(key="events", title="4. Live events fan-out",
                      method=__doc__.split("\n\n", 1)[1])  # fmt: skip
    prefeitura = make_prefeitura("Bench events")
    user = make_user(prefeitura, "events")
    camera = make_camera(prefeitura, "events-cam", "rtsp://127.0.0.1:9/events")
    stream = services.start_stream(camera, actor=None)
    token = token_for(user)
    clients = args.clients
    results: dict[str, dict] = {}
    redis_up = _redis_available()
    layers = [("channels_postgres", {}), ("channels_redis", {"REDIS_URL": REDIS_URL})]
    if not redis_up:
        layers = layers[:1]
        section.notes.append(f"No Redis answered at {REDIS_URL}: channels_redis not measured.")

    for layer, extra in layers:
        daphne = Daphne(ctx, name=f"daphne-{layer}", **extra).start()
        try:
            url = f"ws://127.0.0.1:{daphne.port}/ws/events?token={token}"
            swarm = [PYTHON, "-m", "bench.fanout_clients", "--mode", "ws", "--clients",
                     str(clients), "--target", url]  # fmt: skip
            pub = [PYTHON, "-m", "bench.publisher", "--stream-id", str(stream.pk)]
            log(f"events: {layer}, {clients} WebSocket clients")
            results[layer] = _measure(ctx, layer, swarm, pub, ctx.env(**extra), clients)
        finally:
            daphne.stop()

    # Baselines: the same fan-out by the servers themselves.
    pg_clients = clients
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('max_connections')::int, count(*) "
                       "FROM pg_stat_activity")  # fmt: skip
        max_conn, used = cursor.fetchone()
    if max_conn - used - 20 < clients:
        pg_clients = max(1, max_conn - used - 20)
        section.notes.append(f"PostgreSQL allows {max_conn} connections: the NOTIFY baseline "
                             f"used {pg_clients} listeners.")  # fmt: skip
    channel = f"gtv_bench_{os.getpid()}"
    baselines = [("pg_notify", "pg", f"{conninfo()}|{channel}", pg_clients)]
    if redis_up:
        baselines.append(("redis_publish", "redis", f"{REDIS_URL}|{channel}", clients))
    for label, mode, target, n in baselines:
        log(f"events: baseline {label}, {n} listeners")
        swarm = [PYTHON, "-m", "bench.fanout_clients", "--mode", mode, "--clients", str(n),
                 "--target", target]  # fmt: skip
        pub = [PYTHON, "-m", "bench.publisher", "--mode", mode, "--target", target]
        results[label] = _measure(ctx, label, swarm, pub, ctx.env(), n)

    s = {name: _summary(r) for name, r in results.items()}
    baseline_of = {"channels_postgres": "pg_notify", "channels_redis": "redis_publish"}
    section.columns = ["path", "p50", "p99", "max", "delivered", "baseline p50 / p99",
                       "ratio p99", "target p99", "result"]  # fmt: skip
    for name in ("channels_postgres", "channels_redis", "pg_notify", "redis_publish"):
        if name not in s:
            continue
        v = s[name]
        base = baseline_of.get(name)
        row = [name, fmt(v["p50"], 1, "ms"), fmt(v["p99"], 1, "ms"), fmt(v["max"], 1, "ms"),
               f"{v['delivered'] * 100:.2f} %"]  # fmt: skip
        if base:
            b = s[base]
            ok = v["p99"] < TARGET_P99_MS and v["delivered"] >= 0.999
            row += [f"{fmt(b['p50'], 1, 'ms')} / {fmt(b['p99'], 1, 'ms')}",
                    fmt(v["p99"] / b["p99"], 1, "×"), f"< {TARGET_P99_MS:g} ms",
                    "PASS" if ok else "MISS"]  # fmt: skip
            section.verdicts.append(Verdict(
                f"{name}: commit → {clients} clients p99", fmt(v["p99"], 1, "ms"),
                f"{base} {fmt(b['p99'], 1, 'ms')}", fmt(v["p99"] / b["p99"], 1, "×"),
                f"< {TARGET_P99_MS:g} ms, all delivered", ok))  # fmt: skip
        else:
            row += ["—", "—", "—", "baseline"]
        section.rows.append(row)
    section.notes.append(
        f"{args.event_runs} runs × {args.events} status changes, {INTERVAL_S:g} s apart; "
        "figures are medians over the runs of each run's percentile over all clients × changes."
    )
    for name, r in results.items():
        section.notes.append(f"{name}: {r['connect_s']:.1f} s to connect every listener.")
    services.stop_stream(stream, actor=None)
    return section


__all__ = ["run", "ROOT"]
