"""The embedded engine: supervised FFmpeg children, a recorder per recorded camera and a live
HLS writer per watched (camera, profile).

Live HLS only while watched: a recorded camera nobody watches runs one segment-only FFmpeg
(``record_argv``), which costs what ``ffmpeg -c copy -f segment`` costs. A live stream of it
starts a second FFmpeg (``hls_argv``) that pulls the camera (or its substream) for HLS; the
recorder is never restarted for it, so the recording has no hole. While watched, the camera
is pulled twice (see docs/live.md for why this is the cheaper shape).
"""

from __future__ import annotations

import logging
import re
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from streaming.engine import live_dir
from streaming.ffmpeg import HLS_PLAYLIST, hls_argv, record_argv, source_script
from streaming.models import Stream
from streaming.process import ManagedFFmpeg, State
from streaming.sourcefiles import SourceFile, source_files_dir
from streaming.supervisor.jobs import MAIN, CameraFault, Job, Observation

logger = logging.getLogger(__name__)
EXTINF = re.compile(r"#EXTINF:([0-9.]+)")
RECORD = "record"  # the recorder's kind; live writers' kind is their profile
Key = tuple[int, str]  # (camera id, RECORD or a profile)


@dataclass
class _Media:
    """One supervised FFmpeg: a camera's recorder, or its live HLS of one profile."""

    kind: str
    signature: tuple
    process: ManagedFFmpeg
    hls_dir: Path | None = None
    seen_segments: dict[str, int] = field(default_factory=dict)
    bytes_total: int = 0


def _wall(monotonic_at: float | None) -> datetime | None:
    if monotonic_at is None:
        return None
    return timezone.now() - timedelta(seconds=time.monotonic() - monotonic_at)


def _kinds(job: Job) -> list[str]:
    return ([RECORD] if job.record else []) + [view.profile for view in job.live]


def _signature(job: Job, kind: str) -> tuple:
    return job.record_signature() if kind == RECORD else job.live_signature(kind)


