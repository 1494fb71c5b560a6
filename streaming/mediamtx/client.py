"""Client for the MediaMTX control API v3 (MediaMTX v1.20.1).

Written against ../shared/mediamtx/openapi.yaml and README.md. No Django here: the integration
builds a ``MediaMTXClient`` from settings.

Camera source URLs carry credentials. They are never logged, and every error text that could
echo them (MediaMTX repeats an invalid ``source`` in its 400 message) is redacted first.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any, TypedDict
from urllib.parse import unquote, urlsplit

import requests

log = logging.getLogger(__name__)

JSONDict = dict[str, Any]

# Path names accepted by MediaMTX (README). The client is stricter than the server: no leading or
# trailing slash, no empty, "." or ".." segments (HTTP clients normalise those away).
PATH_NAME_RE = re.compile(r"^[0-9a-zA-Z_\-/\.]+$")

# Source URL schemes that MediaMTX v1.20.1 can pull from (mediamtx.yml, pathDefaults.source).
SOURCE_SCHEMES = frozenset(
    {
        "rtsp",
        "rtsps",
        "rtsp+http",
        "rtsps+http",
        "rtsp+ws",
        "rtsps+ws",
        "rtmp",
        "rtmps",
        "http",
        "https",
        "udp+mpegts",
        "unix+mpegts",
        "udp+rtp",
        "srt",
        "moqt",
        "whep",
        "wheps",
    }
)
RTSP_SCHEMES = frozenset({"rtsp", "rtsps", "rtsp+http", "rtsps+http", "rtsp+ws", "rtsps+ws"})

# PathConf fields whose values are secrets, besides passwords inside URLs.
SECRET_FIELDS = frozenset(
    {"publishPass", "readPass", "srtReadPassphrase", "srtPublishPassphrase", "whepBearerToken"}
)

DEFAULT_TIMEOUT: tuple[float, float] = (2.0, 5.0)  # (connect, read) seconds
DEFAULT_ITEMS_PER_PAGE = 100
MAX_PAGES = 10_000
MAX_ERROR_TEXT = 300

_URL_USERINFO_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://)[^/@\s'\"]*@")


class MediaMTXError(Exception):
    """A failed call to the MediaMTX control API.

    ``status_code`` is the HTTP status (None when no response arrived); ``error`` is the ``error``
    string of MediaMTX's ``{"status":"error","error":"..."}`` body (or the start of a non-JSON
    body), already redacted. ``api_error`` is True when the body was that JSON envelope, i.e. the
    answer came from a MediaMTX handler and not from its router (plain-text ``404 page not found``).
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        error: str | None = None,
        api_error: bool = False,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.error = error
        self.api_error = api_error


class MediaMTXUnavailable(MediaMTXError):
    """MediaMTX could not be reached: connection refused, timeout, or a proxy's 502/503/504."""


class MediaMTXBadRequest(MediaMTXError):
    """HTTP 400: invalid name, body or configuration, or ``path already exists``."""


class MediaMTXUnauthorized(MediaMTXError):
    """HTTP 401/403: the API credentials were refused."""


class MediaMTXNotFound(MediaMTXError):
    """HTTP 404: unknown path (``api_error``) or unknown route (plain-text 404)."""


_ERRORS_BY_STATUS: dict[int, type[MediaMTXError]] = {
    400: MediaMTXBadRequest,
    401: MediaMTXUnauthorized,
    403: MediaMTXUnauthorized,
    404: MediaMTXNotFound,
    502: MediaMTXUnavailable,
    503: MediaMTXUnavailable,
    504: MediaMTXUnavailable,
}


def validate_path_name(name: str) -> str:
    """Return ``name`` if it is a valid MediaMTX path name, else raise ValueError."""
    if not isinstance(name, str) or not PATH_NAME_RE.fullmatch(name):
        raise ValueError(f"invalid MediaMTX path name: {name!r}")
    if any(segment in ("", ".", "..") for segment in name.split("/")):
        raise ValueError(f"invalid MediaMTX path name: {name!r}")
    return name


