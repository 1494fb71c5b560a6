"""Full-frame OCR of licence plates with RapidOCR (PP-OCR ONNX models bundled in its wheel).

Offline by construction: the detection and recognition models are named by path inside the
installed ``rapidocr`` package (choosing a model by name would download it), the recognition
model carries its own character table, and onnxruntime's telemetry is off
(``ORT_DISABLE_TELEMETRY=1``, set before onnxruntime is imported; onnxruntime is pinned to a
version that writes nothing under ``~/.cache/Microsoft``).

``PlateReader.read(frame)`` scales the frame so its width is at most ``DEFAULT_MAX_WIDTH``
(960 px), runs detection + recognition, and keeps only plate-shaped text: one text line that
``plates.parse`` accepts with plausible geometry, or two adjacent lines ``ABC`` + ``1234``
(an old plate split at its dash). Boxes come back in the frame's own pixels.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from lpr import plates  # noqa: E402

DEFAULT_MAX_WIDTH = 960
MIN_TEXT_SCORE = 0.6
# Plate text lines: ``ABC1D23`` / ``ABC-1234`` are about 3.5-6 times wider than tall.
MIN_ASPECT, MAX_ASPECT = 2.2, 8.5
MIN_TEXT_HEIGHT_PX = 8
MAX_TEXT_HEIGHT_FRACTION = 0.25  # a plate's characters never fill a quarter of the frame
MODEL_FILES = {"det": "PP-OCRv6_det_small.onnx", "rec": "PP-OCRv6_rec_small.onnx"}
CROP_MARGIN = 0.35  # around the characters, to include the plate's frame and band

logger = logging.getLogger(__name__)


def model_dir() -> Path:
    """The ``models`` folder inside the installed rapidocr package."""
    import rapidocr

    return Path(rapidocr.__file__).resolve().parent / "models"


def model_paths() -> dict[str, Path]:
    """The bundled model files; FileNotFoundError if one is missing (never downloaded)."""
    paths = {task: model_dir() / name for task, name in MODEL_FILES.items()}
    for path in paths.values():
        if not path.is_file():
            raise FileNotFoundError(f"bundled OCR model missing: {path}")
    return paths


Box = tuple[float, float, float, float]  # x, y, width, height
Line = tuple[str, float, Box]  # text, OCR score, box
Region = tuple[int, int, int, int]  # x0, y0, x1, y1 in the frame's pixels


@dataclass(frozen=True)
class Candidate:
    """A plate seen in one frame."""

    plate: str
    format: plates.Format
    confidence: float
    bbox: tuple[int, int, int, int]  # x, y, width, height in the frame's pixels
    text: str  # what OCR read, before correction


def _box(points: np.ndarray) -> tuple[float, float, float, float]:
    xs, ys = points[:, 0], points[:, 1]
    return float(xs.min()), float(ys.min()), float(xs.max() - xs.min()), float(ys.max() - ys.min())


def plausible(box: tuple[float, float, float, float], frame_height: float) -> bool:
    """Whether a text box has the geometry of a plate's characters."""
    _, _, w, h = box
    if h < MIN_TEXT_HEIGHT_PX or h > frame_height * MAX_TEXT_HEIGHT_FRACTION:
        return False
    return MIN_ASPECT <= w / h <= MAX_ASPECT


def _style_hint(box: tuple[float, ...], lines: list[tuple[str, tuple[float, ...]]]) -> str | None:
    """``mercosul`` when a ``BRASIL`` band is read just above the characters."""
    x, y, w, h = box
    for text, (bx, by, bw, bh) in lines:
        above = by < y and y - (by + bh) < 1.5 * h and bx < x + w and bx + bw > x
        if above and "BRASIL" in plates.clean(text):
            return plates.MERCOSUL
    return None


