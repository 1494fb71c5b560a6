"""N+1 guards of the list endpoints that are not ``APIResourceTests`` resources (those,
prefeituras, users, cameras and audit, get theirs from the mixin): each list costs the
same number of queries for 2 rows and for 12."""

from __future__ import annotations

from datetime import timedelta
from itertools import count

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from admin_ctx import audit
from lpr.models import Read, WatchlistEntry
from recordings.models import Clip, EvidenceLock, Segment
from streaming.models import Stream
from tests.api_mixins import assert_constant_queries
from tests.conftest import client_for
from tests.factories import CameraFactory

SECONDS = count()


def test_streams_list(tenants):
    def add(n: int) -> None:
        for _ in range(n):
            camera = CameraFactory(prefeitura=tenants["a"]["prefeitura"])
            Stream.objects.create(camera=camera, status=Stream.Status.STOPPED)

    assert_constant_queries(client_for(tenants["a"]["operador"]), "/api/streams", add)


def test_clips_list(tenants):
    operador = tenants["a"]["operador"]

    def add(n: int) -> None:
        for _ in range(n):
            camera = CameraFactory(prefeitura=tenants["a"]["prefeitura"])
            start = timezone.now() - timedelta(hours=1)
            Clip.objects.create(
                camera=camera,
                start=start,
                end=start + timedelta(seconds=10),
                created_by=operador,
                expires_at=timezone.now() + timedelta(days=1),
            )

    assert_constant_queries(client_for(operador), "/api/clips/", add)


def test_recordings_search(tenants):
    base = timezone.now().replace(microsecond=0) - timedelta(hours=1)

    def add(n: int) -> None:
        for _ in range(n):
            camera = CameraFactory(prefeitura=tenants["a"]["prefeitura"])
            start = base + timedelta(seconds=4 * next(SECONDS))
            Segment.objects.create(
                camera=camera, start=start, end=start + timedelta(seconds=4), size_bytes=1
            )

    assert_constant_queries(
        client_for(tenants["a"]["operador"]),
        "/api/recordings/search",
        add,
        {"start": base.isoformat(), "end": (base + timedelta(hours=1)).isoformat()},
    )


def test_dashboard_recent_events(client, tenants):
    operador = tenants["a"]["operador"]
    client.force_login(operador)

    def add(n: int) -> None:
        for _ in range(n):
            camera = CameraFactory(prefeitura=tenants["a"]["prefeitura"])
            Stream.objects.create(camera=camera, status=Stream.Status.STOPPED)

    assert_constant_queries(client, "/dashboard/api/events/", add)


def test_dashboard_mosaic_layout(client, tenants):
    """The mosaic's cameras are read in one query however many the prefeitura has."""
    client.force_login(tenants["a"]["operador"])

    def add(n: int) -> None:
        for _ in range(n):
            CameraFactory(prefeitura=tenants["a"]["prefeitura"])

    add(2)
    with CaptureQueriesContext(connection) as few:
        assert client.get("/dashboard/api/mosaic/").status_code == 200
    add(10)
    with CaptureQueriesContext(connection) as many:
        assert client.get("/dashboard/api/mosaic/").status_code == 200
    assert len(many) == len(few), [q["sql"] for q in many.captured_queries]


def test_lpr_reads_and_watchlist(tenants):
    operador = tenants["a"]["operador"]
    prefeitura = tenants["a"]["prefeitura"]

    def add_reads(n: int) -> None:
        for _ in range(n):
            camera = CameraFactory(prefeitura=prefeitura)
            Read.objects.create(
                camera=camera, plate="ABC1D23", format="mercosul", confidence=0.9,
                at=timezone.now() - timedelta(seconds=next(SECONDS)),
            )  # fmt: skip

    def add_entries(n: int) -> None:
        for _ in range(n):
            WatchlistEntry.objects.create(
                prefeitura=prefeitura,
                plate=f"ABC{next(SECONDS) % 10}D23",
                reason="n+1",
                created_by=tenants["a"]["gestor"],
            )

    assert_constant_queries(client_for(operador), "/api/lpr/reads/", add_reads)
    assert_constant_queries(client_for(operador), "/api/lpr/watchlist/", add_entries)


def test_evidence_locks_and_access_report(tenants):
    gestor = tenants["a"]["gestor"]
    start = timezone.now() - timedelta(hours=1)

    def add_locks(n: int) -> None:
        for _ in range(n):
            EvidenceLock.objects.create(
                camera=CameraFactory(prefeitura=tenants["a"]["prefeitura"]),
                start=start,
                end=start + timedelta(minutes=1),
                reason="n+1",
                created_by=gestor,
            )

    def add_accesses(n: int) -> None:
        for _ in range(n):
            camera = CameraFactory(prefeitura=tenants["a"]["prefeitura"])
            audit.record("stream.view", actor=gestor, target=camera, details={"stream_id": 1})

    assert_constant_queries(client_for(gestor), "/api/evidence-locks/", add_locks)
    assert_constant_queries(client_for(gestor), "/api/reports/access/", add_accesses)
