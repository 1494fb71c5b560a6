"""MediaMTX control API client against the in-process stand-in (no Django, no database).

Run alone with: .venv/bin/python -m pytest -p no:django tests/test_mediamtx_client.py -q
"""

from __future__ import annotations

import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from streaming.mediamtx import (
    MediaMTXBadRequest,
    MediaMTXClient,
    MediaMTXError,
    MediaMTXNotFound,
    MediaMTXUnauthorized,
    MediaMTXUnavailable,
    camera_path_conf,
    camera_path_name,
    path_health,
    reader_urls,
)
from tests.mediamtx_standin import DEPRECATED_FIELDS, PATH_DEFAULTS, MediaMTXStandIn

SHARED = Path(__file__).resolve().parents[2] / "shared" / "mediamtx"
OPENAPI = Path(os.environ.get("MEDIAMTX_OPENAPI", SHARED / "openapi.yaml"))
DEFAULT_CONFIG = Path(os.environ.get("MEDIAMTX_DEFAULT_CONFIG", SHARED / "mediamtx.yml"))

PASSWORD = "S3cr3t-Pw"
SOURCE = f"rtsp://admin:{PASSWORD}@10.0.0.5:554/cam/realmonitor?channel=1"


@pytest.fixture
def standin():
    server = MediaMTXStandIn().start()
    yield server
    server.stop()


@pytest.fixture
def client(standin):
    with MediaMTXClient(standin.base_url, timeout=2.0) as mtx:
        yield mtx


def writes(standin: MediaMTXStandIn) -> list[tuple[str, str, int]]:
    return [(r.method, r.path, r.status) for r in standin.requests_log if r.method != "GET"]


# -- declare / delete ------------------------------------------------------------------------


def test_replace_twice_is_idempotent(standin, client):
    name = camera_path_name(12, 34)
    conf = camera_path_conf(SOURCE)

    client.replace_path(name, conf)
    client.replace_path(name, conf)

    assert writes(standin) == [("POST", "/v3/config/paths/replace/pref12/cam34", 200)] * 2
    assert [item["name"] for item in client.list_config_paths()] == ["pref12/cam34"]
    stored = standin.config_paths()["pref12/cam34"]
    assert stored["source"] == SOURCE
    assert stored["rtspTransport"] == "tcp"
    assert [item["name"] for item in client.list_paths()] == ["pref12/cam34"]


def test_replace_resets_fields_not_sent(standin, client):
    client.replace_path("cam", {**camera_path_conf(SOURCE), "maxReaders": 5})
    client.replace_path("cam", camera_path_conf(SOURCE))
    assert standin.config_paths()["cam"]["maxReaders"] == 0  # back to the default


def test_add_existing_is_400_and_patch_delete_unknown_are_404(standin):
    base = standin.base_url + "/v3/config/paths"
    first = requests.post(f"{base}/add/cam1", json={"source": SOURCE}, timeout=5)
    assert (first.status_code, first.json()) == (200, {"status": "ok"})

    again = requests.post(f"{base}/add/cam1", json={"source": SOURCE}, timeout=5)
    assert again.status_code == 400
    assert again.json() == {"status": "error", "error": "path already exists"}

    for method, route in (("PATCH", "patch"), ("DELETE", "delete")):
        resp = requests.request(method, f"{base}/{route}/nope", json={}, timeout=5)
        assert resp.status_code == 404
        assert resp.json() == {"status": "error", "error": "path not found"}

    patched = requests.patch(f"{base}/patch/cam1", json={"record": True}, timeout=5)
    assert patched.json() == {"status": "ok"}
    assert standin.config_paths()["cam1"]["record"] is True
    assert standin.config_paths()["cam1"]["source"] == SOURCE  # patch keeps the other fields


def test_unknown_route_is_plain_text_404(standin):
    for method, route in (("GET", "/v3/nothing"), ("POST", "/v3/config/paths/list")):
        resp = requests.request(method, standin.base_url + route, timeout=5)
        assert resp.status_code == 404
        assert resp.headers["Content-Type"].startswith("text/plain")
        assert resp.text == "404 page not found"


def test_invalid_names_are_400_on_the_server(standin):
    base = standin.base_url + "/v3/config/paths"
    for route, error in (
        ("replace/a%20b", "invalid path name 'a b': can contain only"),
        ("replace/a/", "invalid path name 'a/': can't end with a slash"),
        ("add/", "invalid name"),
    ):
        resp = requests.post(f"{base}/{route}", json={}, timeout=5)
        assert resp.status_code == 400
        assert resp.json()["status"] == "error"
        assert resp.json()["error"].startswith(error)


