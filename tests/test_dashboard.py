"""The dashboard's server side: pages, tenancy, mosaic layouts, recent events, i18n, assets.

The pages themselves are exercised in a real browser by tests/test_browser.py.
"""

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone, translation

from admin_ctx.models import MosaicLayout
from gtvision import dashboard
from recordings.models import Clip
from streaming.models import Stream
from tests.factories import PASSWORD, CameraFactory, PrefeituraFactory

ROOT = Path(settings.BASE_DIR)
PT = {"HTTP_ACCEPT_LANGUAGE": "pt-BR"}


def signed_in(user, **kwargs) -> Client:
    client = Client(**kwargs)
    assert client.login(username=user.username, password=PASSWORD)
    return client


def page_config(response) -> dict:
    match = re.search(
        r'<script id="gtv-config" type="application/json">(.*?)</script>',
        response.content.decode(),
        re.S,
    )
    assert match, "page without its JSON config"
    return json.loads(match.group(1))


# -- pages --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/dashboard/", "/dashboard/mosaic/", "/dashboard/cameras/1/"])
def test_pages_need_a_session(client, db, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/?next=")


def test_grid_page_in_portuguese_for_own_prefeitura(tenants):
    user = tenants["a"]["operador"]
    response = signed_in(user).get("/dashboard/", **PT)
    text = response.content.decode()
    assert response.status_code == 200
    assert "Painel" in text and "Câmeras" in text and "Buscar" in text and "Mosaico" in text
    assert tenants["a"]["prefeitura"].name in text
    assert tenants["b"]["prefeitura"].name not in text
    config = page_config(response)
    assert config["prefeitura"] == tenants["a"]["prefeitura"].pk
    assert config["locale"] == "pt-BR" and config["timeZone"] == "America/Sao_Paulo"
    assert config["isAdmin"] is False
    assert "/static/vendor/hls.min.js" in text and "/static/js/grid.js" in text
    # the JS catalog carries the Portuguese strings
    catalog = json.loads(re.search(r'id="gtv-i18n"[^>]*>(.*?)</script>', text, re.S).group(1))
    assert catalog["Failure"] == "Falha" and catalog["Live"] == "Ao vivo"


def test_no_remote_scripts_or_styles(tenants):
    """The dashboard works offline: every script and stylesheet comes from the app."""
    client = signed_in(tenants["a"]["operador"])
    camera = tenants["a"]["camera"]
    for path in ["/dashboard/", "/dashboard/mosaic/", f"/dashboard/cameras/{camera.pk}/", "/"]:
        text = client.get(path, **PT).content.decode()
        for url in re.findall(r'<(?:script|link)[^>]+(?:src|href)="([^"]+)"', text):
            assert url.startswith("/static/"), (path, url)


def test_camera_page_own_camera_only(tenants):
    client = signed_in(tenants["a"]["operador"])
    own, other = tenants["a"]["camera"], tenants["b"]["camera"]
    response = client.get(f"/dashboard/cameras/{own.pk}/", **PT)
    assert response.status_code == 200
    text = response.content.decode()
    assert own.name in text and "Linha do tempo" in text and "Exportar MP4" in text
    assert page_config(response)["camera"]["id"] == own.pk
    assert "source_url" not in json.dumps(page_config(response))
    assert client.get(f"/dashboard/cameras/{other.pk}/").status_code == 404


def test_admin_chooses_the_prefeitura(tenants):
    admin = tenants["admin"]
    a, b = tenants["a"]["prefeitura"], tenants["b"]["prefeitura"]
    client = signed_in(admin)
    first = page_config(client.get("/dashboard/"))
    assert first["isAdmin"] is True and first["prefeitura"] in (a.pk, b.pk)
    response = client.post("/dashboard/prefeitura/", {"prefeitura": b.pk, "next": "/dashboard/"})
    assert response.status_code == 302 and response["Location"] == "/dashboard/"
    assert page_config(client.get("/dashboard/mosaic/"))["prefeitura"] == b.pk
    # opening a camera of another prefeitura switches to it
    client.get(f"/dashboard/cameras/{tenants['a']['camera'].pk}/")
    assert page_config(client.get("/dashboard/"))["prefeitura"] == a.pk
    # no open redirect
    response = client.post(
        "/dashboard/prefeitura/", {"prefeitura": a.pk, "next": "https://evil.example/"}
    )
    assert response["Location"] == "/dashboard/"
    assert client.post("/dashboard/prefeitura/", {"prefeitura": 999999}).status_code == 404


def test_only_admins_choose_a_prefeitura(tenants):
    client = signed_in(tenants["a"]["gestor"])
    b = tenants["b"]["prefeitura"]
    assert client.post("/dashboard/prefeitura/", {"prefeitura": b.pk}).status_code == 404
    assert page_config(client.get("/dashboard/"))["prefeitura"] == tenants["a"]["prefeitura"].pk
    assert 'id="tenant-select"' not in client.get("/dashboard/").content.decode()


# -- mosaic layout --------------------------------------------------------------------------


def test_mosaic_layout_defaults_saves_and_is_per_user(tenants):
    a = tenants["a"]
    extra = [CameraFactory(prefeitura=a["prefeitura"], name=f"Z câmera {n}") for n in range(3)]
    client = signed_in(a["operador"])
    url = "/dashboard/api/mosaic/"
    default = client.get(url).json()
    assert default["size"] == 2 and default["saved"] is False and len(default["slots"]) == 9
    assert default["slots"][:4] == [a["camera"].pk, *[c.pk for c in extra]]

    chosen = [extra[2].pk, None, a["camera"].pk]
    response = client.put(url, {"size": 3, "slots": chosen}, content_type="application/json")
    assert response.status_code == 200, response.content
    assert response.json() == {"size": 3, "slots": chosen + [None] * 6, "saved": True}
    assert client.get(url).json()["slots"][:3] == chosen
    layout = MosaicLayout.objects.get(user=a["operador"])
    assert layout.prefeitura == a["prefeitura"] and layout.size == 3

    # another user of the same prefeitura still has the default
    assert signed_in(a["gestor"]).get(url).json()["saved"] is False
    # a deleted camera leaves its slot empty
    extra[2].delete()
    assert client.get(url).json()["slots"][:3] == [None, None, a["camera"].pk]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"size": 4, "slots": []}, "size"),
        ({"size": 2, "slots": "1,2"}, "slots"),
        ({"size": 2, "slots": [None] * 10}, "slots"),
        ({"size": 2, "slots": [True]}, "slots"),
        ([1, 2], "non_field_errors"),
    ],
)
def test_mosaic_layout_validation(tenants, body, field):
    client = signed_in(tenants["a"]["operador"])
    response = client.put("/dashboard/api/mosaic/", body, content_type="application/json", **PT)
    assert response.status_code == 400
    assert field in response.json()


