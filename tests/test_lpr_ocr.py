"""OCR on the project's synthetic plates (lpr/ocr.py + lpr/synthetic.py), offline."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from lpr import ocr, plates, synthetic

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def reader():
    return ocr.PlateReader()


def bgr(image) -> np.ndarray:
    return cv2.cvtColor(np.asarray(image), cv2.COLOR_RGB2BGR)


def test_models_are_the_bundled_files():
    paths = ocr.model_paths()
    package = ocr.model_dir()
    assert set(paths) == {"det", "rec"}
    for path in paths.values():
        assert path.parent == package and path.is_file()


@pytest.mark.parametrize(
    ("plate", "degraded"),
    [("BRA2E19", False), ("QRS4J07", True), ("GHI4567", False), ("MNO8012", True)],
)
def test_reads_synthetic_plates_exactly(reader, plate, degraded):
    frames = list(synthetic.pass_frames(plate, frames=5, seed=7, degraded=degraded))
    seen = [c.plate for f in frames[1:4] for c in reader.read(bgr(f.image))]
    assert seen, f"{plate}: nothing read"
    voted, _ = plates.vote([(p, 1.0) for p in seen])
    assert voted == plate, seen


def test_onnxruntime_threads_do_not_spin(reader):
    frame = next(synthetic.pass_frames("ABC1D23", frames=2, seed=1))
    reader.read(bgr(frame.image))  # the sessions are made on first use
    for part in (reader.engine.text_det, reader.engine.text_rec):
        options = part.session.session.get_session_options()
        assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_street_text_is_never_read_as_a_plate(reader):
    for seed in range(4):
        for frame in synthetic.distractor_frames(frames=1, seed=seed):
            lines = reader.lines(bgr(frame.image))
            assert lines, "the distractor text should be seen by OCR"
            assert reader.read(bgr(frame.image)) == [], [text for text, _, _ in lines]


def test_candidate_box_and_crop(reader):
    frame = next(synthetic.pass_frames("ABC1D23", frames=3, seed=1))
    image = bgr(frame.image)
    (candidate,) = reader.read(image)
    x, y, w, h = candidate.bbox
    assert 0 < w < image.shape[1] and 0 < h < image.shape[0]
    assert 2 < w / h < 9
    crop = ocr.crop_jpeg(image, candidate.bbox)
    assert crop[:2] == b"\xff\xd8"
    decoded = ocr.decode_jpeg(crop)
    assert decoded is not None and decoded.shape[1] > w
    assert ocr.decode_jpeg(b"not a jpeg") is None


def test_ocr_writes_nothing_under_home_and_needs_no_network(tmp_path):
    """onnxruntime telemetry (~/.cache/Microsoft) and model downloads stay off."""
    home = tmp_path / "home"
    home.mkdir()
    script = (
        "import socket\n"
        "def refuse(*a, **k):\n"
        "    raise OSError('network used')\n"
        "socket.socket.connect = refuse\n"
        "socket.create_connection = refuse\n"
        "from lpr import ocr, synthetic\n"
        "import numpy as np, cv2\n"
        "frame = next(synthetic.pass_frames('ABC1D23', frames=3, seed=1))\n"
        "image = cv2.cvtColor(np.asarray(frame.image), cv2.COLOR_RGB2BGR)\n"
        "print([c.plate for c in ocr.PlateReader().read(image)])\n"
    )
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "['ABC1D23']"
    assert list(home.rglob("*")) == []  # not even ~/.cache/Microsoft
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home"]


def test_motion_gate_skips_a_still_picture_and_not_a_passing_car():
    from lpr.motion import MotionGate

    street = [bgr(f.image) for f in synthetic.distractor_frames(frames=2, seed=3)]
    cars = [bgr(f.image) for f in synthetic.pass_frames("ABC1D23", frames=4, seed=3)]
    gate = MotionGate()
    assert gate.moved(street[0])  # the first frame is always read
    assert not gate.moved(street[1])
    assert gate.moved(cars[0]) and gate.moved(cars[1]) and gate.moved(cars[2])
    noisy = np.clip(
        cars[2].astype(int) + np.random.default_rng(1).integers(-3, 4, cars[2].shape), 0, 255
    )
    assert not gate.moved(noisy.astype(np.uint8))  # sensor/compression noise is not motion
    always = MotionGate(threshold=0)
    assert always.moved(street[0]) and always.moved(street[0])
