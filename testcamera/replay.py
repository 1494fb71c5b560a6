"""Replay mode of the RTSP test camera: pre-encoded H.264, looped, no per-client encoding.

A short clip (FFmpeg's ``testsrc2``: moving pattern and a frame counter) is encoded once
with libx264 into a raw Annex B file (an access unit delimiter before each frame, SPS/PPS
before each keyframe, no B-frames) and cached on disk by its parameters. The server
(``server.py --replay``) loads it into memory once, splits it into access units, and every
client's media pushes them from an ``appsrc``, looped, with timestamps that keep
increasing across loops (``n × frame duration``): a recorder sees one continuous stream,
whose keyframes stay every ``keyint`` frames (the clip holds whole GOPs).

Importable from both interpreters (the project's venv and the system Python with
GStreamer); ``attach`` needs ``gi``, imported only when called.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

AUD = b"\x00\x00\x00\x01\x09"
CLIP_SECONDS = 20
CACHE_VERSION = 1


def cache_dir() -> Path:
    """Where encoded clips are kept (``GTV_TESTCAMERA_CACHE`` or a temp directory)."""
    default = Path(tempfile.gettempdir()) / f"gtv-testcamera-{os.getuid()}"
    return Path(os.environ.get("GTV_TESTCAMERA_CACHE") or default)


def clip_frames(fps: int, keyint: int, seconds: int = CLIP_SECONDS) -> int:
    """Frames in the clip: about ``seconds`` long, a whole number of GOPs."""
    gops = max(1, round(seconds * fps / keyint))
    return gops * keyint


def encode(
    ffmpeg: str,
    *,
    width: int,
    height: int,
    fps: int,
    keyint: int,
    bitrate: int,
    seconds: int = CLIP_SECONDS,
) -> Path:
    """The clip's path, encoded now with ``ffmpeg`` unless already cached."""
    frames = clip_frames(fps, keyint, seconds)
    name = f"v{CACHE_VERSION}-{width}x{height}-{fps}fps-k{keyint}-{bitrate}k-{frames}f.h264"
    path = cache_dir() / name
    if path.exists() and path.stat().st_size > 0:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{name}.{os.getpid()}")
    argv = [
        ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate={fps}",
        "-frames:v", str(frames),
        "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency",
        "-g", str(keyint), "-keyint_min", str(keyint), "-sc_threshold", "0", "-bf", "0",
        "-b:v", f"{bitrate}k", "-maxrate", f"{bitrate}k", "-bufsize", f"{bitrate}k",
        "-pix_fmt", "yuv420p", "-x264-params", "aud=1:repeat-headers=1",
        "-f", "h264", str(partial),
    ]  # fmt: skip
    try:
        subprocess.run(argv, check=True, capture_output=True, timeout=300)
        os.replace(partial, path)  # atomic: concurrent encoders both end with a whole file
    finally:
        partial.unlink(missing_ok=True)
    return path


def split_access_units(data: bytes) -> list[tuple[bytes, bool]]:
    """``(access unit, is keyframe)`` for each frame of an AUD-delimited Annex B stream."""
    units = []
    start = data.find(AUD)
    while start != -1:
        end = data.find(AUD, start + len(AUD))
        unit = data[start : end if end != -1 else len(data)]
        units.append((unit, _has_idr(unit)))
        start = end
    if not units or not units[0][1]:
        raise ValueError("the replay clip must start with a keyframe")
    return units


def _has_idr(unit: bytes) -> bool:
    index = unit.find(b"\x00\x00\x01")
    while index != -1:
        if index + 3 < len(unit) and unit[index + 3] & 0x1F == 5:
            return True
        index = unit.find(b"\x00\x00\x01", index + 3)
    return False


def load(path: str | Path) -> list[tuple[bytes, bool]]:
    return split_access_units(Path(path).read_bytes())


def launch_line() -> str:
    return (
        "( appsrc name=src format=time "
        "caps=video/x-h264,stream-format=byte-stream,alignment=au "
        "! rtph264pay name=pay0 pt=96 config-interval=1 )"
    )


_wrapped: dict[int, list[Any]] = {}  # id(units) -> their Gst buffers (units live forever)


def attach(factory: Any, units: list[tuple[bytes, bool]], fps: int) -> None:
    """Feed every media the factory makes with ``units``, looped, timestamped at ``fps``."""
    from gi.repository import Gst

    duration = Gst.SECOND // fps
    buffers = _wrapped.get(id(units))
    if buffers is None:  # wrapped once, shared read-only by every mount and client
        buffers = []
        for unit, keyframe in units:
            buffer = Gst.Buffer.new_wrapped(unit)
            if not keyframe:
                buffer.set_flags(Gst.BufferFlags.DELTA_UNIT)
            buffers.append(buffer)
        _wrapped[id(units)] = buffers
    count = len(buffers)

    def on_configure(_factory: Any, media: Any) -> None:
        source = media.get_element().get_child_by_name("src")
        state = {"n": 0}

        def need_data(appsrc: Any, _length: int) -> None:
            # A second of frames per call: the sink paces them; fewer Python calls.
            n = state["n"]
            for k in range(n, n + fps):
                buffer = buffers[k % count].copy()  # metadata only: the memory is shared
                buffer.pts = buffer.dts = k * Gst.SECOND // fps  # exact: no drift over loops
                buffer.duration = duration
                appsrc.emit("push-buffer", buffer)
            state["n"] = n + fps

        source.connect("need-data", need_data)

    factory.connect("media-configure", on_configure)
