"""In-process stand-in for the MediaMTX v1.20.1 control API v3, for tests.

Follows ../shared/mediamtx/ (openapi.yaml, README.md, mediamtx.yml): the same routes, status
codes and bodies as MediaMTX for the subset the application uses:

- 200 ``{"status":"ok"}`` on writes; errors ``{"status":"error","error":"<msg>"}``;
- unknown route (or method): plain-text ``404 page not found``; basic auth failure: 401;
- ``add`` on an existing name: 400 ``path already exists``; ``patch``/``delete`` of an unknown
  name: 404 ``path not found``; invalid names or configuration: 400;
- lists ``{"itemCount","pageCount","items"}`` with ``?page=`` (0-based) and ``itemsPerPage``.

A config path stores the fields sent merged over the path defaults of the default
mediamtx.yml; GET redacts passwords (README). Each non-regex config path has a runtime path
(``/v3/paths/*``, shaped like the ``Path`` schema) whose stream state the test drives with
``set_source_available``. ``restart()`` forgets every config path (they live in RAM in MediaMTX).
"""

from __future__ import annotations

import base64
import copy
import json
import re
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

VERSION = "v1.20.1"
REDACTED = "<redacted>"

# pathDefaults of the default mediamtx.yml (v1.20.1); an empty YAML value is "" in JSON.
PATH_DEFAULTS: dict[str, Any] = {
    "source": "publisher",
    "sourceFingerprint": "",
    "sourceOnDemand": False,
    "sourceOnDemandStartTimeout": "10s",
    "sourceOnDemandCloseAfter": "10s",
    "maxReaders": 0,
    "srtReadPassphrase": "",
    "useAbsoluteTimestamp": False,
    "alwaysAvailable": False,
    "alwaysAvailableTracks": [],
    "alwaysAvailableFile": "",
    "forward": [],
    "record": False,
    "recordPath": "./recordings/%path/%Y-%m-%d_%H-%M-%S-%f",
    "recordFormat": "fmp4",
    "recordPartDuration": "1s",
    "recordMaxPartSize": "50M",
    "recordSegmentDuration": "1h",
    "recordDeleteAfter": "1d",
    "overridePublisher": True,
    "srtPublishPassphrase": "",
    "rtspDemuxMpegts": False,
    "rtspTransport": "automatic",
    "rtspAnyPort": False,
    "rtspRangeType": "",
    "rtspRangeStart": "",
    "rtspScale": "",
    "rtspUDPSourcePortRange": [32768, 60999],
    "rtpSDP": "",
    "moqTransport": "quic",
    "whepBearerToken": "",
    "whepSTUNGatherTimeout": "5s",
    "whepHandshakeTimeout": "10s",
    "whepTrackGatherTimeout": "2s",
    "sourceRedirect": "",
    "rpiCameraCamID": 0,
    "rpiCameraSecondary": False,
    "rpiCameraWidth": 1920,
    "rpiCameraHeight": 1080,
    "rpiCameraHFlip": False,
    "rpiCameraVFlip": False,
    "rpiCameraBrightness": 0,
    "rpiCameraContrast": 1,
    "rpiCameraSaturation": 1,
    "rpiCameraSharpness": 1,
    "rpiCameraExposure": "normal",
    "rpiCameraAWB": "auto",
    "rpiCameraAWBGains": [0, 0],
    "rpiCameraDenoise": "off",
    "rpiCameraShutter": 0,
    "rpiCameraMetering": "centre",
    "rpiCameraGain": 0,
    "rpiCameraEV": 0,
    "rpiCameraROI": "",
    "rpiCameraHDR": False,
    "rpiCameraTuningFile": "",
    "rpiCameraMode": "",
    "rpiCameraFPS": 30,
    "rpiCameraAfMode": "continuous",
    "rpiCameraAfRange": "normal",
    "rpiCameraAfSpeed": "normal",
    "rpiCameraLensPosition": 0.0,
    "rpiCameraAfWindow": "",
    "rpiCameraFlickerPeriod": 0,
    "rpiCameraTextOverlayEnable": False,
    "rpiCameraTextOverlay": "%Y-%m-%d %H:%M:%S - MediaMTX",
    "rpiCameraCodec": "auto",
    "rpiCameraIDRPeriod": 60,
    "rpiCameraBitrate": 5000000,
    "rpiCameraH264Profile": "auto",
    "rpiCameraH264Level": "4.1",
    "rpiCameraMJPEGQuality": 60,
    "runOnInit": "",
    "runOnInitRestart": False,
    "runOnDemand": "",
    "runOnDemandRestart": False,
    "runOnDemandStartTimeout": "10s",
    "runOnDemandCloseAfter": "10s",
    "runOnUnDemand": "",
    "runOnAvailable": "",
    "runOnAvailableRestart": False,
    "runOnUnavailable": "",
    "runOnOnline": "",
    "runOnOnlineRestart": False,
    "runOnOffline": "",
    "runOnRead": "",
    "runOnReadRestart": False,
    "runOnUnread": "",
    "runOnRecordSegmentCreate": "",
    "runOnRecordSegmentComplete": "",
}

