"""Worker jobs (``manage.py procrastinate worker``): clip exports and periodic housekeeping."""

from __future__ import annotations

from procrastinate.contrib.django import app

from recordings import clips, footage, retention, services


@app.task(name="recordings.build_clip", queue="clips")
def build_clip(clip_id: int) -> None:
    clips.build_clip(clip_id)


@app.periodic(cron="*/10 * * * *")
@app.task(name="recordings.apply_retention", queue="maintenance", queueing_lock="retention")
def apply_retention(timestamp: int) -> None:
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
