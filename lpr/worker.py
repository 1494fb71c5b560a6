"""The LPR worker: every enabled camera with ``lpr_enabled`` read continuously, offline.

Per camera one FFmpeg (imageio-ffmpeg) decodes the stream to JPEG frames at ``LPR_FPS``,
scaled to at most ``LPR_MAX_WIDTH`` px wide, on a pipe. The camera URL is in a 0600 ffconcat
file (``streaming.ffmpeg.source_script``), never on the command line. FFmpeg runs in its own
session, dies with the worker (``PR_SET_PDEATHSIG``), is stopped SIGTERM -> wait -> SIGKILL,
and is restarted with exponential backoff when it exits or stalls. Under MediaMTX the worker
reads the MediaMTX restream, so the camera is still pulled from the street once.

One OCR engine serves every camera, round robin over each camera's newest frame (older
frames are dropped when OCR is slower than the cameras): the CPU an LPR node spends is
bounded by one OCR at a time, whatever the number of cameras.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings
from django.db import close_old_connections

from gtvision.env import env_float, env_int
from lpr import ocr, services
from lpr.analyser import FrameAnalyser
from lpr.health import HEARTBEAT_KIND, heartbeat_interval_s
from lpr.motion import DEFAULT_THRESHOLD, MotionGate
from lpr.tracker import PlateTracker
from streaming import ffmpeg
from streaming.process import _death_signal_setup, _prctl, marked_env, sweep_orphans
from streaming.services import heartbeat
from streaming.sourcefiles import SourceFile, source_files_dir, sweep_source_files

logger = logging.getLogger(__name__)

MARKER = "lpr"
JPEG_SOI, JPEG_EOI = b"\xff\xd8", b"\xff\xd9"
MAX_FRAME_BYTES = 8 * 1024 * 1024
MIN_BACKOFF_S, MAX_BACKOFF_S = 1.0, 30.0
HEALTHY_AFTER_S = 30.0
STOP_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Config:
    fps: float = 3.0
    max_width: int = ocr.DEFAULT_MAX_WIDTH
    stall_s: float = 10.0
    cooldown_s: float = 60.0
    gap_s: float = 1.2
    max_pass_s: float = 3.0
    reconcile_s: float = 2.0
    threads: int = 0
    motion_threshold: float = DEFAULT_THRESHOLD

    @classmethod
    def from_env(cls) -> Config:
        return cls(
            fps=env_float("LPR_FPS", cls.fps),
            max_width=env_int("LPR_MAX_WIDTH", cls.max_width),
            stall_s=env_float("LPR_STALL_S", cls.stall_s),
            cooldown_s=env_float("LPR_COOLDOWN_S", cls.cooldown_s),
            threads=env_int("LPR_OCR_THREADS", cls.threads),
            motion_threshold=env_float("LPR_MOTION_THRESHOLD", cls.motion_threshold),
        )


def frames_argv(script: Path, *, fps: float, max_width: int, timeout_s: float) -> list[str]:
    """FFmpeg: the source (from a ``source_script`` file) as JPEG frames on stdout."""
    scale = f"fps={fps:g},scale='min({max_width},iw)':-2"
    return [
        ffmpeg.ffmpeg_exe(),
        "-hide_banner", "-nostdin", "-loglevel", "error",
        *ffmpeg.source_input_args(script),
        "-an", "-vf", scale, "-c:v", "mjpeg", "-q:v", "3",
        "-f", "image2pipe", "pipe:1",
    ]  # fmt: skip


class JpegSplitter:
    """Cut a byte stream of concatenated JPEGs (FFmpeg's mjpeg image2pipe) into frames."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self.buffer += data
        frames = []
        while True:
            start = self.buffer.find(JPEG_SOI)
            if start < 0:
                self.buffer.clear()
                break
            end = self.buffer.find(JPEG_EOI, start + 2)
            if end < 0:
                if start:
                    del self.buffer[:start]
                if len(self.buffer) > MAX_FRAME_BYTES:
                    self.buffer.clear()
                break
            frames.append(bytes(self.buffer[start : end + 2]))
            del self.buffer[: end + 2]
        return frames


class CameraFeed:
    """One camera's FFmpeg, supervised; keeps only the newest frame."""

    def __init__(self, camera_id: int, source_url: str, config: Config, run_dir: Path) -> None:
        self.camera_id = camera_id
        self.source_url = source_url
        self.config = config
        self.source_file = SourceFile(
            source_files_dir(run_dir) / f"lpr-{camera_id}.ffconcat",
            ffmpeg.source_script(source_url, timeout_s=min(config.stall_s, 5.0)),
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.next_start = 0.0
        self.backoff = MIN_BACKOFF_S
        self.last_frame_at = 0.0
        self.restarts = 0
        self.stderr: collections.deque[str] = collections.deque(maxlen=20)
        self._lock = threading.Lock()
        self._frame: tuple[float, bytes] | None = None

    # --- the process ---------------------------------------------------------------------
    def poll(self, now: float) -> None:
        """Start FFmpeg when due, restart it (with backoff) when it died or stalled."""
        if self.proc is not None:
            stalled = now - max(self.last_frame_at, self.started_at) > self.config.stall_s
            if self.proc.poll() is None and not stalled:
                return
            reason = "stalled" if self.proc.poll() is None else f"exit {self.proc.returncode}"
            self._stop_process()
            if now - self.started_at > HEALTHY_AFTER_S:
                self.backoff = MIN_BACKOFF_S
            logger.warning(
                "lpr camera %s: FFmpeg %s (%s), restart in %.0f s",
                self.camera_id,
                reason,
                ffmpeg.summarize_stderr(list(self.stderr), self.source_url) or "-",
                self.backoff,
            )
            self.next_start = now + self.backoff
            self.backoff = min(self.backoff * 2, MAX_BACKOFF_S)
            self.restarts += 1
            return
        if now >= self.next_start:
            self._start(now)

    def _start(self, now: float) -> None:
        self.source_file.write()
        argv = frames_argv(
            self.source_file.path,
            fps=self.config.fps,
            max_width=self.config.max_width,
            timeout_s=self.config.stall_s,
        )
        setup = _death_signal_setup(os.getpid()) if _prctl is not None else None
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=ffmpeg.ffmpeg_env(marked_env(MARKER)),
            start_new_session=True,
            preexec_fn=setup,
        )
        self.started_at = now
        self.stderr.clear()
        threading.Thread(target=self._read_frames, args=(self.proc,), daemon=True).start()
        threading.Thread(target=self._read_stderr, args=(self.proc,), daemon=True).start()

    def _read_frames(self, proc: subprocess.Popen[bytes]) -> None:
        splitter = JpegSplitter()
        assert proc.stdout is not None
        while chunk := proc.stdout.read1(65536):
            for data in splitter.feed(chunk):
                now = time.monotonic()
                with self._lock:
                    self._frame = (time.time(), data)
                    self.last_frame_at = now

    def _read_stderr(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            self.stderr.append(ffmpeg.redact_url(line.decode(errors="replace"), self.source_url))

    def _stop_process(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()
                try:
                    proc.wait(STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()
        self.source_file.remove()

    def stop(self) -> None:
        self._stop_process()

    def take_frame(self) -> tuple[float, bytes] | None:
        """The newest frame not taken yet ``(wall time, JPEG)``, or None."""
        with self._lock:
            frame, self._frame = self._frame, None
        return frame


def _store_read(camera_id: int, read, at: datetime) -> None:
    from cidades.models import Camera

    camera = Camera.objects.filter(pk=camera_id).first()
    if camera is None:
        return
    services.record_read(
        camera,
        plate=read.plate,
        confidence=read.confidence,
        bbox=read.bbox,
        crop=read.crop,
        at=at,
    )
    # Plates are personal data (LGPD): they go to the audited database, not to the log.
    logger.debug("lpr camera %s: read stored (%.2f)", camera_id, read.confidence)


def camera_sources() -> dict[int, str]:
    """``{camera_id: url}`` of every camera to read: the restream under MediaMTX."""
    from cidades.models import Camera

    cameras = Camera.objects.filter(enabled=True, lpr_enabled=True).select_related("prefeitura")
    if settings.MEDIA_ENGINE == "mediamtx":
        from streaming.mediamtx.integration import restream_url

        return {c.pk: restream_url(c) for c in cameras}
    sources = {}
    for camera in cameras:
        try:
            url = camera.source_url
        except ValueError:  # an undecryptable row: only this camera is skipped
            logger.warning("lpr camera %s: its source URL cannot be read", camera.pk)
            continue
        if url:
            sources[camera.pk] = url
    return sources


class LprWorker:
    def __init__(self, config: Config | None = None, reader: ocr.PlateReader | None = None):
        self.config = config or Config.from_env()
        self.reader = reader
        self.feeds: dict[int, CameraFeed] = {}
        self.analysers: dict[int, FrameAnalyser] = {}
        self.run_dir = Path(settings.MEDIA_RUN_DIR) / "lpr"
        self.stopping = threading.Event()
        self.name = f"lpr-worker@{socket.gethostname()}"
        self.next_beat = 0.0

    def beat(self) -> None:
        """The heartbeat ``/health`` checks, at most every ``LPR_HEARTBEAT_S``."""
        now = time.monotonic()
        if now < self.next_beat:
            return
        self.next_beat = now + heartbeat_interval_s()
        receiving = sum(
            1 for f in self.feeds.values() if now - f.last_frame_at <= self.config.stall_s
        )
        try:
            heartbeat(
                self.name,
                kind=HEARTBEAT_KIND,
                details={"cameras": len(self.feeds), "receiving": receiving},
            )
        except Exception:  # the database is away: the next beat tries again
            logger.warning("lpr: could not write the heartbeat")
            close_old_connections()

    def reconcile(self) -> None:
        close_old_connections()
        wanted = camera_sources()
        for camera_id in list(self.feeds):
            if wanted.get(camera_id) != self.feeds[camera_id].source_url:
                self.feeds.pop(camera_id).stop()
                self.analysers.pop(camera_id, None)
                logger.info("lpr camera %s: stopped", camera_id)
        if wanted and self.reader is None:  # loaded once, when a camera needs it
            self.reader = ocr.PlateReader(
                max_width=self.config.max_width, threads=self.config.threads or None
            )
        for camera_id, url in wanted.items():
            if camera_id not in self.feeds:
                self.feeds[camera_id] = CameraFeed(camera_id, url, self.config, self.run_dir)
                tracker = PlateTracker(
                    gap_s=self.config.gap_s,
                    max_pass_s=self.config.max_pass_s,
                    cooldown_s=self.config.cooldown_s,
                )
                gate = MotionGate(self.config.motion_threshold)
                self.analysers[camera_id] = FrameAnalyser(self.reader, tracker, gate)
                logger.info("lpr camera %s: reading", camera_id)

    def analyse(self, camera_id: int, taken_at: float, data: bytes) -> None:
        frame = ocr.decode_jpeg(data)
        if frame is None:
            return
        for read in self.analysers[camera_id].analyse(taken_at, frame):
            self._emit(camera_id, read)

    def _emit(self, camera_id: int, read) -> None:
        at = datetime.fromtimestamp(read.first_seen, UTC)
        try:
            _store_read(camera_id, read, at)
        except Exception:  # a lost database must not end the worker
            logger.exception("lpr camera %s: could not store a read", camera_id)
            close_old_connections()

    def step(self) -> bool:
        """Poll processes and analyse one frame per camera with one; False when idle."""
        now = time.monotonic()
        busy = False
        for camera_id, feed in list(self.feeds.items()):
            feed.poll(now)
            frame = feed.take_frame()
            if frame is not None:
                busy = True
                try:
                    self.analyse(camera_id, *frame)
                except Exception:
                    logger.exception("lpr camera %s: analysis failed", camera_id)
            for read in self.analysers[camera_id].tracker.flush(time.time()):
                self._emit(camera_id, read)
        return busy

    def run(self) -> None:
        killed = sweep_orphans(MARKER)
        if killed:
            logger.warning("killed %d FFmpeg left by a previous LPR worker", killed)
        sweep_source_files(self.run_dir)
        logger.info("lpr worker started")
        next_reconcile = 0.0
        try:
            while not self.stopping.is_set():
                if time.monotonic() >= next_reconcile:
                    try:
                        self.reconcile()
                    except Exception:  # the database is away: keep what runs, retry
                        logger.exception("lpr: could not list the cameras")
                        close_old_connections()
                    next_reconcile = time.monotonic() + self.config.reconcile_s
                self.beat()
                if not self.step():
                    self.stopping.wait(0.05)
        finally:
            for feed in self.feeds.values():
                feed.stop()
            self.feeds.clear()
            logger.info("lpr worker stopped")
