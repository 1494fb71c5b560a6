from django.contrib.auth.password_validation import validate_password
from django.utils.translation import gettext as _
from rest_framework import serializers

from admin_ctx.models import AuditEntry, Role, User
from cidades.models import Prefeitura


class UserSerializer(serializers.ModelSerializer):
    password = serializers.CharField(
        write_only=True, required=False, trim_whitespace=False, style={"input_type": "password"}
    )
    prefeitura = serializers.PrimaryKeyRelatedField(
        queryset=Prefeitura.objects.all(), required=False, allow_null=True
    )

    class Meta:
        model = User
        fields = ["id", "username", "email", "role", "prefeitura", "is_active", "password"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is not None and request.user.is_authenticated:
            self.fields["prefeitura"].queryset = Prefeitura.objects.for_user(request.user)

    def validate(self, attrs):
        actor = self.context["request"].user
        instance = self.instance
        role = attrs.get("role", instance.role if instance else Role.OPERADOR)
        if actor.is_platform_admin:
            prefeitura = attrs.get("prefeitura", instance.prefeitura if instance else None)
        else:
            if role == Role.ADMIN:
                raise serializers.ValidationError(
                    {"role": [_("A manager can only create managers and operators.")]}
                )
            prefeitura = actor.prefeitura
        if role == Role.ADMIN and prefeitura is not None:
            raise serializers.ValidationError(
                {"prefeitura": [_("Platform administrators do not belong to a prefeitura.")]}
            )
        if role != Role.ADMIN and prefeitura is None:
            raise serializers.ValidationError({"prefeitura": [_("This field is required.")]})
        attrs["role"] = role
        attrs["prefeitura"] = prefeitura
        password = attrs.get("password")
        if instance is None and not password:
            raise serializers.ValidationError({"password": [_("This field is required.")]})
        if password:
            candidate = instance or User(
                username=attrs.get("username", ""), email=attrs.get("email", "")
            )
            try:
                validate_password(password, candidate)
            except Exception as exc:  # django.core.exceptions.ValidationError
                raise serializers.ValidationError({"password": list(exc.messages)}) from exc
        return attrs


class MeSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ["id", "username", "role", "prefeitura"]


class AuditEntrySerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor_username", read_only=True)

    class Meta:
        model = AuditEntry
        fields = [
            "id",
            "at",
            "actor",
            "action",
            "prefeitura",
            "target_type",
            "target_id",
            "ip",
            "details",
        ]
