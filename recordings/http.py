"""File responses with single HTTP byte ranges (players and download managers seek), streamed
with bounded memory.

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
from pathlib import Path
from typing import BinaryIO

from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse

CHUNK = 256 * 1024
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


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


def ranged_file_response(
    request: HttpRequest, path: Path, content_type: str, *, filename: str | None = None
) -> HttpResponse:
    """200 with the whole file, or 206 with the one range asked (416 when out of bounds).

    Several ranges, or a malformed header, get the whole file (RFC 9110 allows ignoring it).
    """
    try:
        handle = path.open("rb")
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
        raise Http404 from exc
    size = os.fstat(handle.fileno()).st_size
    start, end, status = 0, size - 1, 200
    match = _RANGE.match(request.headers.get("Range", "").strip())
    if match and (match.group(1) or match.group(2)):
        first, last = match.group(1), match.group(2)
        if first:
            start, end = int(first), min(int(last), size - 1) if last else size - 1
        else:
            start = max(0, size - int(last))
        if start >= size or start > end:
            handle.close()
            response = HttpResponse(status=416)
            response["Content-Range"] = f"bytes */{size}"
            return response
        status = 206
    length = max(end - start + 1, 0)
    reader = _aread if _under_asgi(request) else _read
    response = StreamingHttpResponse(
        reader(handle, start, length), status=status, content_type=content_type
    )
    response._resource_closers.append(handle.close)  # closed with the response
    if status == 206:
        response["Content-Range"] = f"bytes {start}-{end}/{size}"
    response["Content-Length"] = str(length)
    response["Accept-Ranges"] = "bytes"
    if filename:
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
