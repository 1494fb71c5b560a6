"""11. Live latency: glass-to-glass delay of the embedded engine's live HLS.

The test camera runs in clock mode (``testcamera/clock.py``): every frame carries, drawn as
black/white blocks, the wall-clock time (ms) at which it was made and handed to the encoder.
The camera is recorded (its recorder runs as in production) and a live stream is started
through the API; the supervisor and Daphne run with default settings. A reader then acts as
a player: it polls ``GET /api/streams/{id}/hls/index.m3u8`` (with the view token of
``/urls``) every 100 ms and, for each segment newly listed, notes the time it saw it, downloads
it and decodes it with FFmpeg (imageio-ffmpeg, raw gray frames) to read the stamps of its
first and last frames. Per segment: **last frame → available** = time the segment was seen
listed − stamp of its last frame (the freshest picture a player can have at that moment: the
camera's encoder, RTSP, FFmpeg's segmenting and the HTTP poll), and **first frame →
available** (the oldest picture of the segment, ~ one segment longer). The same reader runs
against a plain ``ffmpeg -rtsp_transport tcp -i URL -c copy -f hls -hls_time 2`` of the same
camera, reading its playlist on disk, as the baseline. Then Chromium plays the same live
stream with hls.js set up as the dashboard's player (``static/js/app.js``), then with two
lower-latency set-ups, and reads the stamp of every frame the video presents: what a viewer
sees. Target (issue 15): glass-to-glass p99 ≤ 4 s.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

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
    percentile,
    token_for,
    wait_for,
)

TARGET_S = 4.0
POLL_S = 0.1
PLAYER_SYNC_SEGMENTS = 2  # static/js/app.js: hls.js liveSyncDurationCount


@dataclass
class Reading:
    last: list[float] = field(default_factory=list)  # seconds, per segment
    first: list[float] = field(default_factory=list)
    durations: list[float] = field(default_factory=list)
    unreadable: int = 0


def gray_frames(data: bytes, width: int, height: int) -> list[bytes]:
    """The frames of an MPEG-TS segment as 8-bit gray, decoded by FFmpeg."""
    from streaming.ffmpeg import ffmpeg_exe

    argv = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-f", "mpegts", "-i", "pipe:0",
            "-an", "-f", "rawvideo", "-pix_fmt", "gray", "pipe:1"]  # fmt: skip
    out = subprocess.run(argv, input=data, capture_output=True, timeout=60, check=False).stdout
    size = width * height
    return [out[k : k + size] for k in range(0, len(out) - size + 1, size)]


def read_segments(
    fetch_playlist: Callable[[], str | None],
    fetch_segment: Callable[[str], bytes | None],
    *,
    seconds: float,
    width: int,
    height: int,
    check: Callable[[], None] = lambda: None,
) -> Reading:
    """Poll a live playlist for ``seconds`` like a player; read every new segment's stamps."""
    from testcamera.clock import read_stamp

    reading = Reading()
    seen: set[str] = set()
    first_poll = True
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        check()
        polled = time.time()
        text = fetch_playlist()
        names, duration = [], None
        durations = {}
        for line in (text or "").splitlines():
            if line.startswith("#EXTINF:"):
                duration = float(line[8:].split(",")[0])
            elif line and not line.startswith("#"):
                names.append(line)
                durations[line] = duration
        new = [name for name in names if name not in seen]
        seen.update(names)
        if first_poll and names:  # listed before we looked: when they came is unknown
            first_poll = False
            new = []
        for name in new:
            data = fetch_segment(name)
            frames = gray_frames(data, width, height) if data else []
            stamps = [read_stamp(frame, width, height) for frame in (frames[:1] + frames[-1:])]
            if len(stamps) < 2 or None in stamps:
                reading.unreadable += 1
                continue
            reading.first.append(polled - stamps[0] / 1000)
            reading.last.append(polled - stamps[1] / 1000)
            if durations.get(name):
                reading.durations.append(durations[name])
        time.sleep(max(0.0, POLL_S - (time.time() - polled)))
    return reading


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--autoplay-policy=no-user-gesture-required"]  # fmt: skip
HLS_JS = Path(__file__).resolve().parent.parent / "static" / "vendor" / "hls.min.js"
# In the page: play the live HLS with the dashboard's hls.js settings and, for every frame
# the video presents (requestVideoFrameCallback), read its stamp (testcamera/clock.py's
# layout, luma from the canvas) and keep Date.now() - stamp.
PLAYER_JS = """
async ([src, seconds, config]) => {
  const BITS = 48, BLOCKS = BITS + 2, SETTLE_MS = 5000;  // start-up and catch-up left out
  const video = document.createElement("video");
  video.muted = true; video.playsInline = true; document.body.appendChild(video);
  const hls = new Hls({maxBufferLength: 10, backBufferLength: 10, ...config});
  hls.loadSource(src); hls.attachMedia(video);
  hls.on(Hls.Events.MANIFEST_PARSED, () => video.play().catch(() => {}));
  const canvas = document.createElement("canvas");
  const ctx = canvas.getContext("2d", {willReadFrequently: true});
  const out = []; let bad = 0;
  function band(data, width, line, blockW) {
    const levels = [];
    for (let b = 0; b < BLOCKS; b++) {
      const left = b * blockW + Math.floor(blockW / 4), n = Math.max(1, Math.floor(blockW / 2));
      let sum = 0;
      for (let x = left; x < left + n; x++) {
        const i = (line * width + x) * 4;
        sum += 0.299 * data[i] + 0.587 * data[i + 1] + 0.114 * data[i + 2];
      }
      levels.push(sum / n);
    }
    const white = levels[0], black = levels[BLOCKS - 1];
    if (white - black < 60) return null;
    return levels.slice(1, -1).map((v) => (v > (white + black) / 2 ? 1 : 0));
  }
  function stamp() {
    const w = video.videoWidth, h = video.videoHeight;
    if (!w || !h) return null;
    canvas.width = w; canvas.height = h; ctx.drawImage(video, 0, 0, w, h);
    const blockW = Math.floor(w / BLOCKS), bandH = Math.max(8, Math.floor(h / 16));
    const top = Math.floor(bandH / 2);
    const data = ctx.getImageData(0, 0, w, top + 2 * bandH).data;
    const bits = band(data, w, top + Math.floor(bandH / 2), blockW);
    const inv = band(data, w, top + bandH + Math.floor(bandH / 2), blockW);
    if (!bits || !inv || bits.some((bit, i) => bit === inv[i])) return null;
    return bits.reduce((value, bit) => value * 2 + bit, 0);
  }
  let first = null;
  await new Promise((resolve) => {
    const end = Date.now() + seconds * 1000;
    function frame() {
      const now = Date.now(), value = stamp();
      if (first === null) first = now;
      if (value === null) bad++; else if (now - first >= SETTLE_MS) out.push(now - value);
      if (Date.now() < end) video.requestVideoFrameCallback(frame); else resolve();
    }
    video.requestVideoFrameCallback(frame);
    setTimeout(resolve, (seconds + 30) * 1000);
  });
  hls.destroy();
  return {latencies: out, unreadable: bad};
}
"""


