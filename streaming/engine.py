"""What the web process asks of the configured media engine: player URLs and health."""

from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings
from django.urls import reverse

from gtvision.drf import public_url
from streaming.models import Stream
from streaming.tokens import make_view_token


def engine_name() -> str:
    return settings.MEDIA_ENGINE


def live_dir(camera_id: int, profile: str = "main") -> Path:
    """Where the embedded engine writes a camera's live HLS of ``profile`` (``main``: the
    camera's stream, ``sub``: its substream)."""
    suffix = "" if profile == "main" else f"-{profile}"
    return Path(settings.LIVE_DIR) / f"cam{camera_id}{suffix}"


def stream_live_dir(stream: Stream) -> Path:
    """Where the embedded engine writes ``stream``'s live HLS."""
    return live_dir(stream.camera_id, getattr(stream, "profile", "main") or "main")


def stream_urls(stream: Stream, user, request) -> dict[str, str | None]:
    token = make_view_token(user.pk, stream.camera_id)
    if engine_name() == "mediamtx":
        from streaming.mediamtx.integration import viewer_urls

        return viewer_urls(stream.camera, token)
    hls = reverse("stream-hls", kwargs={"pk": stream.pk, "name": "index.m3u8"})
    # Absolute from PUBLIC_URL, never from the request's (forgeable) Host header.
    return {"hls": public_url(f"{hls}?token={token}"), "webrtc": None, "rtsp": None}


def engine_health() -> dict:
    if engine_name() == "mediamtx":
        from streaming.mediamtx.integration import health

        return health()
    from streaming.ffmpeg import ffmpeg_exe

    binary = ffmpeg_exe()
    ok = os.path.isfile(binary) and os.access(binary, os.X_OK)
    return {"ok": ok, "engine": "embedded", "ffmpeg": os.path.basename(binary)}