def test_delete_returns_true_then_false(standin, client):
    client.replace_path("cam", camera_path_conf(SOURCE))
    assert client.delete_path("cam") is True
    assert client.delete_path("cam") is False
    assert client.list_config_paths() == []
    assert client.get_path("cam") is None


def test_get_unknown_returns_none(client):
    assert client.get_path("pref1/cam1") is None
    assert client.get_config_path("pref1/cam1") is None


def test_wrong_route_is_not_mistaken_for_a_missing_path(standin):
    with MediaMTXClient(standin.base_url + "/v2", timeout=2.0) as wrong:
        for call in (wrong.delete_path, wrong.get_path, wrong.get_config_path):
            with pytest.raises(MediaMTXNotFound) as info:
                call("cam")
            assert info.value.api_error is False
            assert info.value.error == "404 page not found"


# -- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("conf", "error"),
    [
        ({"rtspTransport": "carrier-pigeon"}, "invalid value for 'rtspTransport'"),
        ({"noSuchField": 1}, 'json: unknown field "noSuchField"'),
        ({"record": "yes"}, "json: cannot unmarshal string"),
        ({"sourceOnDemand": True}, "'sourceOnDemand' is useless when source is 'publisher'"),
        ({"forward": None}, "cannot set slice to nil"),
    ],
)
def test_bad_request_is_mapped(client, conf, error):
    with pytest.raises(MediaMTXBadRequest) as info:
        client.replace_path("cam", conf)
    assert isinstance(info.value, MediaMTXError)
    assert info.value.status_code == 400
    assert info.value.api_error is True
    assert info.value.error.startswith(error)


def test_basic_auth():
    with MediaMTXStandIn(username="app", password="pw") as server:
        with MediaMTXClient(server.base_url, username="app", password="pw") as good:
            good.replace_path("cam", camera_path_conf(SOURCE))
            assert good.info()["version"] == "v1.20.1"
        for user, password in ((None, None), ("app", "wrong")):
            bad = MediaMTXClient(server.base_url, username=user, password=password)
            with bad, pytest.raises(MediaMTXUnauthorized) as info:
                bad.list_paths()
            assert info.value.status_code == 401
            assert info.value.error == "authentication error"
        raw = requests.get(server.base_url + "/v3/nothing", timeout=5)
        assert raw.status_code == 401  # auth runs before routing
        assert raw.headers["WWW-Authenticate"] == 'Basic realm="mediamtx"'


def test_down_raises_unavailable_quickly(standin, client):
    client.replace_path("cam", camera_path_conf(SOURCE))  # leaves a pooled connection
    standin.stop()
    calls = (
        lambda: client.replace_path("cam", camera_path_conf(SOURCE)),
        lambda: client.delete_path("cam"),
        lambda: client.get_path("cam"),
        lambda: client.get_config_path("cam"),
        client.list_paths,
        client.list_config_paths,
        client.info,
    )
    for call in calls:
        started = time.monotonic()
        with pytest.raises(MediaMTXUnavailable) as info:
            call()
        assert time.monotonic() - started < 1.0
        assert info.value.status_code is None


def test_timeout_raises_unavailable():
    with socket.socket() as listener:  # accepts connections (backlog), never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        with MediaMTXClient(f"http://127.0.0.1:{port}", timeout=(0.5, 0.3)) as mtx:
            started = time.monotonic()
            with pytest.raises(MediaMTXUnavailable, match="timed out"):
                mtx.get_path("cam")
            assert time.monotonic() - started < 2.0


def test_restart_forgets_paths_and_redeclare_works(standin, client):
    name = camera_path_name(1, 2)
    client.replace_path(name, camera_path_conf(SOURCE))
    standin.set_source_available(name, readers=1)
    port = standin.port

    standin.restart()

    assert standin.port == port
    assert client.get_path(name) is None  # same client, stale keep-alive connection
    assert client.list_config_paths() == []
    assert client.list_paths() == []
    client.replace_path(name, camera_path_conf(SOURCE))
    item = client.get_path(name)
    assert item is not None
    assert path_health(item)["available"] is False


@pytest.mark.parametrize(
    "name",
    [
        "",
        "/cam",
        "cam/",
        "a b",
        "a?b",
        "a#b",
        "a%2Fb",
        "~^cam$",
        "a//b",
        "pref1/../cam",
        "./cam",
        "câm",
        "cam:1",
        None,
        12,
    ],
)
def test_bad_names_raise_value_error_without_request(standin, client, name):
    calls = (
        lambda: client.replace_path(name, {}),
        lambda: client.delete_path(name),
        lambda: client.get_path(name),
        lambda: client.get_config_path(name),
        lambda: reader_urls("h", "h", "h", name),
    )
    for call in calls:
        with pytest.raises(ValueError):
            call()
    assert standin.requests_log == []


