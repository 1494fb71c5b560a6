"""MediaMTX boundary: control API v3 client and pure helpers."""

from .client import (
    PATH_NAME_RE,
    MediaMTXBadRequest,
    MediaMTXClient,
    MediaMTXError,
    MediaMTXNotFound,
    MediaMTXUnauthorized,
    MediaMTXUnavailable,
    PathHealth,
    ReaderURLs,
    TrackInfo,
    camera_path_conf,
    camera_path_name,
    path_health,
    reader_urls,
    redact_credentials,
    validate_path_name,
)

__all__ = [
    "PATH_NAME_RE",
    "MediaMTXBadRequest",
    "MediaMTXClient",
    "MediaMTXError",
    "MediaMTXNotFound",
    "MediaMTXUnauthorized",
    "MediaMTXUnavailable",
    "PathHealth",
    "ReaderURLs",
    "TrackInfo",
    "camera_path_conf",
    "camera_path_name",
    "path_health",
    "reader_urls",
    "redact_credentials",
    "validate_path_name",
]
