from django.core.management.base import BaseCommand

from recordings import indexer


class Command(BaseCommand):
    help = "Index every recorded segment waiting on disk (after a restart or an indexer crash)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--writers-stopped",
            action="store_true",
            help="no FFmpeg is recording now: also index each camera's newest file",
        )

    def handle(self, *args, writers_stopped: bool, **options):
        segments = indexer.catch_up(writers_alive=not writers_stopped)
        cameras = len({segment.camera_id for segment in segments})
        self.stdout.write(f"indexed {len(segments)} segments of {cameras} cameras")