def test_camera_path_name():
    assert camera_path_name(12, 34) == "pref12/cam34"
    for bad in ((0, 1), (1, -1), (True, 1), ("1", 2), (1.0, 2)):
        with pytest.raises(ValueError):
            camera_path_name(*bad)


# -- pagination ------------------------------------------------------------------------------


def test_pagination_over_more_than_100_paths(standin, client):
    names = [camera_path_name(1, i) for i in range(1, 251)]
    for name in names:
        client.replace_path(name, camera_path_conf(SOURCE, source_on_demand=True))
    standin.requests_log.clear()

    assert sorted(item["name"] for item in client.list_config_paths()) == sorted(names)
    assert sorted(item["name"] for item in client.list_paths()) == sorted(names)
    pages = [(r.path, r.query["page"], r.query["itemsPerPage"]) for r in standin.requests_log]
    assert pages == [
        (route, [str(page)], ["100"])
        for route in ("/v3/config/paths/list", "/v3/paths/list")
        for page in (0, 1, 2)
    ]

    small = MediaMTXClient(standin.base_url, items_per_page=7)
    assert len(small.list_paths()) == 250
    small.close()


def test_list_envelope_and_bad_page_parameters(standin, client):
    for i in range(3):
        client.replace_path(f"cam{i}", camera_path_conf(SOURCE))
    url = standin.base_url + "/v3/config/paths/list"
    body = requests.get(url, params={"page": 1, "itemsPerPage": 2}, timeout=5).json()
    assert (body["itemCount"], body["pageCount"], len(body["items"])) == (3, 2, 1)
    past = requests.get(url, params={"page": 9}, timeout=5).json()
    assert (past["itemCount"], past["pageCount"], past["items"]) == (3, 1, [])
    for params, error in (
        ({"itemsPerPage": 0}, "invalid items per page"),
        ({"page": -1}, 'strconv.ParseUint: parsing "-1": invalid syntax'),
    ):
        resp = requests.get(url, params=params, timeout=5)
        assert resp.status_code == 400
        assert resp.json() == {"status": "error", "error": error}


# -- health and helpers ----------------------------------------------------------------------


def test_runtime_state_and_path_health(standin, client):
    name = camera_path_name(3, 4)
    client.replace_path(name, camera_path_conf(SOURCE))
    waiting = path_health(client.get_path(name))
    assert waiting["online"] is True  # a configured static source is "online" already
    assert waiting["available"] is False

    standin.set_source_available(name, readers=2, width=1280, height=720, inbound_bytes=4096)
    health = path_health(client.get_path(name))
    assert health["available"] is True
    assert health["available_time"]
    assert health["readers"] == 2
    assert health["inbound_bytes"] == 4096
    assert health["tracks"] == [{"codec": "H264", "width": 1280, "height": 720}]

    client.replace_path(name, camera_path_conf(SOURCE, record=True))  # record*: no restart
    assert path_health(client.get_path(name))["available"] is True
    client.replace_path(name, camera_path_conf(SOURCE + "&subtype=1"))  # source: restart
    assert path_health(client.get_path(name))["available"] is False

    standin.set_source_available(name, True)
    standin.set_source_available(name, False)
    gone = path_health(client.get_path(name))
    assert (gone["available"], gone["readers"], gone["tracks"]) == (False, 0, [])


def test_path_health_deprecated_fallbacks():
    old = {"ready": True, "readyTime": "t", "bytesReceived": 10, "tracks": ["H264"]}
    assert path_health(old) == {
        "available": True,
        "available_time": "t",
        "online": False,
        "readers": 0,
        "inbound_bytes": 10,
        "inbound_frames_in_error": 0,
        "tracks": [{"codec": "H264", "width": None, "height": None}],
    }
    both = {
        "available": False,
        "ready": True,
        "inboundBytes": 0,
        "bytesReceived": 10,
        "tracks2": [{"codec": "H265", "codecProps": None}],
        "tracks": ["H264"],
    }
    health = path_health(both)
    assert (health["available"], health["inbound_bytes"]) == (False, 0)
    assert health["tracks"] == [{"codec": "H265", "width": None, "height": None}]


