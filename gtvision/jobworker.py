"""The job worker: procrastinate's worker, kept alive across database outages.

``manage.py procrastinate worker`` exits with "Database error." as soon as PostgreSQL goes
away and stays dead. ``JobWorker`` runs the same worker (same app, same task middlewares)
in a loop: when the database is lost it closes the connection pool, waits with exponential
backoff (1 s doubling up to ``JOB_WORKER_MAX_BACKOFF_S``) and starts a fresh worker, until
it is asked to stop (SIGINT/SIGTERM). A job left ``doing`` by a worker that died or lost the
database (its heartbeat older than ``STALLED_S``) is put back in the queue when the worker
connects and every ``STALLED_CHECK_S`` after that (procrastinate does not do it by itself).

While a worker is registered and its database answers, a ``WorkerHeartbeat`` of kind
``job-worker`` is written every ``JOB_WORKER_HEARTBEAT_S``; ``/health`` fails when it is older
than ``JOB_WORKER_HEARTBEAT_STALE_S``.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.db import close_old_connections
from procrastinate import worker as procrastinate_worker
from procrastinate.contrib.django import app as procrastinate_app

logger = logging.getLogger("gtvision.jobworker")

HEARTBEAT_KIND = "job-worker"
MIN_BACKOFF_S = 1.0
HEALTHY_AFTER_S = 60.0  # a worker that ran this long resets the backoff
CLOSE_TIMEOUT_S = 10.0
STALLED_S = 30.0  # procrastinate's own default for a stalled worker
STALLED_CHECK_S = 60.0


def _first_line(exc: BaseException) -> str:
    cause = exc.__cause__ or exc
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[0] if text else ''}"


class JobWorker:
    """Run procrastinate's worker until stopped, restarting it after database errors."""

    def __init__(
        self,
        *,
        queues: Iterable[str] | None = None,
        concurrency: int = 1,
        name: str | None = None,
        app=None,
    ) -> None:
        self.app = app or procrastinate_app
        self.queues = list(queues) if queues else None
        self.concurrency = concurrency
        self.name = name or f"job-worker@{socket.gethostname()}"
        self.stopping = asyncio.Event()
        self.worker: procrastinate_worker.Worker | None = None
        self.restarts = 0
        self._beats = ThreadPoolExecutor(max_workers=1, thread_name_prefix="heartbeat")

    def stop(self) -> None:
        self.stopping.set()
        if self.worker is not None:
            self.worker.stop()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self.stop)
        beating = asyncio.create_task(self._heartbeats(), name="gtv-heartbeat")
        delay = MIN_BACKOFF_S
        try:
            while not self.stopping.is_set():
                started = time.monotonic()
                try:
                    await self._run_once()
                    if not self.stopping.is_set():
                        logger.warning("job worker stopped by itself; starting it again")
                except Exception as exc:  # noqa: BLE001 - any failure: log, back off, retry
                    logger.warning(
                        "job worker lost the database (%s); retrying in %.0f s",
                        _first_line(exc),
                        delay,
                    )
                if self.stopping.is_set():
                    break
                if time.monotonic() - started > HEALTHY_AFTER_S:
                    delay = MIN_BACKOFF_S
                self.restarts += 1
                try:
                    await asyncio.wait_for(self.stopping.wait(), delay)
                except TimeoutError:
                    pass
                delay = min(delay * 2, settings.JOB_WORKER_MAX_BACKOFF_S)
        finally:
            beating.cancel()
            await asyncio.gather(beating, return_exceptions=True)
            self._beats.shutdown(wait=False)
            logger.info("job worker stopped")

    async def _run_once(self) -> None:
        connector = self.app.connector
        if hasattr(connector, "get_worker_connector"):  # the Django connector has no pool
            connector = connector.get_worker_connector()
        with self.app.replace_connector(connector) as app:
            try:
                await app.open_async()
                app.perform_import_paths()
                options = {
                    **app.worker_defaults,  # the Django contrib's DB cleanup middlewares
                    "queues": self.queues,
                    "concurrency": self.concurrency,
                    "name": "worker",
                    "install_signal_handlers": False,
                }
                self.worker = procrastinate_worker.Worker(app=app, **options)
                if self.stopping.is_set():
                    return
                logger.info("job worker connected (queues: %s)", self.queues or "all")
                await self._retry_stalled_jobs(app)
                await self.worker.run()
            finally:
                self.worker = None
                try:
                    await asyncio.wait_for(app.close_async(), CLOSE_TIMEOUT_S)
                except Exception:  # noqa: BLE001 - the pool of a lost database
                    logger.debug("closing the job worker's pool failed", exc_info=True)

    async def _retry_stalled_jobs(self, app) -> None:
        """Queue again the jobs of workers whose heartbeat stopped (died, lost the database)."""
        await app.job_manager.prune_stalled_workers(STALLED_S)
        for job in await app.job_manager.get_stalled_jobs(seconds_since_heartbeat=STALLED_S):
            logger.warning(
                "job %s (%s) was left running by a lost worker: retrying it", job.id, job.task_name
            )
            await app.job_manager.retry_job(job)

    async def _heartbeats(self) -> None:
        loop = asyncio.get_running_loop()
        last_stalled_check = time.monotonic()
        while True:
            worker = self.worker
            if worker is not None and worker.worker_id is not None:
                try:
                    if time.monotonic() - last_stalled_check >= STALLED_CHECK_S:
                        last_stalled_check = time.monotonic()
                        await self._retry_stalled_jobs(self.app)
                    await self.app.check_connection_async()
                    details = {"restarts": self.restarts, "queues": self.queues or []}
                    await loop.run_in_executor(self._beats, self._beat, details)
                except Exception as exc:  # noqa: BLE001 - the database is away: no beat
                    logger.debug("heartbeat failed: %s", _first_line(exc))
            await asyncio.sleep(settings.JOB_WORKER_HEARTBEAT_S)

    def _beat(self, details: dict) -> None:
        from streaming import services

        close_old_connections()  # drop a connection the outage broke
        services.heartbeat(self.name, kind=HEARTBEAT_KIND, details=details)
