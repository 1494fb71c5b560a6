"""LPR under MEDIA_ENGINE=mediamtx: the media supervisor declares a MediaMTX path for a camera
the LPR worker reads, even when it is neither recorded nor streamed, so the worker has a
restream to read (the camera is pulled from the street once, by MediaMTX).

Driven like tests/test_streaming_mediamtx.py: the real media supervisor subprocess against
the MediaMTX stand-in (tests/mediamtx_standin.py)."""

from __future__ import annotations

import pytest

from cidades.models import Camera
from tests.factories import CameraFactory
from tests.test_streaming_mediamtx import (  # noqa: F401 (fixtures)
    SOURCE,
    city,
    path_of,
    standin,
    start_supervisor,
    transactional,
    wait_declared,
    wait_for,
    wait_ticks,
)


@pytest.mark.timeout(240)
@transactional
def test_an_lpr_only_camera_gets_a_path_and_loses_it_when_lpr_is_turned_off(
    city,  # noqa: F811 (the fixtures imported above)
    standin,  # noqa: F811
    start_supervisor,  # noqa: F811
):
    lpr_camera = CameraFactory(
        prefeitura=city.prefeitura, source_url=SOURCE, recording_enabled=False, lpr_enabled=True
    )
    supervisor = start_supervisor()
    name = path_of(lpr_camera)
    wait_declared(standin, name, supervisor)
    # the plain camera (no stream, no recording, no LPR) gets no path
    assert path_of(city.camera) not in standin.config_paths()

    Camera.objects.filter(pk=lpr_camera.pk).update(lpr_enabled=False)
    wait_for(
        lambda: name not in standin.config_paths(),
        "the LPR camera's path removed once LPR is off",
        supervisor=supervisor,
    )

    # turned on again, but the camera disabled: still no path
    Camera.objects.filter(pk=lpr_camera.pk).update(lpr_enabled=True, enabled=False)
    wait_ticks(standin, supervisor)
    assert name not in standin.config_paths()
