"""Django side of the MediaMTX engine: the client from settings, URLs, viewer authorization."""

from __future__ import annotations

from urllib.parse import quote

from django.conf import settings

from streaming.mediamtx.client import MediaMTXClient, camera_path_name, reader_urls


def client() -> MediaMTXClient:
    return MediaMTXClient(
        settings.MEDIAMTX_API_URL,
        username=settings.MEDIAMTX_API_USER or None,
        password=settings.MEDIAMTX_API_PASSWORD or None,
    )


def path_for(camera) -> str:
    return camera_path_name(camera.prefeitura_id, camera.pk)


def restream_url(camera) -> str:
    """MediaMTX's RTSP restream of the camera, read with the recorder's account."""
    scheme, _sep, rest = settings.MEDIAMTX_INTERNAL_RTSP_URL.rstrip("/").partition("://")
    user = quote(settings.MEDIAMTX_INTERNAL_USER, safe="")
    password = quote(settings.MEDIAMTX_INTERNAL_PASSWORD, safe="")
    return f"{scheme}://{user}:{password}@{rest}/{path_for(camera)}"


def viewer_urls(camera, token: str) -> dict[str, str | None]:
    """HLS, WebRTC (WHEP) and RTSP URLs of the camera's path, carrying a view token."""
    urls = reader_urls(
        settings.MEDIAMTX_PUBLIC_HLS_URL,
        settings.MEDIAMTX_PUBLIC_WEBRTC_URL,
        settings.MEDIAMTX_PUBLIC_RTSP_URL,
        path_for(camera),
    )
    return {
        "hls": f"{urls['hls']}?token={token}" if urls["hls"] else None,
        "webrtc": f"{urls['webrtc']}?token={token}" if urls["webrtc"] else None,
        "rtsp": _rtsp_with_token(urls["rtsp"], token),
    }


def _rtsp_with_token(url: str | None, token: str) -> str | None:
    # RTSP players send credentials as user:password; the token goes in the password.
    if not url:
        return None
    scheme, _sep, rest = url.partition("://")
    return f"{scheme}://viewer:{token}@{rest}"


def health() -> dict:
    try:
        with client() as api:
            info = api.info()
    except Exception as exc:  # unreachable, unauthorized...
        return {"ok": False, "engine": "mediamtx", "error": type(exc).__name__}
    return {"ok": True, "engine": "mediamtx", "version": info.get("version")}
