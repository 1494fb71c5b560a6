"""Run the media supervisor (long-running; listed in the Procfile)."""

import logging
import signal
import threading
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Exists, OuterRef
from django.utils import timezone

from cidades.models import Camera
from gtvision.db_pool import use_single_connection
from gtvision.metrics import SEGMENT_INDEX_LATENCY
from recordings import indexer, services, storage
from recordings.models import Recording
from streaming import livehop
from streaming.leases import LeaseKeeper, NodeNameTaken, node_of_cameras
from streaming.process import sweep_orphans
from streaming.sourcefiles import sweep_source_files
from streaming.supervisor.embedded import EmbeddedRunner
from streaming.supervisor.loop import Supervisor

logger = logging.getLogger("streaming.supervisor")
MARKER = "gtvision-media"


class Command(BaseCommand):
    help = "Keep every camera's media (live and recording) running as the database says."

    def handle(self, *args, **options):
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        use_single_connection()  # a database outage must not stall the loop (db_pool)
        # This node's row and name lock first: a second process with the same name stops here.
        leases = LeaseKeeper()
        try:
            leases.register()
        except NodeNameTaken as exc:
            raise CommandError(str(exc)) from exc
        killed = sweep_orphans(MARKER)
        if killed:
            logger.warning("killed %d FFmpeg left by a previous supervisor", killed)
        # Source files (camera URLs) a killed supervisor left behind: no leftovers.
        swept = sweep_source_files(settings.MEDIA_RUN_DIR)
        if swept:
            logger.info("removed the FFmpeg source files of %d stopped supervisor(s)", swept)
        # What was written while no supervisor ran is indexed before any FFmpeg starts; not
        # the cameras another live node records (on one host the directory is shared).
        indexed = catch_up(leases)
        if indexed:
            logger.info("indexed %d segments left from before", len(indexed))
        if settings.NODE_INTERNAL_URL:  # other web processes read this node's live HLS here
            livehop.serve(settings.NODE_INTERNAL_URL)
        runner = EmbeddedRunner(MARKER, record_dir=storage.record_dir)
        if settings.MEDIA_ENGINE == "mediamtx":
            from streaming.supervisor.mediamtx import MediaMTXRunner

            runner = MediaMTXRunner(recorder=runner)
        Supervisor(runner, recorder=Recorder(), leases=leases).run(stop)


def catch_up(leases: LeaseKeeper) -> list:
    """``indexer.catch_up`` for the cameras no other node holds a lease on."""
    held = {camera for camera, node in node_of_cameras().items() if node != leases.name}
    indexed = []
    for camera_id in storage.camera_ids_on_disk():
        if camera_id not in held:
            directory = storage.camera_dir(camera_id) / storage.INCOMING
            indexed += indexer.index_camera(camera_id, directory, writer_alive=False)
    return indexed


class Recorder:
    """The recordings side of the supervisor loop."""

    def __init__(self) -> None:
        self._sessions: dict[int, tuple[bool, bool]] = {}
        self._sessions_at = -1.0

    def index(self, camera_id: int, *, writer_alive: bool) -> None:
        segments = indexer.index_camera(
            camera_id, storage.record_dir(camera_id), writer_alive=writer_alive
        )
        self._observe(segments)

    def index_all(self, cameras: dict[int, bool]) -> None:
        """``index`` for every camera (``camera_id -> writer_alive``) in one batch."""
        incoming = {
            camera_id: (storage.camera_dir(camera_id) / storage.INCOMING, alive)
            for camera_id, alive in cameras.items()
        }  # not created here (record_dir would mkdir every pass): FFmpeg's start does
        self._observe(indexer.index_cameras(incoming))

    def _observe(self, segments) -> None:
        now = timezone.now()
        for segment in segments:  # from the segment's end to its row
            SEGMENT_INDEX_LATENCY.observe(max(0.0, (now - segment.end).total_seconds()))

    def sessions(self, camera, camera_id: int) -> None:
        # The loop checks every camera in a row: one query gives each camera's wish and
        # session; a camera in step, with the same wish in the pass's fresh row, needs
        # nothing. The others go through ensure_recording_session (two queries, a lock).
        now = time.monotonic()
        if now - self._sessions_at > 1.0:
            self._sessions = _recording_sessions()
            self._sessions_at = now
        if camera is not None and camera_id in self._sessions:
            wanted, recording = self._sessions[camera_id]
            if (camera.enabled and camera.recording_enabled) == wanted == recording:
                return
        camera = camera or Camera.objects.filter(pk=camera_id).first()
        if camera is not None:
            services.ensure_recording_session(camera)


def _recording_sessions() -> dict[int, tuple[bool, bool]]:
    """camera -> (to be recorded, has an open recording session), for every camera."""
    open_session = Recording.objects.filter(
        camera=OuterRef("pk"), status=Recording.Status.RECORDING
    )
    rows = Camera.objects.annotate(recording=Exists(open_session)).values_list(
        "pk", "enabled", "recording_enabled", "recording"
    )
    return {pk: (enabled and wanted, recording) for pk, enabled, wanted, recording in rows}
