"""Run the media supervisor (long-running; listed in the Procfile)."""

import logging
import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils import timezone

from cidades.models import Camera
from gtvision.db_pool import use_single_connection
from gtvision.metrics import SEGMENT_INDEX_LATENCY
from recordings import indexer, services, storage
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
        killed = sweep_orphans(MARKER)
        if killed:
            logger.warning("killed %d FFmpeg left by a previous supervisor", killed)
        # Source files (camera URLs) a killed supervisor left behind: no leftovers.
        swept = sweep_source_files(settings.MEDIA_RUN_DIR)
        if swept:
            logger.info("removed the FFmpeg source files of %d stopped supervisor(s)", swept)
        # What was written while no supervisor ran is indexed before any FFmpeg starts.
        indexed = indexer.catch_up()
        if indexed:
            logger.info("indexed %d segments left from before", len(indexed))
        runner = EmbeddedRunner(MARKER, record_dir=storage.record_dir)
        if settings.MEDIA_ENGINE == "mediamtx":
            from streaming.supervisor.mediamtx import MediaMTXRunner

            runner = MediaMTXRunner(recorder=runner)
        Supervisor(runner, recorder=Recorder()).run(stop)


class Recorder:
    """The recordings side of the supervisor loop."""

    def index(self, camera_id: int, *, writer_alive: bool) -> None:
        segments = indexer.index_camera(
            camera_id, storage.record_dir(camera_id), writer_alive=writer_alive
        )
        now = timezone.now()
        for segment in segments:  # from the segment's end to its row
            SEGMENT_INDEX_LATENCY.observe(max(0.0, (now - segment.end).total_seconds()))

    def sessions(self, camera, camera_id: int) -> None:
        camera = camera or Camera.objects.filter(pk=camera_id).first()
        if camera is not None:
            services.ensure_recording_session(camera)
