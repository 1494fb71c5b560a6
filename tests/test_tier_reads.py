"""Footage on both tiers reads the same: playback, ranges, snapshots and clips of segments moved
to a real SeaweedFS bucket (``weed mini``), through a real Daphne with ``requests``.

Real segments (the RTSP test camera recorded by FFmpeg, indexed) are uploaded to the bucket and
their rows switched to it (what the tiering job does, tested on its own), their local files
deleted; every other segment stays on disk, so a playlist and a clip span both tiers. The bucket
going away is a real stop of the ``weed mini`` process.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import socket
import stat
import threading
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from django.utils import timezone
from procrastinate.contrib.django import app
from rest_framework.test import APIClient

from admin_ctx.models import AuditEntry, Role
from recordings import custody, objectstore, segment_io, services, storage
from recordings.models import Clip, Segment
from recordings.tokens import make_playback_token
from tests.factories import CameraFactory, UserFactory
from tests.live_web import bearer, running_web
from tests.test_recordings_support import (
    decoded_duration,
    footage,
    index_footage,
    seconds,
    wait_for,
)

pytestmark = [pytest.mark.camera, pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]

REFUSED = (401, 403, 404)
GOP_S = 2.0
FRAME_S = 1 / 15


@pytest.fixture(autouse=True)
def _media_dirs(settings, tmp_path):
    settings.RECORDINGS_DIR = tmp_path / "recordings"
    settings.CLIPS_DIR = tmp_path / "clips"


@pytest.fixture(autouse=True)
def _fast_password_hasher():
    """Daphne checks users with the real hashers: keep the default one."""


def move_to_bucket(segment: Segment) -> bytes:
    """Upload a segment's file, switch its row to the S3 tier, delete the file; its bytes."""
    path = storage.segment_file(segment)
    data = path.read_bytes()
    key = objectstore.segment_key(segment.camera_id, segment.location, start=segment.start)
    objectstore.put_file(path, key, size=segment.size_bytes, sha256=segment.sha256)
    Segment.objects.filter(pk=segment.pk).update(storage=Segment.Storage.S3, location=key)
    path.unlink()
    segment.storage, segment.location = Segment.Storage.S3, key
    return data


class Tiered:
    """A camera whose even-numbered segments are in the bucket, odd ones on disk."""

    def __init__(self, tmp_path_factory, *, move: bool = True) -> None:
        self.camera = CameraFactory()
        self.user = UserFactory(prefeitura=self.camera.prefeitura, role=Role.GESTOR)
        self.segments = index_footage(footage(tmp_path_factory), self.camera.pk)
        assert all(s.sha256 for s in self.segments)
        self.original = {s.pk: storage.segment_file(s).read_bytes() for s in self.segments}
        # a clip across a tier boundary: it starts in a segment of the bucket (its keyframes
        # are read from the downloaded copy) and ends in the next one, on disk
        self.pair = next(
            (a, b)
            for i, (a, b) in enumerate(itertools.pairwise(self.segments))
            if i % 2 == 0 and a.end == b.start and a.duration_s > 1.5 and b.duration_s > 1.5
        )
        if move:
            self.move()

    def move(self) -> None:
        for index, segment in enumerate(self.segments):
            if index % 2 == 0:
                assert move_to_bucket(segment) == self.original[segment.pk]
        assert self.remote and self.local

    @property
    def remote(self) -> list[Segment]:
        return [s for s in self.segments if s.storage == Segment.Storage.S3]

    @property
    def local(self) -> list[Segment]:
        return [s for s in self.segments if s.storage == Segment.Storage.LOCAL]

    def clip_range(self):
        first, second = self.pair
        return first.end - seconds(1.0), second.start + seconds(1.5)


def web_env(s3, tmp: Path) -> dict[str, str]:
    """Daphne's environment: the test's bucket, and a temporary directory of its own."""
    return {
        "S3_ENDPOINT_URL": s3.endpoint,
        "S3_BUCKET": s3.bucket,
        "S3_ACCESS_KEY_ID": s3.access_key,
        "S3_SECRET_ACCESS_KEY": s3.secret_key,
        "S3_REGION": s3.region,
        "S3_CONNECT_TIMEOUT_S": "2",
        "S3_READ_TIMEOUT_S": "10",
        "S3_MAX_ATTEMPTS": "1",
        "TMPDIR": str(tmp),
    }


def playlist(url: str, user, camera_id: int, segments: list[Segment]) -> requests.Response:
    return requests.get(
        f"{url}/api/cameras/{camera_id}/playback.m3u8",
        params={
            "start": segments[0].start.isoformat(),
            "end": segments[-1].end.isoformat(),
            "reason": "Ocorrência 123",
        },
        headers=bearer(user),
        timeout=30,
    )