def redact_credentials(text: str, secrets: Iterable[str] = ()) -> str:
    """Replace the given secrets and any ``scheme://user:pass@`` userinfo in ``text`` by ``***``."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return _URL_USERINFO_RE.sub(r"\1***@", text)


def _secrets_in(value: Any) -> set[str]:
    """Every credential-bearing string found in a PathConf-like value (URLs, secret fields)."""
    found: set[str] = set()
    if isinstance(value, Mapping):
        for key, item in value.items():
            if key in SECRET_FIELDS and isinstance(item, str):
                found.add(item)
            found |= _secrets_in(item)
    elif isinstance(value, list | tuple):
        for item in value:
            found |= _secrets_in(item)
    elif isinstance(value, str) and "://" in value:
        found.add(value)  # a URL may carry credentials in its userinfo or its query
        userinfo = value.split("://", 1)[1].split("/", 1)[0].rpartition("@")[0]
        if userinfo:
            found.add(userinfo)
            password = userinfo.partition(":")[2]
            found.update({password, unquote(password)})
    return found


class MediaMTXClient:
    """Typed client for the subset of the MediaMTX control API v3 the application uses."""

    def __init__(
        self,
        base_url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
        items_per_page: int = DEFAULT_ITEMS_PER_PAGE,
        session: requests.Session | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("MediaMTX API URL must be http(s)://host:port")
        if parts.username is not None or parts.password is not None:
            raise ValueError(
                "pass the MediaMTX API credentials as username/password, not in the URL"
            )
        if items_per_page < 1:
            raise ValueError("items_per_page must be >= 1")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.items_per_page = items_per_page
        if session is None:
            session = requests.Session()
            session.trust_env = False  # internal service: no proxy or .netrc from the environment
        self._session = session
        if username is not None or password is not None:
            self._session.auth = (username or "", password or "")

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> MediaMTXClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- calls -------------------------------------------------------------------------------

    def info(self) -> JSONDict:
        """GET /v3/info: ``{"version", "started"}``."""
        return self._json("GET", "/v3/info")

    def replace_path(self, name: str, conf: Mapping[str, Any]) -> None:
        """Declare (create or overwrite) a path: POST /v3/config/paths/replace/{name}.

        Idempotent upsert. Fields not sent go back to their defaults, so send the whole conf.
        """
        validate_path_name(name)
        if not isinstance(conf, Mapping):
            raise TypeError("conf must be a mapping of PathConf fields")
        body = dict(conf)
        self._request(
            "POST", f"/v3/config/paths/replace/{name}", body=body, secrets=_secrets_in(body)
        )

    def delete_path(self, name: str) -> bool:
        """DELETE /v3/config/paths/delete/{name}; False when the path was already absent."""
        validate_path_name(name)
        try:
            self._request("DELETE", f"/v3/config/paths/delete/{name}")
        except MediaMTXNotFound as exc:
            if exc.api_error:  # {"status":"error","error":"path not found"}
                return False
            raise
        return True

    def get_config_path(self, name: str) -> JSONDict | None:
        """GET /v3/config/paths/get/{name} (a PathConf), or None when not configured.

        MediaMTX redacts passwords here: never write back a field read from this.
        """
        validate_path_name(name)
        return self._json_or_none(f"/v3/config/paths/get/{name}")

    def get_path(self, name: str) -> JSONDict | None:
        """GET /v3/paths/get/{name} (runtime state, a Path), or None when it does not exist."""
        validate_path_name(name)
        return self._json_or_none(f"/v3/paths/get/{name}")

    def list_config_paths(self) -> list[JSONDict]:
        """Every configured path (PathConf items), following the pagination."""
        return self._list("/v3/config/paths/list")

    def list_paths(self) -> list[JSONDict]:
        """Every runtime path (Path items), following the pagination."""
        return self._list("/v3/paths/list")

    # -- plumbing ----------------------------------------------------------------------------

    def _json_or_none(self, route: str) -> JSONDict | None:
        try:
            return self._json("GET", route)
        except MediaMTXNotFound as exc:
            if exc.api_error:
                return None
            raise

    def _list(self, route: str) -> list[JSONDict]:
        items: list[JSONDict] = []
        seen: set[str] = set()
        page = 0
        while True:
            data = self._json(
                "GET", route, params={"page": page, "itemsPerPage": self.items_per_page}
            )
            batch = data.get("items") or []
            for item in batch:
                # A path added between two pages shifts the next page by one: skip repeats.
                key = item.get("name") if isinstance(item, dict) else None
                if key is not None and key in seen:
                    continue
                if key is not None:
                    seen.add(key)
                items.append(item)
            page += 1
            if not batch or page >= int(data.get("pageCount") or 0):
                return items
            if page >= MAX_PAGES:
                raise MediaMTXError(f"MediaMTX GET {route}: more than {MAX_PAGES} pages")

    def _json(
        self, method: str, route: str, *, params: Mapping[str, Any] | None = None
    ) -> JSONDict:
        response = self._request(method, route, params=params)
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise MediaMTXError(
                f"MediaMTX {method} {route}: response is not a JSON object",
                status_code=response.status_code,
            )
        return data

    def _request(
        self,
        method: str,
        route: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: JSONDict | None = None,
        secrets: Iterable[str] = (),
    ) -> requests.Response:
        try:
            response = self._session.request(
                method, self.base_url + route, params=params, json=body, timeout=self.timeout
            )
        except requests.Timeout as exc:
            raise MediaMTXUnavailable(f"MediaMTX {method} {route}: timed out") from exc
        except requests.RequestException as exc:
            reason = redact_credentials(f"{type(exc).__name__}: {exc}", secrets)
            raise MediaMTXUnavailable(f"MediaMTX {method} {route}: unreachable ({reason})") from exc

        status = response.status_code
        log.debug("MediaMTX %s %s -> %s", method, route, status)
        if 200 <= status < 300:
            return response

        error, api_error = _error_text(response)
        error = redact_credentials(error, secrets)
        cls = _ERRORS_BY_STATUS.get(status, MediaMTXError)
        raise cls(
            f"MediaMTX {method} {route}: HTTP {status}: {error}",
            status_code=status,
            error=error,
            api_error=api_error,
        )


def _error_text(response: requests.Response) -> tuple[str, bool]:
    """The ``error`` string of a MediaMTX error body, or the start of a non-JSON body."""
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict) and data.get("status") == "error":
        return str(data.get("error", "")), True
    text = response.text.strip()
    return (text[:MAX_ERROR_TEXT] or response.reason or ""), False


# -- pure helpers ----------------------------------------------------------------------------


def camera_path_name(prefeitura_id: int, camera_id: int) -> str:
    """MediaMTX path of a camera: ``pref{prefeitura_id}/cam{camera_id}``."""
    for value in (prefeitura_id, camera_id):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError("prefeitura_id and camera_id must be positive integers")
    return f"pref{prefeitura_id}/cam{camera_id}"


def camera_path_conf(
    source_url: str, *, record: bool = False, source_on_demand: bool = False
) -> JSONDict:
    """PathConf that pulls a camera (only fields of the PathConf schema of openapi.yaml).

    RTSP sources are pulled over TCP (no UDP port ranges through NAT/firewalls).
    """
    if not isinstance(source_url, str) or not source_url.strip():
        raise ValueError("camera source URL is empty")
    scheme = source_url.split("://", 1)[0].lower() if "://" in source_url else ""
    if scheme not in SOURCE_SCHEMES:
        raise ValueError(f"camera source URL scheme {scheme!r} is not supported by MediaMTX")
    conf: JSONDict = {
        "source": source_url,
        "sourceOnDemand": bool(source_on_demand),
        "record": bool(record),
    }
    if scheme in RTSP_SCHEMES:
        conf["rtspTransport"] = "tcp"
    return conf


class ReaderURLs(TypedDict):
    hls: str | None
    webrtc: str | None
    rtsp: str | None


def _public_base(value: str | None, scheme: str, default_port: int) -> str | None:
    """``value`` as a base URL: kept as is when it has a scheme, else ``scheme://host[:port]``."""
    if not value or not value.strip():
        return None
    value = value.strip().rstrip("/")
    if "://" in value:
        return value
    if urlsplit(f"//{value}").port is None:
        value = f"{value}:{default_port}"
    return f"{scheme}://{value}"


