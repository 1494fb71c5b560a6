"""Login throttling, shared by every way of signing in: the dashboard's form, the Django
admin's form, the API token endpoint and its refresh.

Django's ``authenticate()`` is the common point: :class:`GuardedModelBackend` refuses to
check a password while the username or the client address has too many recent failures,
and ``admin_ctx.signals`` counts each failure (``user_login_failed``) through
:func:`record_failure` and audits it (``auth.login_failed``: username and address, never
the password). The counters live in PostgreSQL (``admin_ctx.LoginFailureCounter``), so all
web processes share them: one indexed read per attempt, one upsert per failure.

The client address is the TCP peer, unless the peer is one of ``settings.TRUSTED_PROXIES``:
then the right-most address of ``X-Forwarded-For`` that is not itself a trusted proxy.
"""

from __future__ import annotations

import ipaddress
import random
from functools import lru_cache

from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

BLOCKED_ATTR = "_gtv_login_retry_after"
CLEANUP_PROBABILITY = 0.01

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


# -- the client's address ---------------------------------------------------------------------


@lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def trusted_proxies() -> tuple[IPNetwork, ...]:
    return _networks(tuple(getattr(settings, "TRUSTED_PROXIES", ()) or ()))


def _parse(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        return None


def is_trusted_proxy(address: str | None) -> bool:
    parsed = _parse(address or "")
    return parsed is not None and any(parsed in network for network in trusted_proxies())


def client_ip(request: HttpRequest | None) -> str | None:
    """The real client address of ``request`` (see the module's docstring)."""
    if request is None:
        return None
    meta = request.META
    peer = meta.get("REMOTE_ADDR") or ""
    address = _parse(peer)
    if address is None or not is_trusted_proxy(peer):
        return str(address) if address else None
    for hop in reversed(meta.get("HTTP_X_FORWARDED_FOR", "").split(",")):
        hop_address = _parse(hop)
        if hop_address is None:
            break  # garbage: stop at the last address a trusted proxy vouched for
        address = hop_address
        if not is_trusted_proxy(str(hop_address)):
            break
    return str(address) if address else None


# -- counters ---------------------------------------------------------------------------------


def _ip_key(request: HttpRequest | None) -> str | None:
    address = client_ip(request)
    if address is None:
        return None
    parsed = ipaddress.ip_address(address)
    if parsed.version == 6:  # one host usually owns a whole /64
        return f"ip:{ipaddress.ip_network(f'{address}/64', strict=False)}"
    return f"ip:{address}"


def _user_key(username: str | None) -> str | None:
    if username is None:
        return None
    return "user:" + str(username).strip().lower()[:150]


def _limits() -> dict[str, int]:
    return {
        "user": settings.LOGIN_MAX_FAILURES_PER_USERNAME,
        "ip": settings.LOGIN_MAX_FAILURES_PER_IP,
    }


def _table() -> str:
    from admin_ctx.models import LoginFailureCounter

    return connection.ops.quote_name(LoginFailureCounter._meta.db_table)


def retry_after(request: HttpRequest | None, username: str | None) -> int | None:
    """Seconds until a login for ``username`` from this client may be tried; None: now."""
    keys = [key for key in (_user_key(username), _ip_key(request)) if key]
    if not keys:
        return None
    limits = _limits()
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT key, failures, CEIL(EXTRACT(EPOCH FROM window_start"  # noqa: S608
            f" + make_interval(secs => %s) - now())) FROM {_table()}"
            " WHERE key = ANY(%s) AND window_start > now() - make_interval(secs => %s)",
            [settings.LOGIN_FAILURE_WINDOW_S, keys, settings.LOGIN_FAILURE_WINDOW_S],
        )
        waits = [
            max(int(wait), 1)
            for key, failures, wait in cursor.fetchall()
            if failures >= limits[key.partition(":")[0]]
        ]
    return max(waits) if waits else None


def record_failure(request: HttpRequest | None, username: str | None) -> None:
    """Count one failed attempt against the username (if any) and the client address."""
    keys = [key for key in (_user_key(username), _ip_key(request)) if key]
    if not keys:
        return
    window = settings.LOGIN_FAILURE_WINDOW_S
    table = _table()
    expired = f"{table}.window_start <= now() - make_interval(secs => %s)"
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (key, failures, window_start)"  # noqa: S608
            f" SELECT k, 1, now() FROM unnest(%s::text[]) AS k"
            f" ON CONFLICT (key) DO UPDATE SET"
            f" failures = CASE WHEN {expired} THEN 1 ELSE {table}.failures + 1 END,"
            f" window_start = CASE WHEN {expired} THEN now() ELSE {table}.window_start END",
            [keys, window, window],
        )
        if random.random() < CLEANUP_PROBABILITY:  # noqa: S311 - housekeeping, not security
            cursor.execute(
                f"DELETE FROM {table} WHERE window_start <= now() - make_interval(secs => %s)",  # noqa: S608
                [window],
            )


def forget_username(username: str) -> None:
    """A successful login clears the username's failures (never the address's)."""
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {_table()} WHERE key = %s", [_user_key(username)])  # noqa: S608


def blocked_retry_after(request: HttpRequest | None) -> int | None:
    """Set on the request when the guard refused an attempt: seconds to wait."""
    return getattr(request, BLOCKED_ATTR, None)


def too_many_attempts_message(seconds: int) -> str:
    minutes = max(1, -(-seconds // 60))
    return ngettext(
        "Too many sign-in attempts. Try again in %(minutes)s minute.",
        "Too many sign-in attempts. Try again in %(minutes)s minutes.",
        minutes,
    ) % {"minutes": minutes}


# -- where it plugs in ------------------------------------------------------------------------


class GuardedModelBackend(ModelBackend):
    """Django's model backend behind the login guard (settings.AUTHENTICATION_BACKENDS)."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None:
            username = kwargs.get(get_user_model().USERNAME_FIELD)
        if username is None or password is None:
            return None
        wait = retry_after(request, username)
        if wait is not None:
            if request is not None:
                setattr(request, BLOCKED_ATTR, wait)
            # authenticate() stops here and sends user_login_failed (audited, not counted).
            raise PermissionDenied
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is not None:
            forget_username(username)
        return user


class GuardedFormMixin:
    """Login forms: "invalid" or, when the guard refused the attempt, "too many attempts"."""

    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": _("Invalid username or password."),
    }

    def clean(self):
        try:
            return super().clean()
        except ValidationError:
            wait = blocked_retry_after(self.request)
            if wait is not None:
                raise ValidationError(too_many_attempts_message(wait), code="throttled") from None
            raise

    @property
    def throttled(self) -> bool:
        return blocked_retry_after(self.request) is not None


class GuardedAuthenticationForm(GuardedFormMixin, AuthenticationForm):
    pass


class GuardedAdminAuthenticationForm(GuardedFormMixin, AdminAuthenticationForm):
    error_messages = {**AdminAuthenticationForm.error_messages}


__all__ = [
    "GuardedAdminAuthenticationForm",
    "GuardedAuthenticationForm",
    "GuardedModelBackend",
    "blocked_retry_after",
    "client_ip",
    "record_failure",
    "retry_after",
    "too_many_attempts_message",
]
