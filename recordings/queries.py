"""The SQL that must stay fast on tens of millions of segments (see ``EXPLAIN`` in the tests)."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

from cidades.models import Camera
from recordings.evidence import LOCKED_SEGMENT_SQL
from recordings.models import Segment, segment_lookback

_SEGMENT = Segment._meta.db_table
_CAMERA = Camera._meta.db_table

# Gaps and islands: a segment opens a new span when it starts more than ``gap`` after the
# furthest end seen so far; spans are the groups. One range scan of the (camera, start) index.
TIMELINE_SQL = f"""
WITH ordered AS (
    SELECT start, "end",
           max("end") OVER (ORDER BY start ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
               AS reached
    FROM {_SEGMENT}
    WHERE camera_id = %(camera_id)s
      AND start >= %(lookback)s AND start < %(until)s AND "end" > %(since)s
), islands AS (
    SELECT start, "end",
           sum(CASE WHEN reached IS NULL OR start > reached + %(gap)s THEN 1 ELSE 0 END)
               OVER (ORDER BY start) AS island
    FROM ordered
)
SELECT greatest(min(start), %(since)s), least(max("end"), %(until)s)
FROM islands GROUP BY island ORDER BY 1
"""  # noqa: S608 - table name from the model, values are parameters

# The oldest segments across cameras: per camera the first rows of its (camera, start) index,
# then the oldest of those. No index on start alone is needed. Footage under an active
# evidence lock is never among them (the disk floor deletes what this returns).
OLDEST_SQL = f"""
SELECT s.id, s.camera_id, s.start, s."end", s.size_bytes, s.storage, s.location
FROM {_CAMERA} AS c
CROSS JOIN LATERAL (
    SELECT id, camera_id, start, "end", size_bytes, storage, location FROM {_SEGMENT} AS s
    WHERE camera_id = c.id AND start < %(before)s AND NOT {LOCKED_SEGMENT_SQL}
    ORDER BY start LIMIT %(limit)s
) AS s
ORDER BY s.start LIMIT %(limit)s
"""  # noqa: S608


def gap_tolerance() -> timedelta:
    """Segment names have one-second resolution: closer segments are continuous."""
    return timedelta(seconds=settings.RECORDING_GAP_TOLERANCE_S)


def timeline_spans(
    camera_id: int, since: datetime, until: datetime
) -> list[tuple[datetime, datetime]]:
    """Recorded coverage of ``[since, until)`` merged into continuous spans, clipped to it."""
    params = {
        "camera_id": camera_id,
        "since": since,
        "until": until,
        "lookback": since - segment_lookback(),
        "gap": gap_tolerance(),
    }
    with connection.cursor() as cursor:
        cursor.execute(TIMELINE_SQL, params)
        return [(row[0], row[1]) for row in cursor.fetchall()]


def oldest_segments(*, before: datetime, limit: int, now: datetime | None = None) -> list[Segment]:
    """The ``limit`` oldest unlocked segments (across all cameras) that started before
    ``before`` (locks active at ``now``)."""
    params = {"before": before, "limit": limit, "now": now or timezone.now()}
    return list(Segment.objects.raw(OLDEST_SQL, params))
