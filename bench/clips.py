"""2. Clip export: the clip job vs ``cat`` of the same segment files to the same disk.

Segments are real MPEG-TS files (H.264 encoded once by FFmpeg from a test pattern at the
chosen bitrate, 2 s GOP, 10 s each, copied per segment), indexed as ``Segment`` rows of a
camera. The clip is created with ``recordings.services.create_clip`` and built by calling
``recordings.clips.build_clip`` — the function the procrastinate worker's
``recordings.build_clip`` job runs — in this process, timed from claim to DONE (keyframe
probe, concat + faststart, duration check, SHA-256). The baseline is ``cat`` of the same
files into one file in the clips directory. Both read warm page cache and write without
fsync; throughput = bytes of the segment files / wall time.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.common import (
    Context,
    Section,
    Verdict,
    fmt,
    log,
    make_camera,
    make_prefeitura,
    make_user,
    median,
)

TARGET = 0.5
SEGMENT_S = 10


def _encode_segment(path: Path, bitrate_kbps: int) -> None:
    from streaming.ffmpeg import ffmpeg_exe

    argv = [
        ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-f", "lavfi",
        "-i", "testsrc2=size=1280x720:rate=15", "-t", str(SEGMENT_S), "-c:v", "libx264",
        "-preset", "ultrafast", "-g", "30", "-b:v", f"{bitrate_kbps}k",
        "-maxrate", f"{bitrate_kbps}k", "-bufsize", f"{2 * bitrate_kbps}k",
        "-f", "mpegts", "-y", str(path),
    ]  # fmt: skip
    subprocess.run(argv, check=True, timeout=120)


class _Timers:
    """Wall time spent in each step of the clip job (for the profile in the notes)."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = {}

    @contextmanager
    def patched(self):
        from recordings import clips, media

        originals = {
            (media, "keyframe_times"): media.keyframe_times,
            (media, "export_clip"): media.export_clip,
            (media, "measure_duration"): media.measure_duration,
            (clips, "sha256"): clips.sha256,
        }

        def wrap(name, func):
            def timed(*args, **kwargs):
                t0 = time.perf_counter()
                try:
                    return func(*args, **kwargs)
                finally:
                    self.spent[name] = self.spent.get(name, 0.0) + time.perf_counter() - t0

            return timed

        for (module, name), func in originals.items():
            setattr(module, name, wrap(name, func))
        try:
            yield self
        finally:
            for (module, name), func in originals.items():
                setattr(module, name, func)


