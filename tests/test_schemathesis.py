"""Schemathesis over /api/schema/ against the real server (Daphne), as admin, gestor and
operador (JWT): no 5xx, and every response conforms to the schema (status code, content
type, headers, body). Bounded: a few examples per operation, so a role runs in about a
minute on two cores.

Id parameters are drawn half of the time from the real objects of the caller's prefeitura
(a schemathesis dictionary), so the 200 paths are exercised as well as the error paths.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from django.utils import timezone
from rest_framework_simplejwt.tokens import RefreshToken

from admin_ctx import audit
from admin_ctx.models import AuditEntry
from recordings import storage
from recordings.models import Clip, Recording, Segment
from streaming.ffmpeg import ffmpeg_exe
from streaming.models import RecorderStatus, Stream
from tests.live_web import running_web

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "channels_postgres"])

ST = Path(sys.executable).with_name("st")
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
    ]
)
MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "8"))
MUST_REACH = [
    "GET /api/cameras/{id}/", "GET /api/cameras/{id}/snapshot.jpg", "GET /api/streams/{id}/",
    "GET /api/clips/{id}/", "GET /api/clips/{id}/download/", "GET /api/recordings/{id}/",
    "GET /api/recorders/{camera_id}/",
]  # fmt: skip
BASE_CONFIG = """
headers = { Authorization = "Bearer ${GTV_SCHEMATHESIS_TOKEN}" }
"""


def config_for(ids: dict[str, int]) -> str:
    """The config with, per resource, its real id (of the caller's prefeitura) drawn for the
    id parameters most of the time (the rest is generated): the 200 paths are exercised,
    not only the 404s."""
    lines = [BASE_CONFIG]
    for kind, pk in ids.items():
        lines.append(f"[dictionaries.{kind}]\nvalues = [{pk}]\n")
    lines.append(
        '[parameters]\n"query.camera_id" = { dictionary = "cameras", probability = 0.7 }\n'
        '"body.camera_id" = { dictionary = "cameras", probability = 0.7 }\n'
    )
    for kind in ids:
        name = "camera_id" if kind == "recorders" else "id"
        lines.append(
            # not DELETE: a deleted object would leave the rest of the run at 404
            f"[[operations]]\ninclude-path-regex = '^/api/{kind}/'\nexclude-method = 'DELETE'\n"
            f'parameters = {{ "path.{name}" = {{ dictionary = "{kind}", probability = 0.7 }} }}\n'
        )
    return "\n".join(lines)


@pytest.fixture(scope="module")
def media_root(tmp_path_factory):
    return tmp_path_factory.mktemp("schemathesis-media")


@pytest.fixture(scope="module")
def web(django_db_setup, django_db_blocker, media_root):
    with (
        django_db_blocker.unblock(),
        running_web(
            GTV_LIVE_DIR=str(media_root / "live"),
            GTV_RECORDINGS_DIR=str(media_root / "recordings"),
            GTV_CLIPS_DIR=str(media_root / "clips"),
            MEDIA_ENGINE="embedded",
        ) as running,
    ):
        yield running


def objects_of(tenants, settings, media_root) -> dict[str, int]:
    """One object of each kind in prefeitura A (what the pinned run asks for)."""
    settings.RECORDINGS_DIR = media_root / "recordings"
    settings.CLIPS_DIR = media_root / "clips"
    camera = tenants["a"]["camera"]
    audit.record("camera.update", actor=tenants["a"]["gestor"], target=camera)
    start = timezone.now().replace(microsecond=0) - timedelta(minutes=5)
    segment = Segment.objects.create(
        camera=camera, start=start, end=start + timedelta(seconds=4), size_bytes=188
    )
    path = storage.segment_file(segment)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a real MPEG-TS, so that snapshots decode a frame
    subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=5",
         "-t", "4", "-c:v", "mpeg2video", "-f", "mpegts", "-y", str(path)],
        check=True, timeout=60,
    )  # fmt: skip
    clip = Clip.objects.create(
        camera=camera,
        start=start,
        end=start + timedelta(seconds=4),
        status=Clip.Status.DONE,
        expires_at=timezone.now() + timedelta(days=1),
    )
    storage.clip_path(clip.pk).parent.mkdir(parents=True, exist_ok=True)
    storage.clip_path(clip.pk).write_bytes(b"\x00\x00\x00\x18ftypmp42")
    return {
        "cameras": camera.pk,
        "prefeituras": tenants["a"]["prefeitura"].pk,
        "users": tenants["a"]["operador"].pk,
        "streams": Stream.objects.create(camera=camera, status=Stream.Status.RUNNING).pk,
        "recordings": Recording.objects.create(camera=camera).pk,
        "clips": clip.pk,
        "audit": AuditEntry.objects.filter(prefeitura=tenants["a"]["prefeitura"]).first().pk,
        "recorders": RecorderStatus.objects.create(
            camera=camera, status=RecorderStatus.Status.ERROR, last_error="connection refused"
        ).pk,
    }


def schemathesis(
    url: str, user, ids: dict[str, int], tmp_path: Path, *extra: str
) -> subprocess.CompletedProcess:
    config = tmp_path / "schemathesis.toml"
    config.write_text(config_for(ids))
    env = {**os.environ, "GTV_SCHEMATHESIS_TOKEN": str(RefreshToken.for_user(user).access_token)}
    argv = [
        str(ST), "--config-file", str(config), "run", f"{url}/api/schema/",
        "--checks", CHECKS, "--workers", "1", "--request-timeout", "20",
        "--max-examples", str(MAX_EXAMPLES), "--phases", "examples,coverage,fuzzing",
        "--seed", "20261201", "--no-color", "--suppress-health-check", "all",
        "--report-dir", str(tmp_path / "report"),
        "--exclude-path-regex", "^/api/auth/token/$",  # logins: the throttle has its own tests
        *extra,
    ]  # fmt: skip
    return subprocess.run(
        argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=900, check=False
    )


@pytest.mark.timeout(1200)
@pytest.mark.parametrize("role", ["admin", "gestor", "operador"])
def test_api_conforms_to_its_schema(web, tenants, settings, media_root, tmp_path, role):
    url, process = web
    user = tenants["admin"] if role == "admin" else tenants["a"][role]
    ids = objects_of(tenants, settings, media_root)
    # everything but DELETE first: a generated id may name the real objects, and a
    # deletion would leave the rest of the run at 404; then the deletions
    result = schemathesis(url, user, ids, tmp_path, "--exclude-method", "DELETE")
    (tmp_path / "stdout.txt").write_text(result.stdout)
    assert result.returncode == 0, result.stdout[-12000:] + process.output()[-3000:]
    assert "Server error" not in result.stdout
    # the real objects were reached (else schemathesis lists the operation as kept at 404)
    missing = result.stdout.partition("Missing test data")[2].partition("=====")[0]
    missing = missing.partition("Schema validation mismatch")[0]
    assert not [op for op in MUST_REACH if f"- {op}\n" in missing], missing
    deletes = schemathesis(url, user, ids, tmp_path, "--include-method", "DELETE")
    assert deletes.returncode == 0, deletes.stdout[-12000:] + process.output()[-3000:]
    assert "Server error" not in deletes.stdout


def test_error_responses_are_declared_with_their_body(web, tenants):
    """Every operation declares its 400/401/403/404/429 (409 and 413 where they apply) with
    a JSON body from ``components`` (one place: ``gtvision.drf.add_error_responses``)."""
    url, _process = web
    token = RefreshToken.for_user(tenants["admin"]).access_token
    schema = requests.get(
        f"{url}/api/schema/",
        headers={"Authorization": f"Bearer {token}", "Accept": "application/vnd.oai.openapi+json"},
        timeout=30,
    ).json()
    assert set(schema["components"]["schemas"]["Error"]["required"]) == {"detail"}
    operations = 0
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            codes = set(operation["responses"])
            assert {"400", "401", "404", "429"} <= codes, (method, path, codes)
            if not path.startswith("/api/auth/token"):
                assert "403" in codes, (method, path)
            if method in ("post", "put", "patch", "delete"):
                assert "409" in codes, (method, path)
            if "requestBody" in operation:
                assert "413" in codes, (method, path)
                assert set(operation["requestBody"]["content"]) == {"application/json"}, path
            for code in ("400", "401", "404"):
                body = operation["responses"][code]["content"]["application/json"]["schema"]
                assert body["$ref"].startswith("#/components/schemas/"), (path, code)
            operations += 1
    assert operations >= 40
