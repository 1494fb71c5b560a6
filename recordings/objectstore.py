"""The S3-compatible object store of the footage's cold tier (SeaweedFS in production and tests).

One bucket (``S3_BUCKET`` at ``S3_ENDPOINT_URL``), path-style addressing, signed with
``S3_ACCESS_KEY_ID``/``S3_SECRET_ACCESS_KEY``. A segment's object key is its relative path on
disk under ``S3_PREFIX`` (``segment_key``); a row on the S3 tier stores that key as its
``location``. Every call is bounded (``S3_CONNECT_TIMEOUT_S``, ``S3_READ_TIMEOUT_S``,
``S3_MAX_ATTEMPTS``): an unreachable bucket fails fast with ``ObjectStoreUnavailable`` and never
hangs a worker or a request. botocore's errors are wrapped in ``ObjectStoreError`` (messages name
the operation, the key and the S3 error code; never a credential).

Byte ranges follow HTTP: ``open_object(key, start, end)`` streams bytes ``start..end``
*inclusive* (``end=None``: to the end of the object).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import threading
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings

logger = logging.getLogger(__name__)

CHUNK = 256 * 1024
DELETE_BATCH = 1000  # DeleteObjects takes at most 1000 keys
SHA256_META = "sha256"  # x-amz-meta-sha256: the hex SHA-256 the row has


class ObjectStoreError(Exception):
    """An object store call failed (no credentials in the message)."""


class ObjectStoreUnavailable(ObjectStoreError):
    """The endpoint could not be reached, timed out, answered 5xx or refused our credentials
    (403): no call can succeed now; retry later."""


class ObjectNotFound(ObjectStoreError):
    """No object (or no bucket) under that key."""


class ObjectMismatch(ObjectStoreError):
    """What was stored (or the file to store) does not have the expected size or SHA-256."""


def enabled() -> bool:
    """The object store tier is configured (``S3_ENDPOINT_URL`` and ``S3_BUCKET``)."""
    return bool(settings.S3_ENDPOINT_URL and settings.S3_BUCKET)


def bucket() -> str:
    return settings.S3_BUCKET


_clients: dict[tuple, Any] = {}
_clients_lock = threading.Lock()


def _config_key() -> tuple:
    return (
        settings.S3_ENDPOINT_URL,
        settings.S3_ACCESS_KEY_ID,
        settings.S3_SECRET_ACCESS_KEY,
        settings.S3_REGION or "us-east-1",
        float(settings.S3_CONNECT_TIMEOUT_S),
        float(settings.S3_READ_TIMEOUT_S),
        int(settings.S3_MAX_ATTEMPTS),
    )


def client():
    """The boto3 S3 client for the current settings (cached per configuration; boto3 clients
    are thread-safe). Raises ``ObjectStoreError`` when the tier is not configured."""
    if not enabled():
        raise ObjectStoreError("object storage is not configured (S3_ENDPOINT_URL, S3_BUCKET)")
    key = _config_key()
    cached = _clients.get(key)
    if cached is not None:
        return cached
    with _clients_lock:
        cached = _clients.get(key)
        if cached is None:
            cached = _clients[key] = _build_client(*key)
        return cached


def _build_client(endpoint, access_key, secret_key, region, connect_s, read_s, attempts):
    import boto3
    from botocore.config import Config

    config = Config(
        region_name=region,
        signature_version="s3v4",
        s3={"addressing_style": "path"},
        connect_timeout=connect_s,
        read_timeout=read_s,
        retries={"max_attempts": max(attempts, 1), "mode": "standard"},
        max_pool_connections=16,
        # our own SHA-256 checksums (put_file) instead of the SDK's default CRC trailers
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    session = boto3.session.Session()
    return session.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=access_key or None,
        aws_secret_access_key=secret_key or None,
        config=config,
    )


def _wrap(exc: Exception, operation: str, key: str = "") -> ObjectStoreError:
    """An ``ObjectStoreError`` for a botocore error, without credentials in its message."""
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        ConnectionError,
        EndpointConnectionError,
        ReadTimeoutError,
    )

    where = f"{operation} {key}".strip()
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        text = f"{where}: {code or 'error'} (HTTP {status})"
        if code in {"404", "NoSuchKey", "NoSuchBucket", "NotFound"} or status == 404:
            return ObjectNotFound(text)
        if status >= 500 or code in {"SlowDown", "ServiceUnavailable", "RequestTimeout"}:
            return ObjectStoreUnavailable(text)
        if code in {"BadDigest", "XAmzContentSHA256Mismatch", "InvalidDigest"}:
            return ObjectMismatch(text)
        if status == 403:  # credentials refused: no call can succeed until that is fixed
            return ObjectStoreUnavailable(text)
        return ObjectStoreError(text)
    if isinstance(exc, EndpointConnectionError | ConnectionError | ReadTimeoutError):
        return ObjectStoreUnavailable(f"{where}: {type(exc).__name__}")
    if isinstance(exc, BotoCoreError):
        return ObjectStoreError(f"{where}: {type(exc).__name__}")
    return ObjectStoreError(f"{where}: {type(exc).__name__}")


def _botocore_errors() -> tuple[type[Exception], ...]:
    from boto3.exceptions import Boto3Error
    from botocore.exceptions import BotoCoreError, ClientError

    return (BotoCoreError, ClientError, Boto3Error)


def ensure_bucket() -> None:
    """Create ``S3_BUCKET`` when it does not exist."""
    s3 = client()
    try:
        s3.head_bucket(Bucket=bucket())
        return
    except _botocore_errors() as exc:
        error = _wrap(exc, "head_bucket", bucket())
        if not isinstance(error, ObjectNotFound):
            raise error from None
    try:
        s3.create_bucket(Bucket=bucket())
    except _botocore_errors() as exc:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
        if code not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
            raise _wrap(exc, "create_bucket", bucket()) from None
    logger.info("object store: bucket %s created", bucket())


def prefix() -> str:
    """``S3_PREFIX`` normalized: empty, or ending with one ``/``."""
    value = (settings.S3_PREFIX or "").strip("/")
    return f"{value}/" if value else ""


def segment_key(camera_id: int, location: str, *, start: datetime | None = None) -> str:
    """The object key of a segment: its path relative to ``RECORDINGS_DIR`` (the row's
    ``location``, or the canonical ``cam<id>/YYYY/MM/DD/<start>.ts`` when that is empty and
    ``start`` is given) under ``S3_PREFIX``."""
    if not location:
        if start is None:
            raise ValueError("segment_key: an empty location needs the segment's start")
        from recordings.storage import canonical_location

        location = canonical_location(camera_id, start)
    return prefix() + location.lstrip("/")


def camera_prefix(camera_id: int) -> str:
    """The key prefix of every object of a camera (``iter_keys`` lists it)."""
    return f"{prefix()}cam{camera_id}/"


def file_digest(path: Path) -> tuple[int, str]:
    """(size, hex SHA-256) of a file, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def put_file(path: Path, key: str, *, size: int, sha256: str) -> None:
    """Upload a file as ``key`` and verify it; raise ``ObjectStoreError`` unless the stored
    object is exactly ``size`` bytes with SHA-256 ``sha256`` (hex).

    Below ``S3_MULTIPART_THRESHOLD_BYTES`` one PutObject carries ``sha256`` as its
    ``x-amz-checksum-sha256``: the server refuses a body whose digest differs (so the object is
    checked against the row's checksum, not against what was read). Above it, a multipart upload
    (boto3 ``TransferConfig``) with a SHA-256 checksum per part, after the file itself was
    hashed and compared. Then HEAD: the size and the ``sha256`` metadata must match.
    ``ObjectMismatch`` when they do not (an object that failed the HEAD check stays: the
    caller deletes or overwrites it).
    """
    sha256 = sha256.lower()
    s3 = client()
    threshold = max(int(settings.S3_MULTIPART_THRESHOLD_BYTES), 5 * 1024**2)
    metadata = {SHA256_META: sha256}
    try:
        if size < threshold:
            body = path.read_bytes()
            if len(body) != size:
                raise ObjectMismatch(f"put {key}: the file has {len(body)} bytes, not {size}")
            s3.put_object(
                Bucket=bucket(),
                Key=key,
                Body=body,
                ContentType="video/mp2t",
                ChecksumSHA256=base64.b64encode(bytes.fromhex(sha256)).decode(),
                Metadata=metadata,
            )
        else:
            from boto3.s3.transfer import TransferConfig

            actual_size, actual_sha = file_digest(path)
            if (actual_size, actual_sha) != (size, sha256):
                raise ObjectMismatch(f"put {key}: the file does not match its size/SHA-256")
            transfer = TransferConfig(
                multipart_threshold=threshold, multipart_chunksize=threshold, max_concurrency=4
            )
            s3.upload_file(
                str(path),
                bucket(),
                key,
                ExtraArgs={
                    "ContentType": "video/mp2t",
                    "Metadata": metadata,
                    "ChecksumAlgorithm": "SHA256",
                },
                Config=transfer,
            )
    except OSError as exc:
        raise ObjectStoreError(f"put {key}: cannot read {path.name}: {exc.strerror}") from None
    except _botocore_errors() as exc:
        raise _wrap(exc, "put", key) from None
    verify(key, size=size, sha256=sha256)


