"""Short-lived signed tokens that let a player fetch one camera's live media."""

from __future__ import annotations

from django.conf import settings
from django.core import signing

SALT = "gtvision.media-view"


def make_view_token(user_id: int, camera_id: int) -> str:
    return signing.dumps({"u": user_id, "c": camera_id}, salt=SALT, compress=True)


def read_view_token(token: str) -> tuple[int, int] | None:
    """(user_id, camera_id) of a valid, unexpired token; None otherwise."""
    try:
        data = signing.loads(token, salt=SALT, max_age=settings.MEDIA_VIEW_TOKEN_MAX_AGE_S)
    except signing.BadSignature:
        return None
    try:
        return int(data["u"]), int(data["c"])
    except (KeyError, TypeError, ValueError):
        return None
