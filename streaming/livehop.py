"""Live HLS across recorder nodes without a shared live directory (docs/scaling.md).

A node with ``GTV_NODE_INTERNAL_URL`` (e.g. ``http://10.0.0.5:8701``) serves its own live
directory there, inside the installation only: ``GET /live/<camera>/<profile>/<file>``, each
request signed by the web process with ``SECRET_KEY`` (``django.core.signing``, valid for
``HOP_MAX_AGE_S``). The web's live view (streaming/views.py) asks the node holding the
camera's lease when the file is not in its own ``GTV_LIVE_DIR``; authorization, audit and the
viewer's URL stay the web's.
"""

from __future__ import annotations

import logging
import re
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from django.core import signing

logger = logging.getLogger(__name__)

SALT = "gtvision.live-hop"
HEADER = "X-GTV-Hop"
HOP_MAX_AGE_S = 30
HOP_TIMEOUT_S = 5.0
PATH = re.compile(r"^/live/(?P<camera>\d{1,18})/(?P<profile>main|sub)/"
                  r"(?P<name>[A-Za-z0-9_-][A-Za-z0-9_.-]{0,99}\.(m3u8|ts|m4s|mp4))$")  # fmt: skip
CONTENT_TYPES = {"m3u8": "application/vnd.apple.mpegurl", "ts": "video/mp2t"}


def hop_path(camera_id: int, profile: str, name: str) -> str:
    return f"/live/{camera_id}/{profile}/{name}"


def fetch(stream, name: str) -> bytes | None:
    """The live file ``name`` of ``stream`` from the node pulling its camera, or None (no
    node, no internal URL, not there, unreachable)."""
    from django.utils import timezone

    from streaming.models import CameraLease

    lease = (
        CameraLease.objects.select_related("node")
        .filter(camera_id=stream.camera_id, node__isnull=False, expires_at__gt=timezone.now())
        .first()
    )
    if lease is None or not lease.node.internal_url:
        return None
    base = lease.node.internal_url.rstrip("/")
    if urlsplit(base).scheme not in ("http", "https"):
        return None
    profile = getattr(stream, "profile", "main") or "main"
    path = hop_path(stream.camera_id, profile, name)
    request = urllib.request.Request(  # noqa: S310 - http(s) only, checked above
        base + path, headers={HEADER: signing.dumps(path, salt=SALT)}
    )
    try:
        with urllib.request.urlopen(request, timeout=HOP_TIMEOUT_S) as response:  # noqa: S310
            return response.read()
    except (urllib.error.URLError, OSError) as exc:
        logger.debug("live hop to %s failed: %s", lease.node.name, type(exc).__name__)
        return None


class _Handler(BaseHTTPRequestHandler):
    server_version = "gtvision-node"

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        from streaming.engine import live_dir

        match = PATH.match(self.path)
        try:
            allowed = (
                match is not None
                and signing.loads(self.headers.get(HEADER, ""), salt=SALT, max_age=HOP_MAX_AGE_S)
                == self.path
            )
        except signing.BadSignature:
            allowed = False
        if not allowed:
            self.send_error(403)
            return
        path = live_dir(int(match["camera"]), match["profile"]) / match["name"]
        try:
            data = path.read_bytes()
        except OSError:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPES.get(match[4], "application/octet-stream"))
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - http.server's name
        logger.debug("live hop: " + format, *args)


def serve(internal_url: str) -> ThreadingHTTPServer:
    """Serve this node's live directory at ``internal_url``'s host and port (a thread)."""
    parts = urlsplit(internal_url)
    server = ThreadingHTTPServer((parts.hostname or "0.0.0.0", parts.port or 80), _Handler)  # noqa: S104
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="live-hop", daemon=True).start()
    logger.info("live hop: serving the live directory at %s", internal_url)
    return server