def test_mosaic_layout_rejects_cameras_of_other_prefeituras(tenants):
    client = signed_in(tenants["a"]["operador"])
    other = tenants["b"]["camera"]
    response = client.put(
        "/dashboard/api/mosaic/", {"size": 2, "slots": [other.pk]}, content_type="application/json"
    )
    assert response.status_code == 400 and "slots" in response.json()
    assert not MosaicLayout.objects.exists()


def test_mosaic_layout_needs_session_and_csrf(tenants):
    url = "/dashboard/api/mosaic/"
    assert Client().get(url).status_code == 401
    client = signed_in(tenants["a"]["operador"], enforce_csrf_checks=True)
    body = {"size": 2, "slots": []}
    assert client.put(url, body, content_type="application/json").status_code == 403
    client.get("/dashboard/")  # sets the CSRF cookie, like the page does
    token = client.cookies["csrftoken"].value
    response = client.put(url, body, content_type="application/json", HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 200


# -- recent events -----------------------------------------------------------------------------


def test_recent_events_of_own_prefeitura(tenants):
    a, b = tenants["a"], tenants["b"]
    now = timezone.now()
    Stream.objects.create(camera=a["camera"], status="ERROR", last_error="connection refused")
    Stream.objects.create(camera=b["camera"], status="RUNNING")
    done = Clip.objects.create(
        camera=a["camera"],
        start=now - timedelta(minutes=2),
        end=now - timedelta(minutes=1),
        status=Clip.Status.DONE,
        progress=1.0,
        size_bytes=1234,
        sha256="ab" * 32,
        finished_at=now,
        expires_at=now + timedelta(days=1),
    )
    response = signed_in(a["operador"]).get("/dashboard/api/events/")
    assert response.status_code == 200
    items = response.json()["events"]
    assert {item["camera_id"] for item in items} == {a["camera"].pk}
    by_type = {item["type"]: item for item in items}
    assert by_type["stream.status"]["status"] == "ERROR"
    assert by_type["stream.status"]["last_error"] == "connection refused"
    assert by_type["clip.done"]["clip_id"] == done.pk and by_type["clip.done"]["status"] == "DONE"
    assert Client().get("/dashboard/api/events/").status_code == 401


def test_recent_events_for_admin_follow_the_chosen_prefeitura(tenants):
    b = tenants["b"]
    Stream.objects.create(camera=b["camera"], status="RUNNING")
    client = signed_in(tenants["admin"])
    client.post("/dashboard/prefeitura/", {"prefeitura": b["prefeitura"].pk})
    items = client.get("/dashboard/api/events/").json()["events"]
    assert [item["camera_id"] for item in items] == [b["camera"].pk]


# -- translations and vendored assets --------------------------------------------------------


def test_javascript_strings_are_in_the_catalog_and_translated():
    used = set()
    for path in (ROOT / "static" / "js").glob("*.js"):
        used |= set(re.findall(r'\bt\(\s*"((?:[^"\\]|\\.)*)"', path.read_text()))
    missing = used - set(dashboard.JS_MESSAGES)
    assert not missing, f"add to gtvision.dashboard.JS_MESSAGES: {sorted(missing)}"
    same_in_portuguese = {"Online", "Offline", "kbit/s", "ms"}
    with translation.override("pt-br"):
        untranslated = [
            message
            for message in dashboard.JS_MESSAGES
            if translation.gettext(message) == message and message not in same_in_portuguese
        ]
    assert not untranslated, f"add pt-BR translations to django.po: {untranslated}"


def test_dashboard_templates_are_translated(tenants):
    """No English left on the pages when the browser asks for Portuguese."""
    client = signed_in(tenants["a"]["operador"])
    camera = tenants["a"]["camera"]
    english = ["Cameras", "Search", "Timeline", "Export", "Snapshot", "Events", "Log out"]
    for path in ["/dashboard/", "/dashboard/mosaic/", f"/dashboard/cameras/{camera.pk}/"]:
        text = client.get(path, **PT).content.decode()
        visible = re.sub(r"<script.*?</script>|<[^>]+>", " ", text, flags=re.S)
        for word in english:
            assert not re.search(rf"\b{word}\b", visible), (path, word)


def test_hls_js_is_vendored_at_the_pinned_version():
    package = json.loads((ROOT / "package.json").read_text())
    lock = json.loads((ROOT / "package-lock.json").read_text())
    version = package["dependencies"]["hls.js"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", version), "pin an exact version"
    assert lock["packages"]["node_modules/hls.js"]["version"] == version
    vendored = (ROOT / "static" / "vendor" / "hls.min.js").read_text()
    assert f'"{version}"' in vendored
    license_text = (ROOT / "static" / "vendor" / "hls.js.LICENSE.txt").read_text()
    assert "Apache License" in license_text
    assert (ROOT / "scripts" / "vendor-static").stat().st_mode & 0o111


def test_static_files_are_served(client, db):
    for path in ["/static/vendor/hls.min.js", "/static/js/app.js", "/static/css/app.css"]:
        response = client.get(path)
        assert response.status_code == 200, path
        b"".join(response.streaming_content)


def test_prefeitura_without_cameras_and_admin_without_prefeituras(db):
    from tests.factories import AdminFactory

    admin = AdminFactory()
    text = signed_in(admin).get("/dashboard/", **PT).content.decode()
    assert "Ainda não há prefeitura" in text
    assert signed_in(admin).get("/dashboard/api/mosaic/").status_code == 404
    PrefeituraFactory(name="Prefeitura Vazia")
    response = signed_in(admin).get("/dashboard/", **PT)
    assert "Prefeitura Vazia" in response.content.decode()
