"""Worker jobs (``manage.py procrastinate worker``): clip exports and periodic housekeeping."""

from __future__ import annotations

from procrastinate import RetryStrategy
from procrastinate.contrib.django import app

from recordings import clips, footage, partitions, retention, services, tiering


@app.task(name="recordings.build_clip", queue="clips")
def build_clip(clip_id: int) -> None:
    clips.build_clip(clip_id)


@app.task(
    name="recordings.remove_camera_objects",
    queue="maintenance",
    retry=RetryStrategy(max_attempts=8, exponential_wait=5),
)
def remove_camera_objects(camera_id: int) -> None:
    """A deleted camera's footage in the bucket (its rows went with it). Bucket away: retried;
    ``check_footage`` removes whatever is left as objects without rows."""
    tiering.remove_camera_objects(camera_id)


@app.periodic(cron="*/10 * * * *")
@app.task(name="recordings.apply_retention", queue="maintenance", queueing_lock="retention")
def apply_retention(timestamp: int) -> None:
    partitions.maintain()  # the segment index's day partitions ahead, empty old ones dropped
    retention.apply_retention()


@app.periodic(cron="37 * * * *")
@app.task(name="recordings.check_footage", queue="maintenance", queueing_lock="check_footage")
def check_footage(timestamp: int) -> None:
    """Hourly: files on disk = rows (``manage.py check_footage --repair``)."""
    footage.check(repair=True)
    footage.check_clips(repair=True)


@app.periodic(cron="7 * * * *")
@app.task(name="recordings.expire_clips", queue="maintenance", queueing_lock="expire_clips")
def expire_clips(timestamp: int) -> None:
    services.expire_clips()


@app.periodic(cron="* * * * *")
@app.task(
    name="recordings.tier_footage",
    queue="maintenance",
    queueing_lock="tier_footage",
    lock="tier_footage",
)
def tier_footage(timestamp: int) -> None:
    """Every minute: closed segments past FOOTAGE_HOT_SECONDS move to the object store
    (recordings.tiering; nothing to do without S3 configured, never raises for an outage)."""
    tiering.move_cold_segments()
