"""Plate mode of the RTSP test camera: stream a directory of JPEG frames, looped.

Imported by server.py (system Python with GStreamer): each client's media gets an appsrc
fed with the files ``*.jpg`` of the directory in name order, at ``fps``, forever. The frames
are rendered by the project (``lpr.synthetic.write_sequence``, see testcamera/plates.py).
"""

from __future__ import annotations

from pathlib import Path

from gi.repository import Gst, GstRtspServer


def load_frames(directory: str) -> list[bytes]:
    frames = [path.read_bytes() for path in sorted(Path(directory).glob("*.jpg"))]
    if not frames:
        raise SystemExit(f"no *.jpg frames in {directory}")
    return frames


def launch_line(fps: int, keyint: int, bitrate: int) -> str:
    return (
        f"( appsrc name=src format=time caps=image/jpeg,framerate={fps}/1 "
        "! jpegdec ! videoconvert ! video/x-raw,format=I420 "
        f"! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={keyint} "
        f"bitrate={bitrate} ! rtph264pay name=pay0 pt=96 config-interval=1 )"
    )


def attach(factory: GstRtspServer.RTSPMediaFactory, frames: list[bytes], fps: int) -> None:
    """Feed every media the factory makes with ``frames``, looped, timestamped at ``fps``."""
    duration = Gst.SECOND // fps

    def on_configure(_factory, media) -> None:
        source = media.get_element().get_child_by_name("src")
        state = {"n": 0}

        def need_data(appsrc, _length) -> None:
            n = state["n"]
            buffer = Gst.Buffer.new_wrapped(frames[n % len(frames)])
            buffer.pts = n * duration
            buffer.duration = duration
            state["n"] = n + 1
            appsrc.emit("push-buffer", buffer)

        source.connect("need-data", need_data)

    factory.connect("media-configure", on_configure)