def dashboard_sync_count() -> int:
    """The dashboard player's ``liveSyncDurationCount`` (static/js/app.js)."""
    import re

    app = Path(__file__).resolve().parent.parent / "static" / "js" / "app.js"
    match = re.search(r"liveSyncDurationCount:\s*(\d+)", app.read_text())
    return int(match.group(1)) if match else PLAYER_SYNC_SEGMENTS


def player_configs(sync_count: int) -> dict[str, dict]:
    """hls.js set-ups played in Chromium: the dashboard's, and two others to compare."""
    other = 2 if sync_count == 1 else 1
    return {
        f"the dashboard's (liveSyncDurationCount {sync_count})": {
            "liveSyncDurationCount": sync_count, "liveMaxLatencyDurationCount": 5},
        f"liveSyncDurationCount {other}": {  # the other whole-segment setting, to compare
            "liveSyncDurationCount": other, "liveMaxLatencyDurationCount": 5},
        "liveSyncDuration 1 s, maxLiveSyncPlaybackRate 1.5": {
            "liveSyncDuration": 1, "liveMaxLatencyDuration": 8, "maxLiveSyncPlaybackRate": 1.5},
    }  # fmt: skip


def browser_latency(
    origin: str, playlist_url: str, seconds: float, config: dict
) -> tuple[list[float], int]:
    """Glass-to-glass in Chromium with hls.js as the dashboard sets it up: seconds between
    each presented frame's stamp and the page's clock. Raises when it cannot play."""
    import os

    from playwright.sync_api import sync_playwright

    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's loop
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            # The site's CSP refuses inline scripts: this harness page is not the site's.
            page = chromium.new_context(bypass_csp=True).new_page()
            page.goto(f"{origin}/health")  # same origin as the HLS: no CORS involved
            page.add_script_tag(content=HLS_JS.read_text())
            result = page.evaluate(PLAYER_JS, [playlist_url, seconds, config])
        finally:
            chromium.close()
    latencies = [value / 1000 for value in result["latencies"]]
    if not latencies:
        raise RuntimeError(f"no frame read in the browser ({result['unreadable']} unreadable)")
    return latencies, int(result["unreadable"])


