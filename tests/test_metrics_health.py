"""/health's disk and recording-lag checks and the same figures in /metrics, from a real Daphne."""

from __future__ import annotations

from datetime import timedelta

import pytest
import requests
from django.utils import timezone

from recordings.models import Recording, Segment
from tests.factories import CameraFactory
from tests.live_web import running_web

pytestmark = pytest.mark.django_db(transaction=True)


def test_health_fails_when_free_disk_is_under_the_floor():
    with running_web(RETENTION_DISK_FLOOR_BYTES=str(10**18)) as (url, _web):
        response = requests.get(f"{url}/health", timeout=10)
        assert response.status_code == 503
        disk = response.json()["checks"]["disk"]
        assert disk["ok"] is False and disk["floor_bytes"] == 10**18
        assert "under the floor" in disk["error"] and disk["free_bytes"] < 10**18
        metrics = requests.get(f"{url}/metrics", timeout=10).text
        assert "gtvision_storage_floor_bytes 1e+18" in metrics
    with running_web(RETENTION_DISK_FLOOR_BYTES="0") as (url, _web):
        disk = requests.get(f"{url}/health", timeout=10).json()["checks"]["disk"]
        assert disk["ok"] is True and disk["free_bytes"] > 0 and "error" not in disk


def test_health_reports_recording_lag_of_recorded_cameras():
    camera = CameraFactory()
    other = CameraFactory()
    now = timezone.now()
    Recording.objects.create(camera=camera, started_at=now - timedelta(minutes=10))
    with running_web(RECORDING_LAG_MAX_S="120") as (url, _web):
        lag = requests.get(f"{url}/health", timeout=10).json()["checks"]["recording_lag"]
        assert lag["ok"] is False and lag["recorded_cameras"] == 1
        assert lag["max_lag_s"] >= 600
        assert f"more than 120 s: {camera.pk}" in lag["error"]
        metrics = requests.get(f"{url}/metrics", timeout=10).text
        assert f'gtvision_camera_recording_lag_seconds{{camera="{camera.pk}"}} 6' in metrics
        assert f'camera="{other.pk}"' not in metrics  # not recorded: no series

        # A segment indexed just now: the lag is its age.
        Segment.objects.create(
            camera=camera, start=now - timedelta(seconds=10), end=now, size_bytes=1000
        )
        lag = requests.get(f"{url}/health", timeout=10).json()["checks"]["recording_lag"]
        assert lag["ok"] is True and lag["max_lag_s"] < 120 and "error" not in lag