# Deprecated, nullable PathConf fields: accepted, stored, returned only when set.
DEPRECATED_FIELDS: dict[str, type] = {
    "disablePublisherOverride": bool,
    "fallback": str,
    "mpegtsUDPReadBufferSize": int,
    "playback": bool,
    "publishIPs": list,
    "publishPass": str,
    "publishUser": str,
    "readIPs": list,
    "readPass": str,
    "readUser": str,
    "rpiCameraHardwareH264Level": str,
    "rpiCameraHardwareH264Profile": str,
    "rpiCameraJPEGQuality": int,
    "rpiCameraLevel": str,
    "rpiCameraProfile": str,
    "rpiCameraSoftwareH264Level": str,
    "rpiCameraSoftwareH264Profile": str,
    "rtpUDPReadBufferSize": int,
    "rtspUDPReadBufferSize": int,
    "runOnNotReady": str,
    "runOnReady": str,
    "runOnReadyRestart": bool,
    "sourceAnyPortEnable": bool,
    "sourceProtocol": str,
}

NUMBER_FIELDS = frozenset(
    {
        "rpiCameraBrightness",
        "rpiCameraContrast",
        "rpiCameraSaturation",
        "rpiCameraSharpness",
        "rpiCameraGain",
        "rpiCameraEV",
        "rpiCameraFPS",
        "rpiCameraLensPosition",
    }
)
ENUMS: dict[str, frozenset[str]] = {
    "recordFormat": frozenset({"fmp4", "mpegts"}),
    "rtspTransport": frozenset({"udp", "multicast", "tcp", "automatic"}),
    "sourceProtocol": frozenset({"udp", "multicast", "tcp", "automatic"}),
    "rtspRangeType": frozenset({"", "clock", "npt", "smpte"}),
}
PASSWORD_FIELDS = ("publishPass", "readPass")

# Static source schemes (mediamtx.yml) and the PathSourceType a runtime path reports for them.
SOURCE_TYPES = {
    "rtsp": "rtspSource",
    "rtsps": "rtspSource",
    "rtsp+http": "rtspSource",
    "rtsps+http": "rtspSource",
    "rtsp+ws": "rtspSource",
    "rtsps+ws": "rtspSource",
    "rtmp": "rtmpSource",
    "rtmps": "rtmpSource",
    "http": "hlsSource",
    "https": "hlsSource",
    "udp+mpegts": "mpegtsSource",
    "unix+mpegts": "mpegtsSource",
    "udp+rtp": "rtpSource",
    "srt": "srtSource",
    "moqt": "moqSource",
    "whep": "webRTCSource",
    "wheps": "webRTCSource",
}

