"""``manage.py lpr_worker``: read the plates of every camera with ``lpr_enabled``."""

from __future__ import annotations

import signal

from django.core.management.base import BaseCommand

from lpr.worker import LprWorker


class Command(BaseCommand):
    help = "Read licence plates from every enabled camera with LPR on (a long-running process)."

    def handle(self, *args, **options) -> None:
        worker = LprWorker()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: worker.stopping.set())
        worker.run()
