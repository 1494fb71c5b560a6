"""The test camera in plate mode: cars carrying given plates cross the picture, in a loop.

    with PlateCamera(["ABC1D23", "XYZ1234"], user="u", password="p") as camera:
        url = camera.url("cam1")

Frames are rendered by ``lpr.synthetic`` (Pillow, DejaVu fonts) into a temporary directory
and streamed by the GStreamer server (testcamera/image_source.py) as H.264 over RTSP.
"""

from __future__ import annotations

import shutil
import tempfile

from testcamera import TestCamera


class PlateCamera(TestCamera):
    """A ``TestCamera`` whose mounts loop one pass per plate, with street-text gaps."""

    def __init__(
        self,
        plate_list: list[str],
        *,
        fps: int = 10,
        pass_s: float = 1.5,
        gap_s: float = 1.5,
        degraded: bool = False,
        size: tuple[int, int] = (1280, 720),
        **kwargs,
    ) -> None:
        from lpr.synthetic import write_sequence

        self.frames_dir = tempfile.mkdtemp(prefix="gtv-plates-")
        self.frame_count = write_sequence(
            self.frames_dir,
            list(plate_list),
            fps=fps,
            pass_s=pass_s,
            gap_s=gap_s,
            degraded=degraded,
            size=size,
        )
        self.loop_s = self.frame_count / fps
        kwargs.setdefault("bitrate", 3000)
        super().__init__(
            fps=fps, width=size[0], height=size[1], frames_dir=self.frames_dir, **kwargs
        )

    def cleanup(self) -> None:
        """Stop and remove the rendered frames."""
        self.stop()
        shutil.rmtree(self.frames_dir, ignore_errors=True)

    def __exit__(self, *exc_info) -> None:
        self.cleanup()
