"""Signed tokens in playback playlists: they let a player fetch one camera's recorded media."""

from __future__ import annotations

from django.conf import settings
from django.core import signing

SALT = "gtvision.recording-view"


def max_age_s() -> int:
    """Lifetime of a playback token: long enough to watch the playlist it was issued in."""
    return settings.RECORDING_TOKEN_MAX_AGE_S


def make_playback_token(user_id: int, camera_id: int) -> str:
    return signing.dumps({"u": user_id, "c": camera_id}, salt=SALT, compress=True)


def read_playback_token(token: str) -> tuple[int, int] | None:
    """(user_id, camera_id) of a valid, unexpired token; None otherwise."""
    try:
        data = signing.loads(token, salt=SALT, max_age=max_age_s())
    except signing.BadSignature:
        return None
    try:
        return int(data["u"]), int(data["c"])
    except (KeyError, TypeError, ValueError):
        return None
