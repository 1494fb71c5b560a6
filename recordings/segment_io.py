"""Reading a recorded segment whatever tier holds it: local disk or the S3 bucket.

Every reader of segment files goes through here, so a segment moved to the bucket plays,
snapshots and exports like a local one (only slower):

- ``segment_response``: the segment as an HTTP response with one byte range (the playback
  playlist's media URIs). A local file is served as before (``http.ranged_file_response``);
  an object is fetched through the app with a ranged GET (spooled, then streamed to the
  player), so the bucket is never exposed to the browser and the media URL keeps its
  token, tenant check and audit.
- ``local_copy``: paths FFmpeg can read (snapshots, clip export). Local files are used in
  place; objects are downloaded (in parallel, size-checked and, when the row has one,
  SHA-256-checked) into a private temporary directory (0700) removed on exit, failure
  included. FFmpeg never gets a bucket URL, so no credentials on a command line.

Failures are two: ``SegmentMissing`` (no file or object, or not the bytes the row says: a
404, a failed clip) and ``SegmentUnavailable`` (the tier cannot be reached now: a 503, a
clip that can be exported again later).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from recordings import http, storage
from recordings.models import Segment

logger = logging.getLogger(__name__)

COPY_PREFIX = ".gtv-segments-"
COPY_WORKERS = 4
STALE_COPY_S = 6 * 3600  # leftovers of a killed process are swept after this


class SegmentReadError(Exception):
    """A segment's media could not be read (the message is for logs, not for users)."""

    def __init__(self, segment: Segment | None, reason: str) -> None:
        self.segment = segment
        where = f"segment {segment.pk} ({segment})" if segment is not None else "segments"
        super().__init__(f"{where}: {reason}")


class SegmentMissing(SegmentReadError):
    """The segment's file or object is gone, or is not the bytes its row describes."""


class SegmentUnavailable(SegmentReadError):
    """The tier holding the segment cannot be reached now; the same read may work later."""


class CopyTooLarge(SegmentReadError):
    """The objects to download exceed ``SEGMENT_COPY_MAX_BYTES`` or the free disk space."""


def _store():  # noqa: ANN202 (a module)
    """``recordings.objectstore``, imported when a segment on the S3 tier is read (boto3 is a
    heavy import that local-only installs never need)."""
    from recordings import objectstore

    return objectstore


def is_remote(segment: Segment) -> bool:
    return segment.storage == Segment.Storage.S3


def object_key(segment: Segment) -> str:
    """The bucket key of a segment on the S3 tier (its ``location``)."""
    if segment.location:
        return segment.location
    return _store().segment_key(segment.camera_id, "", start=segment.start)


def _is_missing(exc: BaseException) -> bool:
    """Whether an object store failure says "no such object" (rather than "unreachable")."""
    return isinstance(exc, _store().ObjectNotFound)


def _tier_error(segment: Segment, exc: BaseException) -> SegmentReadError:
    if _is_missing(exc):
        return SegmentMissing(segment, f"object {object_key(segment)!r} not found")
    return SegmentUnavailable(segment, f"object store unreachable: {exc}")


def _require_store(segment: Segment) -> None:
    if not _store().enabled():
        raise SegmentUnavailable(segment, "on the S3 tier, but no object store is configured")


def _close(chunks: object) -> None:
    closer = getattr(chunks, "close", None)
    if callable(closer):
        with contextlib.suppress(Exception):
            closer()


# --- streaming (HTTP) ----------------------------------------------------------------------