def verify(key: str, *, size: int, sha256: str) -> None:
    """HEAD the object: ``ObjectStoreError`` unless it has ``size`` bytes and the SHA-256
    (metadata, and the server's whole-object checksum when it keeps one) ``sha256``."""
    try:
        head = client().head_object(Bucket=bucket(), Key=key, ChecksumMode="ENABLED")
    except _botocore_errors() as exc:
        raise _wrap(exc, "head", key) from None
    if head.get("ContentLength") != size:
        raise ObjectMismatch(f"verify {key}: {head.get('ContentLength')} bytes, not {size}")
    stored = (head.get("Metadata") or {}).get(SHA256_META, "").lower()
    if stored != sha256.lower():
        raise ObjectMismatch(f"verify {key}: SHA-256 metadata does not match")
    checksum = head.get("ChecksumSHA256") or ""
    whole = checksum and "-" not in checksum  # "<b64>-N" is a multipart composite
    if whole and base64.b64decode(checksum).hex() != sha256.lower():
        raise ObjectMismatch(f"verify {key}: SHA-256 checksum does not match")


def head(key: str) -> int | None:
    """The object's size, None when there is no such object."""
    try:
        response = client().head_object(Bucket=bucket(), Key=key)
    except _botocore_errors() as exc:
        error = _wrap(exc, "head", key)
        if isinstance(error, ObjectNotFound):
            return None
        raise error from None
    return int(response["ContentLength"])


