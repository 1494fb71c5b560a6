"""Audit of logins made through Django's authentication (session and JWT), login failure
counting (gtvision.login_guard) and token revocation on logout."""

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import Signal, receiver

from admin_ctx import audit
from gtvision import login_guard

# Sent (after the commit) when a user's tokens were revoked: sender=User, user=the user,
# reason="password" | "deactivated" | "logout". WebSockets and media tokens listen to it.
tokens_revoked = Signal()


@receiver(user_logged_in)
def audit_login(sender, request, user, **kwargs) -> None:
    audit.record("auth.login", actor=user, request=request, details={"via": "session"})


@receiver(user_login_failed)
def audit_login_failed(sender, credentials, request=None, **kwargs) -> None:
    username = str(credentials.get("username", ""))[:150]
    details = {"username": username}
    if login_guard.blocked_retry_after(request) is not None:
        details["reason"] = "throttled"  # refused before any password check: not counted
    else:
        login_guard.record_failure(request, username)
    audit.record("auth.login_failed", request=request, details=details)


@receiver(user_logged_out)
def revoke_on_logout(sender, request, user, **kwargs) -> None:
    """Logging out ends the user's JWTs and media/playback tokens too."""
    if user is None or not user.is_authenticated:
        return
    from admin_ctx.tokens import revoke_tokens

    revoke_tokens(user, "logout")
    audit.record("auth.logout", actor=user, request=request)


@receiver(tokens_revoked)
def close_sockets_on_revocation(sender, user, reason, **kwargs) -> None:
    """The user's open WebSockets close with 4401 (gtvision.consumers)."""
    from gtvision import events

    events.publish(events.AccessRevoked(user_id=user.pk, reason=reason))
