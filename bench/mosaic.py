"""9. Mosaic viewer cost: a 3x3 live mosaic in Chromium, main streams vs substreams.

Daphne and the media supervisor (embedded engine) run; two RTSP test cameras in replay mode
(pre-encoded H.264, no per-client encoding) serve nine mounts each: the "main" streams at
``--mosaic-main-size`` (default 1280x720) and the "sub" streams at ``--mosaic-sub-size``
(default 320x180), same frame rate, keyframe every 2 s. Two prefeituras with nine cameras
each, whose 3x3 mosaic is saved: in one the cameras have no substream (the mosaic's
``profile: "sub"`` streams fall back to the main streams), in the other every camera has a
``substream_url``. Each run logs an operador in (Playwright, Debian's Chromium, headless,
1366x768, the browser suite's flags) and opens ``/dashboard/mosaic/``; once the nine videos
play, it measures over a fixed window: the CPU time of every Chromium process (renderer,
GPU process and the rest, utime+stime from ``/proc``), the bytes the page received (the
DevTools protocol's ``Network.loadingFinished`` encoded lengths: playlists and segments)
and the frames decoded and dropped (``getVideoPlaybackQuality``). Then its streams are
stopped through the API. Runs alternate between the two mosaics; medians over the runs.
"""

from __future__ import annotations

import os
import secrets
import time

from bench.common import (
    Context,
    Daphne,
    Http,
    Section,
    Supervisor,
    Verdict,
    fmt,
    log,
    make_camera,
    make_prefeitura,
    make_user,
    median,
    process_cpu,
    process_tree,
    token_for,
    wait_for,
)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
VIEWPORT = {"width": 1366, "height": 768}
# Every video has played (its time advanced by a second) at least once: a mosaic the
# machine cannot decode in real time stalls now and then, which the window then measures.
PLAYING_JS = """
(count) => {
  const videos = [...document.querySelectorAll('#mosaic .slot video')];
  if (videos.length < count) return false;
  for (const v of videos) {
    if (v._gtvOk || v.readyState < 2) continue;
    if (v._gtvStart === undefined) v._gtvStart = v.currentTime;
    else if (v.currentTime > v._gtvStart + 1.0) v._gtvOk = true;
  }
  return videos.every((v) => v._gtvOk);
}
"""
QUALITY_JS = """
() => [...document.querySelectorAll('#mosaic .slot video')].map((v) => {
  const q = v.getVideoPlaybackQuality();
  return [q.totalVideoFrames, q.droppedVideoFrames, v.videoWidth, v.videoHeight, v.currentTime];
})
"""


def _size(text: str) -> tuple[int, int]:
    width, _, height = text.partition("x")
    return int(width), int(height)


def _chromium_processes(root: int) -> dict[int, str]:
    """The Chromium processes under ``root`` (this process): pid -> kind."""
    found = {}
    for pid in process_tree([root]):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                # Chromium rewrites its title: one space-separated string
                argv = handle.read().replace(b"\0", b" ").split()
        except OSError:
            continue
        if not argv or b"chrom" not in os.path.basename(argv[0]):
            continue
        kind = "browser"
        for arg in argv:
            if arg.startswith(b"--type="):
                kind = arg[7:].decode(errors="replace")
        found[pid] = kind
    return found


def _cpu_by_kind(processes: dict[int, str]) -> dict[int, float]:
    return {pid: cpu for pid in processes if (cpu := process_cpu(pid)) is not None}


