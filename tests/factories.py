import factory
from factory.django import DjangoModelFactory

from admin_ctx.models import Role, User
from cidades.models import Camera, Prefeitura
from cidades.validators import UFS, cnpj_check_digits

PASSWORD = "Senha-de-teste-123"


def make_cnpj(n: int) -> str:
    base = f"{n:08d}0001"
    return base + cnpj_check_digits(base)


class PrefeituraFactory(DjangoModelFactory):
    class Meta:
        model = Prefeitura

    name = factory.Sequence(lambda n: f"Prefeitura {n}")
    uf = factory.Iterator(UFS)
    ibge_code = factory.Sequence(lambda n: f"{3500000 + n:07d}")
    cnpj = factory.Sequence(lambda n: make_cnpj(10_000_000 + n))
    plan = Prefeitura.Plan.BASICO
    max_cameras = 20
    # The model's default requires operadores to justify playback and exports (LGPD); tests of
    # other features play back without one. tests/test_lgpd_access.py tests the default.
    reason_required_for = "none"


class UserFactory(DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.gov.br")
    role = Role.OPERADOR
    prefeitura = factory.SubFactory(PrefeituraFactory)
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class AdminFactory(UserFactory):
    role = Role.ADMIN
    prefeitura = None


class CameraFactory(DjangoModelFactory):
    class Meta:
        model = Camera

    prefeitura = factory.SubFactory(PrefeituraFactory)
    name = factory.Sequence(lambda n: f"Câmera {n}")
    code = factory.Sequence(lambda n: f"cam-{n}")
    address = factory.Sequence(lambda n: f"Rua {n}, Centro")
    source_url = factory.Sequence(lambda n: f"rtsp://viewer:s3cr3t-{n}@10.0.0.{n % 250}/stream")
