from admin_ctx.models import Role
from cidades import services
from cidades.filters import CameraFilterSet, PrefeituraFilterSet
from cidades.models import Camera, Prefeitura
from cidades.serializers import CameraSerializer, PrefeituraSerializer
from gtvision.api import TenantModelViewSet


class PrefeituraViewSet(TenantModelViewSet):
    queryset = Prefeitura.objects.all()
    serializer_class = PrefeituraSerializer
    filterset_class = PrefeituraFilterSet
    ordering_fields = ["name", "uf", "created_at"]
    write_roles = {Role.ADMIN}

    create_service = staticmethod(services.create_prefeitura)
    update_service = staticmethod(services.update_prefeitura)
    delete_service = staticmethod(services.delete_prefeitura)


class CameraViewSet(TenantModelViewSet):
    queryset = Camera.objects.all()
    serializer_class = CameraSerializer
    filterset_class = CameraFilterSet
    ordering_fields = ["name", "code", "status", "created_at"]
    write_roles = {Role.ADMIN, Role.GESTOR}

    create_service = staticmethod(services.create_camera)
    update_service = staticmethod(services.update_camera)
    delete_service = staticmethod(services.delete_camera)
