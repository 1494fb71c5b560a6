"""Serve HTTP and WebSockets with Daphne (the production ASGI server)."""

import os

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Serve the app (HTTP + WebSocket) with Daphne."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))

    def handle(self, *args, host, port, **options):
        from daphne.cli import CommandLineInterface

        # No --proxy-headers: Daphne would take X-Forwarded-For from any client. The app
        # reads it only from settings.TRUSTED_PROXIES (gtvision.login_guard.client_ip).
        # -v 0: no Daphne access log; the app logs each request (gtvision.request, with its
        # request id, in LOG_FORMAT).
        CommandLineInterface().run(
            ["-b", host, "-p", str(port), "-v", "0", "gtvision.asgi:application"]
        )
