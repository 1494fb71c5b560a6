"""The admin through a real client: a gestor turns LPR on for a camera (through the camera
service, audited) and sees its own prefeitura's plate reads only, read-only."""

from __future__ import annotations

import pytest
from django.utils import timezone

from admin_ctx.models import Role
from cidades.models import Camera
from lpr import services
from tests.factories import CameraFactory, PrefeituraFactory, UserFactory
from tests.test_admin import AdminBrowser, audit_rows, form_errors, web  # noqa: F401

pytestmark = [
    pytest.mark.django_db(transaction=True, databases=["default", "channels_postgres"]),
    pytest.mark.timeout(240),
]


@pytest.fixture(autouse=True)
def _fast_password_hasher():
    """Users log in through Daphne, whose hashers are the real ones: keep the default."""


def test_gestor_turns_lpr_on_and_sees_only_own_reads(web, settings, tmp_path):  # noqa: F811
    settings.LPR_CROP_DIR = tmp_path
    town, elsewhere = PrefeituraFactory(), PrefeituraFactory()
    UserFactory(username="gestora", prefeitura=town, role=Role.GESTOR)
    camera = CameraFactory(prefeitura=town)
    foreign_camera = CameraFactory(prefeitura=elsewhere)
    now = timezone.now()
    mine = services.record_read(camera, plate="ABC1D23", confidence=0.9, bbox=[1, 2, 3, 4],
                                crop=b"", at=now)  # fmt: skip
    theirs = services.record_read(foreign_camera, plate="XYZ1234", confidence=0.9,
                                  bbox=[1, 2, 3, 4], crop=b"", at=now)  # fmt: skip
    browser = AdminBrowser(web)
    browser.login("gestora")

    response = browser.submit(f"/admin/cidades/camera/{camera.pk}/change/", {"lpr_enabled": "on"})
    assert response.status_code == 302, form_errors(response.text)
    assert Camera.objects.get(pk=camera.pk).lpr_enabled
    [updated] = audit_rows("camera.update")
    assert "lpr_enabled" in updated.details["changed"]

    listing = browser.get("/admin/lpr/read/")
    assert listing.status_code == 200
    assert "ABC1D23" in listing.text and "XYZ1234" not in listing.text
    assert browser.get(f"/admin/lpr/read/{mine.pk}/change/").status_code == 200
    other = browser.get(f"/admin/lpr/read/{theirs.pk}/change/", allow_redirects=False)
    assert other.status_code in (302, 404)  # Django's admin: "does not exist", to the index
    assert "XYZ1234" not in other.text
    assert browser.get("/admin/lpr/read/add/").status_code == 403