PATH_NAME_RE = re.compile(r"^[0-9a-zA-Z_\-/\.]+$")  # README
MAX_PAGE_PARAM = 2**31 - 1


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _go_json(value: Any) -> bytes:
    """JSON as Go's encoding/json writes it: compact, with <, > and & escaped."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026").encode()


def _path_name_error(name: str) -> str | None:
    if name == "":
        return "cannot be empty"
    if name.startswith("/"):
        return "can't begin with a slash"
    if name.endswith("/"):
        return "can't end with a slash"
    if not PATH_NAME_RE.fullmatch(name):
        return "can contain only alphanumeric characters, underscore, dot, minus or slash"
    return None


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _field_error(key: str, value: Any) -> str | None:
    """Type/enum error of one PathConf field, in the words of Go's JSON decoder when it can."""
    if key == "name":
        expected: type = str
    elif key in DEPRECATED_FIELDS:
        if value is None:
            return None
        expected = DEPRECATED_FIELDS[key]
    elif key in PATH_DEFAULTS:
        expected = float if key in NUMBER_FIELDS else type(PATH_DEFAULTS[key])
    else:
        return f'json: unknown field "{key}"'

    if expected is bool:
        ok = isinstance(value, bool)
    elif expected is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif expected is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    else:
        ok = isinstance(value, expected)
    if not ok:
        return f"json: cannot unmarshal {_json_type(value)} into field {key}"
    if key in ENUMS and value not in ENUMS[key]:
        return f"invalid value for '{key}': '{value}'"
    if key == "forward" and not all(
        isinstance(d, dict) and set(d) <= {"dest", "destFingerprint", "whipBearerToken"}
        for d in value
    ):
        return "json: invalid value for field forward"
    return None


def _conf_error(name: str, conf: dict[str, Any]) -> str | None:
    """Validation of a merged PathConf, as MediaMTX's Validate() words it (subset)."""
    name_error = _path_name_error(name)
    if name_error:
        return f"invalid path name '{name}': {name_error}"
    source = conf["source"]
    if source in ("publisher", "redirect", "rpiCamera"):
        pass
    elif "://" in source and source.split("://", 1)[0] in SOURCE_TYPES:
        try:
            urlsplit(source).port  # noqa: B018 - raises on an invalid port
        except ValueError:
            return f"'{source}' is not a valid URL"  # MediaMTX echoes the source
    else:
        return f"invalid source: '{source}'"  # MediaMTX echoes the source
    if conf["sourceOnDemand"] and source == "publisher":
        return "'sourceOnDemand' is useless when source is 'publisher'"
    if source != "redirect" and conf["sourceRedirect"]:
        return "'sourceRedirect' is useless when source is not 'redirect'"
    if source == "redirect" and not conf["sourceRedirect"]:
        return "source redirect must be filled"
    if "%path" not in conf["recordPath"]:
        return "'recordPath' must contain %path"
    return None


def _redact_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:{REDACTED}@{parts.netloc.rpartition('@')[2]}"
    return urlunsplit(parts._replace(netloc=netloc))


