"""What should run: one job per camera, from the database."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cidades.models import Camera
from streaming.models import Stream


@dataclass(frozen=True)
class Job:
    """One camera the engine must pull: for its live stream and/or its recording."""

    camera: Camera
    stream_id: int | None
    record: bool
    source: str | None = None  # pull from here instead of the camera (MediaMTX's restream)

    @property
    def camera_id(self) -> int:
        return self.camera.pk

    @property
    def source_url(self) -> str:
        return self.source or self.camera.source_url

    def signature(self) -> tuple:
        """What, when changed, requires restarting the camera's pull."""
        return (self.source or self.camera.source_url_encrypted, self.record)


def N_(message: str) -> str:
    """Marks an English msgid translated when it is written (``loop.localized``)."""
    return message


class CameraFault(Exception):
    """One camera cannot be started; ``message`` (an English msgid) says why, credential-free."""

    UNREADABLE_URL = N_("cannot read the camera URL (was the encryption key changed?)")
    INVALID_URL = N_("invalid camera URL")
    NO_DIRECTORY = N_("cannot create the camera's recording directory")
    CANNOT_START = N_("cannot start the camera's media")

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Observation:
    """What the engine sees of a job. ``status`` is a ``Stream.Status`` value."""

    status: str
    last_error: str = ""
    fps: float | None = None
    bitrate_kbps: float | None = None
    bytes_received: int | None = None
    readers: int | None = None
    last_frame_at: datetime | None = None
    running_since: datetime | None = None
    latency_ms: float | None = None


def desired_jobs(*, recording: bool = False, lpr: bool = False) -> dict[int, Job]:
    """Cameras with an active stream (and, with ``recording``, cameras to record; with ``lpr``,
    cameras the LPR worker reads, which then read the engine's restream)."""
    jobs: dict[int, Job] = {}
    streams = Stream.objects.filter(status__in=Stream.ACTIVE, camera__enabled=True)
    for stream in streams.select_related("camera"):
        jobs[stream.camera_id] = Job(stream.camera, stream.pk, record=False)
    if recording:
        for camera in Camera.objects.filter(enabled=True, recording_enabled=True):
            current = jobs.get(camera.pk)
            jobs[camera.pk] = Job(camera, current.stream_id if current else None, record=True)
    if lpr:
        for camera in Camera.objects.filter(enabled=True, lpr_enabled=True):
            jobs.setdefault(camera.pk, Job(camera, None, record=False))
    return jobs