def reader_urls(
    public_host_hls: str | None,
    public_host_webrtc: str | None,
    public_host_rtsp: str | None,
    path: str,
) -> ReaderURLs:
    """Player URLs of a path. Each host is a base URL (``https://media.example.org``) or a bare
    ``host[:port]`` (default ports 8888/8889/8554 are added). None/empty host -> None."""
    validate_path_name(path)
    hls = _public_base(public_host_hls, "http", 8888)
    webrtc = _public_base(public_host_webrtc, "http", 8889)
    rtsp = _public_base(public_host_rtsp, "rtsp", 8554)
    return {
        "hls": f"{hls}/{path}/index.m3u8" if hls else None,
        "webrtc": f"{webrtc}/{path}/whep" if webrtc else None,
        "rtsp": f"{rtsp}/{path}" if rtsp else None,
    }


class TrackInfo(TypedDict):
    codec: str | None
    width: int | None
    height: int | None


class PathHealth(TypedDict):
    available: bool
    available_time: str | None
    online: bool
    readers: int
    inbound_bytes: int
    inbound_frames_in_error: int
    tracks: list[TrackInfo]


def _first_present(item: Mapping[str, Any], new: str, old: str) -> Any:
    """``item[new]``, or the deprecated ``item[old]`` only when ``new`` is absent."""
    return item.get(new) if new in item else item.get(old)


def path_health(item: Mapping[str, Any]) -> PathHealth:
    """Health of a path from a ``/v3/paths/get`` (or list) item. Health is ``available``:
    ``online`` is already true for a static source that has not connected yet."""
    tracks: list[TrackInfo] = []
    if isinstance(item.get("tracks2"), list):
        for track in item["tracks2"]:
            props = track.get("codecProps") or {}
            tracks.append(
                {
                    "codec": track.get("codec"),
                    "width": props.get("width"),
                    "height": props.get("height"),
                }
            )
    else:
        for codec in item.get("tracks") or []:  # deprecated: codec names only
            tracks.append({"codec": codec, "width": None, "height": None})
    return {
        "available": bool(_first_present(item, "available", "ready")),
        "available_time": _first_present(item, "availableTime", "readyTime"),
        "online": bool(item.get("online")),
        "readers": len(item.get("readers") or []),
        "inbound_bytes": int(_first_present(item, "inboundBytes", "bytesReceived") or 0),
        "inbound_frames_in_error": int(item.get("inboundFramesInError") or 0),
        "tracks": tracks,
    }
