"""Skip OCR on a still picture: a fixed street camera with no vehicle moving needs no reading.

``MotionGate.moved(frame)`` compares a small grey copy of the frame with the previous one
(mean absolute difference, 0-255). A car crossing the picture changes it by far more than the
threshold; a still scene with compression noise by less. While a pass is open the worker
reads every frame anyway (the tracker needs its votes), so a car that stops is still read.
"""

from __future__ import annotations

import cv2
import numpy as np

DEFAULT_THRESHOLD = 2.0
SIZE = (96, 54)


CELL_CHANGE = 20  # grey levels: a cell of the small copy that changed this much moved
MIN_CELLS = 3  # cells that moved, outside a zone, for "something else moves"


class MotionGate:
    def __init__(self, threshold: float = DEFAULT_THRESHOLD) -> None:
        self.threshold = threshold
        self.previous: np.ndarray | None = None
        self.diff: np.ndarray | None = None  # of the last two frames, small copy

    def moved(self, frame: np.ndarray) -> bool:
        """Whether the frame differs from the previous one (always True when disabled)."""
        grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        small = cv2.resize(grey, SIZE, interpolation=cv2.INTER_AREA)
        previous, self.previous = self.previous, small
        self.diff = None if previous is None else cv2.absdiff(small, previous)
        if self.threshold <= 0 or self.diff is None:
            return True
        return float(np.mean(self.diff)) >= self.threshold

    def moved_outside(self, zone: tuple[int, int, int, int], frame_shape: tuple[int, ...]) -> bool:
        """Whether, in the last frame given to ``moved``, something moved outside ``zone``
        (``x0, y0, x1, y1`` in the frame's pixels); True when unknown."""
        if self.diff is None:
            return True
        height, width = frame_shape[:2]
        sx, sy = SIZE[0] / width, SIZE[1] / height
        x0, y0, x1, y1 = zone
        changed = self.diff >= CELL_CHANGE
        changed[
            max(0, int(y0 * sy)) : min(SIZE[1], int(np.ceil(y1 * sy))),
            max(0, int(x0 * sx)) : min(SIZE[0], int(np.ceil(x1 * sx))),
        ] = False
        return int(np.count_nonzero(changed)) >= MIN_CELLS
