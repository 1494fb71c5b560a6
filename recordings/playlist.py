"""HLS VOD playlists of recorded segments.

A media URI is always the app's segment view (``recordings:segment-media`` with a playback
token), whatever tier holds the segment: one in the S3 bucket is streamed through the app
(``recordings.segment_io``), so a playlist never names the bucket.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime

from recordings.models import Segment


def program_date_time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def vod_playlist(entries: Iterable[tuple[Segment, str]]) -> str:
    """A VOD playlist of ``(segment, uri)`` in time order.

    Every segment's timestamps restart at 0 (the recorder's ``reset_timestamps``), so each
    segment after the first follows an ``EXT-X-DISCONTINUITY`` (RFC 8216 4.3.2.3: a change
    of timestamp sequence); holes in the footage show as jumps of the program date time.
    """
    entries = list(entries)
    target = max((math.ceil(segment.duration_s) for segment, _uri in entries), default=1)
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:3",
        f"#EXT-X-TARGETDURATION:{max(target, 1)}",
        "#EXT-X-MEDIA-SEQUENCE:0",
        "#EXT-X-PLAYLIST-TYPE:VOD",
    ]
    for index, (segment, uri) in enumerate(entries):
        if index:
            lines.append("#EXT-X-DISCONTINUITY")
        lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{program_date_time(segment.start)}")
        lines.append(f"#EXTINF:{segment.duration_s:.3f},")
        lines.append(uri)
    lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"
