"""Chain of custody: segment hashes at indexing, a signed manifest for every exported clip,
``verify_clip`` and the documented OpenSSL command (docs/lgpd.md)."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from admin_ctx.models import Role
from recordings import storage
from recordings.models import Segment
from tests.conftest import client_for
from tests.factories import CameraFactory, UserFactory
from tests.test_recordings_clips import run_worker
from tests.test_recordings_support import backdate, synthetic_segment

pytestmark = [pytest.mark.camera, pytest.mark.timeout(180)]
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_segments_are_hashed_when_indexed(db, tmp_path):
    camera = CameraFactory()
    sample = synthetic_segment(tmp_path / "sample.ts")
    segments = backdate(camera.pk, [T0, T0 + timedelta(seconds=2)], sample)
    expected = hashlib.sha256(sample.read_bytes()).hexdigest()
    assert [s.sha256 for s in segments] == [expected, expected]
    assert hashlib.sha256(storage.segment_file(segments[0]).read_bytes()).hexdigest() == expected


def test_public_key_is_published_without_authentication(db):
    response = Client().get("/api/custody/public-key.pem")
    assert response.status_code == 200
    assert response.content.startswith(b"-----BEGIN PUBLIC KEY-----")


def verify_clip(clip: Path, manifest: Path, *extra: str) -> tuple[bool, str]:
    out = StringIO()
    try:
        call_command("verify_clip", str(clip), str(manifest), *extra, stdout=out)
    except CommandError as exc:
        return False, str(exc)
    return True, out.getvalue()


def flip(path: Path, offset: int, target: Path) -> Path:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    target.write_bytes(bytes(data))
    return target


def openssl_verify(directory: Path, manifest: Path, public_key: Path) -> bool:
    """docs/lgpd.md's commands: extract payload and signature with jq, verify with OpenSSL."""
    script = (
        'set -e; jq -r .payload "$1" | base64 -d > payload.json; '
        'jq -r .signature "$1" | base64 -d > signature.bin; '
        'openssl pkeyutl -verify -pubin -inkey "$2" -rawin -in payload.json '
        "-sigfile signature.bin"
    )
    result = subprocess.run(
        ["bash", "-c", script, "verify", str(manifest), str(public_key)],
        cwd=directory, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    return result.returncode == 0 and "Signature Verified Successfully" in result.stdout


@pytest.mark.django_db(transaction=True)
def test_clip_manifest_is_signed_and_verifies(settings, tmp_path):
    camera = CameraFactory()
    camera.prefeitura.reason_required_for = "operadores"
    camera.prefeitura.save()
    operador = UserFactory(prefeitura=camera.prefeitura, role=Role.OPERADOR)
    sample = synthetic_segment(tmp_path / "sample.ts")
    segments = backdate(camera.pk, [T0 + timedelta(seconds=2 * k) for k in range(3)], sample)
    client = client_for(operador)
    response = client.post(
        "/api/clips/",
        {"camera_id": camera.pk, "start": T0 + timedelta(seconds=1),
         "end": T0 + timedelta(seconds=5), "reason": "Requisição judicial", "protocol": "123"},
        format="json",
    )  # fmt: skip
    assert response.status_code == 202, response.content
    clip_id = response.json()["id"]
    assert client.get(f"/api/clips/{clip_id}/manifest").status_code == 409  # not built yet
    worker = run_worker(settings)
    assert worker.returncode == 0, worker.stderr
    body = client.get(f"/api/clips/{clip_id}").json()
    assert body["status"] == "DONE", body

    response = client.get(f"/api/clips/{clip_id}/manifest")
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    manifest_file = tmp_path / "manifest.json"
    manifest_file.write_bytes(response.content)
    clip_file = tmp_path / "clip.mp4"
    clip_file.write_bytes(b"".join(client.get(f"/api/clips/{clip_id}/download").streaming_content))
    public_key = tmp_path / "public.pem"
    public_key.write_bytes(Client().get("/api/custody/public-key.pem").content)

    document = json.loads(response.content)
    signed = json.loads(base64.b64decode(document["payload"]))
    assert signed == document["manifest"]
    assert signed["file"]["sha256"] == body["sha256"] == hashlib.sha256(
        clip_file.read_bytes()).hexdigest()  # fmt: skip
    assert signed["file"]["size_bytes"] == clip_file.stat().st_size
    assert signed["camera"]["id"] == camera.pk
    assert signed["prefeitura"]["cnpj"] == camera.prefeitura.cnpj
    assert signed["exported_by"]["username"] == operador.username
    assert (signed["reason"], signed["protocol"]) == ("Requisição judicial", "123")
    used = Segment.objects.filter(pk__in=[s.pk for s in segments]).order_by("start")
    assert [s["sha256"] for s in signed["segments"]] == [s.sha256 for s in used]
    assert all(signed["segments"][k]["sha256"] for k in range(3))

    ok, output = verify_clip(clip_file, manifest_file)
    assert ok, output
    ok, output = verify_clip(clip_file, manifest_file, "--public-key", str(public_key))
    assert ok, output

    # one byte of the clip changed
    ok, output = verify_clip(flip(clip_file, 5000, tmp_path / "bad.mp4"), manifest_file)
    assert not ok and "FILE MISMATCH" in output
    # one byte of the manifest changed: in the signed payload, in the readable copy, in the
    # signature
    text = manifest_file.read_bytes()
    for field, marker in (("payload", b'"payload": "'), ("signature", b'"signature": "')):
        tampered = flip(manifest_file, text.index(marker) + len(marker) + 10,
                        tmp_path / f"bad-{field}.json")  # fmt: skip
        ok, output = verify_clip(clip_file, tampered)
        assert not ok, field
    readable = text.index(b'"reason": "') + len(b'"reason": "')
    ok, output = verify_clip(clip_file, flip(manifest_file, readable, tmp_path / "bad-copy.json"))
    assert not ok and "differs from the signed payload" in output

    # the documented OpenSSL command (OpenSSL is on Debian; the suite needs it)
    assert shutil.which("openssl") and shutil.which("jq"), "install openssl and jq"
    assert openssl_verify(tmp_path, manifest_file, public_key)
    marker = b'"payload": "'
    tampered = flip(manifest_file, text.index(marker) + len(marker) + 10, tmp_path / "t.json")
    assert not openssl_verify(tmp_path, tampered, public_key)