class EmbeddedRunner:
    name = "embedded"

    def __init__(self, marker: str, record_dir=None, sources_dir=None) -> None:
        """``record_dir(camera_id) -> Path`` gives where a recorded camera's segments go;
        ``sources_dir`` where FFmpeg's source files (camera URLs) live (``MEDIA_RUN_DIR``)."""
        self.marker = marker
        self.record_dir = record_dir
        self.sources_dir = source_files_dir(sources_dir or settings.MEDIA_RUN_DIR)
        self.media: dict[Key, _Media] = {}
        self.faults: dict[Key, str] = {}  # processes that could not be started -> why

    def reconcile(self, jobs: dict[int, Job]) -> dict[int, Observation]:
        wanted = {(camera_id, kind): job for camera_id, job in jobs.items() for kind in _kinds(job)}
        stale = [
            key
            for key, media in self.media.items()
            if key not in wanted or media.signature != _signature(wanted[key], key[1])
        ]
        self._stop(stale)
        observations = {}
        for camera_id, job in jobs.items():
            seen = {kind: self._reconcile_one(job, kind) for kind in _kinds(job)}
            streams = {view.stream_id: seen[view.profile] for view in job.live}
            if RECORD in seen:
                primary = seen[RECORD]
            elif job.live:
                primary = seen[job.live[0].profile]
            else:  # nothing for this engine to run (an LPR-only camera)
                primary = Observation(status=Stream.Status.STOPPED)
            observations[camera_id] = replace(primary, streams=streams)
        for key in self.faults.keys() - wanted.keys():
            del self.faults[key]
        return observations

    def pids(self) -> dict[int, int | None]:
        """Camera -> its recorder's PID (its main live writer's when it is not recorded)."""
        pids: dict[int, int | None] = {}
        recorders_first = sorted(self.media.items(), key=lambda item: item[0][1] != RECORD)
        for (camera_id, _kind), media in recorders_first:
            pids.setdefault(camera_id, media.process.pid)
        return pids

    def live_pids(self) -> dict[Key, int | None]:
        """(camera, profile) -> its live HLS writer's PID."""
        return {key: m.process.pid for key, m in self.media.items() if key[1] != RECORD}

    def recording(self) -> dict[int, bool]:
        """Cameras being recorded -> whether their recorder is alive right now."""
        return {
            camera_id: media.process.pid is not None
            for (camera_id, kind), media in self.media.items()
            if kind == RECORD
        }

    def shutdown(self) -> None:
        self._stop(list(self.media))
        shutil.rmtree(self.sources_dir, ignore_errors=True)

    # -- internals ---------------------------------------------------------------------

    def _reconcile_one(self, job: Job, kind: str) -> Observation:
        # One process's bad row (an undecryptable URL, a directory that cannot be created)
        # is that camera's error only: the others are reconciled all the same.
        key = (job.camera_id, kind)
        try:
            media = self.media.get(key)
            if media is None:
                media = self._start(job, kind)
            observation = self._observe(media)
        except Exception as exc:
            return self._fault(key, exc)
        self.faults.pop(key, None)
        return observation

    def _fault(self, key: Key, exc: Exception) -> Observation:
        media = self.media.pop(key, None)
        if media is not None:
            media.process.stop()
        message = exc.message if isinstance(exc, CameraFault) else CameraFault.CANNOT_START
        if self.faults.get(key) != message:
            # The exception's class only: its text could quote the camera's URL.
            logger.error("camera %s (%s): %s (%s)", key[0], key[1], message, type(exc).__name__)
        self.faults[key] = message
        return Observation(status=Stream.Status.ERROR, last_error=message)

    def _start(self, job: Job, kind: str) -> _Media:
        camera_id = job.camera_id
        try:
            source_url = job.source_url if kind == RECORD else job.live_source_url(kind)
        except ValueError as exc:  # crypto.decrypt: wrong FIELD_ENCRYPTION_KEY, damaged row
            raise CameraFault(CameraFault.UNREADABLE_URL) from exc
        try:
            script = source_script(source_url, analyze_s=settings.STREAM_ANALYZE_S)
        except ValueError as exc:  # a line break in the URL
            raise CameraFault(CameraFault.INVALID_URL) from exc
        hls_dir = None
        if kind == RECORD:
            name = f"cam{camera_id}"
            argv, prepare = self._recorder(job, source_url)
        else:
            name = f"cam{camera_id}-{'live' if kind == MAIN else kind}"
            hls_dir = live_dir(camera_id, kind)
            argv, prepare = self._live_writer(hls_dir, source_url)
        source_file = self.sources_dir / f"{name}.ffconcat"
        process = ManagedFFmpeg(
            f"cam{camera_id}",  # the key logs and metrics read the camera from (``cam<id>``)
            lambda: argv(source_file),
            source_url=source_url,
            source_file=SourceFile(source_file, script),
            marker=self.marker,
            before_start=prepare,
            stall_timeout_s=settings.STREAM_STALL_TIMEOUT_S,
            start_grace_s=settings.STREAM_START_GRACE_S,
            max_backoff_s=settings.STREAM_MAX_BACKOFF_S,
        )
        media = _Media(kind, _signature(job, kind), process, hls_dir)
        self.media[(camera_id, kind)] = media
        process.start()  # ManagedFFmpeg logs the start, exit, restart, stall and give-up
        return media

    def _recorder(self, job: Job, source_url: str) -> tuple[Callable, Callable]:
        if self.record_dir is None:
            raise CameraFault(CameraFault.NO_DIRECTORY)
        try:
            record_dir = self.record_dir(job.camera_id)
        except OSError as exc:
            raise CameraFault(CameraFault.NO_DIRECTORY) from exc

        def argv(source_file: Path) -> list[str]:
            return record_argv(
                source_url,
                record_dir,
                segment_seconds=settings.RECORDING_SEGMENT_SECONDS,
                analyze_s=settings.STREAM_ANALYZE_S,
                source_file=source_file,
            )

        def prepare() -> None:
            record_dir.mkdir(parents=True, exist_ok=True)

        return argv, prepare

    def _live_writer(self, hls_dir: Path, source_url: str) -> tuple[Callable, Callable]:

        def argv(source_file: Path) -> list[str]:
            return hls_argv(
                source_url,
                hls_dir,
                hls_time=settings.HLS_SEGMENT_SECONDS,
                hls_list_size=settings.HLS_LIST_SIZE,
                analyze_s=settings.STREAM_ANALYZE_S,
                source_file=source_file,
            )

        def prepare() -> None:
            shutil.rmtree(hls_dir, ignore_errors=True)
            hls_dir.mkdir(parents=True, exist_ok=True)

        return argv, prepare

    def _stop(self, keys: list[Key]) -> None:
        stopping = [self.media.pop(key) for key in keys if key in self.media]
        if not stopping:
            return
        with ThreadPoolExecutor(max_workers=min(16, len(stopping))) as pool:
            list(pool.map(lambda media: media.process.stop(), stopping))
        for media in stopping:
            if media.hls_dir is not None:
                shutil.rmtree(media.hls_dir, ignore_errors=True)

    def _observe(self, media: _Media) -> Observation:
        snap = media.process.poll()
        if snap.state == State.RUNNING:
            fps = snap.last_progress.get("fps")
            if media.hls_dir is not None:
                bitrate = self._scan_hls(media)
                received = media.bytes_total
            else:  # a recorder: what its segment muxer wrote
                bitrate = snap.last_progress.get("bitrate")
                received = snap.last_progress.get("total_size")
            return Observation(
                status=Stream.Status.RUNNING,
                fps=round(float(fps), 2) if isinstance(fps, int | float) else None,
                bitrate_kbps=bitrate if isinstance(bitrate, int | float) else None,
                bytes_received=received if isinstance(received, int) else None,
                last_frame_at=_wall(snap.last_progress_at),
                running_since=_wall(snap.started_at),
            )
        if snap.failures > 0 or snap.state == State.ERROR:
            return Observation(status=Stream.Status.ERROR, last_error=snap.last_error)
        return Observation(status=Stream.Status.STARTING)

    def _scan_hls(self, media: _Media) -> float | None:
        """Bitrate from the live playlist; bytes counted once per finished HLS segment."""
        assert media.hls_dir is not None
        try:
            playlist = (media.hls_dir / HLS_PLAYLIST).read_text()
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
                    segment_size = (media.hls_dir / line).stat().st_size
                except OSError:
                    continue
                seconds += duration
                size += segment_size
                if line not in media.seen_segments:
                    media.seen_segments[line] = segment_size
                    media.bytes_total += segment_size
                duration = None
        if len(media.seen_segments) > 4 * settings.HLS_LIST_SIZE:
            for name in list(media.seen_segments)[: -2 * settings.HLS_LIST_SIZE]:
                del media.seen_segments[name]
        return round(size * 8 / seconds / 1000, 1) if seconds else None