def open_segment(segment: Segment, start: int = 0, end: int | None = None) -> Iterator[bytes]:
    """The bytes ``[start, end]`` (inclusive; ``end`` None: to the end) of a segment, from
    its tier. Raises ``SegmentMissing`` / ``SegmentUnavailable`` before the first byte."""
    if not is_remote(segment):
        try:
            handle = storage.segment_file(segment).open("rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise SegmentMissing(segment, "file not found") from exc
        size = os.fstat(handle.fileno()).st_size
        last = size - 1 if end is None else min(end, size - 1)

        def read() -> Iterator[bytes]:
            with handle:
                yield from http._read(handle, start, last - start + 1)

        return read()
    chunks, _size = _open_object(segment, start, end)
    return chunks


def _open_object(segment: Segment, start: int, end: int | None) -> tuple[Iterator[bytes], int]:
    _require_store(segment)
    try:
        return _store().open_object(object_key(segment), start, end)
    except _store().ObjectStoreError as exc:
        raise _tier_error(segment, exc) from exc


def segment_response(request: HttpRequest, segment: Segment, content_type: str) -> HttpResponse:
    """The segment as a 200, or a 206 of the one range asked (416 out of bounds), from its
    tier. Raises ``SegmentMissing`` / ``SegmentUnavailable`` (nothing sent yet).

    A range of an object is spooled (``_spool``) before the status line goes out: a bucket
    failing midway is then a 503, where a response already started could only be cut short
    (ASGI has no way to abort one, and a player would wait for the missing bytes)."""
    if not is_remote(segment):
        path = storage.segment_file(segment)
        if not path.is_file():
            raise SegmentMissing(segment, f"file {path} not found")
        return http.ranged_file_response(request, path, content_type)
    header = request.headers.get("Range", "")
    size = segment.size_bytes  # checked against the object when it was uploaded
    byte_range = http.parse_range(header, size)
    if byte_range is None:
        return http.unsatisfiable(size)
    if byte_range.length:
        chunks, total = _open_object(segment, byte_range.start, byte_range.end)
        if total != size:  # the row is wrong about its object: serve what the object is
            _close(chunks)
            logger.warning("segment %s: object of %s bytes, row %s", segment.pk, total, size)
            byte_range = http.parse_range(header, total)
            if byte_range is None:
                return http.unsatisfiable(total)
            chunks, total = _open_object(segment, byte_range.start, byte_range.end)
        handle = _spool(segment, chunks, byte_range.length)
    else:  # an empty object: nothing to get
        handle = tempfile.TemporaryFile()
    return http.spooled_response(request, handle, byte_range, content_type)


def _spool(segment: Segment, chunks: Iterator[bytes], length: int) -> BinaryIO:
    """``length`` bytes of ``chunks`` in an anonymous temporary file (no name on disk, gone
    when closed), positioned at its start."""
    handle = tempfile.TemporaryFile(prefix="gtv-segment-")
    try:
        written = 0
        for chunk in chunks:
            written += len(chunk)
            if written > length:
                raise SegmentUnavailable(segment, f"the object store sent more than {length} B")
            handle.write(chunk)
        if written != length:
            raise SegmentUnavailable(segment, f"transfer ended at {written} of {length} bytes")
        handle.seek(0)
    except _store().ObjectStoreError as exc:  # the connection broke mid-object
        handle.close()
        raise _tier_error(segment, exc) from exc
    except OSError as exc:  # our temporary disk
        handle.close()
        raise SegmentUnavailable(segment, f"cannot spool: {exc.strerror}") from exc
    except BaseException:
        handle.close()
        raise
    finally:
        _close(chunks)
    return handle


# --- local copies (FFmpeg) -----------------------------------------------------------------


def copy_limit() -> int:
    return int(settings.SEGMENT_COPY_MAX_BYTES)


def _sweep_stale(parent: Path) -> None:
    """Remove copy directories left by killed processes."""
    now = time.time()
    with contextlib.suppress(OSError):
        for entry in os.scandir(parent):
            if entry.name.startswith(COPY_PREFIX) and entry.is_dir(follow_symlinks=False):
                with contextlib.suppress(OSError):
                    if now - entry.stat(follow_symlinks=False).st_mtime > STALE_COPY_S:
                        shutil.rmtree(entry.path, ignore_errors=True)


def _download(segment: Segment, dest: Path) -> Path:
    """The segment's object into ``dest`` (created 0600), checked against its row."""
    chunks, total = _open_object(segment, 0, None)
    digest = hashlib.sha256()
    written = 0
    try:
        if total != segment.size_bytes:
            raise SegmentMissing(segment, f"object has {total} bytes, row {segment.size_bytes}")
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                written += len(chunk)
                if written > segment.size_bytes:
                    raise SegmentMissing(segment, "object longer than its row says")
                digest.update(chunk)
                out.write(chunk)
    except _store().ObjectStoreError as exc:  # the connection broke mid-object
        raise _tier_error(segment, exc) from exc
    finally:  # (an OSError here is our own disk's, not the tier's: it propagates as is)
        _close(chunks)
    if written != segment.size_bytes:  # the object has the size: the transfer was cut
        raise SegmentUnavailable(segment, f"transfer ended at {written} of {total} bytes")
    if segment.sha256 and digest.hexdigest() != segment.sha256:
        raise SegmentMissing(segment, "object's SHA-256 differs from its row's")
    return dest


@contextlib.contextmanager
def local_copy(
    segments: Sequence[Segment], *, directory: Path | None = None
) -> Iterator[list[Path]]:
    """Paths of ``segments``' files, in order, readable while the block runs.

    Local files are checked and used in place; objects are downloaded (at most
    ``COPY_WORKERS`` at a time, at most ``SEGMENT_COPY_MAX_BYTES`` in all) into a 0700
    directory under ``directory`` (default: the system's temporary directory), which is
    removed when the block exits, however it exits."""
    paths: list[Path | None] = []
    remote: list[tuple[int, Segment]] = []
    for index, segment in enumerate(segments):
        if is_remote(segment):
            paths.append(None)
            remote.append((index, segment))
            continue
        path = storage.segment_file(segment)
        if not path.is_file():
            raise SegmentMissing(segment, f"file {path} not found")
        paths.append(path)
    if not remote:
        yield [path for path in paths if path is not None]
        return
    needed = sum(segment.size_bytes for _index, segment in remote)
    if needed > copy_limit():
        raise CopyTooLarge(None, f"{needed} bytes to download, the limit is {copy_limit()}")
    parent = Path(directory) if directory is not None else Path(tempfile.gettempdir())
    parent.mkdir(parents=True, exist_ok=True)
    _sweep_stale(parent)
    if shutil.disk_usage(parent).free < needed:
        raise CopyTooLarge(None, f"{needed} bytes to download, not that much free in {parent}")
    for _index, segment in remote:
        _require_store(segment)
    work = Path(tempfile.mkdtemp(prefix=COPY_PREFIX, dir=parent))  # mode 0700
    try:
        pool = ThreadPoolExecutor(max_workers=min(COPY_WORKERS, len(remote)))
        futures: list[tuple[int, Future[Path]]] = [
            (index, pool.submit(_download, segment, work / f"{index:05d}-{segment.pk}.ts"))
            for index, segment in remote
        ]
        try:
            for index, future in futures:
                paths[index] = future.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)  # nothing writes into ``work`` after
        yield [path for path in paths if path is not None]
    finally:
        shutil.rmtree(work, ignore_errors=True)
