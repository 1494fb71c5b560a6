"""Responses with single HTTP byte ranges (players and download managers seek), streamed
with bounded memory, from a local file or a spooled copy of a remote range (the object store).

Django serves a synchronous iterator under ASGI by reading it whole into a list first
(``StreamingHttpResponse.__aiter__``), which for a ``FileResponse`` means the whole file in
memory per download. Under ASGI the body is therefore an asynchronous iterator reading one
chunk at a time in a thread, and the server's flow control (``gtvision.backpressure`` under
Daphne) keeps it from running ahead of a slow reader. Under WSGI it is a plain iterator.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse

CHUNK = 256 * 1024
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


@dataclass(frozen=True)
class ByteRange:
    """What to send of a body of ``size`` bytes: ``[start, end]`` (inclusive), and the status."""

    start: int
    end: int
    size: int
    status: int  # 200 (whole body) or 206

    @property
    def length(self) -> int:
        return max(self.end - self.start + 1, 0)


def parse_range(header: str, size: int) -> ByteRange | None:
    """The one range of a ``Range`` header against ``size`` bytes; None when unsatisfiable
    (416). Several ranges, or a malformed header, get the whole body (RFC 9110 allows
    ignoring it)."""
    match = _RANGE.match((header or "").strip())
    if not (match and (match.group(1) or match.group(2))):
        return ByteRange(0, size - 1, size, 200)
    first, last = match.group(1), match.group(2)
    if first:
        start, end = int(first), min(int(last), size - 1) if last else size - 1
    else:
        start, end = max(0, size - int(last)), size - 1
    if start >= size or start > end:
        return None
    return ByteRange(start, end, size, 206)


def unsatisfiable(size: int) -> HttpResponse:
    response = HttpResponse(status=416)
    response["Content-Range"] = f"bytes */{size}"
    return response


def _read(handle: BinaryIO, start: int, length: int) -> Iterator[bytes]:
    handle.seek(start)
    while length > 0:
        chunk = handle.read(min(CHUNK, length))
        if not chunk:
            return
        length -= len(chunk)
        yield chunk


async def _aread(handle: BinaryIO, start: int, length: int) -> AsyncIterator[bytes]:
    await asyncio.to_thread(handle.seek, start)
    while length > 0:
        chunk = await asyncio.to_thread(handle.read, min(CHUNK, length))
        if not chunk:
            return
        length -= len(chunk)
        yield chunk


def _under_asgi(request: HttpRequest) -> bool:
    return hasattr(getattr(request, "_request", request), "scope")


def _finish(
    response: HttpResponse, byte_range: ByteRange, filename: str | None = None
) -> HttpResponse:
    if byte_range.status == 206:
        response["Content-Range"] = f"bytes {byte_range.start}-{byte_range.end}/{byte_range.size}"
    response["Content-Length"] = str(byte_range.length)
    response["Accept-Ranges"] = "bytes"
    if filename:
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _handle_response(
    request: HttpRequest,
    handle: BinaryIO,
    offset: int,
    byte_range: ByteRange,
    content_type: str,
    filename: str | None,
) -> HttpResponse:
    """Stream ``byte_range.length`` bytes of ``handle`` from ``offset``; closes it after."""
    reader = _aread if _under_asgi(request) else _read
    response = StreamingHttpResponse(
        reader(handle, offset, byte_range.length),
        status=byte_range.status,
        content_type=content_type,
    )
    response._resource_closers.append(handle.close)  # closed with the response
    return _finish(response, byte_range, filename)


def ranged_file_response(
    request: HttpRequest, path: Path, content_type: str, *, filename: str | None = None
) -> HttpResponse:
    """200 with the whole file, or 206 with the one range asked (416 when out of bounds)."""
    try:
        handle = path.open("rb")
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
        raise Http404 from exc
    size = os.fstat(handle.fileno()).st_size
    byte_range = parse_range(request.headers.get("Range", ""), size)
    if byte_range is None:
        handle.close()
        return unsatisfiable(size)
    return _handle_response(request, handle, byte_range.start, byte_range, content_type, filename)


def spooled_response(
    request: HttpRequest,
    handle: BinaryIO,
    byte_range: ByteRange,
    content_type: str,
    *,
    filename: str | None = None,
) -> HttpResponse:
    """The response of ``byte_range`` whose bytes (exactly those) ``handle`` holds from its
    start: a body fetched from elsewhere before the status line is sent, so a source failing
    midway is an error status, never a response cut short of its ``Content-Length``."""
    return _handle_response(request, handle, 0, byte_range, content_type, filename)