def test_reader_urls():
    urls = reader_urls(
        "https://media.example.org/", "media.example.org", "10.0.0.1:9554", "pref1/cam2"
    )
    assert urls == {
        "hls": "https://media.example.org/pref1/cam2/index.m3u8",
        "webrtc": "http://media.example.org:8889/pref1/cam2/whep",
        "rtsp": "rtsp://10.0.0.1:9554/pref1/cam2",
    }
    assert reader_urls("h", None, "", "p") == {
        "hls": "http://h:8888/p/index.m3u8",
        "webrtc": None,
        "rtsp": None,
    }


def test_camera_path_conf():
    assert camera_path_conf(SOURCE) == {
        "source": SOURCE,
        "sourceOnDemand": False,
        "record": False,
        "rtspTransport": "tcp",
    }
    conf = camera_path_conf("https://cam.example/live.m3u8", record=True, source_on_demand=True)
    assert conf == {
        "source": "https://cam.example/live.m3u8",
        "sourceOnDemand": True,
        "record": True,
    }


def test_config_get_redacts_the_source_password(client):
    client.replace_path("cam", camera_path_conf(SOURCE))
    conf = client.get_config_path("cam")
    assert conf["name"] == "cam"
    assert PASSWORD not in conf["source"]
    assert conf["source"] == SOURCE.replace(PASSWORD, "<redacted>")


# -- secrets ---------------------------------------------------------------------------------


def test_no_credentials_in_exception_messages(standin, client, caplog):
    caplog.set_level(logging.DEBUG)
    bad_source = f"foo://admin:{PASSWORD}@10.0.0.5/stream"
    raw = requests.post(
        standin.base_url + "/v3/config/paths/replace/cam", json={"source": bad_source}, timeout=5
    )
    assert PASSWORD in raw.json()["error"]  # MediaMTX echoes the source: the client must not

    raised: list[BaseException] = []
    with pytest.raises(MediaMTXBadRequest) as info:
        client.replace_path("cam", {"source": bad_source})
    raised.append(info.value)
    with pytest.raises(MediaMTXBadRequest) as info:  # invalid port: "'...' is not a valid URL"
        client.replace_path("cam", {"source": f"rtsp://admin:{PASSWORD}@cam:99999999/x"})
    raised.append(info.value)
    with pytest.raises(ValueError) as value_error:
        camera_path_conf(f"ftp://admin:{PASSWORD}@cam/x")
    raised.append(value_error.value)

    with MediaMTXStandIn(username="app", password="pw") as locked:
        with (
            MediaMTXClient(locked.base_url) as anonymous,
            pytest.raises(MediaMTXUnauthorized) as info,
        ):
            anonymous.replace_path("cam", camera_path_conf(SOURCE))
        raised.append(info.value)

    standin.stop()
    with pytest.raises(MediaMTXUnavailable) as info:
        client.replace_path("cam", camera_path_conf(SOURCE))
    raised.append(info.value)

    for exc in raised:
        texts = [str(exc), repr(exc), str(getattr(exc, "error", ""))]
        texts += [str(exc.__cause__)] if exc.__cause__ else []
        for text in texts:
            assert PASSWORD not in text
            assert "admin:" not in text
    for record in caplog.records:
        assert PASSWORD not in record.getMessage()


def test_client_rejects_credentials_in_the_api_url():
    with pytest.raises(ValueError) as info:
        MediaMTXClient("http://app:hunter2@mediamtx:9997")
    assert "hunter2" not in str(info.value)


# -- faithfulness to openapi.yaml ------------------------------------------------------------


def _load_yaml(path: Path) -> Any:
    import yaml

    if not path.exists():
        pytest.fail(f"{path} is missing: the MediaMTX contract lives in ../shared/mediamtx/")
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    return _load_yaml(OPENAPI)