def open_object(key: str, start: int = 0, end: int | None = None) -> tuple[Iterator[bytes], int]:
    """Stream bytes ``start..end`` (inclusive, like an HTTP range; ``end=None``: to the end)
    of an object: ``(chunks, total size of the object)``. ``ObjectNotFound`` when missing,
    ``ObjectStoreError`` for a range past the end. The iterator closes the connection when
    exhausted or closed (``chunks.close()``)."""
    arguments: dict[str, Any] = {"Bucket": bucket(), "Key": key}
    if start or end is not None:
        arguments["Range"] = f"bytes={start}-{'' if end is None else end}"
    try:
        response = client().get_object(**arguments)
    except _botocore_errors() as exc:
        raise _wrap(exc, "get", key) from None
    content_range = response.get("ContentRange") or ""
    if "/" in content_range and content_range.rsplit("/", 1)[1].isdigit():
        total = int(content_range.rsplit("/", 1)[1])
    else:
        total = int(response["ContentLength"]) + (start if "Range" in arguments else 0)
    return _chunks(response["Body"], key), total


def _chunks(body, key: str) -> Iterator[bytes]:
    try:
        for chunk in body.iter_chunks(CHUNK):
            if chunk:
                yield chunk
    except _botocore_errors() as exc:
        raise _wrap(exc, "get", key) from None
    finally:
        body.close()


def download(key: str, dest: Path) -> None:
    """Copy an object to a local file (written to ``dest.part``, then renamed)."""
    partial = dest.with_name(dest.name + ".part")
    try:
        client().download_file(bucket(), key, str(partial))
    except _botocore_errors() as exc:
        partial.unlink(missing_ok=True)
        raise _wrap(exc, "download", key) from None
    except OSError:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(dest)


def delete_keys(keys: Iterable[str]) -> None:
    """Delete objects (DeleteObjects, ``DELETE_BATCH`` keys a call; a missing key is no error).
    ``ObjectStoreError`` if any key could not be deleted."""
    s3 = client()
    batch: list[str] = []

    def flush() -> None:
        try:
            response = s3.delete_objects(
                Bucket=bucket(),
                Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True},
            )
        except _botocore_errors() as exc:
            raise _wrap(exc, "delete", f"({len(batch)} keys)") from None
        errors = [e for e in response.get("Errors") or [] if e.get("Code") != "NoSuchKey"]
        if errors:
            first = errors[0]
            raise ObjectStoreError(
                f"delete: {len(errors)} keys failed, e.g. {first.get('Key')}: {first.get('Code')}"
            )

    for key in keys:
        batch.append(key)
        if len(batch) >= DELETE_BATCH:
            flush()
            batch = []
    if batch:
        flush()


def iter_keys(prefix: str) -> Iterator[tuple[str, int]]:
    """Every ``(key, size)`` under ``prefix``, in key order (paged ListObjectsV2)."""
    paginator = client().get_paginator("list_objects_v2")
    try:
        for page in paginator.paginate(Bucket=bucket(), Prefix=prefix):
            for item in page.get("Contents") or []:
                yield item["Key"], int(item["Size"])
    except _botocore_errors() as exc:
        raise _wrap(exc, "list", prefix) from None


def iter_objects(prefix: str) -> Iterator[tuple[str, int, datetime]]:
    """Every ``(key, size, last modified)`` under ``prefix`` (check_footage's grace age)."""
    paginator = client().get_paginator("list_objects_v2")
    try:
        for page in paginator.paginate(Bucket=bucket(), Prefix=prefix):
            for item in page.get("Contents") or []:
                yield item["Key"], int(item["Size"]), item["LastModified"]
    except _botocore_errors() as exc:
        raise _wrap(exc, "list", prefix) from None


def iter_prefixes(prefix: str) -> Iterator[str]:
    """The "directories" right under ``prefix`` (ListObjectsV2 with delimiter ``/``)."""
    paginator = client().get_paginator("list_objects_v2")
    try:
        for page in paginator.paginate(Bucket=bucket(), Prefix=prefix, Delimiter="/"):
            for item in page.get("CommonPrefixes") or []:
                yield item["Prefix"]
    except _botocore_errors() as exc:
        raise _wrap(exc, "list", prefix) from None
