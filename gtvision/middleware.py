"""Security middleware: proxy headers only from trusted proxies, Content-Security-Policy."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse

from gtvision.login_guard import is_trusted_proxy

PROXY_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_HOST")


class TrustedProxyMiddleware:
    """Drop ``X-Forwarded-*`` headers unless the peer is one of ``settings.TRUSTED_PROXIES``.

    Nothing after it (``SECURE_PROXY_SSL_HEADER``, the client address of audit entries and
    of the login guard) can then be fooled by a header a client wrote itself.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not is_trusted_proxy(request.META.get("REMOTE_ADDR")):
            for header in PROXY_HEADERS:
                request.META.pop(header, None)
        return self.get_response(request)


def _origin(url: str) -> str | None:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else None


def _media_origins() -> list[str]:
    """With MediaMTX, players fetch HLS and WebRTC (WHEP) from its public origins."""
    if getattr(settings, "MEDIA_ENGINE", "embedded") != "mediamtx":
        return []
    urls = [settings.MEDIAMTX_PUBLIC_HLS_URL, settings.MEDIAMTX_PUBLIC_WEBRTC_URL]
    return [origin for origin in dict.fromkeys(map(_origin, urls)) if origin]


def build_policy(request: HttpRequest) -> str:
    """The policy of ``settings.CONTENT_SECURITY_POLICY`` for this request's page."""
    directives = {name: list(sources) for name, sources in settings.CONTENT_SECURITY_POLICY.items()}
    try:
        host = request.get_host()
    except DisallowedHost:
        host = None
    if host:  # WebSockets to the page's own host ('self' covers ws(s) only in newer browsers)
        directives.setdefault("connect-src", []).extend([f"ws://{host}", f"wss://{host}"])
    media = _media_origins()
    if media:
        directives.setdefault("connect-src", []).extend(media)
        directives.setdefault("media-src", []).extend(media)
    return "; ".join(
        f"{name} {' '.join(dict.fromkeys(sources))}" for name, sources in directives.items()
    )


class ContentSecurityPolicyMiddleware:
    """Adds ``Content-Security-Policy`` to every response that does not set its own."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = build_policy(request)
        return response