def media_uris(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def get(url: str, uri: str, **headers: str) -> requests.Response:
    return requests.get(f"{url}{uri}", headers=headers, timeout=30)  # the URI alone, no cookie


def served_again(url: str, uri: str, **headers: str) -> requests.Response:
    """The media URL's answer once the restarted bucket serves (a restarted ``weed mini``
    answers 503 for a few seconds, until its volume servers have registered)."""
    return wait_for(
        lambda: (r := get(url, uri, **headers)).status_code != 503 and r, timeout=60, step=0.5
    )


def snapshot(url: str, user, camera_id: int, at) -> requests.Response:
    return requests.get(
        f"{url}/api/cameras/{camera_id}/snapshot.jpg",
        params={"at": at.isoformat()},
        headers=bearer(user),
        timeout=60,
    )


def run_clip_worker() -> None:
    """What ``manage.py procrastinate worker`` does, in this process (the test's settings)."""
    with app.replace_connector(app.connector.get_worker_connector()):
        app.run_worker(
            queues=["clips"], wait=False, install_signal_handlers=False, listen_notify=False
        )


def export(tiered: Tiered) -> Clip:
    start, end = tiered.clip_range()
    clip = services.create_clip(tiered.camera, start, end, actor=tiered.user, reason="Perícia")
    run_clip_worker()
    clip.refresh_from_db()
    return clip


def no_copies_left(*directories: Path) -> bool:
    return not any(
        entry.name.startswith(segment_io.COPY_PREFIX)
        for directory in directories
        if directory.exists()
        for entry in directory.iterdir()
    )


def test_playback_spans_both_tiers_with_ranges_tokens_and_audit(
    s3_settings, tmp_path, tmp_path_factory
):
    tiered = Tiered(tmp_path_factory)
    other = CameraFactory()  # another prefeitura, with footage of its own
    stranger = UserFactory(prefeitura=other.prefeitura, role=Role.GESTOR)
    other_segments = index_footage(footage(tmp_path_factory), other.pk)
    web_tmp = tmp_path / "web-tmp"
    web_tmp.mkdir()
    with running_web(**web_env(s3_settings, web_tmp)) as (url, _web):
        response = playlist(url, tiered.user, tiered.camera.pk, tiered.segments)
        assert response.status_code == 200, response.text
        assert s3_settings.endpoint not in response.text and s3_settings.bucket not in response.text
        uris = media_uris(response.text)
        assert len(uris) == len(tiered.segments)
        by_pk = {}
        for segment, uri in zip(tiered.segments, uris, strict=True):
            assert f"/segments/{segment.pk}.ts?token=" in uri
            by_pk[segment.pk] = uri
            media = get(url, uri)
            assert media.status_code == 200, (segment.storage, media.text)
            assert media.headers["Content-Type"] == "video/mp2t"
            assert media.headers["Accept-Ranges"] == "bytes"
            assert int(media.headers["Content-Length"]) == segment.size_bytes
            assert media.content == tiered.original[segment.pk]  # the same bytes, either tier
        audited = AuditEntry.objects.filter(
            action="recording.playback", target_id=str(tiered.camera.pk)
        )
        assert audited.count() == 1
        assert audited.get().details["reason"] == "Ocorrência 123"

        # ranges, on a segment of the bucket and one on disk alike
        for segment in (tiered.remote[0], tiered.local[0]):
            data, uri, size = tiered.original[segment.pk], by_pk[segment.pk], segment.size_bytes
            part = get(url, uri, Range="bytes=188-18799")
            assert part.status_code == 206
            assert part.headers["Content-Range"] == f"bytes 188-18799/{size}"
            assert part.headers["Content-Length"] == str(18799 - 188 + 1)
            assert part.content == data[188:18800]
            tail = get(url, uri, Range="bytes=-1000")
            assert tail.status_code == 206 and tail.content == data[-1000:]
            rest = get(url, uri, Range=f"bytes={size - 500}-")
            assert rest.status_code == 206 and rest.content == data[-500:]
            assert rest.headers["Content-Range"] == f"bytes {size - 500}-{size - 1}/{size}"
            beyond = get(url, uri, Range=f"bytes={size}-")
            assert beyond.status_code == 416
            assert beyond.headers["Content-Range"] == f"bytes */{size}"

        # parallel players read the bucket at once
        results: dict[int, bytes] = {}

        def fetch(segment: Segment) -> None:
            results[segment.pk] = get(url, by_pk[segment.pk]).content

        threads = [threading.Thread(target=fetch, args=(s,)) for s in tiered.remote]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert results == {s.pk: tiered.original[s.pk] for s in tiered.remote}

        # refused: no token, a forged one, another prefeitura's token or user
        remote_uri = by_pk[tiered.remote[0].pk]
        assert get(url, remote_uri.split("?")[0]).status_code in REFUSED
        assert get(url, remote_uri.split("?")[0] + "?token=forged").status_code in REFUSED
        assert playlist(url, stranger, tiered.camera.pk, tiered.segments).status_code == 404
        foreign = playlist(url, stranger, other.pk, other_segments)
        assert foreign.status_code == 200
        foreign_token = media_uris(foreign.text)[0].split("?token=")[1]
        for segment in tiered.remote[:1] + tiered.local[:1]:
            stolen = get(url, f"{by_pk[segment.pk].split('?')[0]}?token={foreign_token}")
            assert stolen.status_code in REFUSED
            assert stolen.content != tiered.original[segment.pk]

        # a snapshot inside a segment of the bucket is a JPEG of it, audited
        remote = tiered.remote[0]
        picture = snapshot(url, tiered.user, tiered.camera.pk, remote.start + seconds(0.5))
        assert picture.status_code == 200, picture.text
        assert picture.headers["Content-Type"] == "image/jpeg"
        assert picture.content[:3] == b"\xff\xd8\xff" and picture.content[-2:] == b"\xff\xd9"
        assert AuditEntry.objects.filter(
            action="recording.snapshot", target_id=str(tiered.camera.pk)
        ).exists()
        # its download went to a private directory, removed with the request
        assert no_copies_left(web_tmp)

        # an object gone from the bucket: 404 for its media URL and its snapshot, not a 500
        gone = tiered.remote[-1]
        objectstore.delete_keys([gone.location])
        assert get(url, by_pk[gone.pk]).status_code == 404
        missing = snapshot(url, tiered.user, tiered.camera.pk, gone.start + seconds(0.5))
        assert missing.status_code == 404, missing.text
        # the others still play
        assert get(url, by_pk[tiered.remote[0].pk]).content == tiered.original[tiered.remote[0].pk]
    assert no_copies_left(web_tmp)


def test_a_clip_across_both_tiers_is_the_clip_of_the_local_footage(
    s3_settings, settings, tmp_path_factory
):
    tiered = Tiered(tmp_path_factory, move=False)
    local_clip = export(tiered)  # every segment still on disk
    assert local_clip.status == Clip.Status.DONE, local_clip.error
    local_bytes = storage.clip_path(local_clip.pk).read_bytes()

    tiered.move()
    first, second = tiered.pair
    assert first.storage == Segment.Storage.S3 and second.storage == Segment.Storage.LOCAL
    clip = export(tiered)
    assert clip.status == Clip.Status.DONE, clip.error
    path = storage.clip_path(clip.pk)
    data = path.read_bytes()
    # the same export, byte for byte, whichever tier held the footage
    assert clip.sha256 == hashlib.sha256(data).hexdigest() == local_clip.sha256
    assert data == local_bytes and clip.size_bytes == len(data)
    # plays: covers [start, end], from the keyframe at or before start, to end
    start, end = tiered.clip_range()
    wanted = (end - start).total_seconds()
    assert wanted - FRAME_S <= decoded_duration(path) <= wanted + GOP_S + FRAME_S
    assert clip.duration_s == pytest.approx(decoded_duration(path), abs=0.1)
    # the custody manifest signs the file and lists both segments with the indexer's hashes
    check = custody.verify(path, clip.custody_manifest.encode())
    assert check.ok, check.message
    listed = json.loads(clip.custody_manifest)["manifest"]["segments"]
    assert [s["sha256"] for s in listed] == [first.sha256, second.sha256]
    assert [s["sha256"] for s in listed] == [
        hashlib.sha256(tiered.original[s.pk]).hexdigest() for s in (first, second)
    ]
    assert no_copies_left(Path(settings.CLIPS_DIR))


def test_bucket_down_media_is_503_and_clips_fail_cleanly_then_retry(
    s3_settings, settings, tmp_path, tmp_path_factory
):
    tiered = Tiered(tmp_path_factory)
    remote, local = tiered.remote[0], tiered.local[0]
    web_tmp = tmp_path / "web-tmp"
    web_tmp.mkdir()
    with running_web(**web_env(s3_settings, web_tmp)) as (url, web):
        response = playlist(url, tiered.user, tiered.camera.pk, tiered.segments)
        assert response.status_code == 200
        by_pk = dict(zip([s.pk for s in tiered.segments], media_uris(response.text), strict=True))
        assert get(url, by_pk[remote.pk]).content == tiered.original[remote.pk]

        s3_settings.server.stop()  # the weed mini process is gone
        down = get(url, by_pk[remote.pk])
        assert down.status_code == 503, down.text
        assert down.json()["detail"] == (
            "O armazenamento das gravações está inacessível no momento; tente novamente em "
            "instantes."
        )
        assert get(url, by_pk[remote.pk], Range="bytes=0-99").status_code == 503
        # the footage on disk still plays, and the web process is fine
        assert get(url, by_pk[local.pk]).content == tiered.original[local.pk]
        picture = snapshot(url, tiered.user, tiered.camera.pk, remote.start + seconds(0.5))
        assert picture.status_code == 503
        assert snapshot(url, tiered.user, tiered.camera.pk, local.start).status_code == 200
        assert web.alive()
        assert no_copies_left(web_tmp)

        # a clip needing the bucket fails with a message for the operator, and leaves nothing
        failed = export(tiered)
        assert failed.status == Clip.Status.FAILED
        assert failed.error == (
            "As gravações arquivadas estão inacessíveis no momento; exporte o clipe novamente "
            "mais tarde."
        )
        assert not storage.clip_path(failed.pk).exists()
        assert no_copies_left(Path(settings.CLIPS_DIR))
        assert not [p for p in Path(settings.CLIPS_DIR).iterdir() if p.name != ".keep"]

        s3_settings.server.start()  # back: the same URL plays, the same export succeeds
        assert served_again(url, by_pk[remote.pk]).content == tiered.original[remote.pk]
        retried = export(tiered)
        assert retried.status == Clip.Status.DONE, retried.error
        clip_bytes = storage.clip_path(retried.pk).read_bytes()
        assert retried.sha256 == hashlib.sha256(clip_bytes).hexdigest()

        # an object missing from the bucket: the clip fails as for a missing local file
        objectstore.delete_keys([tiered.pair[0].location])
        missing = export(tiered)
        assert missing.status == Clip.Status.FAILED
        assert missing.error == "Falta um segmento gravado deste período."


def test_in_process_reads_and_private_checked_local_copies(s3_settings, settings, tmp_path_factory):
    tiered = Tiered(tmp_path_factory)
    parent = Path(settings.CLIPS_DIR)
    with segment_io.local_copy(tiered.segments, directory=parent) as paths:
        assert len(paths) == len(tiered.segments)
        (work,) = [p for p in parent.iterdir() if p.name.startswith(segment_io.COPY_PREFIX)]
        assert stat.S_IMODE(work.stat().st_mode) == 0o700
        for segment, path in zip(tiered.segments, paths, strict=True):
            assert path.read_bytes() == tiered.original[segment.pk]
            if segment.storage == Segment.Storage.S3:
                assert path.parent == work and stat.S_IMODE(path.stat().st_mode) == 0o600
            else:
                assert path == storage.segment_file(segment)  # used in place
    assert no_copies_left(parent)
    # byte ranges of either tier, as the media view streams them
    for segment in (tiered.remote[0], tiered.local[0]):
        data = tiered.original[segment.pk]
        assert b"".join(segment_io.open_segment(segment)) == data
        assert b"".join(segment_io.open_segment(segment, 1000, 1999)) == data[1000:2000]
        assert b"".join(segment_io.open_segment(segment, len(data) - 10)) == data[-10:]
    # the media view without ASGI (a plain iterator body), on a segment of the bucket
    remote = tiered.remote[0]
    token = make_playback_token(
        tiered.user.pk, tiered.camera.pk, tiered.segments[0].start, tiered.segments[-1].end
    )
    response = APIClient().get(
        f"/api/recordings/segments/{remote.pk}.ts?token={token}", HTTP_RANGE="bytes=10-99"
    )
    assert response.status_code == 206 and response["Content-Length"] == "90"
    assert b"".join(response.streaming_content) == tiered.original[remote.pk][10:100]

    # removed on failure too: a copy too large, then an object whose bytes differ from its row
    limit = settings.SEGMENT_COPY_MAX_BYTES
    settings.SEGMENT_COPY_MAX_BYTES = sum(s.size_bytes for s in tiered.remote) - 1
    with pytest.raises(segment_io.CopyTooLarge), segment_io.local_copy(tiered.segments):
        pass
    settings.SEGMENT_COPY_MAX_BYTES = limit
    tampered = tiered.remote[0]
    other = tiered.original[tiered.remote[1].pk]
    bogus = parent / "bogus.ts"
    bogus.write_bytes(other[: tampered.size_bytes].ljust(tampered.size_bytes, b"\0"))
    s3 = s3_settings.server.client()
    s3.upload_file(str(bogus), s3_settings.bucket, tampered.location)
    bogus.unlink()
    with (
        pytest.raises(segment_io.SegmentMissing, match="SHA-256"),
        segment_io.local_copy(tiered.segments, directory=parent),
    ):
        pass
    assert no_copies_left(parent)
    assert os.listdir(parent) == []


class CuttingProxy:
    """A TCP proxy in front of the bucket: passes everything, or, while ``cut`` is set, closes
    each connection after the bucket sent ``cut`` bytes (a network fault midway through an
    object, with the real server behind)."""

    def __init__(self, target: str) -> None:
        host, port = target.removeprefix("http://").split(":")
        self.target = (host, int(port))
        self.cut: int | None = None
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.threads: list[threading.Thread] = []
        self._spawn(self._accept)

    def _spawn(self, target, *args) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self.threads.append(thread)

    def _accept(self) -> None:
        while True:
            try:
                client, _address = self.listener.accept()
            except OSError:
                return  # closed
            upstream = socket.create_connection(self.target)
            self._spawn(self._pipe, client, upstream, False)
            self._spawn(self._pipe, upstream, client, True)

    def _pipe(self, source: socket.socket, dest: socket.socket, cuttable: bool) -> None:
        """Copy ``source`` to ``dest``; from the bucket, at most ``cut`` bytes once it is set
        (counted from then: connections stay pooled across it)."""
        sent, armed = 0, None
        try:
            while data := source.recv(65536):
                limit = self.cut if cuttable else None
                if limit != armed:
                    sent, armed = 0, limit
                if limit is not None and sent + len(data) >= limit:
                    dest.sendall(data[: limit - sent])
                    break
                dest.sendall(data)
                sent += len(data)
        except OSError:
            pass
        for sock in (source, dest):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self.listener.close()


def test_an_object_cut_midway_is_a_503_and_a_failed_copy_never_a_short_answer(
    s3_settings, settings, tmp_path
):
    """The connection to the bucket breaks in the middle of an object: the media URL answers
    503 (never a response shorter than its Content-Length, which a player would wait on), a
    copy for FFmpeg fails as "unreachable" and leaves nothing, and the web process serves on."""
    camera = CameraFactory()
    user = UserFactory(prefeitura=camera.prefeitura, role=Role.GESTOR)
    data = os.urandom(8 * 1024**2)
    big = tmp_path / "big.ts"
    big.write_bytes(data)
    start = timezone.now() - timedelta(days=2)
    sha = hashlib.sha256(data).hexdigest()
    key = objectstore.segment_key(camera.pk, "", start=start)
    objectstore.put_file(big, key, size=len(data), sha256=sha)
    segment = Segment.objects.create(
        camera=camera, start=start, end=start + timedelta(seconds=10), size_bytes=len(data),
        sha256=sha, storage=Segment.Storage.S3, location=key,
    )  # fmt: skip
    proxy = CuttingProxy(s3_settings.endpoint)
    settings.S3_ENDPOINT_URL = proxy.endpoint
    web_tmp = tmp_path / "web-tmp"
    web_tmp.mkdir()
    try:
        env = {**web_env(s3_settings, web_tmp), "S3_ENDPOINT_URL": proxy.endpoint}
        with running_web(**env) as (url, web):
            (uri,) = media_uris(playlist(url, user, camera.pk, [segment]).text)
            whole = get(url, uri)  # through the proxy, whole
            assert whole.status_code == 200 and whole.content == data

            proxy.cut = 1024**2
            for headers in ({}, {"Range": "bytes=1000-"}):
                cut = get(url, uri, **headers)
                assert cut.status_code == 503, (cut.status_code, cut.headers)
                assert len(cut.content) == int(cut.headers["Content-Length"])
            copies = tmp_path / "copies"
            with (
                pytest.raises(segment_io.SegmentUnavailable),
                segment_io.local_copy([segment], directory=copies),
            ):
                pass
            assert no_copies_left(copies, web_tmp)
            assert web.alive()

            proxy.cut = None
            assert get(url, uri, Range="bytes=-4096").content == data[-4096:]
            with segment_io.local_copy([segment], directory=tmp_path) as [path]:
                assert path.read_bytes() == data
    finally:
        proxy.close()