def run(ctx: Context) -> Section:
    from django.conf import settings

    from recordings import clips, storage
    from recordings.models import Clip, Segment
    from recordings.services import create_clip

    args = ctx.args
    section = Section(key="clips", title="2. Clip export", method=__doc__.split("\n\n", 1)[1])
    seconds = args.clip_minutes * 60
    count = int(seconds // SEGMENT_S) + 1  # the clip starts inside the first segment
    prefeitura = make_prefeitura("Bench clips")
    user = make_user(prefeitura, "clips")
    camera = make_camera(prefeitura, "clip-cam", "rtsp://127.0.0.1:9/none")
    t0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    source = ctx.path("clips-src") / "segment.ts"
    _encode_segment(source, args.clip_bitrate_kbps)
    files = []
    rows = []
    for i in range(count):
        start = t0 + timedelta(seconds=SEGMENT_S * i)
        path = storage.archive_path(camera.pk, start)
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, path)
        files.append(path)
        rows.append(Segment(camera=camera, start=start, end=start + timedelta(seconds=SEGMENT_S),
                            size_bytes=path.stat().st_size))  # fmt: skip
    Segment.objects.bulk_create(rows)
    total_bytes = sum(path.stat().st_size for path in files)
    clip_start = t0 + timedelta(seconds=5)  # mid-segment: exercises the keyframe cut
    clip_end = clip_start + timedelta(seconds=seconds)
    cat_out = Path(settings.CLIPS_DIR) / "cat-baseline.ts"
    cat_out.parent.mkdir(parents=True, exist_ok=True)
    log(f"clips: {count} segments, {total_bytes / 1e6:.0f} MB, {args.clip_runs} runs")

    def run_cat() -> float:
        started = time.perf_counter()
        with cat_out.open("wb") as out:
            subprocess.run(["cat", *map(str, files)], stdout=out, check=True)
        elapsed = time.perf_counter() - started
        cat_out.unlink()
        return elapsed

    def run_remux() -> float:
        """The job's own FFmpeg command alone (concat list of the same files, MP4 +faststart)."""
        from streaming.ffmpeg import clip_argv, concat_list, ffmpeg_env

        listing = cat_out.with_suffix(".ffconcat")
        listing.write_text(concat_list((f, None, None) for f in files))
        out = cat_out.with_suffix(".mp4")
        started = time.perf_counter()
        subprocess.run(clip_argv(listing, out), check=True, capture_output=True,
                       env=ffmpeg_env())  # fmt: skip
        elapsed = time.perf_counter() - started
        out.unlink()
        listing.unlink()
        return elapsed

    timers = _Timers()

    def run_job() -> tuple[float, Clip]:
        clip = create_clip(camera, clip_start, clip_end, actor=user, reason="benchmark")
        started = time.perf_counter()
        with timers.patched():
            clips.build_clip(clip.pk)
        elapsed = time.perf_counter() - started
        clip.refresh_from_db()
        if clip.status != Clip.Status.DONE:
            raise RuntimeError(f"clip {clip.pk} {clip.status}: {clip.error}")
        storage.unlink(storage.clip_path(clip.pk))
        return elapsed, clip

    for f in files:  # warm the page cache for both sides
        f.read_bytes()
    job_times, cat_times, remux_times, ratios = [], [], [], []
    last_clip = None
    for k in range(args.clip_runs):
        if k % 2 == 0:
            job, last_clip = run_job()
            cat = run_cat()
        else:
            cat = run_cat()
            job, last_clip = run_job()
        remux_times.append(run_remux())
        job_times.append(job)
        cat_times.append(cat)
        ratios.append(cat / job)
    job_s, cat_s, r = median(job_times), median(cat_times), median(ratios)
    remux_s = median(remux_times)
    mb = total_bytes / 1e6
    section.columns = ["measure", f"median of {args.clip_runs}", "cat baseline", "ratio",
                       "target", "result"]  # fmt: skip
    verdict = Verdict(
        f"{args.clip_minutes:g}-min clip throughput",
        fmt(mb / job_s, 0, "MB/s"),
        fmt(mb / cat_s, 0, "MB/s"),
        fmt(r, 2, "×"),
        f"≥ {TARGET}× cat",
        r >= TARGET,
    )
    section.verdicts.append(verdict)
    section.rows = [
        ["clip job wall time", fmt(job_s, 3, "s"), fmt(cat_s, 3, "s"), fmt(cat_s / job_s, 2, "×"),
         "", ""],
        ["throughput (segment bytes / s)", verdict.value, verdict.baseline, verdict.ratio,
         verdict.target, verdict.result],
        ["reference: the job's FFmpeg concat → MP4 alone", fmt(mb / remux_s, 0, "MB/s"),
         verdict.baseline, fmt(cat_s / remux_s, 2, "×"), "", "limit of a remux"],
    ]  # fmt: skip
    runs = args.clip_runs
    breakdown = ", ".join(f"{name} {spent / runs:.3f} s" for name, spent in timers.spent.items())
    section.notes += [
        f"{count} segments of {SEGMENT_S} s at {args.clip_bitrate_kbps} kbit/s (1280x720), "
        f"{mb:.0f} MB in; clip {last_clip.size_bytes / 1e6:.0f} MB, "
        f"{last_clip.duration_s:.1f} s, SHA-256 {last_clip.sha256[:12]}….",
        f"Mean time per job in its steps: {breakdown}; the job takes "
        f"{job_s / remux_s:.2f}× its bare FFmpeg remux ({remux_s:.3f} s).",
        "Clip job run in-process by calling `recordings.clips.build_clip` (the function the "
        "worker's `recordings.build_clip` job runs), not through `manage.py procrastinate worker`"
        ", so queue latency is not included.",
    ]
    shutil.rmtree(storage.camera_dir(camera.pk), ignore_errors=True)
    return section
