from django.utils.translation import gettext as _
from rest_framework import serializers

from cidades.models import Camera, Prefeitura
from cidades.validators import SOURCE_URL_MAX_LENGTH, normalize_cnpj, validate_source_url


class PrefeituraSerializer(serializers.ModelSerializer):
    retention_days = serializers.IntegerField(read_only=True)

    class Meta:
        model = Prefeitura
        fields = [
            "id",
            "name",
            "uf",
            "ibge_code",
            "cnpj",
            "plan",
            "retention_days",
            "max_cameras",
            "active",
            "reason_required_for",
            "created_at",
        ]
        read_only_fields = ["created_at"]

    def to_internal_value(self, data):
        if hasattr(data, "get") and isinstance(data.get("cnpj"), str):
            data = {**data, "cnpj": normalize_cnpj(data["cnpj"])}
        return super().to_internal_value(data)


class CameraSerializer(serializers.ModelSerializer):
    source_url = serializers.CharField(
        write_only=True,
        max_length=SOURCE_URL_MAX_LENGTH,
        trim_whitespace=False,
        validators=[validate_source_url],
        style={"input_type": "password"},
    )
    substream_url = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        allow_null=True,
        max_length=SOURCE_URL_MAX_LENGTH,
        trim_whitespace=False,
        validators=[validate_source_url],
        style={"input_type": "password"},
        help_text="Optional low-resolution second stream (same rules and secrecy as "
        "source_url): grids and mosaics play it. Omit to keep it; empty or null removes it.",
    )
    has_substream = serializers.BooleanField(read_only=True)
    prefeitura = serializers.PrimaryKeyRelatedField(
        queryset=Prefeitura.objects.all(), required=False
    )

    class Meta:
        model = Camera
        fields = [
            "id",
            "prefeitura",
            "name",
            "code",
            "source_url",
            "source_url_masked",
            "substream_url",
            "substream_url_masked",
            "has_substream",
            "latitude",
            "longitude",
            "address",
            "enabled",
            "recording_enabled",
            "lpr_enabled",
            "status",
            "created_at",
        ]
        read_only_fields = ["source_url_masked", "substream_url_masked", "status", "created_at"]
        # The (prefeitura, code) uniqueness is checked in validate(), with the resolved tenant.
        validators = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is not None and request.user.is_authenticated:
            self.fields["prefeitura"].queryset = Prefeitura.objects.for_user(request.user)
        if self.instance is not None and not isinstance(self.instance, list | tuple):
            self.fields["source_url"].required = False

    def validate_latitude(self, value):
        if value is not None and not -90 <= value <= 90:
            raise serializers.ValidationError(_("Latitude must be between -90 and 90."))
        return value

    def validate_longitude(self, value):
        if value is not None and not -180 <= value <= 180:
            raise serializers.ValidationError(_("Longitude must be between -180 and 180."))
        return value

    def validate(self, attrs):
        user = self.context["request"].user
        if self.instance is not None:
            prefeitura = attrs.get("prefeitura", self.instance.prefeitura)
        elif user.is_platform_admin:
            prefeitura = attrs.get("prefeitura")
            if prefeitura is None:
                raise serializers.ValidationError({"prefeitura": [_("This field is required.")]})
        else:
            prefeitura = user.prefeitura
        attrs["prefeitura"] = prefeitura
        code = attrs.get("code", getattr(self.instance, "code", None))
        clash = Camera.objects.filter(prefeitura=prefeitura, code=code)
        if self.instance is not None:
            clash = clash.exclude(pk=self.instance.pk)
        if clash.exists():
            raise serializers.ValidationError(
                {"code": [_("A camera with this code already exists in this prefeitura.")]}
            )
        return attrs
