"""1. Recording cost: N cameras recorded by the project vs by plain FFmpeg processes.

One GStreamer test camera in replay mode serves N mounts (a clip encoded once, looped: no
per-client encoding, so 100 cameras fit; its own CPU is reported apart). The system
side is ``manage.py media_supervisor`` with default settings recording N cameras
(``enabled`` + ``recording_enabled``): its own CPU (supervisor loop and indexer), its FFmpeg
children (one per camera: 10 s MPEG-TS segments; live HLS only while someone watches, and
nobody does here) and, on the
bench's own embedded PostgreSQL, the whole database server's CPU during the window (its
indexing and heartbeat queries; background work included). The baseline side is N plain
``ffmpeg -rtsp_transport tcp -i URL -map 0:v -c copy -f segment`` (10 s MPEG-TS segments)
and the same database server window (then idle). After every camera writes and a warm-up,
CPU is the utime+stime delta (plus reaped children) of each side's process trees over the
window; memory is the PSS (``/proc/PID/smaps_rollup``) of the supervisor + its FFmpeg vs the
plain FFmpeg, averaged over samples in the window, per camera. The camera's own CPU is the
same for both sides and excluded (reported below). Runs alternate sides; medians of runs;
the CPU ratio is the median of each run pair's ratio.
CPU per indexed segment is the supervisor process's own CPU (its Python: the loop and the
indexer; not its FFmpeg) over the window divided by the segments indexed in it, alone and
with the database server's CPU of the same window.
Targets: CPU ≤ 1.10 × plain FFmpeg; supervisor + indexer ≤ 3 ms of CPU per indexed segment;
memory ≤ 15 MB PSS per recorded camera (at 100 cameras).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from bench.common import (
    Context,
    Section,
    Supervisor,
    Verdict,
    fmt,
    log,
    make_camera,
    make_prefeitura,
    median,
    own_cpu,
    process_tree,
    tree_cpu,
    tree_pss_mb,
    wait_for,
)

CPU_TARGET = 1.10
MEM_TARGET_MB = 15.0
SEGMENT_CPU_TARGET_MS = 3.0
SAMPLE_S = 5.0


def _writing(dirs: list[Path]) -> bool:
    return all(any(p.stat().st_size > 0 for p in directory.glob("*.ts")) for directory in dirs)


def _window(ctx: Context, roots, cam_pid: int, seconds: float, check=None) -> dict:
    """CPU and PSS of the process trees under ``roots()`` over ``seconds``."""
    pg = [ctx.postmaster_pid] if ctx.postmaster_pid else []
    cpu0, pg0, cam0 = tree_cpu(roots()), tree_cpu(pg), tree_cpu([cam_pid])
    own0 = own_cpu(roots()[0])
    t0 = time.monotonic()
    samples = []
    end = t0 + seconds
    while True:
        now = time.monotonic()
        if now >= end:
            break
        time.sleep(min(SAMPLE_S, end - now) if samples else min(1.0, end - now))
        if check is not None:
            check()
        pss, count = tree_pss_mb(roots())
        samples.append((pss, count))
    cpu1, pg1, cam1 = tree_cpu(roots()), tree_cpu(pg), tree_cpu([cam_pid])
    own1 = own_cpu(roots()[0])
    wall = time.monotonic() - t0
    return {
        "cpu": cpu1 - cpu0,
        "own": own1 - own0,  # the first root alone: the supervisor's Python
        "pg": (pg1 - pg0) if pg else 0.0,
        "camera": cam1 - cam0,
        "wall": wall,
        "pss": median(s[0] for s in samples),
        "procs": max(s[1] for s in samples),
    }


def _system_run(ctx: Context, cameras, count: int, cam_pid: int, tag: str) -> dict:
    from cidades.models import Camera
    from recordings.models import Segment

    args = ctx.args
    chosen = cameras[:count]
    Camera.objects.filter(pk__in=[c.pk for c in cameras]).update(recording_enabled=False)
    Camera.objects.filter(pk__in=[c.pk for c in chosen]).update(recording_enabled=True)
    rec_dir = ctx.data_dir / "rec" / tag
    live = ctx.data_dir / "live" / tag
    supervisor = Supervisor(ctx, name=f"supervisor-rec-{tag}", GTV_RECORDINGS_DIR=str(rec_dir),
                            GTV_LIVE_DIR=str(live)).start()  # fmt: skip
    try:
        dirs = [rec_dir / f"cam{c.pk}" / "incoming" for c in chosen]

        def writing() -> bool:
            supervisor.check()
            return all(d.exists() for d in dirs) and _writing(dirs)

        wait_for(writing, 240, 0.2, "supervisor recording every camera")
        time.sleep(args.warmup_seconds)
        before = Segment.objects.filter(camera__in=chosen).count()
        result = _window(ctx, lambda: [supervisor.pid], cam_pid, args.recording_seconds,
                         supervisor.check)  # fmt: skip
        result["segments"] = Segment.objects.filter(camera__in=chosen).count() - before
        result["ffmpeg"] = len(process_tree([supervisor.pid])) - 1
    finally:
        supervisor.stop()
        Camera.objects.filter(pk__in=[c.pk for c in chosen]).update(recording_enabled=False)
        shutil.rmtree(rec_dir, ignore_errors=True)
        shutil.rmtree(live, ignore_errors=True)
    return result


def _plain_run(ctx: Context, urls: list[str], cam_pid: int, tag: str) -> dict:
    from streaming.ffmpeg import ffmpeg_env, ffmpeg_exe

    args = ctx.args
    base = ctx.data_dir / "rec-plain" / tag
    procs = []
    dirs = []
    try:
        for i, url in enumerate(urls):
            out = base / f"c{i}"
            out.mkdir(parents=True, exist_ok=True)
            dirs.append(out)
            argv = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "warning",
                    "-rtsp_transport", "tcp", "-i", url, "-map", "0:v", "-c", "copy",
                    "-f", "segment", "-segment_time", "10", "-segment_format", "mpegts",
                    "-reset_timestamps", "1", "-strftime", "1",
                    str(out / "%Y%m%dT%H%M%SZ.ts")]  # fmt: skip
            procs.append(ctx.procs.spawn(argv, name=f"ffmpeg-plain-{tag}", env=ffmpeg_env()))

        def check() -> None:
            for proc in procs:
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"plain ffmpeg exited:\n{ctx.procs.log_tail(f'ffmpeg-plain-{tag}')}"
                    )

        def writing() -> bool:
            check()
            return _writing(dirs)

        wait_for(writing, 240, 0.2, "plain ffmpeg recording every camera")
        time.sleep(args.warmup_seconds)
        pids = [p.pid for p in procs]
        result = _window(ctx, lambda: pids, cam_pid, args.recording_seconds, check)
        result["segments"] = sum(len(list(d.glob("*.ts"))) for d in dirs)
        result["ffmpeg"] = len(procs)
    finally:
        for proc in procs:
            ctx.procs.stop(proc, sig=2, timeout=5)
        shutil.rmtree(base, ignore_errors=True)
    return result


def run(ctx: Context) -> Section:
    from testcamera import INSTALL_HINT, TestCamera

    args = ctx.args
    section = Section(key="recording", title="1. Recording cost",
                      method=__doc__.split("\n\n", 1)[1])  # fmt: skip
    if not TestCamera.available():
        raise RuntimeError(INSTALL_HINT)
    counts = args.camera_counts
    mounts = tuple(f"r{i}" for i in range(max(counts)))
    cam = TestCamera(mounts=mounts, width=args.rec_camera_width, height=args.rec_camera_height,
                     fps=args.camera_fps, replay=True)  # fmt: skip
    cam.start()
    try:
        prefeitura = make_prefeitura("Bench recording")
        cameras = [make_camera(prefeitura, f"rec-{m}", cam.url(m), recording=False)
                   for m in mounts]  # fmt: skip
        rows = []
        camera_load = []
        for n in counts:
            sys_runs, plain_runs, pair_ratios = [], [], []
            for k in range(args.recording_runs):
                tag = f"n{n}-k{k}"
                order = ["system", "plain"] if k % 2 == 0 else ["plain", "system"]
                for side in order:
                    if side == "system":
                        r = _system_run(ctx, cameras, n, cam._process.pid, tag)
                        sys_runs.append(r)
                    else:
                        r = _plain_run(ctx, [cam.url(m) for m in mounts[:n]], cam._process.pid, tag)
                        plain_runs.append(r)
                    log(f"recording N={n} run {k + 1} {side}: cpu {r['cpu']:.2f} s "
                        f"(+pg {r['pg']:.2f} s) in {r['wall']:.0f} s, pss {r['pss']:.0f} MB, "
                        f"camera {r['camera'] / r['wall'] * 100:.0f} % CPU")  # fmt: skip
                s, p = sys_runs[-1], plain_runs[-1]
                pair_ratios.append(
                    ((s["cpu"] + s["pg"]) / s["wall"]) / ((p["cpu"] + p["pg"]) / p["wall"])
                )
            rows.append(_summarize(n, sys_runs, plain_runs, pair_ratios))
            camera_load.append((n, median(r["camera"] / r["wall"] for r in sys_runs + plain_runs)))
    finally:
        cam.stop()
    return _report(section, args, rows, camera_load)


def _per_cam_hour(r: dict, n: int, key: str = "cpu") -> float:
    return r[key] / r["wall"] * 3600 / n


def _summarize(n: int, sys_runs, plain_runs, pair_ratios) -> dict:
    return {
        "n": n,
        "sys_proc": median(_per_cam_hour(r, n) for r in sys_runs),
        "sys_pg": median(_per_cam_hour(r, n, "pg") for r in sys_runs),
        "sys_own": median(_per_cam_hour(r, n, "own") for r in sys_runs),
        "sys_total": median((r["cpu"] + r["pg"]) / r["wall"] * 3600 / n for r in sys_runs),
        "plain_total": median((r["cpu"] + r["pg"]) / r["wall"] * 3600 / n for r in plain_runs),
        "plain_proc": median(_per_cam_hour(r, n) for r in plain_runs),
        "ratio": median(pair_ratios),
        "proc_ratio": median(
            _per_cam_hour(s, n) / _per_cam_hour(p, n)
            for s, p in zip(sys_runs, plain_runs, strict=True)
        ),  # fmt: skip
        "sys_pss": median(r["pss"] for r in sys_runs) / n,
        "plain_pss": median(r["pss"] for r in plain_runs) / n,
        "sys_total_pss": median(r["pss"] for r in sys_runs),
        "segments": median(r["segments"] for r in sys_runs),
        "seg_ms": median(r["own"] / r["segments"] * 1000 for r in sys_runs if r["segments"]),
        "seg_pg_ms": median(
            (s["own"] + max(0.0, s["pg"] / s["wall"] - p["pg"] / p["wall"]) * s["wall"])
            / s["segments"]
            * 1000
            for s, p in zip(sys_runs, plain_runs, strict=True)
            if s["segments"]
        ),  # fmt: skip
        "ffmpeg": max(r["ffmpeg"] for r in sys_runs),
        "runs": len(sys_runs),
    }


def _report(section: Section, args, rows: list[dict], camera_load) -> Section:
    section.columns = ["cameras",
                       "system CPU-s / camera-hour (FFmpeg + supervisor Python + PostgreSQL)",
                       "plain FFmpeg CPU-s / camera-hour", "CPU ratio", "procs-only ratio",
                       "system PSS / camera", "plain PSS / camera", "segments indexed / run",
                       "supervisor CPU / segment (+ its PostgreSQL)", "result"]  # fmt: skip
    for r in rows:
        ok_cpu = r["ratio"] <= CPU_TARGET
        ok_mem = r["sys_pss"] <= MEM_TARGET_MB
        # None: no segment closed in the window (a smoke run's seconds)
        ok_seg = r["seg_ms"] <= SEGMENT_CPU_TARGET_MS if r["seg_ms"] == r["seg_ms"] else None
        section.rows.append([
            str(r["n"]),
            f"{r['sys_total']:.1f} ({r['sys_proc'] - r['sys_own']:.1f} + {r['sys_own']:.1f} + "
            f"{r['sys_pg']:.1f})",
            f"{r['plain_total']:.1f}",
            fmt(r["ratio"], 2, "×"), fmt(r["proc_ratio"], 2, "×"),
            fmt(r["sys_pss"], 1, "MB"), fmt(r["plain_pss"], 1, "MB"),
            f"{r['segments']:.0f}",
            f"{fmt(r['seg_ms'], 2, 'ms')} ({fmt(r['seg_pg_ms'], 2, 'ms')})",
            f"CPU {'PASS' if ok_cpu else 'MISS'}, per segment "
            f"{'n/a' if ok_seg is None else 'PASS' if ok_seg else 'MISS'}, "
            f"memory {'PASS' if ok_mem else 'MISS'}",
        ])  # fmt: skip
        section.verdicts.append(
            Verdict(
                f"supervisor + indexer CPU per segment, {r['n']} camera(s)",
                fmt(r["seg_ms"], 2, "ms"),
                "—",
                "—",
                f"≤ {SEGMENT_CPU_TARGET_MS:g} ms",
                ok_seg,
            )
        )
        section.verdicts.append(Verdict(
            f"CPU, {r['n']} camera(s)", fmt(r["sys_total"], 1, "CPU-s/cam-h"),
            fmt(r["plain_total"], 1, "CPU-s/cam-h"), fmt(r["ratio"], 2, "×"),
            f"≤ {CPU_TARGET:.2f}×", ok_cpu))  # fmt: skip
        section.verdicts.append(Verdict(
            f"memory (PSS), {r['n']} camera(s)", fmt(r["sys_pss"], 1, "MB/camera"),
            fmt(r["plain_pss"], 1, "MB/camera"), fmt(r["sys_pss"] / r["plain_pss"], 2, "×"),
            f"≤ {MEM_TARGET_MB:g} MB/camera", ok_mem))  # fmt: skip
    if len(rows) >= 2:
        a, b = rows[0], rows[-1]
        marginal = (b["sys_total_pss"] - a["sys_total_pss"]) / (b["n"] - a["n"])
        section.notes.append(f"Marginal PSS of one more recorded camera (from {a['n']} to "
                             f"{b['n']}): {marginal:.1f} MB.")  # fmt: skip
    loads = ", ".join(f"N={n}: {load * 100:.0f} % of a core" for n, load in camera_load)
    section.notes += [
        f"{args.recording_runs} run(s) per side and size, {args.recording_seconds:g} s windows "
        f"after {args.warmup_seconds:g} s of warm-up; test camera {args.rec_camera_width}x"
        f"{args.rec_camera_height} at {args.camera_fps} fps, 1 Mbit/s, keyframe every 30 frames.",
        f"Test camera (GStreamer) CPU, excluded from both sides: {loads}.",
        "PostgreSQL CPU is the bench's own embedded server as a whole during each window "
        "(background processes included, the same for both sides).",
    ]
    return section
