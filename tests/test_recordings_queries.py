"""Query plans at scale, and the pure pieces: playlist, segment list, byte ranges, keyframes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test import RequestFactory

from recordings import media, queries
from recordings.http import ranged_file_response
from recordings.indexer import read_segment_list
from recordings.models import Recording, Segment
from recordings.playlist import vod_playlist
from tests.factories import CameraFactory, PrefeituraFactory, UserFactory
from tests.test_recordings_support import synthetic_segment

INDEX = "one_segment_per_start"
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def generate(cameras: int, per_camera: int) -> list[int]:
    """``per_camera`` 10-second segments for each of ``cameras`` new cameras, in one INSERT."""
    prefeitura = PrefeituraFactory(max_cameras=cameras)
    ids = [CameraFactory(prefeitura=prefeitura).pk for _ in range(cameras)]
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {Segment._meta.db_table} (camera_id, start, "end", size_bytes)
            SELECT c, %(t0)s + n * interval '10 seconds',
                   %(t0)s + n * interval '10 seconds' + interval '10 seconds', 1250000
            FROM unnest(%(ids)s::bigint[]) AS c, generate_series(0, %(n)s - 1) AS n
            ORDER BY n, c
            """,  # noqa: S608
            {"t0": T0, "ids": ids, "n": per_camera},
        )
        cursor.execute(f"ANALYZE {Segment._meta.db_table}")  # noqa: S608
    return ids


def explain(sql: str, params: object = None) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) {sql}", params)
        return "\n".join(row[0] for row in cursor.fetchall())


def assert_index_scan(plan: str) -> None:
    assert INDEX in plan, plan
    assert "Seq Scan on recordings_segment" not in plan, plan


def test_time_queries_scan_the_camera_start_index_on_300k_rows(db):
    ids = generate(cameras=30, per_camera=10_000)  # ~28 h of 10 s segments per camera
    camera_id = ids[7]
    since, until = T0 + timedelta(hours=20), T0 + timedelta(hours=21)
    plans = {}
    search = Segment.objects.filter(camera_id=camera_id).overlapping(since, until)
    plans["search"] = search.order_by("start").explain(analyze=True, costs=False, timing=False)
    user = UserFactory(prefeitura=Segment.objects.get(pk=search[0].pk).camera.prefeitura)
    all_cameras = Segment.objects.for_user(user).overlapping(since, until).order_by("start")
    plans["search, every camera of a prefeitura"] = all_cameras[:50].explain(
        analyze=True, costs=False, timing=False
    )
    params = {
        "camera_id": camera_id,
        "since": since,
        "until": until,
        "lookback": since - timedelta(minutes=10),
        "gap": timedelta(seconds=1),
    }
    plans["timeline"] = explain(queries.TIMELINE_SQL, params)
    plans["oldest (disk floor)"] = explain(
        queries.OLDEST_SQL,
        {"before": T0 + timedelta(days=1), "limit": 100, "now": T0 + timedelta(days=2)},
    )
    cutoff = T0 + timedelta(hours=2)
    expired = Segment.objects.filter(camera_id=camera_id, start__lt=cutoff, end__lte=cutoff)
    plans["retention batch"] = expired.order_by("start")[:1000].explain(
        analyze=True, costs=False, timing=False
    )
    nearest = Segment.objects.filter(camera_id=camera_id, start__lte=since).order_by("-start")
    plans["snapshot nearest"] = nearest[:1].explain(analyze=True, costs=False, timing=False)
    session = Recording(camera_id=camera_id, started_at=since, ended_at=until)
    with connection.execute_wrapper(_capture := _Capture()):
        assert session.stats["segment_count"] == 360
    plans["recording stats"] = explain(_capture.sql, _capture.params)
    for name, plan in plans.items():
        assert_index_scan(plan)
        print(f"--- {name}\n{plan}")
    assert queries.timeline_spans(camera_id, since, until) == [(since, until)]
    assert len(queries.oldest_segments(before=T0 + timedelta(days=1), limit=100)) == 100


class _Capture:
    sql = ""
    params: object = None

    def __call__(self, execute, sql, params, many, context):
        self.sql, self.params = sql, params
        return execute(sql, params, many, context)