def schema_errors(spec: dict[str, Any], schema: dict[str, Any], value: Any, where: str = "$"):
    """Validate ``value`` against an OpenAPI 3.0 schema; undeclared properties are errors."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        return schema_errors(spec, spec["components"]["schemas"][name], value, where)
    if value is None:
        return [] if schema.get("nullable") else [f"{where}: null"]
    errors: list[str] = []
    for sub in schema.get("allOf", []):
        errors += schema_errors(spec, sub, value, where)
    if "oneOf" in schema and all(schema_errors(spec, s, value, where) for s in schema["oneOf"]):
        errors.append(f"{where}: matches none of oneOf")
    kind = schema.get("type")
    checks = {
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
        "string": lambda v: isinstance(v, str),
        "boolean": lambda v: isinstance(v, bool),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    }
    if kind and not checks[kind](value):
        return errors + [f"{where}: {value!r} is not {kind}"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{where}: {value!r} not in {schema['enum']}")
    if kind == "object" and "properties" in schema:
        for key, item in value.items():
            if key not in schema["properties"]:
                errors.append(f"{where}.{key}: not in schema")
            else:
                errors += schema_errors(spec, schema["properties"][key], item, f"{where}.{key}")
    if kind == "array":
        for i, item in enumerate(value):
            errors += schema_errors(spec, schema["items"], item, f"{where}[{i}]")
    return errors


def response_schema(spec: dict[str, Any], route: str, method: str, status: int) -> dict[str, Any]:
    response = spec["paths"][route][method]["responses"][str(status)]
    return response["content"]["application/json"]["schema"]


def test_standin_bodies_match_openapi(openapi, standin, client):
    base = standin.base_url
    client.replace_path("pref1/cam1", camera_path_conf(SOURCE))
    client.replace_path("pref1/cam2", {"source": "publisher", "publishPass": "x", "readIPs": []})
    standin.set_source_available("pref1/cam1", readers=2)

    def check(method: str, url: str, route: str, status: int, **kwargs: Any) -> None:
        resp = requests.request(method, base + url, timeout=5, **kwargs)
        assert resp.status_code == status, resp.text
        assert resp.headers["Content-Type"].startswith("application/json")
        errors = schema_errors(
            openapi, response_schema(openapi, route, method.lower(), status), resp.json()
        )
        assert errors == [], f"{method} {url}: {errors}"

    check("GET", "/v3/info", "/v3/info", 200)
    check("GET", "/v3/config/paths/list", "/v3/config/paths/list", 200)
    check("GET", "/v3/config/paths/get/pref1/cam1", "/v3/config/paths/get/{name}", 200)
    check("GET", "/v3/config/paths/get/pref1/cam2", "/v3/config/paths/get/{name}", 200)
    check("GET", "/v3/config/paths/get/nope", "/v3/config/paths/get/{name}", 404)
    check("GET", "/v3/paths/list", "/v3/paths/list", 200)
    check("GET", "/v3/paths/list?itemsPerPage=0", "/v3/paths/list", 400)
    check("GET", "/v3/paths/get/pref1/cam1", "/v3/paths/get/{name}", 200)
    check("GET", "/v3/paths/get/pref1/cam2", "/v3/paths/get/{name}", 200)
    check("GET", "/v3/paths/get/nope", "/v3/paths/get/{name}", 404)
    check("POST", "/v3/config/paths/add/x", "/v3/config/paths/add/{name}", 200, json={})
    check("POST", "/v3/config/paths/add/x", "/v3/config/paths/add/{name}", 400, json={})
    check("PATCH", "/v3/config/paths/patch/x", "/v3/config/paths/patch/{name}", 200, json={})
    check("PATCH", "/v3/config/paths/patch/y", "/v3/config/paths/patch/{name}", 404, json={})
    check("POST", "/v3/config/paths/replace/x", "/v3/config/paths/replace/{name}", 200, json={})
    check(
        "POST",
        "/v3/config/paths/replace/x",
        "/v3/config/paths/replace/{name}",
        400,
        json={"bad": 1},
    )
    check("DELETE", "/v3/config/paths/delete/x", "/v3/config/paths/delete/{name}", 200)
    check("DELETE", "/v3/config/paths/delete/x", "/v3/config/paths/delete/{name}", 404)

    redacted = client.get_config_path("pref1/cam2")
    assert redacted["publishPass"] == "<redacted>"


def test_standin_knows_exactly_the_pathconf_fields(openapi):
    properties = openapi["components"]["schemas"]["PathConf"]["properties"]
    deprecated = {key for key, prop in properties.items() if prop.get("deprecated")}
    assert set(PATH_DEFAULTS) | {"name"} == set(properties) - deprecated
    assert set(DEPRECATED_FIELDS) == deprecated
    errors = schema_errors(openapi, {"$ref": "#/components/schemas/PathConf"}, PATH_DEFAULTS)
    assert errors == []


def test_standin_defaults_are_the_default_config():
    path_defaults = _load_yaml(DEFAULT_CONFIG)["pathDefaults"]
    assert {key: "" if value is None else value for key, value in path_defaults.items()} == (
        PATH_DEFAULTS
    )


def test_camera_path_conf_uses_only_pathconf_fields(openapi):
    schema = {"$ref": "#/components/schemas/PathConf"}
    for conf in (
        camera_path_conf(SOURCE, record=True, source_on_demand=True),
        camera_path_conf("rtmp://cam/live"),
    ):
        assert schema_errors(openapi, schema, conf) == []
