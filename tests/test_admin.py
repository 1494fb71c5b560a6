"""The Django admin through its own pages, as an operator's browser would use it.

A real Daphne (``manage.py serve``) on the test database; ``requests`` fetches the admin's
pages and POSTs the fields of its own forms (CSRF token included). Writes must go through
the services (validated, audited, events published on ``ws/events``, watched with the
``websockets`` library), refusals must be form errors, and a gestor must see nothing of
another prefeitura anywhere.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from urllib.parse import urljoin

import pytest
import requests
from django.apps import apps as django_apps
from django.utils import translation
from django.utils.translation import gettext
from rest_framework_simplejwt.tokens import RefreshToken
from websockets.sync.client import ClientConnection, connect

from admin_ctx.models import AuditEntry, Role, User
from cidades.models import Camera, Prefeitura
from streaming.models import Stream
from tests.factories import (
    PASSWORD,
    AdminFactory,
    CameraFactory,
    PrefeituraFactory,
    UserFactory,
    make_cnpj,
)
from tests.live_web import running_web

pytestmark = [
    pytest.mark.django_db(transaction=True, databases=["default", "channels_postgres"]),
    pytest.mark.timeout(240),
]

SECRET = "Segredo-Da-Camera-77"
LANGUAGE = "pt-br"


@pytest.fixture(autouse=True)
def _fast_password_hasher():
    """Users log in through Daphne, whose hashers are the real ones: keep the default."""


SERVER: list = []


@pytest.fixture
def web(transactional_db) -> Iterator[str]:
    """One server per test: the flush between tests renumbers content types, which a running
    server keeps cached."""
    with running_web() as (url, process):
        SERVER[:] = [process]
        yield url
        SERVER.clear()


def server_log() -> str:
    return SERVER[0].output()[-6000:] if SERVER else ""


# -- the admin's pages, read like a browser -------------------------------------------------


class FormParser(HTMLParser):
    """The fields of every form of a page: what a browser would submit, plus each select's
    options."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict] = []
        self._select: str | None = None
        self._option: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.forms.append({"id": a.get("id"), "fields": {}, "options": {}})
            return
        if not self.forms:
            return
        form = self.forms[-1]
        name = a.get("name")
        if tag == "input" and name:
            kind = (a.get("type") or "text").lower()
            if kind in ("submit", "button", "file"):
                return
            if kind in ("checkbox", "radio"):
                if "checked" in a:
                    form["fields"][name] = a.get("value", "on")
                return
            form["fields"][name] = a.get("value", "")
        elif tag == "select" and name:
            self._select = name
            form["options"][name] = []
            form["fields"].setdefault(name, "")
        elif tag == "option" and self._select:
            value = a.get("value", "")
            form["options"][self._select].append(value)
            if "selected" in a:
                form["fields"][self._select] = value
        elif tag == "textarea" and name:
            self._textarea = name
            form["fields"][name] = ""

    def handle_data(self, data):
        if self._textarea and self.forms:
            self.forms[-1]["fields"][self._textarea] += data

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None


def page_form(html: str, form_id: str | None = None) -> dict:
    parser = FormParser()
    parser.feed(html)
    for form in parser.forms:
        if form["id"] == form_id or (form_id is None and form["id"] != "logout-form"):
            return form
    raise AssertionError(f"no form {form_id!r} on the page")


