"""WebSocket authentication and origin checks.

Authentication: the Django session, or ``?token=<access JWT>`` (a token, valid or not,
takes precedence over the session). Tokens go through the API's own authentication class,
so a token revoked by logout, deactivation or a password change is refused here too.

Origin (``docs/security.md``, "WebSockets"): a browser always sends ``Origin`` on a
WebSocket handshake, and a page of another site (or of another port of the same host) must
not read a signed-in user's events. Allowed: the origin of ``PUBLIC_URL``, the
``CSRF_TRUSTED_ORIGINS`` (``https://*.example.com`` wildcards too), and the handshake's own
origin (``Origin`` equal to the ``Host`` it was sent to, that host being allowed by
``ALLOWED_HOSTS``). A client that sends no ``Origin`` is not a browser, so no page can have
borrowed its credentials: it is allowed, and still has to authenticate.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http.request import split_domain_port, validate_host


@database_sync_to_async
def _user_from_token(raw: str) -> Any:
    from admin_ctx.tokens import JWTAuthentication

    auth = JWTAuthentication()
    try:
        return auth.get_user(auth.get_validated_token(raw))
    except Exception:  # invalid, expired, revoked, or its user gone/inactive
        return AnonymousUser()


class _QueryTokenMiddleware(BaseMiddleware):
    async def __call__(self, scope, receive, send):
        query = parse_qs(scope.get("query_string", b"").decode(errors="replace"))
        token = (query.get("token") or [""])[0]
        if token:
            scope = dict(scope, user=await _user_from_token(token))
        return await super().__call__(scope, receive, send)


def TokenOrSessionAuthMiddleware(inner):  # noqa: N802 - mirrors AuthMiddlewareStack
    return AuthMiddlewareStack(_QueryTokenMiddleware(inner))


def _header(scope: dict, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _origin(url: str) -> tuple[str, str] | None:
    parts = urlsplit(url.strip())
    if not parts.scheme or not parts.netloc:
        return None
    return parts.scheme.lower(), parts.netloc.lower()


def _trusted(scheme: str, netloc: str) -> bool:
    candidates = [settings.PUBLIC_URL, *settings.CSRF_TRUSTED_ORIGINS]
    for candidate in candidates:
        trusted = _origin(candidate)
        if trusted is None or trusted[0] != scheme:
            continue
        if trusted[1] == netloc:
            return True
        if trusted[1].startswith("*.") and netloc.endswith(trusted[1][1:]):
            return True
    return False


def _allowed_hosts() -> list[str]:
    hosts = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not hosts:
        hosts = [".localhost", "127.0.0.1", "[::1]"]
    return hosts


def origin_allowed(scope: dict) -> bool:
    """Whether the handshake's ``Origin`` may open a socket (see the module's docstring)."""
    raw = _header(scope, b"origin")
    if raw is None:
        return True
    origin = _origin(raw)
    if origin is None:  # "null" (sandboxed frames, file://) or garbage
        return False
    scheme, netloc = origin
    if _trusted(scheme, netloc):
        return True
    host = (_header(scope, b"host") or "").lower()
    if not host or netloc != host:
        return False
    domain, _port = split_domain_port(host)
    return bool(domain) and validate_host(domain, _allowed_hosts())
