from drf_spectacular.utils import extend_schema
from rest_framework import generics, permissions
from rest_framework.throttling import ScopedRateThrottle
from rest_framework_simplejwt.serializers import TokenObtainPairSerializer
from rest_framework_simplejwt.views import TokenObtainPairView

from admin_ctx import audit, services
from admin_ctx.filters import AuditEntryFilterSet, UserFilterSet
from admin_ctx.models import AuditEntry, Role, User
from admin_ctx.serializers import AuditEntrySerializer, MeSerializer, UserSerializer
from gtvision.api import TenantModelViewSet, TenantReadOnlyViewSet


class AuditedTokenSerializer(TokenObtainPairSerializer):
    def validate(self, attrs):
        data = super().validate(attrs)
        audit.record(
            "auth.login", actor=self.user, request=self.context["request"], details={"via": "jwt"}
        )
        return data


class TokenView(TokenObtainPairView):
    """JWT login: throttled per client, audited (failures through Django's signal)."""

    serializer_class = AuditedTokenSerializer
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "login"


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