def run(ctx: Context) -> Section:
    from streaming.ffmpeg import ffmpeg_exe
    from testcamera import INSTALL_HINT, TestCamera

    args = ctx.args
    section = Section(key="latency", title="11. Live latency", method=__doc__.split("\n\n", 1)[1])
    if not TestCamera.available():
        raise RuntimeError(INSTALL_HINT)
    width, height = args.camera_width, args.camera_height
    cam = TestCamera(mounts=("clock",), width=width, height=height, fps=args.camera_fps,
                     clock=True)  # fmt: skip
    cam.start()
    daphne = supervisor = None
    try:
        prefeitura = make_prefeitura("Bench latency")
        user = make_user(prefeitura, "latency")
        camera = make_camera(prefeitura, "clock-cam", cam.url("clock"), recording=True)
        daphne = Daphne(ctx, name="daphne-latency").start()
        supervisor = Supervisor(ctx, name="supervisor-latency").start()
        supervisor.wait_heartbeat()
        http = Http(daphne.url, token_for(user))
        response = http.post("/api/streams/start", {"camera_id": camera.pk})
        if response.status_code != 201:
            raise RuntimeError(f"start: {response.status_code} {response.text[:300]}")
        stream_id = response.json()["stream_id"]
        hls_url = http.get(f"/api/streams/{stream_id}/urls").json()["hls"]
        playlist_url = hls_url.split("://", 1)[1].split("/", 1)[1]
        playlist_path = "/" + playlist_url
        base = playlist_path.split("?", 1)[0].rsplit("/", 1)[0]
        query = playlist_path.split("?", 1)[1]

        def fetch_playlist() -> str | None:
            r = http.get(playlist_path)
            return r.text if r.status_code == 200 else None

        def fetch_segment(name: str) -> bytes | None:
            path = f"{base}/{name}" if "token=" in name else f"{base}/{name}?{query}"
            r = http.get(path)
            return r.content if r.status_code == 200 else None

        wait_for(lambda: fetch_playlist() is not None, 60, 0.1, "live playlist")
        log(f"latency: reading the system's live HLS for {args.latency_seconds:g} s")
        system = read_segments(fetch_playlist, fetch_segment, seconds=args.latency_seconds,
                               width=width, height=height, check=supervisor.check)  # fmt: skip
        sync_count = dashboard_sync_count()
        browser: dict[str, list[float]] = {}
        browser_notes = []
        sessions: dict[str, list[float]] = {}  # each session's median
        configs = list(player_configs(sync_count).items())
        if ctx.smoke:
            configs = configs[:1]  # the dashboard's set-up; the others to compare in full runs
        for name, config in configs:
            try:
                unreadable = 0
                for k in range(args.latency_sessions):
                    log(f"latency: the live HLS in Chromium, hls.js {name}, session {k + 1}, "
                        f"{args.latency_session_seconds:g} s")  # fmt: skip
                    values, bad = browser_latency(daphne.url, daphne.url + playlist_path,
                                                  args.latency_session_seconds, config)  # fmt: skip
                    browser.setdefault(name, []).extend(values)
                    sessions.setdefault(name, []).append(percentile(values, 50))
                    unreadable += bad
                browser_notes.append(f"{unreadable} frames unreadable with {name}")
            except Exception as exc:  # optional: reported, not fatal
                browser_notes.append(f"not measured in Chromium with {name}: "
                                     f"{type(exc).__name__}: {str(exc)[:200]}")  # fmt: skip
                log(f"latency: {browser_notes[-1]}")
        browser_note = "; ".join(browser_notes)
        http.post(f"/api/streams/{stream_id}/stop")
        http.close()

        out = ctx.path("latency-plain")
        playlist = out / "index.m3u8"
        argv = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "warning",
                "-rtsp_transport", "tcp", "-i", cam.url("clock"), "-map", "0:v", "-c", "copy",
                "-f", "hls", "-hls_time", "2", "-hls_list_size", "6",
                "-hls_flags", "delete_segments+temp_file", str(playlist)]  # fmt: skip
        proc = ctx.procs.spawn(argv, name="ffmpeg-latency-plain")
        try:

            def read_playlist() -> str | None:
                try:
                    return playlist.read_text()
                except FileNotFoundError:
                    return None

            def read_segment(name: str) -> bytes | None:
                try:
                    return (out / name).read_bytes()
                except FileNotFoundError:
                    return None

            wait_for(lambda: read_playlist() is not None, 60, 0.1, "plain playlist")
            log(f"latency: reading plain FFmpeg's HLS for {args.latency_seconds:g} s")
            plain = read_segments(read_playlist, read_segment, seconds=args.latency_seconds,
                                  width=width, height=height)  # fmt: skip
        finally:
            ctx.procs.stop(proc, timeout=5)
            shutil.rmtree(out, ignore_errors=True)
    finally:
        if supervisor is not None:
            supervisor.stop()
        if daphne is not None:
            daphne.stop()
        cam.stop()
    if not system.last or not plain.last:
        raise RuntimeError(f"no segment read (system {system}, plain {plain})")
    rows = []
    for label, reading in (("system (API, view token)", system), ("plain ffmpeg -f hls", plain)):
        for what, values in (("last frame → available", reading.last),
                             ("first frame → available", reading.first)):  # fmt: skip
            rows.append([label, what, fmt(percentile(values, 50), 2, "s"),
                         fmt(percentile(values, 99), 2, "s"), fmt(min(values), 2, "s"),
                         fmt(max(values), 2, "s"), str(len(values))])  # fmt: skip
    for name, values in browser.items():
        medians = ", ".join(fmt(m, 2, "s") for m in sessions.get(name, []))
        rows.append([f"system, in Chromium: hls.js {name}",
                     f"stamp → frame presented (session medians {medians})",
                     fmt(percentile(values, 50), 2, "s"), fmt(percentile(values, 99), 2, "s"),
                     fmt(min(values), 2, "s"), fmt(max(values), 2, "s"),
                     f"{len(values)} frames"])  # fmt: skip
    section.columns = ["HLS", "figure", "p50", "p99", "min", "max", "segments"]
    section.rows = rows
    l50, l99 = percentile(system.last, 50), percentile(system.last, 99)
    b50, b99 = percentile(plain.last, 50), percentile(plain.last, 99)
    section.verdicts.append(Verdict("glass-to-glass p99 (last frame → available)",
                                    fmt(l99, 2, "s"), f"plain ffmpeg {fmt(b99, 2, 's')}",
                                    fmt(l99 / b99, 2, "×"), f"≤ {TARGET_S:g} s",
                                    l99 <= TARGET_S))  # fmt: skip
    section.verdicts.append(Verdict("glass-to-glass p50 (last frame → available)",
                                    fmt(l50, 2, "s"), f"plain ffmpeg {fmt(b50, 2, 's')}",
                                    fmt(l50 / b50, 2, "×"), f"≤ {TARGET_S:g} s",
                                    l50 <= TARGET_S))  # fmt: skip
    for name, values in browser.items():
        g50, g99 = percentile(values, 50), percentile(values, 99)
        label = f"glass-to-glass in Chromium, hls.js {name}"
        section.verdicts.append(Verdict(f"{label}, p99", fmt(g99, 2, "s"), "-", "-",
                                        f"≤ {TARGET_S:g} s", g99 <= TARGET_S))  # fmt: skip
        section.verdicts.append(Verdict(f"{label}, p50", fmt(g50, 2, "s"), "-", "-",
                                        f"≤ {TARGET_S:g} s", g50 <= TARGET_S))  # fmt: skip
    segment_s = percentile(system.durations, 50) if system.durations else float("nan")
    player = l50 + sync_count * segment_s
    section.notes.append(
        f"Test camera {width}x{height} at {args.camera_fps} fps, keyframe every 30 frames; "
        f"HLS segments of {fmt(segment_s, 2, 's')} (median #EXTINF). Segments whose stamps "
        f"did not read back: system {system.unreadable}, plain {plain.unreadable}. Playlist "
        f"poll every {POLL_S:g} s: up to that much is added to each figure."
    )
    section.notes.append(
        "A player adds its own buffer on top: the dashboard's hls.js (`static/js/app.js`, "
        f"`liveSyncDurationCount: {sync_count}`) plays {sync_count} segment durations behind "
        f"the live edge it last loaded (the playlist is reloaded about once a segment), so "
        f"what it shows is at least {fmt(l50, 2, 's')} + {sync_count} × "
        f"{fmt(segment_s, 2, 's')} ≈ {fmt(player, 1, 's')} behind the camera. The Chromium "
        "rows measure it: the page plays the stream with hls.js and reads the stamp of every "
        "frame the video presents (requestVideoFrameCallback, canvas) against the page's "
        f"clock ({browser_note}). "
        "Frames of the first 5 s of each browser session (start-up, catch-up) are left out; "
        f"{args.latency_sessions} sessions per set-up, frames pooled: within a session the "
        "delay is steady, between sessions it moves by up to a segment (the phase at which "
        "hls.js joined the live edge). "
        "What the player adds is its choice, not the engine's: with `liveSyncDurationCount: "
        "1` it plays one segment behind the edge, with `liveSyncDuration` and "
        "`maxLiveSyncPlaybackRate` it catches up to a target in seconds; shorter segments "
        "need a shorter camera GOP (HLS cuts on keyframes only; `HLS_SEGMENT_SECONDS=1` with a "
        "1 s GOP halves that again). "
        "WebRTC through MediaMTX (`MEDIA_ENGINE=mediamtx`, WHEP) forwards the camera's RTP as "
        "it arrives (no segments, no keyframe wait, only the browser's jitter buffer): expect "
        "well under a second on a LAN; not measured here (the bench runs the embedded engine; "
        "no MediaMTX binary in this environment)."
    )
    return section
