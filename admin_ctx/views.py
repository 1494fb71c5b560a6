from drf_spectacular.utils import extend_schema
from rest_framework import generics, permissions
from rest_framework.exceptions import AuthenticationFailed, Throttled
from rest_framework_simplejwt.exceptions import InvalidToken
from rest_framework_simplejwt.serializers import TokenObtainPairSerializer
from rest_framework_simplejwt.views import TokenObtainPairView
from rest_framework_simplejwt.views import TokenRefreshView as BaseTokenRefreshView

from admin_ctx import audit, services
from admin_ctx.filters import AuditEntryFilterSet, UserFilterSet
from admin_ctx.models import AuditEntry, Role, User
from admin_ctx.serializers import AuditEntrySerializer, MeSerializer, UserSerializer
from admin_ctx.tokens import with_auth_time
from gtvision import login_guard
from gtvision.api import TenantModelViewSet, TenantReadOnlyViewSet


def _throttled(wait: int) -> Throttled:
    return Throttled(wait=wait, detail=login_guard.too_many_attempts_message(wait))


class AuditedTokenSerializer(TokenObtainPairSerializer):
    @classmethod
    def get_token(cls, user):
        return with_auth_time(super().get_token(user))

    def validate(self, attrs):
        data = super().validate(attrs)
        audit.record(
            "auth.login", actor=self.user, request=self.context["request"], details={"via": "jwt"}
        )
        return data


class TokenView(TokenObtainPairView):
    """JWT login: behind the login guard (429 while locked), audited (failures through
    Django's signal)."""

    serializer_class = AuditedTokenSerializer

    def handle_exception(self, exc):
        wait = login_guard.blocked_retry_after(self.request)
        if wait is not None and isinstance(exc, AuthenticationFailed):
            exc = _throttled(wait)
        return super().handle_exception(exc)


class TokenRefreshView(BaseTokenRefreshView):
    """Refresh: refused (429) from an address the login guard locked; failures count."""

    def post(self, request, *args, **kwargs):
        wait = login_guard.retry_after(request, None)
        if wait is not None:
            raise _throttled(wait)
        try:
            return super().post(request, *args, **kwargs)
        except (AuthenticationFailed, InvalidToken):
            login_guard.record_failure(request, None)
            raise


class MeView(generics.RetrieveAPIView):
    serializer_class = MeSerializer
    permission_classes = [permissions.IsAuthenticated]

    def get_object(self):
        return self.request.user


class UserViewSet(TenantModelViewSet):
    queryset = User.objects.all()
    serializer_class = UserSerializer
    filterset_class = UserFilterSet
    ordering_fields = ["username", "role"]
    read_roles = {Role.ADMIN, Role.GESTOR}
    write_roles = {Role.ADMIN, Role.GESTOR}

    create_service = staticmethod(services.create_user)
    update_service = staticmethod(services.update_user)
    delete_service = staticmethod(services.delete_user)


@extend_schema(tags=["audit"])
class AuditEntryViewSet(TenantReadOnlyViewSet):
    queryset = AuditEntry.objects.all()
    serializer_class = AuditEntrySerializer
    filterset_class = AuditEntryFilterSet
    read_roles = {Role.ADMIN, Role.GESTOR}
