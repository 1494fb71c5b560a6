"""Create the demo platform admin, prefeitura, gestor, operador (and camera)."""

import secrets

from django.core.management.base import BaseCommand
from django.db import transaction

from admin_ctx.models import Role, User
from cidades import services as camera_services
from cidades.models import Camera, Prefeitura
from gtvision import demo
from streaming import services as stream_services
from streaming.models import Stream

DEMO_PREFEITURA = {
    "name": "Prefeitura de Demonstração",
    "uf": "SP",
    "ibge_code": "3550308",
    "cnpj": "46395000000139",
    "plan": Prefeitura.Plan.PADRAO,
    "max_cameras": 50,
}
DEMO_USERS = [("admin", Role.ADMIN), ("gestor", Role.GESTOR), ("operador", Role.OPERADOR)]


class Command(BaseCommand):
    help = "Seed a demo prefeitura with an admin, a gestor and an operador (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--camera-url", help="RTSP URL of a demo camera to add.")
        parser.add_argument(
            "--demo-camera",
            action="store_true",
            help="Add the local test camera served by 'runall --demo-camera' and start its stream.",
        )
        parser.add_argument(
            "--reset-passwords",
            action="store_true",
            help="Give existing demo users new passwords (printed once).",
        )
        parser.add_argument(
            "--password", help="Use this password for every demo user instead of random ones."
        )

    @transaction.atomic
    def handle(
        self,
        *args,
        camera_url=None,
        demo_camera=False,
        reset_passwords=False,
        password=None,
        **options,
    ):
        prefeitura, _ = Prefeitura.objects.get_or_create(
            ibge_code=DEMO_PREFEITURA["ibge_code"], defaults=DEMO_PREFEITURA
        )
        for username, role in DEMO_USERS:
            user = User.objects.filter(username=username).first()
            created = user is None
            if created:
                user = User(username=username, role=role)
                user.prefeitura = None if role == Role.ADMIN else prefeitura
            if created or reset_passwords:
                new_password = password or secrets.token_urlsafe(9)
                user.set_password(new_password)
                user.save()
                self.stdout.write(f"  {role:<8} login: {username}  password: {new_password}")
            else:
                self.stdout.write(f"  {role:<8} login: {username}  (password unchanged)")
        if demo_camera and not camera_url:
            if demo.camera_available():
                camera_url = demo.camera_url()
            else:
                self.stdout.write(
                    "  no demo camera: the GStreamer test camera is not installed "
                    "(scripts/install-test-deps --camera). Add a camera in /admin/ or "
                    "POST /api/cameras/ with its rtsp:// URL."
                )
        if camera_url:
            camera = Camera.objects.filter(prefeitura=prefeitura, code="demo-cam-1").first()
            data = {
                "prefeitura": prefeitura,
                "name": "Câmera de demonstração",
                "code": "demo-cam-1",
                "source_url": camera_url,
                "address": "Praça da Sé, Centro",
                "latitude": "-23.550520",
                "longitude": "-46.633308",
            }
            if camera is None:
                camera_services.create_camera(actor=None, data=data)
            elif camera.source_url != camera_url:
                camera_services.update_camera(camera, actor=None, data={"source_url": camera_url})
            camera = Camera.objects.get(prefeitura=prefeitura, code="demo-cam-1")
            if not Stream.objects.filter(camera=camera, status__in=Stream.ACTIVE).exists():
                stream_services.start_stream(camera, actor=None)
            self.stdout.write("  demo camera: demo-cam-1 (live stream started)")
        self.stdout.write(self.style.SUCCESS(f"Demo prefeitura: {prefeitura}"))
