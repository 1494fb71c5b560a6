"""JWTs that end with the user's credentials: revoked on password change, deactivation, logout.

Every token minted at login carries ``auth_time`` (epoch seconds with microseconds, copied
into the access tokens a refresh token mints). ``User.tokens_valid_after`` is moved forward
when the password changes, the account is deactivated or the user logs out; a token whose
``auth_time`` (or, for tokens made elsewhere, ``iat``) is older is refused — by the API
(:class:`JWTAuthentication`), by the refresh endpoint (:class:`RefreshSerializer`) and by
anything else that asks :func:`token_is_current` (WebSockets, media tokens). Outstanding
refresh tokens are blacklisted as well (``rest_framework_simplejwt.token_blacklist``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt import authentication
from rest_framework_simplejwt.serializers import TokenRefreshSerializer
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken

from admin_ctx.models import User

AUTH_TIME_CLAIM = "auth_time"
REVOKED_MESSAGE = _("This token was revoked: sign in again.")


def issued_before_revocation(user: User, issued_at: float | datetime | None) -> bool:
    """True when credentials issued at ``issued_at`` predate the user's last revocation."""
    valid_after = user.tokens_valid_after
    if valid_after is None:
        return False
    if issued_at is None:
        return True
    if isinstance(issued_at, datetime):
        issued_at = issued_at.timestamp()
    return float(issued_at) < valid_after.timestamp()


def token_is_current(user: User, token: Any) -> bool:
    """Whether a decoded JWT (anything with ``.get``) was issued after the last revocation.

    ``iat`` has whole seconds only: a token without ``auth_time`` issued in the same second
    as the revocation is still accepted.
    """
    if user.tokens_valid_after is None:
        return True
    auth_time = token.get(AUTH_TIME_CLAIM)
    if auth_time is not None:
        return not issued_before_revocation(user, auth_time)
    iat = token.get("iat")
    return iat is not None and int(iat) >= int(user.tokens_valid_after.timestamp())


def with_auth_time(token: RefreshToken) -> RefreshToken:
    token[AUTH_TIME_CLAIM] = round(timezone.now().timestamp(), 6)
    return token


def revoke_tokens(user: User, reason: str, *, bump: bool = True) -> None:
    """Refuse every token the user holds from now on; tell listeners (sockets, media).

    ``bump`` moves ``tokens_valid_after`` (``User.save`` already did it for password and
    deactivation). Listeners get ``admin_ctx.signals.tokens_revoked`` after the commit.
    """
    from admin_ctx.signals import tokens_revoked

    now = timezone.now()
    if bump:
        User.objects.filter(pk=user.pk).update(tokens_valid_after=now)
        user.tokens_valid_after = now
    outstanding = OutstandingToken.objects.filter(
        user_id=user.pk, expires_at__gt=now, blacklistedtoken__isnull=True
    )
    BlacklistedToken.objects.bulk_create(
        [BlacklistedToken(token=token) for token in outstanding], ignore_conflicts=True
    )
    transaction.on_commit(lambda: tokens_revoked.send(sender=User, user=user, reason=reason))


class JWTAuthentication(authentication.JWTAuthentication):
    """simplejwt's authentication that also refuses tokens issued before a revocation."""

    def get_user(self, validated_token):
        user = super().get_user(validated_token)
        if not token_is_current(user, validated_token):
            raise AuthenticationFailed(REVOKED_MESSAGE, code="token_revoked")
        return user


class RevocableJWTScheme(SimpleJWTScheme):
    """OpenAPI: the same bearer scheme as simplejwt's own authentication."""

    target_class = "admin_ctx.tokens.JWTAuthentication"


class RefreshSerializer(TokenRefreshSerializer):
    """Refresh that refuses revoked, deleted or deactivated users' tokens (never a 500)."""

    def validate(self, attrs: dict[str, Any]) -> dict[str, str]:
        refresh = self.token_class(attrs["refresh"])
        user = User.objects.filter(pk=refresh.get(api_settings.USER_ID_CLAIM)).first()
        if user is None or not user.is_active:
            raise AuthenticationFailed(
                self.error_messages["no_active_account"], "no_active_account"
            )
        if not token_is_current(user, refresh):
            raise AuthenticationFailed(REVOKED_MESSAGE, code="token_revoked")
        return super().validate(attrs)