class AdminBrowser:
    """One visitor's session on the admin (cookies, CSRF), keeping every page it saw."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.session = requests.Session()
        self.session.headers["Accept-Language"] = LANGUAGE
        self.pages: list[str] = []

    def get(self, path: str, **kwargs) -> requests.Response:
        response = self.session.get(urljoin(self.base, path), timeout=30, **kwargs)
        self.pages.append(response.text)
        return response

    def submit(self, path: str, changes: dict, form_id: str | None = None) -> requests.Response:
        """Open the page, fill its form like a user (``changes``), send it as the browser would."""
        page = self.get(path)
        assert page.status_code == 200, (path, page.status_code, server_log())
        fields = dict(page_form(page.text, form_id)["fields"])
        fields.update(changes)
        fields = {k: v for k, v in fields.items() if v is not None}
        response = self.session.post(
            page.url, data=fields, timeout=30, allow_redirects=False, headers={"Referer": page.url}
        )
        self.pages.append(response.text)
        assert response.status_code < 500, (path, response.status_code, server_log())
        return response

    def resubmit(self, page: requests.Response, changes: dict | None = None) -> requests.Response:
        """Send the form of a page already fetched (e.g. a confirmation page)."""
        fields = {**page_form(page.text)["fields"], **(changes or {})}
        response = self.session.post(
            page.url, data=fields, timeout=30, allow_redirects=False, headers={"Referer": page.url}
        )
        self.pages.append(response.text)
        assert response.status_code < 500, (page.url, response.status_code, server_log())
        return response

    def login(self, username: str, password: str = PASSWORD) -> None:
        response = self.submit(
            "/admin/login/?next=/admin/", {"username": username, "password": password}
        )
        assert response.status_code == 302, response.text[:2000]
        assert response.headers["Location"] == "/admin/"


def form_errors(html: str) -> str:
    return " ".join(re.findall(r'<ul class="errorlist[^"]*"[^>]*>(.*?)</ul>', html, re.S))


def audit_rows(action: str) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(action=action).order_by("id"))


def pt(message: str, **params) -> str:
    with translation.override(LANGUAGE):
        text = gettext(message)
    return text % params if params else text


# -- events, watched through a real WebSocket -----------------------------------------------


def open_events(web: str, user: User) -> ClientConnection:
    token = RefreshToken.for_user(user).access_token
    return connect(f"{web.replace('http', 'ws', 1)}/ws/events?token={token}", open_timeout=10)


def next_event(socket: ClientConnection, **expected) -> dict:
    """The first event on the socket matching ``expected`` (within 10 s)."""
    while True:
        event = json.loads(socket.recv(timeout=10))
        if all(event.get(k) == v for k, v in expected.items()):
            return event


# -- tests -----------------------------------------------------------------------------------


def test_anonymous_visitor_gets_the_login_page(web):
    browser = AdminBrowser(web)
    assert browser.get("/admin/login/").status_code == 200
    index = browser.get("/admin/", allow_redirects=False)
    assert index.status_code == 302 and "/admin/login/" in index.headers["Location"]


def test_admin_writes_go_through_the_services(web):
    admin = AdminFactory(username="root-admin")
    browser = AdminBrowser(web)
    browser.login("root-admin")
    with open_events(web, admin) as events:
        # Prefeitura: add (CNPJ typed with punctuation), change.
        cnpj = make_cnpj(47_111_222)
        response = browser.submit(
            "/admin/cidades/prefeitura/add/",
            {
                "name": "Itu",
                "uf": "SP",
                "ibge_code": "3523909",
                "cnpj": f"{cnpj[:2]}.{cnpj[2:5]}.{cnpj[5:8]}/{cnpj[8:12]}-{cnpj[12:]}",
                "plan": "padrao",
                "max_cameras": "1",
                "active": "on",
            },
        )
        assert response.status_code == 302, form_errors(response.text)
        itu = Prefeitura.objects.get(ibge_code="3523909")
        assert itu.cnpj == cnpj
        [created] = audit_rows("prefeitura.create")
        assert (created.actor_id, created.target_id) == (admin.pk, str(itu.pk))

        response = browser.submit(
            f"/admin/cidades/prefeitura/{itu.pk}/change/", {"name": "Itu (SP)"}
        )
        assert response.status_code == 302, form_errors(response.text)
        [updated] = audit_rows("prefeitura.update")
        assert updated.actor_id == admin.pk and updated.details["changed"] == ["name"]

        # Camera: add; the event reaches the admin's WebSocket.
        response = browser.submit(
            "/admin/cidades/camera/add/",
            {
                "prefeitura": str(itu.pk),
                "name": "Praça da Matriz",
                "code": "matriz",
                "source_url": f"rtsp://viewer:{SECRET}@10.1.2.3:554/live",
                "address": "Praça Padre Miguel",
            },
        )
        assert response.status_code == 302, form_errors(response.text)
        camera = Camera.objects.get(prefeitura=itu, code="matriz")
        assert camera.source_url.endswith(f"{SECRET}@10.1.2.3:554/live")
        [created] = audit_rows("camera.create")
        assert (created.actor_id, created.target_id) == (admin.pk, str(camera.pk))
        assert created.prefeitura_id == itu.pk
        next_event(events, type="camera.updated", camera_id=camera.pk, deleted=False)

        # Quota (1 camera): a form error, HTTP 200, nothing written.
        response = browser.submit(
            "/admin/cidades/camera/add/",
            {
                "prefeitura": str(itu.pk),
                "name": "Rodoviária",
                "code": "rodoviaria",
                "source_url": "rtsp://10.1.2.4/live",
            },
        )
        assert response.status_code == 200
        assert pt(
            "Camera quota reached: this prefeitura may have at most %(n)d cameras.", n=1
        ) in form_errors(response.text)
        assert Camera.objects.filter(prefeitura=itu).count() == 1
        assert len(audit_rows("camera.create")) == 1

        # Camera: change (the URL kept when left blank), then delete.
        response = browser.submit(
            f"/admin/cidades/camera/{camera.pk}/change/", {"name": "Praça da Matriz (norte)"}
        )
        assert response.status_code == 302, form_errors(response.text)
        [updated] = audit_rows("camera.update")
        assert updated.actor_id == admin.pk and updated.details["changed"] == ["name"]
        camera.refresh_from_db()
        assert camera.name == "Praça da Matriz (norte)"
        assert camera.source_url.endswith(f"{SECRET}@10.1.2.3:554/live")
        next_event(events, type="camera.updated", camera_id=camera.pk, name=camera.name)
        assert browser.get("/admin/cidades/camera/").status_code == 200
        assert browser.get(f"/admin/cidades/camera/{camera.pk}/change/").status_code == 200
        assert browser.get(f"/admin/cidades/camera/{camera.pk}/history/").status_code == 200

        # Live stream from the changelist's actions: an explicit start, then a refusal shown
        # as a message (one active stream per camera), then a stop; all through the services.
        action = {"action": "start_live_stream", "_selected_action": str(camera.pk)}
        response = browser.submit("/admin/cidades/camera/", action, form_id="changelist-form")
        assert response.status_code == 302
        stream = Stream.objects.get(camera=camera)
        assert stream.status == Stream.Status.STARTING and not stream.on_demand
        [started] = audit_rows("stream.start")
        assert started.actor_id == admin.pk and started.details["stream_id"] == stream.pk
        next_event(events, type="stream.status", stream_id=stream.pk, status="STARTING")
        browser.submit("/admin/cidades/camera/", action, form_id="changelist-form")
        page = browser.get("/admin/cidades/camera/").text
        assert html.escape(pt("This camera already has an active stream.")) in page
        assert Stream.objects.filter(camera=camera).count() == 1
        action["action"] = "stop_live_stream"
        response = browser.submit("/admin/cidades/camera/", action, form_id="changelist-form")
        assert response.status_code == 302
        stream.refresh_from_db()
        assert stream.status == Stream.Status.STOPPED
        [stopped] = audit_rows("stream.stop")
        assert stopped.actor_id == admin.pk
        next_event(events, type="stream.status", stream_id=stream.pk, status="STOPPED")

        response = browser.submit(f"/admin/cidades/camera/{camera.pk}/delete/", {"post": "yes"})
        assert response.status_code == 302
        assert not Camera.objects.filter(pk=camera.pk).exists()
        [deleted] = audit_rows("camera.delete")
        assert (deleted.actor_id, deleted.target_id) == (admin.pk, str(camera.pk))
        next_event(events, type="camera.updated", camera_id=camera.pk, deleted=True)

    # User: add, change, password, delete.
    response = browser.submit(
        "/admin/admin_ctx/user/add/",
        {
            "username": "ana.operadora",
            "email": "ana@itu.sp.gov.br",
            "password1": "Outra-Senha-456",
            "password2": "Outra-Senha-456",
            "role": Role.OPERADOR,
            "prefeitura": str(itu.pk),
        },
    )
    assert response.status_code == 302, form_errors(response.text)
    ana = User.objects.get(username="ana.operadora")
    assert (ana.role, ana.prefeitura_id) == (Role.OPERADOR, itu.pk)
    assert ana.check_password("Outra-Senha-456")
    [created] = audit_rows("user.create")
    assert (created.actor_id, created.target_id) == (admin.pk, str(ana.pk))

    response = browser.submit(
        f"/admin/admin_ctx/user/{ana.pk}/change/", {"email": "ana.souza@itu.sp.gov.br"}
    )
    assert response.status_code == 302, form_errors(response.text)
    response = browser.submit(
        f"/admin/admin_ctx/user/{ana.pk}/password/",
        {"password1": "Nova-Senha-789", "password2": "Nova-Senha-789"},
    )
    assert response.status_code == 302, form_errors(response.text)
    ana.refresh_from_db()
    assert ana.email == "ana.souza@itu.sp.gov.br" and ana.check_password("Nova-Senha-789")
    email_change, password_change = audit_rows("user.update")
    assert email_change.actor_id == password_change.actor_id == admin.pk
    assert email_change.details["changed"] == ["email"]
    assert password_change.details["changed"] == ["password"]

    # An admin role with a prefeitura is a form error, not a 500.
    response = browser.submit(f"/admin/admin_ctx/user/{ana.pk}/change/", {"role": Role.ADMIN})
    assert response.status_code == 200
    assert pt("Platform administrators do not belong to a prefeitura.") in form_errors(
        response.text
    )
    ana.refresh_from_db()
    assert ana.role == Role.OPERADOR and len(audit_rows("user.update")) == 2

    response = browser.submit(f"/admin/admin_ctx/user/{ana.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not User.objects.filter(pk=ana.pk).exists()
    [deleted] = audit_rows("user.delete")
    assert (deleted.actor_id, deleted.target_id) == (admin.pk, str(ana.pk))

    # Prefeitura: delete.
    response = browser.submit(f"/admin/cidades/prefeitura/{itu.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Prefeitura.objects.filter(pk=itu.pk).exists()
    [deleted] = audit_rows("prefeitura.delete")
    assert (deleted.actor_id, deleted.target_id) == (admin.pk, str(itu.pk))

    # The audit log is read-only in the admin, and no page nor entry holds the camera secret.
    entry = AuditEntry.objects.order_by("id").first()
    page = browser.get(f"/admin/admin_ctx/auditentry/{entry.pk}/change/")
    assert page.status_code == 200 and 'name="_save"' not in page.text
    assert browser.get("/admin/admin_ctx/auditentry/add/").status_code == 403
    assert browser.get(f"/admin/admin_ctx/auditentry/{entry.pk}/delete/").status_code == 403
    assert browser.get("/admin/admin_ctx/auditentry/").status_code == 200
    assert not [p for p in browser.pages if SECRET in p]
    assert not [e for e in AuditEntry.objects.all() if SECRET in json.dumps(e.details)]


def test_gestor_admin_shows_nothing_of_another_prefeitura(web):
    mine = PrefeituraFactory(name="Sorocaba")
    other = PrefeituraFactory(name="Outra-Cidade-XYZ")
    gestor = UserFactory(username="gestor.sorocaba", role=Role.GESTOR, prefeitura=mine)
    UserFactory(username="operador.sorocaba", prefeitura=mine)
    UserFactory(username="intruso.jundiai", prefeitura=other)
    UserFactory(username="gestor.jundiai", role=Role.GESTOR, prefeitura=other)
    my_camera = CameraFactory(prefeitura=mine, name="Camera-Sorocaba-1")
    their_camera = CameraFactory(prefeitura=other, name="Camera-Jundiai-1")
    AuditEntry.objects.create(action="camera.view", prefeitura=other, target_id="jundiai-x")
    browser = AdminBrowser(web)
    browser.login("gestor.sorocaba")

    pages = {}
    for path in (
        "/admin/",
        "/admin/cidades/camera/",
        "/admin/cidades/camera/?_facets=True",
        "/admin/cidades/camera/add/",
        f"/admin/cidades/camera/{my_camera.pk}/change/",
        "/admin/cidades/prefeitura/",
        f"/admin/cidades/prefeitura/{mine.pk}/change/",
        "/admin/admin_ctx/user/",
        "/admin/admin_ctx/user/?_facets=True",
        "/admin/admin_ctx/user/add/",
        "/admin/admin_ctx/auditentry/",
        "/admin/admin_ctx/auditentry/?_facets=True",
        "/admin/recordings/recording/",
        "/admin/recordings/clip/",
    ):
        response = browser.get(path)
        assert response.status_code == 200, path
        pages[path] = response.text
    assert "Camera-Sorocaba-1" in pages["/admin/cidades/camera/"]
    assert "operador.sorocaba" in pages["/admin/admin_ctx/user/"]

    # Add-form choices: its own prefeitura only; no admin role for a gestor.
    camera_form = page_form(browser.get("/admin/cidades/camera/add/").text, "camera_form")
    assert [v for v in camera_form["options"]["prefeitura"] if v] == [str(mine.pk)]
    user_form = page_form(browser.get("/admin/admin_ctx/user/add/").text, "user_form")
    assert [v for v in user_form["options"]["prefeitura"] if v] == [str(mine.pk)]
    assert Role.ADMIN not in user_form["options"]["role"]

    # Autocompletes of every foreign key pointing at a tenant model.
    for app, model, field in (
        ("cidades", "camera", "prefeitura"),
        ("admin_ctx", "user", "prefeitura"),
        ("admin_ctx", "auditentry", "prefeitura"),
        ("admin_ctx", "auditentry", "actor"),
        ("recordings", "recording", "camera"),
        ("recordings", "clip", "created_by"),
    ):
        response = browser.get(
            f"/admin/autocomplete/?app_label={app}&model_name={model}&field_name={field}&term="
        )
        assert response.status_code == 200, (app, model, field, response.status_code)
        assert response.json()["results"], (app, model, field)

    # Another prefeitura's objects are not found, by id either.
    for path in (
        f"/admin/cidades/camera/{their_camera.pk}/change/",
        f"/admin/cidades/prefeitura/{other.pk}/change/",
        f"/admin/cidades/camera/?prefeitura__id__exact={other.pk}",
    ):
        browser.get(path)

    # A gestor cannot create an admin, nor a user of another prefeitura: form errors.
    users_before = User.objects.count()
    response = browser.submit(
        "/admin/admin_ctx/user/add/",
        {
            "username": "quer.ser.admin",
            "password1": "Outra-Senha-456",
            "password2": "Outra-Senha-456",
            "role": Role.ADMIN,
            "prefeitura": str(mine.pk),
        },
        form_id="user_form",
    )
    assert response.status_code == 200 and form_errors(response.text)
    response = browser.submit(
        "/admin/admin_ctx/user/add/",
        {
            "username": "operador.de.fora",
            "password1": "Outra-Senha-456",
            "password2": "Outra-Senha-456",
            "role": Role.OPERADOR,
            "prefeitura": str(other.pk),
        },
        form_id="user_form",
    )
    assert response.status_code == 200 and form_errors(response.text)
    assert User.objects.count() == users_before
    assert not audit_rows("user.create")

    # Its own users and cameras it does manage, audited with it as the actor.
    response = browser.submit(
        "/admin/admin_ctx/user/add/",
        {
            "username": "novo.operador",
            "password1": "Outra-Senha-456",
            "password2": "Outra-Senha-456",
            "role": Role.OPERADOR,
        },
        form_id="user_form",
    )
    assert response.status_code == 302, form_errors(response.text)
    assert User.objects.get(username="novo.operador").prefeitura_id == mine.pk
    [created] = audit_rows("user.create")
    assert created.actor_id == gestor.pk and created.prefeitura_id == mine.pk
    response = browser.submit(
        "/admin/cidades/camera/add/",
        {"name": "Terminal", "code": "terminal", "source_url": f"rtsp://u:{SECRET}@10.9.9.9/"},
        form_id="camera_form",
    )
    assert response.status_code == 302, form_errors(response.text)
    [created] = audit_rows("camera.create")
    assert created.actor_id == gestor.pk and created.prefeitura_id == mine.pk
    terminal = Camera.objects.get(code="terminal")

    # Bulk delete from the changelist: the confirmation page, then the deletion (services).
    confirm = browser.submit(
        "/admin/cidades/camera/",
        {"action": "delete_selected", "_selected_action": str(terminal.pk)},
        form_id="changelist-form",
    )
    assert confirm.status_code == 200 and "Terminal" in confirm.text
    assert browser.resubmit(confirm).status_code == 302
    assert not Camera.objects.filter(pk=terminal.pk).exists()
    [deleted] = audit_rows("camera.delete")
    assert (deleted.actor_id, deleted.target_id) == (gestor.pk, str(terminal.pk))
    browser.get("/admin/cidades/camera/")
    browser.get("/admin/admin_ctx/auditentry/")

    leaks = {
        marker: [i for i, page in enumerate(browser.pages) if marker in page]
        for marker in (
            "Outra-Cidade-XYZ",
            "Camera-Jundiai-1",
            "intruso.jundiai",
            "gestor.jundiai",
            "jundiai-x",
            SECRET,
        )
    }
    assert not {marker: pages for marker, pages in leaks.items() if pages}


def test_every_admin_writes_through_services_or_not_at_all():
    """Guard for admins added later: a ModelAdmin that is not a TenantModelAdmin (whose
    writes go through services) offers no add, change or delete, even to a platform admin."""
    from django.contrib import admin as django_admin
    from django.test import RequestFactory

    from gtvision.admin_base import TenantModelAdmin

    request = RequestFactory().get("/admin/")
    request.user = AdminFactory()
    writable = {}
    for model, model_admin in django_admin.site._registry.items():
        rights = [
            right
            for right in ("add", "change", "delete")
            if getattr(model_admin, f"has_{right}_permission")(request)
        ]
        if rights and not isinstance(model_admin, TenantModelAdmin):
            writable[model._meta.label] = rights
    assert not writable
    for label in ("cidades.Camera", "cidades.Prefeitura", "admin_ctx.User"):
        model_admin = django_admin.site._registry[django_apps.get_model(label)]
        assert isinstance(model_admin, TenantModelAdmin)
        assert model_admin.has_add_permission(request), label
