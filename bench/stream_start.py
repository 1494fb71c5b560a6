"""5. Stream start: ``POST /api/streams/start`` to a playable live playlist.

The media supervisor (``manage.py media_supervisor``, default settings: 1 s reconcile
period) and Daphne run; the camera is a GStreamer test camera mount, not recorded (so no
FFmpeg pulls it before the start). Each run: ``POST /api/streams/start`` with a JWT, then
``GET /api/streams/{id}/hls/index.m3u8`` every 25 ms until the playlist lists a segment and
that segment downloads (200); then the stream is stopped and its FFmpeg awaited gone. The
baseline is a plain ``ffmpeg -rtsp_transport tcp -i URL -c copy -f hls`` (same 2 s
``hls_time``) started by the bench, until its playlist on disk lists a segment. Runs
alternate between the two; p50/p99 over all runs. Target: p99 ≤ 3 s.
"""

from __future__ import annotations

import shutil
import time

from bench.common import (
    Context,
    Daphne,
    Http,
    Section,
    Supervisor,
    Verdict,
    ffmpeg_pids,
    fmt,
    log,
    make_camera,
    make_prefeitura,
    make_user,
    percentile,
    token_for,
    wait_for,
)

TARGET_S = 3.0
POLL_S = 0.025


def _segments(playlist: str) -> list[str]:
    return [line for line in playlist.splitlines() if line and not line.startswith("#")]


def run(ctx: Context) -> Section:
    from streaming.engine import live_dir
    from streaming.ffmpeg import ffmpeg_exe
    from testcamera import INSTALL_HINT, TestCamera

    args = ctx.args
    section = Section(key="stream_start", title="5. Stream start",
                      method=__doc__.split("\n\n", 1)[1])  # fmt: skip
    if not TestCamera.available():
        raise RuntimeError(INSTALL_HINT)
    cam = TestCamera(mounts=("start",), width=args.camera_width, height=args.camera_height,
                     fps=args.camera_fps)  # fmt: skip
    cam.start()
    daphne = supervisor = None
    system, plain = [], []
    try:
        prefeitura = make_prefeitura("Bench start")
        user = make_user(prefeitura, "start")
        camera = make_camera(prefeitura, "start-cam", cam.url("start"), recording=False)
        daphne = Daphne(ctx, name="daphne-start").start()
        supervisor = Supervisor(ctx, name="supervisor-start").start()
        supervisor.wait_heartbeat()
        http = Http(daphne.url, token_for(user))
        fragment = f":{cam.port}/start"

        def one_system() -> float:
            started = time.perf_counter()
            response = http.post("/api/streams/start", {"camera_id": camera.pk})
            if response.status_code != 201:
                raise RuntimeError(f"start: {response.status_code} {response.text[:300]}")
            stream_id = response.json()["stream_id"]
            base = f"/api/streams/{stream_id}/hls/"

            def playable() -> bool:
                supervisor.check()
                r = http.get(base + "index.m3u8")
                if r.status_code != 200:
                    return False
                names = _segments(r.text)
                return bool(names) and http.get(base + names[0]).status_code == 200

            wait_for(playable, 30, POLL_S, "playable live playlist")
            elapsed = time.perf_counter() - started
            http.post(f"/api/streams/{stream_id}/stop")
            wait_for(lambda: not ffmpeg_pids(fragment) and not live_dir(camera.pk).exists(),
                     30, 0.1, "stream stopped")  # fmt: skip
            return elapsed

        def one_plain(k: int) -> float:
            out = ctx.path("start-plain", str(k))
            playlist = out / "index.m3u8"
            argv = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "warning",
                    "-rtsp_transport", "tcp", "-i", cam.url("start"), "-c", "copy",
                    "-f", "hls", "-hls_time", "2", str(playlist)]  # fmt: skip
            started = time.perf_counter()
            proc = ctx.procs.spawn(argv, name="ffmpeg-start-plain")

            def playable() -> bool:
                try:
                    names = _segments(playlist.read_text())
                except FileNotFoundError:
                    return False
                return bool(names) and (out / names[0]).exists()

            try:
                wait_for(playable, 30, POLL_S, "plain ffmpeg playlist")
                elapsed = time.perf_counter() - started
            finally:
                ctx.procs.stop(proc, timeout=5)
                shutil.rmtree(out, ignore_errors=True)
            return elapsed

        one_plain(-1)  # warm-up: the camera pipeline, page cache, FFmpeg binary
        for k in range(args.stream_starts):
            if k % 2 == 0:
                system.append(one_system())
                plain.append(one_plain(k))
            else:
                plain.append(one_plain(k))
                system.append(one_system())
            log(f"stream start {k + 1}/{args.stream_starts}: system {system[-1]:.2f} s, "
                f"plain {plain[-1]:.2f} s")  # fmt: skip
        http.close()
    finally:
        if supervisor is not None:
            supervisor.stop()
        if daphne is not None:
            daphne.stop()
        cam.stop()
    s50, s99, p50, p99 = (percentile(system, 50), percentile(system, 99), percentile(plain, 50),
                          percentile(plain, 99))  # fmt: skip
    section.columns = ["path", "p50", "p99", "min", "max", "runs"]
    section.rows = [
        ["POST /api/streams/start → playable playlist", fmt(s50, 2, "s"), fmt(s99, 2, "s"),
         fmt(min(system), 2, "s"), fmt(max(system), 2, "s"), str(len(system))],
        ["plain ffmpeg → first HLS segment listed", fmt(p50, 2, "s"), fmt(p99, 2, "s"),
         fmt(min(plain), 2, "s"), fmt(max(plain), 2, "s"), str(len(plain))],
        ["ratio", fmt(s50 / p50, 2, "×"), fmt(s99 / p99, 2, "×"), "", "", ""],
    ]  # fmt: skip
    section.verdicts.append(Verdict("stream start p99", fmt(s99, 2, "s"),
                                    f"plain ffmpeg {fmt(p99, 2, 's')}", fmt(s99 / p99, 2, "×"),
                                    f"≤ {TARGET_S:g} s", s99 <= TARGET_S))  # fmt: skip
    section.verdicts.append(Verdict("stream start p50", fmt(s50, 2, "s"),
                                    f"plain ffmpeg {fmt(p50, 2, 's')}", fmt(s50 / p50, 2, "×"),
                                    f"≤ {TARGET_S:g} s", s50 <= TARGET_S))  # fmt: skip
    section.notes.append(
        f"Test camera {args.camera_width}x{args.camera_height} at {args.camera_fps} fps, "
        "keyframe every 30 frames; live HLS segments of 2 s (HLS_SEGMENT_SECONDS): a segment "
        "can only close on the keyframe after 2 s of video, which is the floor of both paths."
    )
    return section