def _restarts_path(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """README: changing ``record*`` does not restart a path; other changes (source...) do."""
    keys = {key for key in old.keys() | new.keys() if not key.startswith("record")}
    return any(old.get(key) != new.get(key) for key in keys)


def _parse_page_param(raw: str | None, default: int) -> int:
    """strconv.ParseUint(raw, 10, 31) as MediaMTX's paginate() does."""
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not raw.isascii():
        raise ValueError(f'strconv.ParseUint: parsing "{raw}": invalid syntax')
    if int(raw) > MAX_PAGE_PARAM:
        raise ValueError(f'strconv.ParseUint: parsing "{raw}": value out of range')
    return int(raw)


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    body: bytes
    status: int

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class _Runtime:
    """Runtime state of a path (what /v3/paths/get reports)."""

    conf_name: str
    source: dict[str, str] | None
    online: bool
    online_time: str | None
    available: bool = False
    available_time: str | None = None
    tracks: list[dict[str, Any]] = field(default_factory=list)
    readers: list[dict[str, str]] = field(default_factory=list)
    inbound_bytes: int = 0
    outbound_bytes: int = 0
    inbound_frames_in_error: int = 0

    def item(self, name: str) -> dict[str, Any]:
        return {
            "name": name,
            "confName": self.conf_name,
            "source": self.source,
            "ready": self.available,
            "readyTime": self.available_time,
            "available": self.available,
            "availableTime": self.available_time,
            "online": self.online,
            "onlineTime": self.online_time,
            "tracks": [t["codec"] for t in self.tracks],
            "tracks2": copy.deepcopy(self.tracks),
            "bytesReceived": self.inbound_bytes,
            "bytesSent": self.outbound_bytes,
            "inboundBytes": self.inbound_bytes,
            "outboundBytes": self.outbound_bytes,
            "inboundFramesInError": self.inbound_frames_in_error,
            "readers": copy.deepcopy(self.readers),
        }


def _new_runtime(name: str, conf: dict[str, Any]) -> _Runtime:
    source = conf["source"]
    scheme = source.split("://", 1)[0] if "://" in source else ""
    static = scheme in SOURCE_TYPES or source == "rpiCamera"
    # A static source is "online" as soon as it is configured (README); on-demand ones when read.
    online = static and not conf["sourceOnDemand"]
    return _Runtime(
        conf_name=name,
        source={"type": SOURCE_TYPES.get(scheme, "rpiCameraSource"), "id": ""} if static else None,
        online=online,
        online_time=_now() if online else None,
    )


Response = tuple[int, str, bytes, dict[str, str]]


def _ok() -> Response:
    return 200, "application/json; charset=utf-8", _go_json({"status": "ok"}), {}


def _json_response(value: Any) -> Response:
    return 200, "application/json; charset=utf-8", _go_json(value), {}


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    body = _go_json({"status": "error", "error": message})
    return status, "application/json; charset=utf-8", body, headers or {}


def _page_not_found() -> Response:
    return 404, "text/plain", b"404 page not found", {}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], standin: MediaMTXStandIn) -> None:
        self.standin = standin
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, addr = super().get_request()
        with self.connections_lock:
            self.connections.add(conn)
        return conn, addr

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        """Reset open keep-alive connections, as a MediaMTX that goes away would."""
        with self.connections_lock:
            connections = list(self.connections)
            self.connections.clear()
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # connections reset by stop() are expected


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "MediaMTXStandIn"
    sys_version = ""
    timeout = 30
    disable_nagle_algorithm = True  # headers and body are two writes: avoid 40 ms stalls
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        status, content_type, payload, headers = self.server.standin.handle(
            self.command, self.path, body, self.headers.get("Authorization")
        )
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = do_HEAD = _dispatch


