"""What should run: one job per camera, from the database.

A camera's job says whether it is recorded and which live streams it has: one per profile,
``main`` (the camera's ``source_url``) and ``sub`` (its ``substream_url``, the main stream when
it has none). Recording always uses the main stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cidades.models import Camera
from streaming.models import Stream

MAIN = "main"
SUB = "sub"
PROFILES = (MAIN, SUB)


def stream_profile(stream: Stream) -> str:
    """A stream's profile (``main`` until the model has the field)."""
    profile = getattr(stream, "profile", MAIN) or MAIN
    return profile if profile in PROFILES else MAIN


@dataclass(frozen=True)
class LiveView:
    """One active live stream of a camera: its row and profile."""

    stream_id: int
    profile: str = MAIN


@dataclass(frozen=True)
class Job:
    """One camera the engine must pull: for its live stream(s) and/or its recording.

    ``stream_id`` is the camera's main stream (else its only one), as before substreams;
    ``views`` every active stream with its profile (None: just ``stream_id``, main)."""

    camera: Camera
    stream_id: int | None
    record: bool
    source: str | None = None  # pull from here instead of the camera (MediaMTX's restream)
    views: tuple[LiveView, ...] | None = None

    @property
    def camera_id(self) -> int:
        return self.camera.pk

    @property
    def source_url(self) -> str:
        """Where recording (and the main live stream) reads from."""
        return self.source or self.camera.source_url

    @property
    def live(self) -> tuple[LiveView, ...]:
        if self.views is not None:
            return self.views
        return (LiveView(self.stream_id),) if self.stream_id is not None else ()

    def has_substream(self) -> bool:
        return bool(getattr(self.camera, "substream_url_encrypted", ""))

    def live_source_url(self, profile: str) -> str:
        """Where a live stream of ``profile`` reads from (decrypts: may raise ValueError)."""
        if self.source:
            return self.source
        if profile == SUB and self.has_substream():
            return self.camera.substream_url
        return self.camera.source_url

    def live_signature(self, profile: str) -> tuple:
        """What, when changed, requires restarting a live stream's pull."""
        if self.source:
            return (self.source,)
        if profile == SUB and self.has_substream():
            return (self.camera.substream_url_encrypted,)
        return (self.camera.source_url_encrypted,)

    def record_signature(self) -> tuple:
        """What, when changed, requires restarting the recorder's pull."""
        return (self.source or self.camera.source_url_encrypted,)

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
    # Per stream id, when a camera's streams are seen apart (the embedded engine runs one
    # process per profile); None: this observation is every stream's of the camera.
    streams: dict[int, Observation] | None = None

    def per_stream(self, job: Job) -> dict[int, Observation]:
        """What to write to each of ``job``'s stream rows."""
        if self.streams is not None:
            return self.streams
        return {view.stream_id: self for view in job.live}


def desired_jobs(*, recording: bool = False, lpr: bool = False) -> dict[int, Job]:
    """Cameras with an active stream (and, with ``recording``, cameras to record; with ``lpr``,
    cameras the LPR worker reads, which then read the engine's restream)."""
    jobs: dict[int, Job] = {}
    views: dict[int, dict[str, LiveView]] = {}
    cameras: dict[int, Camera] = {}
    streams = Stream.objects.filter(status__in=Stream.ACTIVE, camera__enabled=True)
    for stream in streams.select_related("camera").order_by("pk"):
        profile = stream_profile(stream)
        views.setdefault(stream.camera_id, {}).setdefault(profile, LiveView(stream.pk, profile))
        cameras[stream.camera_id] = stream.camera
    for camera_id, by_profile in views.items():
        live = tuple(by_profile[p] for p in PROFILES if p in by_profile)
        jobs[camera_id] = Job(cameras[camera_id], live[0].stream_id, record=False, views=live)
    if recording:
        for camera in Camera.objects.filter(enabled=True, recording_enabled=True):
            current = jobs.get(camera.pk)
            jobs[camera.pk] = Job(camera, current.stream_id if current else None, record=True,
                                  views=current.views if current else ())  # fmt: skip
    if lpr:
        for camera in Camera.objects.filter(enabled=True, lpr_enabled=True):
            jobs.setdefault(camera.pk, Job(camera, None, record=False))
    return jobs
