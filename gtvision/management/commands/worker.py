"""Run the job worker (long-running; listed in the Procfile). See gtvision/jobworker.py."""

import asyncio

from django.core.management.base import BaseCommand

from gtvision.jobworker import JobWorker


class Command(BaseCommand):
    help = (
        "Run procrastinate's job worker; it rides out database outages (reconnects with "
        "backoff) and reports a heartbeat to /health."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "-q", "--queues", default="", help="comma-separated queues (default: all)"
        )
        parser.add_argument("-c", "--concurrency", type=int, default=1)

    def handle(self, *args, queues: str, concurrency: int, **options) -> None:
        names = [name.strip() for name in queues.split(",") if name.strip()]
        asyncio.run(JobWorker(queues=names or None, concurrency=concurrency).run())
