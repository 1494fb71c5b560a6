"""Audit of logins made through Django's authentication (session and JWT)."""

from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.dispatch import receiver

from admin_ctx import audit


@receiver(user_logged_in)
def audit_login(sender, request, user, **kwargs) -> None:
    audit.record("auth.login", actor=user, request=request, details={"via": "session"})


@receiver(user_login_failed)
def audit_login_failed(sender, credentials, request=None, **kwargs) -> None:
    audit.record(
        "auth.login_failed",
        request=request,
        details={"username": str(credentials.get("username", ""))[:150]},
    )
