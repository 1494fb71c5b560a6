"""The supervisor loop: desired state from PostgreSQL -> engine -> observations -> PostgreSQL."""

from __future__ import annotations

import logging
import os
import re
import select
import threading
import time
from collections.abc import Callable

import psycopg
from django.conf import settings
from django.db import Error as DatabaseError
from django.db import connection
from django.utils import translation

from gtvision.metrics import SUPERVISOR_TICK
from streaming import services
from streaming.leases import LeaseKeeper, NodeNameTaken
from streaming.models import Stream
from streaming.supervisor.jobs import Job, Observation, desired_jobs

logger = logging.getLogger(__name__)


SESSION_CHECK_S = 30


class Supervisor:
    """One recorder node: it pulls the cameras it holds a lease on (``streaming.leases``).

    ``recorder``: the recordings side (``index`` and ``sessions`` callables), or None;
    ``leases``: this node's ``LeaseKeeper`` (``GTV_NODE_NAME``, ``GTV_NODE_CAPACITY``)."""

    def __init__(
        self, runner, *, name: str | None = None, recorder=None, leases: LeaseKeeper | None = None
    ) -> None:
        self.runner = runner
        self.leases = leases or LeaseKeeper()
        self.name = name or f"media-supervisor@{self.leases.name}"
        self.recorder = recorder
        self.last_metrics = 0.0
        self.last_sessions = 0.0
        self.recorded: dict[int, bool] = {}
        self.observed: dict[int, Observation] = {}
        self.last_jobs: dict[int, Job] = {}  # supervised on through a database outage
        self.recorder_states: dict[int, tuple[str, str]] = {}  # as last written
        self.last_recorder_sweep = 0.0
        self.lapsed_logged = False
        self.name_taken = False
        self.waker = Waker()

    def run(self, stop: threading.Event) -> None:
        logger.info(
            "%s: engine %s, pid %s, node %s (capacity %s cameras)",
            self.name, self.runner.name, os.getpid(), self.leases.name, self.leases.capacity,
        )  # fmt: skip
        try:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    self.tick()
                except NodeNameTaken as exc:
                    # Another process took this node's name (and leases) while the database
                    # was away: stop, and leave its leases alone.
                    logger.error("%s: stopping every camera", exc)
                    self.leases.forget()
                    self.recorded = {}
                    self.name_taken = True
                    break
                except DatabaseError as exc:
                    # The media keeps running; state is written again once the database is back.
                    logger.warning("database unavailable: %s", str(exc).strip().splitlines()[0])
                    connection.close()
                    self._supervise_without_database()
                except Exception:
                    # A bug or a bad row must not take every camera down: log, go on.
                    logger.exception("supervisor pass failed")
                SUPERVISOR_TICK.observe(time.monotonic() - started)
                remaining = settings.SUPERVISOR_INTERVAL_S - (time.monotonic() - started)
                self.waker.wait(stop, max(0.05, remaining))
        finally:
            self.waker.close()
            self.runner.shutdown()
            self._drain()

    def tick(self) -> None:
        wanted = desired_jobs(
            recording=self.recorder is not None, lpr=getattr(self.runner, "serves_lpr", False)
        )
        lease = self.leases.sync(set(wanted))
        self.lapsed_logged = False
        # What a killed previous node left in a claimed camera's directory is indexed with
        # this node's own segments (older names; only the newest file is left while the
        # writer is alive).
        jobs = {camera_id: wanted[camera_id] for camera_id in sorted(lease.held)}
        self.last_jobs = jobs
        self.observed = self.runner.reconcile(jobs)
        if self.recorder is not None:
            self._index_recordings(jobs, skip=lease.fenced)
        # Stopped and indexed: give them back (they were left out of ``jobs``).
        self.leases.release(lease.release | lease.unwanted)
        for camera_id in lease.fenced | lease.release:
            self.recorder_states.pop(camera_id, None)  # the new node writes its state
        # Each camera alone: one camera's failure is logged and the others carry on.
        for camera_id, observation in self.observed.items():
            job = jobs[camera_id]
            error = localized(observation.last_error)
            for stream_id, seen in observation.per_stream(job).items():  # main and sub
                self._guarded(camera_id, services.set_stream_status, stream_id, seen.status,
                              localized(seen.last_error))  # fmt: skip
            if job.record:
                self._guarded(camera_id, self._set_recorder_status, camera_id,
                              observation.status, error)  # fmt: skip
        # recorder rows of cameras no node records any more (any node may clear them)
        recorded = {camera_id for camera_id, job in wanted.items() if job.record}
        known = set(self.recorder_states)
        if time.monotonic() - self.last_recorder_sweep >= SESSION_CHECK_S:
            # rows a previous supervisor wrote for cameras no longer recorded
            self.last_recorder_sweep = time.monotonic()
            known |= services.recorder_status_cameras()
        for camera_id in known - recorded:
            self._guarded(camera_id, self._clear_recorder_status, camera_id)
        for camera_id in set(self.recorder_states) - set(jobs):
            self.recorder_states.pop(camera_id, None)
        self._stop_streams_of_disabled_cameras()
        services.stop_idle_streams()
        now = time.monotonic()
        if now - self.last_metrics >= settings.SUPERVISOR_METRICS_INTERVAL_S:
            self.last_metrics = now
            for camera_id, observation in self.observed.items():
                for stream_id, seen in observation.per_stream(jobs[camera_id]).items():
                    if seen.status == Stream.Status.RUNNING:
                        self._guarded(camera_id, services.record_metrics, stream_id,
                                      _metrics(seen))  # fmt: skip
        services.heartbeat(
            self.name,
            kind="media-supervisor",
            engine=self.runner.name,
            details={
                "cameras": len(jobs),
                "pids": self.runner.pids(),
                "node": self.leases.name,
                "wanted": len(wanted),
                "live_nodes": lease.live_nodes,
                "share": [lease.share.low, lease.share.high],
            },
        )

    def _supervise_without_database(self) -> None:
        """The database is away: keep supervising the media of the last known jobs, so an
        FFmpeg that exits meanwhile (a camera hiccup) is restarted and recording goes on;
        segments are indexed and state written once the database is back.

        Only while no other node can have taken the leases: a node that saw other live
        nodes stops its cameras when its leases lapse unrenewed (``LeaseKeeper.deadline``),
        so two nodes never pull a camera for longer than a lease period. A node that was
        alone keeps recording through the outage (nobody else to take over)."""
        if not self.last_jobs:
            return
        deadline = self.leases.deadline()
        lapsed = deadline is not None and time.monotonic() >= deadline
        if lapsed and not self.leases.alone:
            if not self.lapsed_logged:
                logger.warning(
                    "node %s: leases not renewed for %.0f s (database unreachable): stopping "
                    "%d camera(s) so another node can take them",
                    self.leases.name, self.leases.ttl_s, len(self.last_jobs),
                )  # fmt: skip
                self.lapsed_logged = True
            self.last_jobs = {}
            self.leases.forget()
        try:
            self.runner.reconcile(self.last_jobs)
        except Exception:
            logger.exception("supervising the media without the database failed")

    def _drain(self) -> None:
        """Leaving: the FFmpeg are stopped; index their last segments, give the leases back
        and wake the other nodes (best effort: without the database they expire)."""
        if self.name_taken:
            return
        try:
            if self.recorder is not None:
                for camera_id in list(self.recorded):
                    self._guarded(camera_id, self._index, camera_id, False)
            self.leases.drain()
            logger.info("node %s: drained, leases given back", self.leases.name)
        except DatabaseError as exc:
            logger.warning(
                "node %s: could not give the leases back (%s): they expire in %.0f s",
                self.leases.name, type(exc).__name__, self.leases.ttl_s,
            )  # fmt: skip
        except NodeNameTaken:
            pass

    def _guarded(self, camera_id: int, write: Callable[..., object], *args) -> None:
        """``write(*args)`` for one camera; its failure is that camera's (the database going
        away is everyone's: it propagates to ``run``)."""
        try:
            write(*args)
        except DatabaseError:
            raise
        except Exception:
            logger.exception("camera %s: %s failed", camera_id, getattr(write, "__name__", write))

    def _set_recorder_status(self, camera_id: int, status: str, error: str) -> None:
        if self.recorder_states.get(camera_id) != (status, error):
            services.set_recorder_status(camera_id, status, error)
            self.recorder_states[camera_id] = (status, error)

    def _clear_recorder_status(self, camera_id: int) -> None:
        services.clear_recorder_status(camera_id)
        self.recorder_states.pop(camera_id, None)

    def _index_recordings(self, jobs, skip: set[int] = frozenset()) -> None:
        """Index closed segments; keep recording sessions in step with the cameras.

        ``skip``: cameras lost to another node (fenced), whose FFmpeg may already write into
        the camera's directory: what this node left there is the new node's to index."""
        recorded = self.runner.recording()
        gone = {c: False for c in self.recorded.keys() - recorded.keys() - skip}
        self._index_all({**recorded, **gone})  # the gone ones: their last, cut segment
        now = time.monotonic()
        changed = recorded.keys() ^ self.recorded.keys()
        if changed or now - self.last_sessions >= SESSION_CHECK_S:
            self.last_sessions = now
            cameras = {job.camera_id: job.camera for job in jobs.values()}
            for camera_id in recorded.keys() | self.recorded.keys():
                self._guarded(camera_id, self.recorder.sessions, cameras.get(camera_id),
                              camera_id)  # fmt: skip
        self.recorded = recorded

    def _index_all(self, cameras: dict[int, bool]) -> None:
        """Index every camera's closed segments in one batch (one transaction, a few queries);
        should the batch fail (not the database), camera by camera: a failure stays its own."""
        try:
            self.recorder.index_all(cameras)
        except DatabaseError:
            raise
        except Exception:
            logger.exception("indexing recordings in one batch failed: camera by camera")
            for camera_id, writer_alive in cameras.items():
                self._guarded(camera_id, self._index, camera_id, writer_alive)

    def _index(self, camera_id: int, writer_alive: bool) -> None:
        self.recorder.index(camera_id, writer_alive=writer_alive)

    def _stop_streams_of_disabled_cameras(self) -> None:
        for stream in Stream.objects.filter(status__in=Stream.ACTIVE, camera__enabled=False):
            services.stop_stream(stream, actor=None)


