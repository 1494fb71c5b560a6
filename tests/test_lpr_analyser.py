"""Following the plate between frames (lpr/analyser.py): after the whole frame found a plate,
the next frames of its pass read only the plate's region and still read it exactly; the
whole frame is read again when the region shows nothing, and while following, at least
every ``full_every_s`` (a second car is not missed). Real OCR on the synthetic set."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from lpr import ocr, synthetic
from lpr.analyser import FrameAnalyser, region_around
from lpr.motion import MotionGate
from lpr.tracker import PlateTracker

pytestmark = pytest.mark.timeout(300)
FPS = 3.0


@pytest.fixture(scope="module")
def reader():
    return ocr.PlateReader()


def bgr(image) -> np.ndarray:
    return cv2.cvtColor(np.asarray(image), cv2.COLOR_RGB2BGR)


class CountingReader:
    """The real reader, recording what each call read (the whole frame or a region)."""

    def __init__(self, reader: ocr.PlateReader) -> None:
        self.reader = reader
        self.calls: list[tuple[int, int, int, int] | None] = []

    def read(self, frame, region=None):
        self.calls.append(region)
        return self.reader.read(frame, region)


def play(analyser: FrameAnalyser, frames) -> tuple[list[str], list[str | None]]:
    reads, modes = [], []
    for i, image in enumerate(frames):
        reads += [r.plate for r in analyser.analyse(i / FPS, image)]
        modes.append(analyser.last_mode)
    reads += [r.plate for r in analyser.tracker.flush(len(frames) / FPS, force=True)]
    return reads, modes


@pytest.mark.parametrize(("plate", "degraded"), [("BRA2E19", False), ("GHI4567", True)])
def test_a_pass_is_followed_by_its_region_and_read_exactly(reader, plate, degraded):
    frames = [bgr(f.image) for f in synthetic.pass_frames(plate, frames=8, degraded=degraded)]
    counting = CountingReader(reader)
    # no full-frame refresh within this short pass: every later frame is a region read
    analyser = FrameAnalyser(counting, PlateTracker(), MotionGate(0), full_every_s=60)
    reads, modes = play(analyser, frames)
    assert reads == [plate]
    assert modes[0] == "full"
    assert modes[1:] == ["region"] * (len(frames) - 1)
    height, width = frames[0].shape[:2]
    for region in counting.calls[1:]:
        x0, y0, x1, y1 = region
        assert (x1 - x0) * (y1 - y0) < width * height / 5  # a small part of the picture


def test_a_lone_car_needs_one_whole_frame_and_the_next_car_is_read_whole(reader):
    plate = "QRS4J07"
    frames = [bgr(f.image) for f in synthetic.pass_frames(plate, frames=6, seed=3)]
    frames += [bgr(f.image) for f in synthetic.distractor_frames(frames=3, seed=4)]
    frames += [bgr(f.image) for f in synthetic.pass_frames("ABC1234", frames=3, seed=8)]
    counting = CountingReader(reader)
    # every frame analysed (threshold 0); the whole frame due every second
    analyser = FrameAnalyser(counting, PlateTracker(), MotionGate(0), full_every_s=1.0)
    reads, modes = play(analyser, frames)
    assert reads == [plate, "ABC1234"]
    # nothing but the followed car moves: no periodic whole frame (its 2nd second included)
    assert modes[:6] == ["full"] + ["region"] * 5
    # another street (the whole picture changed): read whole; no plate, nothing followed
    assert modes[6:9] == ["full"] * 3
    assert modes[9] == "full" and modes[10:] == ["region", "region"]


def test_a_second_car_entering_is_found_by_the_periodic_whole_frame(reader):
    """Car A is followed; car B (another plate) is only in the picture's other half."""
    a = [bgr(f.image) for f in synthetic.pass_frames("BRA2E19", frames=12, seed=5)]
    b = [bgr(f.image) for f in synthetic.pass_frames("GHI4567", frames=12, seed=6)]
    width = a[0].shape[1]
    # A's plate lies in the left half in its first 4 frames, B's in the right half in its last
    frames = []
    for fa, fb in zip(a[:4], b[8:], strict=True):
        merged = fa.copy()
        merged[:, width // 2 :] = fb[:, width // 2 :]
        frames.append(merged)
    analyser = FrameAnalyser(reader, PlateTracker(), MotionGate(0), full_every_s=1.0)
    reads, modes = play(analyser, frames)
    assert modes[0] == "full" and "region" in modes
    assert modes[3] == "full"  # 1 s later, B moves outside A's car: the whole frame again
    assert sorted(reads) == ["BRA2E19", "GHI4567"]


def test_region_around_follows_the_displacement_and_stays_in_the_frame():
    shape = (720, 1280, 3)
    box, previous = (600, 500, 200, 40), (480, 500, 200, 40)
    x0, y0, x1, y1 = region_around(box, previous, shape)
    assert x0 < 600 + 120 and x1 > 600 + 200 + 120  # the next position is inside
    assert x0 > 400  # not much further back than where it was
    assert y0 < 500 - 40 and y1 > 540  # room for the band above
    assert region_around((1200, 700, 200, 40), None, shape)[2:] == (1280, 720)
    assert region_around((0, 0, 200, 40), None, shape)[:2] == (0, 0)


def test_motion_outside_the_followed_car_is_seen_and_the_car_itself_ignored():
    still = np.full((720, 1280, 3), 90, np.uint8)
    gate = MotionGate()
    gate.moved(still)
    car = still.copy()
    car[400:700, 300:700] = 200  # the followed car moved
    assert gate.moved(car)
    assert not gate.moved_outside((250, 300, 750, 720), car.shape)
    other = car.copy()
    other[400:600, 1000:1200] = 10  # and another one, elsewhere
    gate.moved(car)
    gate.moved(other)
    assert gate.moved_outside((250, 300, 750, 720), other.shape)
    assert not gate.moved_outside((0, 0, 1280, 720), other.shape)
