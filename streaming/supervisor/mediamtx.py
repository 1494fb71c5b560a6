"""The MediaMTX engine: every camera is a path declared through the control API."""

from __future__ import annotations

import logging
import re
import time

from django.conf import settings
from django.utils import timezone

from streaming.mediamtx.client import (
    MediaMTXBadRequest,
    MediaMTXError,
    camera_path_conf,
    path_health,
)
from streaming.mediamtx.integration import client, path_for, restream_url
from streaming.models import Stream
from streaming.supervisor.jobs import CameraFault, Job, Observation

logger = logging.getLogger(__name__)
OUR_PATHS = re.compile(r"^pref\d+/cam\d+$")


class MediaMTXRunner:
    """``recorder``: an ``EmbeddedRunner`` that records each camera from MediaMTX's restream,
    so the camera itself is pulled once, by MediaMTX."""

    name = "mediamtx"
    # The LPR worker reads the restream: LPR cameras need a path even when nobody watches them.
    serves_lpr = True

    def __init__(self, recorder=None) -> None:
        self.recorder = recorder
        self.api = client()
        self.declared: dict[str, tuple] = {}
        self.declared_at: dict[str, float] = {}
        self.inbound: dict[str, tuple[int, float]] = {}

    def reconcile(self, jobs: dict[int, Job]) -> dict[int, Observation]:
        if self.recorder is not None:
            self.recorder.reconcile(
                {
                    camera_id: Job(job.camera, None, True, source=restream_url(job.camera))
                    for camera_id, job in jobs.items()
                    if job.record
                }
            )
        wanted = {path_for(job.camera): job for job in jobs.values()}
        try:
            configured = {item["name"] for item in self.api.list_config_paths()}
            refused = self._declare(wanted, configured)
            return {
                job.camera_id: refused.get(name) or self._observe(name, job)
                for name, job in wanted.items()
            }
        except MediaMTXError as exc:
            logger.warning("MediaMTX: %s", exc)
            self.declared.clear()  # declare everything again once it answers
            error = f"media server unavailable: {exc.error or type(exc).__name__}"
            return {job.camera_id: Observation(Stream.Status.ERROR, error) for job in jobs.values()}

    def _declare(self, wanted: dict[str, Job], configured: set[str]) -> dict[str, Observation]:
        refused: dict[str, Observation] = {}
        for name, job in wanted.items():
            signature = job.signature()
            if name in configured and self.declared.get(name) == signature:
                continue
            # After a MediaMTX restart the path is gone from `configured`: declare it again.
            try:
                source_url = job.camera.source_url
            except ValueError:  # undecryptable row: only this camera is in error
                self.declared.pop(name, None)
                refused[name] = Observation(Stream.Status.ERROR, CameraFault.UNREADABLE_URL)
                continue
            try:
                self.api.replace_path(name, camera_path_conf(source_url))
            except (MediaMTXBadRequest, ValueError) as exc:
                # This camera's source is refused (the error is redacted): only it is in error.
                error = exc.error if isinstance(exc, MediaMTXError) else str(exc)
                logger.warning("MediaMTX: %s refused: %s", name, error)
                self.declared.pop(name, None)
                refused[name] = Observation(Stream.Status.ERROR, f"camera refused: {error}")
                continue
            self.declared[name] = signature
            self.declared_at[name] = time.monotonic()
            logger.info("MediaMTX: declared %s", name)
        for name in configured - wanted.keys():
            if OUR_PATHS.match(name):
                self.api.delete_path(name)
                self.declared.pop(name, None)
                self.inbound.pop(name, None)
                logger.info("MediaMTX: removed %s", name)
        return refused

    def _observe(self, name: str, job: Job) -> Observation:
        item = self.api.get_path(name)
        health = path_health(item) if item else None
        if health and health["available"]:
            now = time.monotonic()
            previous = self.inbound.get(name)
            self.inbound[name] = (health["inbound_bytes"], now)
            bitrate = None
            if previous and now > previous[1] and health["inbound_bytes"] >= previous[0]:
                bitrate = round(
                    (health["inbound_bytes"] - previous[0]) * 8 / (now - previous[1]) / 1000, 1
                )
            since = health["available_time"]
            return Observation(
                status=Stream.Status.RUNNING,
                bitrate_kbps=bitrate,
                bytes_received=health["inbound_bytes"],
                readers=health["readers"],
                running_since=_parse_time(since),
                last_frame_at=timezone.now(),
            )
        waited = time.monotonic() - self.declared_at.get(name, time.monotonic())
        if waited < settings.STREAM_START_GRACE_S:
            return Observation(Stream.Status.STARTING)
        return Observation(Stream.Status.ERROR, "camera not available on the media server")

    def pids(self) -> dict[int, int | None]:
        return {}

    def recording(self) -> dict[int, bool]:
        return self.recorder.recording() if self.recorder is not None else {}

    def shutdown(self) -> None:
        """Paths stay declared: MediaMTX keeps serving while the supervisor restarts."""
        if self.recorder is not None:
            self.recorder.shutdown()
        self.api.close()


def _parse_time(value: str | None):
    if not value:
        return None
    from django.utils.dateparse import parse_datetime

    return parse_datetime(value)