def run(ctx: Context) -> Section:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    from admin_ctx.models import MosaicLayout
    from streaming.models import Stream
    from testcamera import INSTALL_HINT, TestCamera

    args = ctx.args
    section = Section(key="mosaic", title="9. Mosaic viewer cost (substreams)",
                      method=__doc__.split("\n\n", 1)[1])  # fmt: skip
    if not TestCamera.available():
        raise RuntimeError(INSTALL_HINT)
    if not os.access(CHROMIUM, os.X_OK):
        raise RuntimeError(f"Chromium is needed at {CHROMIUM}: run scripts/install-test-deps")
    main_w, main_h = _size(args.mosaic_main_size)
    sub_w, sub_h = _size(args.mosaic_sub_size)
    fps = args.camera_fps
    mounts = [f"m{n}" for n in range(1, 10)]
    main_cam = TestCamera(mounts=mounts, width=main_w, height=main_h, fps=fps, keyint=2 * fps,
                          bitrate=args.mosaic_main_kbps, replay=True)  # fmt: skip
    sub_cam = TestCamera(mounts=mounts, width=sub_w, height=sub_h, fps=fps, keyint=2 * fps,
                         bitrate=args.mosaic_sub_kbps, replay=True)  # fmt: skip
    daphne = supervisor = None
    playwright = browser = None
    results: dict[str, list[dict]] = {"main": [], "sub": []}
    try:
        main_cam.start(timeout=120)  # replay mode encodes its clip once (cached)
        sub_cam.start(timeout=120)
        log("mosaic: test cameras up")
        password = secrets.token_urlsafe(16)
        setups = {}
        for mode in ("main", "sub"):
            prefeitura = make_prefeitura(f"Bench mosaic {mode}")
            user = make_user(prefeitura, f"mosaic-{mode}")
            user.set_password(password)
            user.save()
            cameras = []
            for n, mount in enumerate(mounts, start=1):
                camera = make_camera(prefeitura, f"{mode}-{n}", main_cam.url(mount))
                if mode == "sub":
                    camera.substream_url = sub_cam.url(mount)
                    camera.save()
                cameras.append(camera)
            MosaicLayout.objects.create(user=user, prefeitura=prefeitura, size=3,
                                        slots=[c.pk for c in cameras])  # fmt: skip
            setups[mode] = (user, cameras)
        daphne = Daphne(ctx, name="daphne-mosaic")
        daphne.env["PUBLIC_URL"] = daphne.url  # the players' absolute HLS URLs
        daphne.start()
        supervisor = Supervisor(ctx, name="supervisor-mosaic").start()
        supervisor.wait_heartbeat()
        log("mosaic: daphne and supervisor up")
        # Playwright's sync API keeps an event loop running in this thread, which Django's
        # ORM takes for async code; the ORM calls here are plain synchronous code.
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
        playwright = sync_playwright().start()
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        me = os.getpid()

        def one(mode: str) -> dict:
            user, cameras = setups[mode]
            context = browser.new_context(viewport=VIEWPORT, locale="pt-BR",
                                          timezone_id="America/Sao_Paulo")  # fmt: skip
            context.set_default_timeout(60_000)
            try:
                page = context.new_page()
                received = [0]
                cdp = context.new_cdp_session(page)
                cdp.send("Network.enable")
                cdp.on(
                    "Network.loadingFinished",
                    lambda event: received.__setitem__(
                        0, received[0] + int(event.get("encodedDataLength") or 0)
                    ),
                )
                page.goto(f"{daphne.url}/")
                page.get_by_label("Usuário").fill(user.username)
                page.get_by_label("Senha").fill(password)
                page.get_by_role("button", name="Entrar").click()
                page.wait_for_url("**/dashboard/")
                page.goto(f"{daphne.url}/dashboard/mosaic/")
                opened = time.monotonic()
                try:
                    page.wait_for_function(PLAYING_JS, arg=9, timeout=120_000, polling=250)
                except PlaywrightError as exc:
                    overlays = page.locator("#mosaic .tile-overlay").all_text_contents()
                    states = list(
                        Stream.objects.filter(camera__in=cameras).values_list(
                            "profile", "status", "last_error"
                        )
                    )
                    raise RuntimeError(
                        f"the mosaic did not play: {overlays} {states}\n"
                        f"{ctx.procs.log_tail(supervisor.name)}"
                    ) from exc
                log(f"mosaic {mode}: 9 videos play after {time.monotonic() - opened:.1f} s")
                page.wait_for_timeout(args.mosaic_warmup_seconds * 1000)
                processes = _chromium_processes(me)
                cpu0, bytes0 = _cpu_by_kind(processes), received[0]
                quality0, t0 = page.evaluate(QUALITY_JS), time.monotonic()
                page.wait_for_timeout(args.mosaic_seconds * 1000)
                cpu1, bytes1 = _cpu_by_kind(processes), received[0]
                quality1, elapsed = page.evaluate(QUALITY_JS), time.monotonic() - t0
                by_kind: dict[str, float] = {}
                for pid, kind in processes.items():
                    if pid in cpu0 and pid in cpu1:
                        by_kind[kind] = by_kind.get(kind, 0.0) + cpu1[pid] - cpu0[pid]
                frames = sum(b[0] - a[0] for a, b in zip(quality0, quality1, strict=True))
                dropped = sum(b[1] - a[1] for a, b in zip(quality0, quality1, strict=True))
                played = sum(b[4] - a[4] for a, b in zip(quality0, quality1, strict=True))
                return {
                    "cpu": sum(by_kind.values()) / elapsed,
                    "renderer": by_kind.get("renderer", 0.0) / elapsed,
                    "gpu": by_kind.get("gpu-process", 0.0) / elapsed,
                    "mbps": (bytes1 - bytes0) * 8 / elapsed / 1e6,
                    "fps": frames / elapsed,
                    # what a frame costs: comparable even when a starved browser falls behind
                    "ms_per_frame": sum(by_kind.values()) * 1000 / frames if frames else None,
                    "dropped": dropped / elapsed,
                    "realtime": played / len(quality1) / elapsed,  # 1: every video kept up
                    "size": f"{quality1[0][2]}x{quality1[0][3]}",
                }
            finally:
                context.close()
                http = Http(daphne.url, token_for(user))
                for stream in Stream.objects.filter(camera__in=cameras, status__in=Stream.ACTIVE):
                    http.post(f"/api/streams/{stream.pk}/stop")
                http.close()
                wait_for(lambda: not Stream.objects.filter(camera__in=cameras,
                                                           status__in=Stream.ACTIVE).exists(),
                         30, 0.2, "mosaic streams stopped")  # fmt: skip

        for k in range(args.mosaic_runs):
            for mode in ("main", "sub") if k % 2 == 0 else ("sub", "main"):
                supervisor.check()
                result = one(mode)
                results[mode].append(result)
                log(f"mosaic {mode} {k + 1}/{args.mosaic_runs}: browser CPU "
                    f"{result['cpu']:.2f} cores, {result['mbps']:.2f} Mbit/s, "
                    f"{result['fps']:.0f} frames/s, played {result['realtime']:.2f}x "
                    f"real time ({result['size']})")  # fmt: skip
    finally:
        if browser is not None:
            browser.close()
        if playwright is not None:
            playwright.stop()
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        if supervisor is not None:
            supervisor.stop()
        if daphne is not None:
            daphne.stop()
        sub_cam.stop()
        main_cam.stop()

    def med(mode: str, key: str) -> float:
        return median(r[key] for r in results[mode])

    labels = {
        "main": f"main streams only ({main_w}x{main_h})",
        "sub": f"substreams ({sub_w}x{sub_h})",
    }
    section.columns = ["3x3 mosaic", "browser CPU", "renderer", "GPU process",
                       "browser CPU per frame", "received", "frames decoded", "frames dropped",
                       "played / real time", "runs"]  # fmt: skip
    section.rows = [
        [labels[mode], fmt(med(mode, "cpu"), 2, "cores"), fmt(med(mode, "renderer"), 2, "cores"),
         fmt(med(mode, "gpu"), 2, "cores"), fmt(med(mode, "ms_per_frame"), 2, "ms"),
         fmt(med(mode, "mbps"), 2, "Mbit/s"),
         fmt(med(mode, "fps"), 0, "/s"), fmt(med(mode, "dropped"), 1, "/s"),
         fmt(med(mode, "realtime"), 2, "×"), str(len(results[mode]))]
        for mode in ("main", "sub")
    ]  # fmt: skip
    cpu_ratio = med("sub", "cpu") / med("main", "cpu") if med("main", "cpu") else float("nan")
    net_ratio = med("sub", "mbps") / med("main", "mbps") if med("main", "mbps") else float("nan")
    frame_ratio = med("sub", "ms_per_frame") / (med("main", "ms_per_frame") or float("nan"))
    section.rows.append(["ratio (substreams / main)", fmt(cpu_ratio, 2, "×"),
                         fmt(med("sub", "renderer") / (med("main", "renderer") or float("nan")),
                             2, "×"), "", fmt(frame_ratio, 2, "×"), fmt(net_ratio, 2, "×"), "",
                         "", "", ""])  # fmt: skip
    section.verdicts.append(Verdict("3x3 mosaic browser CPU with substreams",
                                    fmt(med("sub", "cpu"), 2, "cores"),
                                    f"main streams {fmt(med('main', 'cpu'), 2, 'cores')}",
                                    fmt(cpu_ratio, 2, "×"), "(information: capped by the CPU "
                                    "the browser gets; see the frames decoded)",
                                    None))  # fmt: skip
    section.verdicts.append(Verdict("3x3 mosaic browser CPU per decoded frame, substreams",
                                    fmt(med("sub", "ms_per_frame"), 2, "ms"),
                                    f"main streams {fmt(med('main', 'ms_per_frame'), 2, 'ms')}",
                                    fmt(frame_ratio, 2, "×"), "< 1×",
                                    frame_ratio < 1))  # fmt: skip
    section.verdicts.append(Verdict("3x3 mosaic bytes received with substreams",
                                    fmt(med("sub", "mbps"), 2, "Mbit/s"),
                                    f"main streams {fmt(med('main', 'mbps'), 2, 'Mbit/s')}",
                                    fmt(net_ratio, 2, "×"), "< 1×",
                                    net_ratio < 1))  # fmt: skip
    section.notes.append(
        f"Test cameras in replay mode, {fps} fps: main {main_w}x{main_h} at "
        f"{args.mosaic_main_kbps} kbit/s, sub {sub_w}x{sub_h} at {args.mosaic_sub_kbps} kbit/s; "
        f"window {args.mosaic_seconds:g} s after {args.mosaic_warmup_seconds:g} s of warm-up. "
        "Software decoding (`--disable-gpu`, as on a video wall PC without GPU decoding): "
        "the decode is the renderer's work, so the renderer's CPU follows the pixels decoded. "
        "The server side (FFmpeg copies, Daphne serving HLS) is not counted here. On a "
        "loaded machine a browser that cannot decode the main streams in real time gets no "
        "more CPU than it is given: it falls behind (frames decoded, played / real time) "
        "instead of using more, so the CPU per decoded frame is the comparable figure."
    )
    return section
