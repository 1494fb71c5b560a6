"""Chain of custody for exported clips: a manifest signed with the platform's Ed25519 key.

The manifest document (JSON, what ``GET /api/clips/{id}/manifest`` returns)::

    {"format": "gtvision-custody-manifest/1",
     "manifest": {...},                       # readable copy of the signed fields
     "payload": "<base64>",                   # the signed bytes: canonical JSON of "manifest"
     "signature": "<base64>",                 # Ed25519 signature of the payload bytes
     "public_key_sha256": "<hex>"}            # which platform key signed it

``payload`` is the manifest as compact JSON with sorted keys (UTF-8), so anyone can check it
with OpenSSL (docs/lgpd.md) and ``verify`` (``manage.py verify_clip FILE MANIFEST``) checks
the signature, that ``manifest`` says what ``payload`` says, and the file's SHA-256 and size.
The manifest names the clip's camera and prefeitura, its period, the file's SHA-256, size and
duration, who exported it, when and why, and every recorded segment it was cut from with the
SHA-256 the indexer computed when that segment was written.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.utils import timezone

from gtvision import crypto
from recordings.indexer import file_sha256
from recordings.models import Clip, Segment

FORMAT = "gtvision-custody-manifest/1"


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def public_key_sha256(public_pem: str | None = None) -> str:
    return hashlib.sha256((public_pem or crypto.public_key_pem()).encode()).hexdigest()


def _time(value) -> str | None:
    return value.isoformat() if value is not None else None


def manifest_fields(clip: Clip, segments: list[Segment]) -> dict[str, Any]:
    camera, prefeitura, user = clip.camera, clip.camera.prefeitura, clip.created_by
    return {
        "clip_id": clip.pk,
        "platform": settings.PUBLIC_URL,
        "camera": {"id": camera.pk, "code": camera.code, "name": camera.name},
        "prefeitura": {"id": prefeitura.pk, "name": prefeitura.name, "cnpj": prefeitura.cnpj},
        "period": {"start": _time(clip.start), "end": _time(clip.end)},
        "file": {
            "name": f"clip-{clip.pk}.mp4",
            "sha256": clip.sha256,
            "size_bytes": clip.size_bytes,
            "duration_s": clip.duration_s,
        },
        "exported_by": {"id": user.pk, "username": user.username} if user else None,
        "requested_at": _time(clip.created_at),
        "finished_at": _time(clip.finished_at),
        "reason": clip.reason,
        "protocol": clip.protocol,
        "segments": [
            {
                "start": _time(segment.start),
                "end": _time(segment.end),
                "size_bytes": segment.size_bytes,
                "sha256": segment.sha256 or None,  # None: indexed before hashes were kept
            }
            for segment in segments
        ],
        "signed_at": _time(timezone.now()),
    }


def sign_manifest(fields: dict[str, Any]) -> str:
    """The signed manifest document (JSON text) of ``fields``."""
    payload = canonical(fields)
    document = {
        "format": FORMAT,
        "manifest": fields,
        "payload": base64.b64encode(payload).decode(),
        "signature": base64.b64encode(crypto.sign(payload)).decode(),
        "public_key_sha256": public_key_sha256(),
    }
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


@dataclass(frozen=True)
class Verification:
    ok: bool
    message: str
    manifest: dict[str, Any] | None = None


def verify(file: Path, document_text: bytes, public_pem: str | None = None) -> Verification:
    """Check a manifest document's signature and that ``file`` is the file it describes."""
    public_pem = public_pem or crypto.public_key_pem()
    try:
        document = json.loads(document_text)
        payload = base64.b64decode(document["payload"], validate=True)
        signature = base64.b64decode(document["signature"], validate=True)
    except (ValueError, KeyError, TypeError, binascii.Error):
        return Verification(False, "the manifest is not a readable custody manifest")
    if document.get("format") != FORMAT:
        return Verification(False, f"unknown manifest format {document.get('format')!r}")
    if not crypto.verify_signature(public_pem, signature, payload):
        return Verification(False, "BAD SIGNATURE: the manifest was altered or not signed by "
                            "this platform's key")  # fmt: skip
    signed = json.loads(payload)
    if document.get("manifest") != signed:
        return Verification(False, "the readable manifest differs from the signed payload")
    try:
        size, digest = file.stat().st_size, file_sha256(file)
    except OSError as exc:
        return Verification(False, f"cannot read {file}: {exc.strerror}")
    expected = signed.get("file") or {}
    if digest != expected.get("sha256") or size != expected.get("size_bytes"):
        return Verification(False, f"FILE MISMATCH: {file} has SHA-256 {digest} ({size} bytes), "
                            f"the manifest signs {expected.get('sha256')} "
                            f"({expected.get('size_bytes')} bytes)", signed)  # fmt: skip
    return Verification(True, f"OK: signature valid, {file} matches SHA-256 {digest}", signed)
