"""Worker job: plate reads and crops follow the prefeitura's retention (every 10 minutes)."""

from __future__ import annotations

from procrastinate.contrib.django import app

from lpr import services


@app.periodic(cron="*/10 * * * *")
@app.task(name="lpr.apply_retention", queue="maintenance", queueing_lock="lpr_retention")
def apply_retention(timestamp: int) -> None:
    services.purge_expired()
