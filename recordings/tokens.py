"""Signed tokens in playback playlists: they let a player fetch the recorded media of the one
camera and time range the playlist was issued for, for a short while.

A token names its user, camera and range ``[start, end)``, when it was issued and when it
expires: the playlist's duration plus ``RECORDING_TOKEN_MARGIN_S``, at most
``RECORDING_TOKEN_MAX_AGE_S``. A segment outside the range is refused, and so is every token
issued before the user's ``tokens_valid_after`` (set on logout and password change).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core import signing
from django.utils import timezone

SALT = "gtvision.recording-view.v2"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _us(value: datetime) -> int:
    return (value - _EPOCH) // timedelta(microseconds=1)


def _at(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


@dataclass(frozen=True)
class PlaybackGrant:
    """What a valid token lets its holder fetch."""

    user_id: int
    camera_id: int
    start: datetime
    end: datetime
    issued_at: datetime

    def covers(self, camera_id: int, start: datetime, end: datetime) -> bool:
        """A segment ``[start, end)`` of ``camera_id`` overlaps the playlist's range."""
        return camera_id == self.camera_id and start < self.end and end > self.start


def lifetime(start: datetime, end: datetime) -> timedelta:
    """How long a token for ``[start, end)`` stays valid: long enough to watch it."""
    seconds = (end - start).total_seconds() + settings.RECORDING_TOKEN_MARGIN_S
    return timedelta(seconds=min(seconds, settings.RECORDING_TOKEN_MAX_AGE_S))


def make_playback_token(
    user_id: int, camera_id: int, start: datetime, end: datetime, *, now: datetime | None = None
) -> str:
    now = now or timezone.now()
    expires = now + lifetime(start, end)
    payload = {"u": user_id, "c": camera_id, "s": _us(start), "e": _us(end), "i": _us(now)}
    payload["x"] = _us(expires)
    return signing.dumps(payload, salt=SALT, compress=True)


def read_playback_token(token: str, *, now: datetime | None = None) -> PlaybackGrant | None:
    """The grant of a well-signed, unexpired token; None otherwise (revocation is checked
    against the user: ``revoked``)."""
    if not token or len(token) > 1024:
        return None
    try:
        data = signing.loads(token, salt=SALT)
        expires = int(data["x"])
        grant = PlaybackGrant(
            user_id=int(data["u"]),
            camera_id=int(data["c"]),
            start=_at(int(data["s"])),
            end=_at(int(data["e"])),
            issued_at=_at(int(data["i"])),
        )
    except (signing.BadSignature, KeyError, TypeError, ValueError, OverflowError):
        return None
    if _us(now or timezone.now()) >= expires:
        return None
    return grant


def revoked(grant: PlaybackGrant, user) -> bool:
    """The user logged out or changed password after the token was issued."""
    valid_after = getattr(user, "tokens_valid_after", None)
    return valid_after is not None and grant.issued_at < valid_after