class MediaMTXStandIn:
    """MediaMTX control API stand-in on 127.0.0.1 (free port), served from a thread.

    ``username``/``password`` enable basic auth (401 ``authentication error`` otherwise).
    """

    def __init__(
        self,
        *,
        username: str | None = None,
        password: str | None = None,
        auth_failure_delay: float = 0.0,
    ) -> None:
        self.host = "127.0.0.1"
        self.port = 0
        self.username = username
        self.password = password
        self.auth_failure_delay = auth_failure_delay  # real MediaMTX pauses ~2 s
        self.requests_log: list[RecordedRequest] = []
        self._lock = threading.RLock()
        self._confs: dict[str, dict[str, Any]] = {}  # name -> fields sent (merged over defaults)
        self._runtime: dict[str, _Runtime] = {}
        self._started = _now()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> MediaMTXStandIn:
        if self._server is not None:
            return self
        self._server = _Server((self.host, self.port), self)
        self.port = self._server.server_address[1]
        self._started = _now()
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="mediamtx-standin",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and reset open connections: new connections are refused."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        server.drop_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def restart(self) -> None:
        """Like a MediaMTX restart: same port, every config path (kept in RAM) forgotten."""
        self.stop()
        with self._lock:
            self._confs.clear()
            self._runtime.clear()
        self.start()

    def __enter__(self) -> MediaMTXStandIn:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- test controls -----------------------------------------------------------------------

    def config_paths(self) -> dict[str, dict[str, Any]]:
        """Stored configurations (unredacted), for assertions."""
        with self._lock:
            return copy.deepcopy(self._confs)

    def set_source_available(
        self,
        name: str,
        available: bool = True,
        *,
        readers: int | None = None,
        codec: str = "H264",
        width: int = 640,
        height: int = 360,
        inbound_bytes: int | None = None,
        inbound_frames_in_error: int | None = None,
    ) -> None:
        """Drive the stream state of a configured path (KeyError when not configured).

        Going unavailable drops the tracks and the readers, as MediaMTX closes them.
        """
        with self._lock:
            runtime = self._runtime[name]
            if available:
                if not runtime.available:
                    runtime.available_time = _now()
                runtime.available = True
                runtime.online = True
                runtime.online_time = runtime.online_time or runtime.available_time
                runtime.tracks = [
                    {
                        "codec": codec,
                        "codecProps": {
                            "width": width,
                            "height": height,
                            "profile": "Constrained Baseline",
                            "level": "3.0",
                        },
                    }
                ]
            else:
                runtime.available = False
                runtime.available_time = None
                runtime.tracks = []
                runtime.readers = []
            if readers is not None:
                runtime.readers = [
                    {"type": "rtspSession", "id": str(uuid.uuid4())} for _ in range(readers)
                ]
            if inbound_bytes is not None:
                runtime.inbound_bytes = inbound_bytes
            if inbound_frames_in_error is not None:
                runtime.inbound_frames_in_error = inbound_frames_in_error

    # -- HTTP --------------------------------------------------------------------------------

    def handle(
        self, method: str, raw_path: str, body: bytes, authorization: str | None
    ) -> Response:
        parts = urlsplit(raw_path)
        route = unquote(parts.path)
        query = parse_qs(parts.query, keep_blank_values=True)
        response = self._authenticate(authorization) or self._route(method, route, query, body)
        with self._lock:
            self.requests_log.append(RecordedRequest(method, route, query, body, response[0]))
        return response

    def _authenticate(self, authorization: str | None) -> Response | None:
        if self.username is None and self.password is None:
            return None
        if not authorization or not authorization.startswith("Basic "):
            return _error(
                401, "authentication error", {"WWW-Authenticate": 'Basic realm="mediamtx"'}
            )
        try:
            user, _, password = base64.b64decode(authorization[6:]).decode().partition(":")
        except ValueError:
            user, password = "", ""
        if (user, password) != (self.username or "", self.password or ""):
            time.sleep(self.auth_failure_delay)
            return _error(401, "authentication error")
        return None

    def _route(self, method: str, route: str, query: dict[str, list[str]], body: bytes) -> Response:
        if method == "GET" and route == "/v3/info":
            return _json_response({"version": VERSION, "started": self._started})
        if method == "GET" and route == "/v3/config/paths/list":
            return self._list(query, self._config_items())
        if method == "GET" and route == "/v3/paths/list":
            return self._list(query, self._runtime_items())
        handlers = (
            ("GET", "/v3/config/paths/get/", self._config_get),
            ("POST", "/v3/config/paths/add/", self._config_add),
            ("PATCH", "/v3/config/paths/patch/", self._config_patch),
            ("POST", "/v3/config/paths/replace/", self._config_replace),
            ("DELETE", "/v3/config/paths/delete/", self._config_delete),
            ("GET", "/v3/paths/get/", self._path_get),
        )
        for handler_method, prefix, handler in handlers:
            if method == handler_method and route.startswith(prefix):
                name = route[len(prefix) :]
                if not name:
                    return _error(400, "invalid name")
                return handler(name, body)
        return _page_not_found()

    # lists

    def _list(self, query: dict[str, list[str]], items: list[dict[str, Any]]) -> Response:
        try:
            per_page = _parse_page_param(query.get("itemsPerPage", [None])[0], 100)
            page = _parse_page_param(query.get("page", [None])[0], 0)
        except ValueError as exc:
            return _error(400, str(exc))
        if per_page == 0:
            return _error(400, "invalid items per page")
        page_count = (len(items) + per_page - 1) // per_page
        start = min(page * per_page, len(items))
        end = min(start + per_page, len(items))
        return _json_response(
            {"itemCount": len(items), "pageCount": page_count, "items": items[start:end]}
        )

    def _config_items(self) -> list[dict[str, Any]]:
        with self._lock:
            return [self._config_view(name) for name in sorted(self._confs)]

    def _runtime_items(self) -> list[dict[str, Any]]:
        with self._lock:
            return [self._runtime[name].item(name) for name in sorted(self._runtime)]

    def _config_view(self, name: str) -> dict[str, Any]:
        conf = copy.deepcopy(self._confs[name])
        conf["name"] = name
        conf["source"] = _redact_url(conf["source"])
        for key in PASSWORD_FIELDS:
            if conf.get(key):
                conf[key] = REDACTED
        return conf

    # config paths

    def _config_get(self, name: str, body: bytes) -> Response:
        with self._lock:
            if name not in self._confs:
                return _error(404, "path configuration not found")
            return _json_response(self._config_view(name))

    def _decode(self, body: bytes) -> tuple[dict[str, Any] | None, Response | None]:
        if not body.strip():
            return None, _error(400, "unexpected end of JSON input")
        try:
            data = json.loads(body)
        except ValueError as exc:
            return None, _error(400, f"invalid character in JSON body: {exc.msg}")
        if not isinstance(data, dict):
            return None, _error(400, f"json: cannot unmarshal {_json_type(data)} into object")
        fields: dict[str, Any] = {}
        for key, value in data.items():
            if value is None and key in PATH_DEFAULTS:
                if isinstance(PATH_DEFAULTS[key], list):
                    return None, _error(400, "cannot set slice to nil")
                continue  # Go: null into a non-pointer field is a no-op
            error = _field_error(key, value)
            if error:
                return None, _error(400, error)
            fields[key] = value
        fields.pop("name", None)  # filled by Validate()
        return fields, None

    def _store(self, name: str, fields: dict[str, Any], *, base: dict[str, Any]) -> Response:
        conf = {**base, **fields}
        error = _conf_error(name, conf)
        if error:
            return _error(400, error)
        old = self._confs.get(name)
        self._confs[name] = conf
        if old is None or _restarts_path(old, conf) or name not in self._runtime:
            self._runtime[name] = _new_runtime(name, conf)
        return _ok()

    def _config_add(self, name: str, body: bytes) -> Response:
        fields, error = self._decode(body)
        if error:
            return error
        with self._lock:
            if name in self._confs:
                return _error(400, "path already exists")
            return self._store(name, fields or {}, base=copy.deepcopy(PATH_DEFAULTS))

    def _config_patch(self, name: str, body: bytes) -> Response:
        fields, error = self._decode(body)
        if error:
            return error
        with self._lock:
            if name not in self._confs:
                return _error(404, "path not found")
            return self._store(name, fields or {}, base=copy.deepcopy(self._confs[name]))

    def _config_replace(self, name: str, body: bytes) -> Response:
        fields, error = self._decode(body)
        if error:
            return error
        with self._lock:
            return self._store(name, fields or {}, base=copy.deepcopy(PATH_DEFAULTS))

    def _config_delete(self, name: str, body: bytes) -> Response:
        with self._lock:
            if name not in self._confs:
                return _error(404, "path not found")
            del self._confs[name]
            self._runtime.pop(name, None)
            return _ok()

    # runtime paths

    def _path_get(self, name: str, body: bytes) -> Response:
        with self._lock:
            if name not in self._runtime:
                return _error(404, "path not found")
            return _json_response(self._runtime[name].item(name))
