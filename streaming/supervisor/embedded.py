"""The embedded engine: one supervised FFmpeg per camera, writing live HLS (and recordings)."""

from __future__ import annotations

import logging
import re
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from streaming.engine import live_dir
from streaming.ffmpeg import HLS_PLAYLIST, live_argv, source_script
from streaming.models import Stream
from streaming.process import ManagedFFmpeg, State
from streaming.sourcefiles import SourceFile, source_files_dir
from streaming.supervisor.jobs import CameraFault, Job, Observation

logger = logging.getLogger(__name__)
EXTINF = re.compile(r"#EXTINF:([0-9.]+)")


@dataclass
class _Camera:
    job: Job
    process: ManagedFFmpeg
    hls_dir: Path
    seen_segments: dict[str, int] = field(default_factory=dict)
    bytes_total: int = 0


def _wall(monotonic_at: float | None) -> datetime | None:
    if monotonic_at is None:
        return None
    return timezone.now() - timedelta(seconds=time.monotonic() - monotonic_at)


class EmbeddedRunner:
    name = "embedded"

    def __init__(self, marker: str, record_dir=None, sources_dir=None) -> None:
        """``record_dir(camera_id) -> Path`` gives where a recorded camera's segments go;
        ``sources_dir`` where FFmpeg's source files (camera URLs) live (``MEDIA_RUN_DIR``)."""
        self.marker = marker
        self.record_dir = record_dir
        self.sources_dir = source_files_dir(sources_dir or settings.MEDIA_RUN_DIR)
        self.cameras: dict[int, _Camera] = {}
        self.faults: dict[int, str] = {}  # cameras that could not be started -> why

    def reconcile(self, jobs: dict[int, Job]) -> dict[int, Observation]:
        stale = [
            camera_id
            for camera_id, running in self.cameras.items()
            if camera_id not in jobs or running.job.signature() != jobs[camera_id].signature()
        ]
        self._stop(stale)
        observations = {}
        for camera_id, job in jobs.items():
            # One camera's bad row (an undecryptable URL, a directory that cannot be created)
            # is that camera's error only: the others are reconciled all the same.
            try:
                running = self.cameras.get(camera_id)
                if running is None:
                    running = self._start(job)
                running.job = job
                observations[camera_id] = self._observe(running)
            except Exception as exc:
                observations[camera_id] = self._fault(job, exc)
            else:
                self.faults.pop(camera_id, None)
        for camera_id in self.faults.keys() - jobs.keys():
            del self.faults[camera_id]
        return observations

    def pids(self) -> dict[int, int | None]:
        return {camera_id: c.process.pid for camera_id, c in self.cameras.items()}

    def recording(self) -> dict[int, bool]:
        """Cameras being recorded -> whether their FFmpeg is alive right now."""
        return {
            camera_id: running.process.pid is not None
            for camera_id, running in self.cameras.items()
            if running.job.record
        }

    def shutdown(self) -> None:
        self._stop(list(self.cameras))
        shutil.rmtree(self.sources_dir, ignore_errors=True)

    # -- internals ---------------------------------------------------------------------

    def _fault(self, job: Job, exc: Exception) -> Observation:
        camera_id = job.camera_id
        running = self.cameras.pop(camera_id, None)
        if running is not None:
            running.process.stop()
        message = exc.message if isinstance(exc, CameraFault) else CameraFault.CANNOT_START
        if self.faults.get(camera_id) != message:
            # The exception's class only: its text could quote the camera's URL.
            logger.error("camera %s: %s (%s)", camera_id, message, type(exc).__name__)
        self.faults[camera_id] = message
        return Observation(status=Stream.Status.ERROR, last_error=message)

    def _start(self, job: Job) -> _Camera:
        hls_dir = live_dir(job.camera_id)
        try:
            source_url = job.source_url
        except ValueError as exc:  # crypto.decrypt: wrong FIELD_ENCRYPTION_KEY, damaged row
            raise CameraFault(CameraFault.UNREADABLE_URL) from exc
        try:
            record_dir = self.record_dir(job.camera_id) if job.record and self.record_dir else None
        except OSError as exc:
            raise CameraFault(CameraFault.NO_DIRECTORY) from exc
        source_file = self.sources_dir / f"cam{job.camera_id}.ffconcat"
        try:
            script = source_script(source_url, analyze_s=settings.STREAM_ANALYZE_S)
        except ValueError as exc:  # a line break in the URL
            raise CameraFault(CameraFault.INVALID_URL) from exc

        def argv() -> list[str]:
            return live_argv(
                source_url,
                hls_dir,
                record_dir=record_dir,
                segment_seconds=settings.RECORDING_SEGMENT_SECONDS,
                hls_time=settings.HLS_SEGMENT_SECONDS,
                hls_list_size=settings.HLS_LIST_SIZE,
                analyze_s=settings.STREAM_ANALYZE_S,
                source_file=source_file,
            )

        def prepare() -> None:
            shutil.rmtree(hls_dir, ignore_errors=True)
            hls_dir.mkdir(parents=True, exist_ok=True)
            if record_dir is not None:
                record_dir.mkdir(parents=True, exist_ok=True)

        process = ManagedFFmpeg(
            f"cam{job.camera_id}",
            argv,
            source_url=source_url,
            source_file=SourceFile(source_file, script),
            marker=self.marker,
            before_start=prepare,
            stall_timeout_s=settings.STREAM_STALL_TIMEOUT_S,
            start_grace_s=settings.STREAM_START_GRACE_S,
            max_backoff_s=settings.STREAM_MAX_BACKOFF_S,
        )
        running = _Camera(job=job, process=process, hls_dir=hls_dir)
        self.cameras[job.camera_id] = running
        process.start()  # ManagedFFmpeg logs the start, exit, restart, stall and give-up
        return running

    def _stop(self, camera_ids: list[int]) -> None:
        stopping = [self.cameras.pop(camera_id) for camera_id in camera_ids]
        if not stopping:
            return
        with ThreadPoolExecutor(max_workers=min(16, len(stopping))) as pool:
            list(pool.map(lambda running: running.process.stop(), stopping))
        for running in stopping:
            shutil.rmtree(running.hls_dir, ignore_errors=True)

    def _observe(self, running: _Camera) -> Observation:
        snap = running.process.poll()
        if snap.state == State.RUNNING:
            fps = snap.last_progress.get("fps")
            bitrate = self._scan_hls(running)
            return Observation(
                status=Stream.Status.RUNNING,
                fps=round(float(fps), 2) if isinstance(fps, int | float) else None,
                bitrate_kbps=bitrate,
                bytes_received=running.bytes_total,
                last_frame_at=_wall(snap.last_progress_at),
                running_since=_wall(snap.started_at),
            )
        if snap.failures > 0 or snap.state == State.ERROR:
            return Observation(status=Stream.Status.ERROR, last_error=snap.last_error)
        return Observation(status=Stream.Status.STARTING)

    def _scan_hls(self, running: _Camera) -> float | None:
        """Bitrate from the live playlist; bytes counted once per finished HLS segment."""
        try:
            playlist = (running.hls_dir / HLS_PLAYLIST).read_text()
        except OSError:
            return None
        seconds = 0.0
        size = 0
        duration = None
        for line in playlist.splitlines():
            match = EXTINF.match(line)
            if match:
                duration = float(match.group(1))
                continue
            if line and not line.startswith("#") and duration is not None:
                try:
                    segment_size = (running.hls_dir / line).stat().st_size
                except OSError:
                    continue
                seconds += duration
                size += segment_size
                if line not in running.seen_segments:
                    running.seen_segments[line] = segment_size
                    running.bytes_total += segment_size
                duration = None
        if len(running.seen_segments) > 4 * settings.HLS_LIST_SIZE:
            for name in list(running.seen_segments)[: -2 * settings.HLS_LIST_SIZE]:
                del running.seen_segments[name]
        return round(size * 8 / seconds / 1000, 1) if seconds else None
