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


class MotionGate:
    def __init__(self, threshold: float = DEFAULT_THRESHOLD) -> None:
        self.threshold = threshold
        self.previous: np.ndarray | None = None

    def moved(self, frame: np.ndarray) -> bool:
        """Whether the frame differs from the previous one (always True when disabled)."""
        grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        small = cv2.resize(grey, SIZE, interpolation=cv2.INTER_AREA)
        previous, self.previous = self.previous, small
        if self.threshold <= 0 or previous is None:
            return True
        return float(np.mean(cv2.absdiff(small, previous))) >= self.threshold
