"""Security middleware: proxy headers only from trusted proxies, Content-Security-Policy;
request ids, access log and HTTP latency (``RequestObservabilityMiddleware``)."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable
from functools import lru_cache
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


REQUEST_ID_HEADER = "X-Request-ID"
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")
access_logger = logging.getLogger("gtvision.request")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def request_id_of(request: HttpRequest) -> str:
    """The incoming ``X-Request-ID`` when it is sane (a proxy's or a client's), else a new one."""
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    return incoming if _SANE_REQUEST_ID.match(incoming) else uuid.uuid4().hex


_REGEX_GROUP = re.compile(r"\(\?P<(\w+)>[^)]*\)")


@lru_cache(maxsize=1024)
def _route_label(route: str) -> str:
    """The URL pattern as a label: ``api/cameras/(?P<pk>[^/.]+)/$`` -> ``/api/cameras/<pk>/``."""
    return "/" + _REGEX_GROUP.sub(r"<\1>", route).replace("^", "").replace("$", "")


def _user_fields(request: HttpRequest) -> dict[str, int | None]:
    user = getattr(request, "user", None)  # set by AuthenticationMiddleware, or by DRF's auth
    if user is None or not getattr(user, "is_authenticated", False):
        return {}
    return {"user_id": user.pk, "prefeitura_id": getattr(user, "prefeitura_id", None)}


class RequestObservabilityMiddleware:
    """First in ``MIDDLEWARE``: a request id for each request (``X-Request-ID`` on the
    response, ``request_id`` on every log record of the request), one access log line
    (``gtvision.request``: method, path without query string, status, duration, route) and
    the HTTP latency histogram by route (``gtvision.metrics.HTTP_LATENCY``)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        from gtvision import logging_context
        from gtvision.metrics import HTTP_LATENCY

        request_id = request_id_of(request)
        request.request_id = request_id
        tokens = logging_context.set_fields(request_id=request_id, user_id=None, prefeitura_id=None)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
            elapsed = time.perf_counter() - started
            match = getattr(request, "resolver_match", None)
            route = (
                _route_label(match.route) if match is not None and match.route else "<unmatched>"
            )
            method = request.method if request.method in _METHODS else "other"  # bounded
            HTTP_LATENCY.labels(
                route=route, method=method, status=f"{response.status_code // 100}xx"
            ).observe(elapsed)
            with logging_context.bind(**_user_fields(request)):
                access_logger.info(
                    "%s %s %s %.1f ms",
                    request.method,
                    request.path,
                    response.status_code,
                    elapsed * 1000,
                    extra={
                        "event": "http_request",
                        "method": request.method,
                        "path": request.path,
                        "route": route,
                        "status": response.status_code,
                        "duration_ms": round(elapsed * 1000, 1),
                    },
                )
            response[REQUEST_ID_HEADER] = request_id
            return response
        finally:
            logging_context.reset(tokens)

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs) -> None:
        """After the authentication middleware: the session's user is on later records."""
        from gtvision import logging_context

        logging_context.set_fields(**_user_fields(request))