def candidates_from_lines(lines: list[Line], frame_height: float) -> list[Candidate]:
    """Plate candidates from OCR lines ``(text, score, (x, y, w, h))``: plate-shaped only."""
    found: list[Candidate] = []
    boxes = [(text, box) for text, _, box in lines]
    groups: list[Line] = [line for line in lines if line[1] >= MIN_TEXT_SCORE]
    # An old plate may come back as two lines, "ABC" and "1234", side by side.
    for a in lines:
        for b in lines:
            ta, tb = plates.clean(a[0]), plates.clean(b[0])
            if a is b or len(ta) != 3 or len(tb) != 4 or min(a[1], b[1]) < MIN_TEXT_SCORE:
                continue
            (ax, ay, aw, ah), (bx, by, bw, bh) = a[2], b[2]
            if not (0.7 <= ah / bh <= 1.4 and abs((ay + ah / 2) - (by + bh / 2)) < 0.5 * ah):
                continue
            if not (0 <= bx - (ax + aw) <= 1.5 * ah):
                continue
            merged = (ax, min(ay, by), bx + bw - ax, max(ay + ah, by + bh) - min(ay, by))
            groups.append((f"{ta}-{tb}", min(a[1], b[1]), merged))
    for text, score, box in groups:
        if not plausible(box, frame_height):
            continue
        plate = plates.parse(text, hint=_style_hint(box, boxes))
        if plate is None:
            continue
        # Each correction is a doubt: it lowers the confidence.
        confidence = score * (0.9**plate.corrections)
        x, y, w, h = box
        found.append(
            Candidate(
                plate=plate.plate,
                format=plate.format,
                confidence=round(confidence, 4),
                bbox=(round(x), round(y), round(w), round(h)),
                text=text,
            )
        )
    return found


def _without_spinning() -> None:
    """onnxruntime's thread pool spin-waits between operators by default: on a node shared
    with recording and the web that burns CPU others need (measured here under load: ~1.0
    CPU-s per frame with spinning, ~0.66 without). RapidOCR builds the session options
    itself, so its builder is wrapped once to turn spinning off."""
    from rapidocr.inference_engine.onnxruntime.main import OrtInferSession

    build = OrtInferSession._init_sess_opts
    if getattr(build, "gtv_no_spin", False):
        return

    def no_spin(cfg):
        options = build(cfg)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        return options

    no_spin.gtv_no_spin = True
    OrtInferSession._init_sess_opts = staticmethod(no_spin)


class PlateReader:
    """One OCR engine (load it once per process: it takes a second or two)."""

    def __init__(self, max_width: int = DEFAULT_MAX_WIDTH, threads: int | None = None) -> None:
        from rapidocr import RapidOCR

        _without_spinning()

        paths = model_paths()
        params = {
            "Global.use_cls": False,  # plates are upright
            "Global.log_level": "warning",
            "Global.text_score": 0.3,
            "Det.model_path": str(paths["det"]),
            "Rec.model_path": str(paths["rec"]),
            "Det.limit_type": "max",
            "Det.limit_side_len": max_width,
        }
        if threads:
            params["EngineConfig.onnxruntime.intra_op_num_threads"] = threads
            params["EngineConfig.onnxruntime.inter_op_num_threads"] = 1
        self.engine = RapidOCR(params=params)
        self.max_width = max_width

    def lines(self, frame: np.ndarray, region: Region | None = None) -> list[Line]:
        """OCR text lines of a BGR frame ``(text, score, (x, y, w, h))`` in frame pixels; with
        ``region`` (``x0, y0, x1, y1``) only that part is read, at the whole frame's scale
        (the same character sizes, a fraction of the detection work)."""
        scale = min(1.0, self.max_width / frame.shape[1])
        x0, y0 = 0, 0
        if region is not None:
            x0, y0, x1, y1 = region
            frame = frame[y0:y1, x0:x1]
            if frame.size == 0:
                return []
        image = frame if scale == 1.0 else cv2.resize(frame, None, fx=scale, fy=scale)
        result = self.engine(image)
        if result.boxes is None or result.txts is None:
            return []
        out = []
        for points, text, score in zip(result.boxes, result.txts, result.scores, strict=False):
            x, y, w, h = _box(np.asarray(points, dtype=float))
            box = (x / scale + x0, y / scale + y0, w / scale, h / scale)
            out.append((str(text), float(score), box))
        return out

    def read(self, frame: np.ndarray, region: Region | None = None) -> list[Candidate]:
        """Plate candidates in a BGR frame (or only in its ``region``)."""
        return candidates_from_lines(self.lines(frame, region), frame.shape[0])


def crop_jpeg(frame: np.ndarray, bbox: tuple[int, int, int, int], quality: int = 90) -> bytes:
    """A JPEG of the plate around ``bbox`` (the characters), with a margin for its frame."""
    x, y, w, h = bbox
    mx, my = round(w * CROP_MARGIN), round(h * CROP_MARGIN * 2)
    height, width = frame.shape[:2]
    x0, y0 = max(0, x - mx), max(0, y - my)
    x1, y1 = min(width, x + w + mx), min(height, y + h + my)
    ok, data = cv2.imencode(".jpg", frame[y0:y1, x0:x1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("could not encode the crop")
    return data.tobytes()


def decode_jpeg(data: bytes) -> np.ndarray | None:
    """A BGR frame from JPEG bytes (None when they are not a picture)."""
    frame = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    return frame if frame is not None and frame.size else None