class Waker:
    """Ends the wait between passes early when ``services.wake_supervisor`` NOTIFYs: a started
    stream is reconciled at once instead of at the next pass (up to one interval later).

    Best effort on its own connection: without it the loop just waits out the interval."""

    def __init__(self) -> None:
        self.conn: psycopg.Connection | None = None

    def wait(self, stop: threading.Event, timeout: float) -> None:
        if stop.is_set():
            return
        try:
            if self.conn is None:
                params = connection.get_connection_params()
                params.pop("cursor_factory", None)
                params.pop("context", None)
                self.conn = psycopg.connect(**params, autocommit=True)
                self.conn.execute(f"LISTEN {services.SUPERVISOR_WAKE_CHANNEL}")
            # select() on the socket, not notifies(timeout=): psycopg's wait wakes every 0.1 s.
            if select.select([self.conn.fileno()], [], [], timeout)[0]:
                for _ in self.conn.notifies(timeout=0):  # consume what arrived
                    pass
        except (psycopg.Error, DatabaseError, OSError):
            self.close()
            stop.wait(timeout)

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except psycopg.Error:
                pass
            self.conn = None


# Messages with a number in them: (English pattern, msgid with a placeholder).
_DYNAMIC = [
    (re.compile(r"^stalled: no new data for (?P<seconds>[\d.]+) s$"),
     "stalled: no new data for %(seconds)s s"),
    (re.compile(r"^ffmpeg exited with status (?P<code>-?\d+)$"),
     "ffmpeg exited with status %(code)s"),
    (re.compile(r"^ffmpeg killed by signal (?P<signal>\d+)$"),
     "ffmpeg killed by signal %(signal)s"),
    (re.compile(r"^cannot start ffmpeg: (?P<cause>.*)$"), "cannot start ffmpeg: %(cause)s"),
]  # fmt: skip


def localized(message: str) -> str:
    """An engine's English message in the site's language (``LANGUAGE_CODE``), as stored in
    ``last_error`` and published in events."""
    if not message:
        return message
    with translation.override(settings.LANGUAGE_CODE):
        for pattern, msgid in _DYNAMIC:
            match = pattern.match(message)
            if match:
                return translation.gettext(msgid) % match.groupdict()
        return translation.gettext(message)


def _metrics(observation: Observation) -> services.Metrics:
    return services.Metrics(
        fps=observation.fps,
        bitrate_kbps=observation.bitrate_kbps,
        bytes_received=observation.bytes_received,
        readers=observation.readers,
        last_frame_at=observation.last_frame_at,
        latency_ms=observation.latency_ms,
        running_since=observation.running_since,
    )