def test_timeline_splits_on_holes_longer_than_the_tolerance(db):
    camera = CameraFactory()
    starts = [0, 10, 20.5, 31.4, 60, 70]  # 0.5 s and 0.9 s gaps join; 18.6 s is a hole
    Segment.objects.bulk_create(
        Segment(
            camera=camera,
            start=T0 + timedelta(seconds=s),
            end=T0 + timedelta(seconds=s + 10),
            size_bytes=1,
        )
        for s in starts
    )
    spans = queries.timeline_spans(camera.pk, T0 - timedelta(hours=1), T0 + timedelta(hours=1))
    assert spans == [
        (T0, T0 + timedelta(seconds=41.4)),
        (T0 + timedelta(seconds=60), T0 + timedelta(seconds=80)),
    ]
    # an overlapping segment does not end its span early
    Segment.objects.create(
        camera=camera, start=T0 + timedelta(seconds=5), end=T0 + timedelta(seconds=6), size_bytes=1
    )
    assert len(queries.timeline_spans(camera.pk, T0, T0 + timedelta(hours=1))) == 2


def test_vod_playlist_shape():
    segments = [
        Segment(start=T0, end=T0 + timedelta(seconds=3.933)),
        Segment(start=T0 + timedelta(seconds=30), end=T0 + timedelta(seconds=32)),
    ]
    text = vod_playlist([(segments[0], "/a.ts?token=x"), (segments[1], "/b.ts?token=x")])
    assert text == (
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:0\n"
        "#EXT-X-PLAYLIST-TYPE:VOD\n"
        "#EXT-X-PROGRAM-DATE-TIME:2026-03-01T00:00:00.000Z\n#EXTINF:3.933,\n/a.ts?token=x\n"
        "#EXT-X-DISCONTINUITY\n"
        "#EXT-X-PROGRAM-DATE-TIME:2026-03-01T00:00:30.000Z\n#EXTINF:2.000,\n/b.ts?token=x\n"
        "#EXT-X-ENDLIST\n"
    )


def test_segment_list_tail_and_duplicates(tmp_path):
    path = tmp_path / "segments.csv"
    rows = [f"seg{n:05d}.ts,{n * 2}.000000,{n * 2 + 2}.000000" for n in range(3000)]
    rows.append("seg00010.ts,bad,row")
    rows.append("seg00002.ts,4.0,5.5")  # a name listed again (file overwritten): last one wins
    path.write_text("\n".join(rows) + "\n")
    tail = read_segment_list(path, tail_bytes=1024)
    assert "seg00000.ts" not in tail and tail["seg02999.ts"] == 2.0
    full = read_segment_list(path)
    assert len(full) == 3000 and full["seg00002.ts"] == 1.5 and full["seg00010.ts"] == 2.0
    assert read_segment_list(tmp_path / "missing.csv") == {}


@pytest.mark.parametrize(
    ("header", "status", "body", "content_range"),
    [
        ("", 200, b"0123456789", None),
        ("bytes=2-4", 206, b"234", "bytes 2-4/10"),
        ("bytes=7-", 206, b"789", "bytes 7-9/10"),
        ("bytes=-3", 206, b"789", "bytes 7-9/10"),
        ("bytes=5-100", 206, b"56789", "bytes 5-9/10"),
        ("bytes=10-", 416, b"", "bytes */10"),
        ("bytes=0-1,4-5", 200, b"0123456789", None),
    ],
)
def test_byte_ranges(tmp_path, header, status, body, content_range):
    path = tmp_path / "f.bin"
    path.write_bytes(b"0123456789")
    request = RequestFactory().get("/", HTTP_RANGE=header) if header else RequestFactory().get("/")
    response = ranged_file_response(request, path, "application/octet-stream")
    assert response.status_code == status
    content = b"".join(response.streaming_content) if response.streaming else response.content
    assert content == body
    assert response.get("Content-Range") == content_range


def test_keyframes_and_duration_of_a_segment(tmp_path):
    path = synthetic_segment(tmp_path / "seg.ts", seconds=4)
    assert media.measure_duration(path) == pytest.approx(4.0, abs=0.01)
    assert media.keyframe_times(path) == pytest.approx([0.0, 2.0], abs=0.01)
    (tmp_path / "junk.ts").write_bytes(b"junk")
    assert media.measure_duration(tmp_path / "junk.ts") is None
