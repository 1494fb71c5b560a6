"""Clock mode of the RTSP test camera: every frame carries the wall-clock time it was made.

The server (system Python with GStreamer) feeds each client's media an ``appsrc`` with raw
I420 frames built here, one every 1/fps s, each stamped with ``time.time()`` in milliseconds
at the moment it is pushed to the encoder (its capture time). The stamp is drawn as two bands
of black/white blocks across the top of the picture: ``BITS`` bits (most significant first)
between a white and a black marker block, then the same bits inverted, so a reader can check
what it decoded. Blocks are large enough to survive H.264 at the test camera's bitrates.

``read_stamp`` (pure Python, no GStreamer) decodes a frame in 8-bit gray (FFmpeg
``-pix_fmt gray``): ``bench/latency.py`` compares it with its own clock.
"""

from __future__ import annotations

import threading
import time

BITS = 48  # epoch milliseconds: 2**48 ms is year 10889
BLOCKS = BITS + 2  # a white and a black marker around the bits
WHITE, BLACK, BACKGROUND = 235, 16, 110


def geometry(width: int, height: int) -> tuple[int, int, int]:
    """(block width, band height, top margin) in pixels for a ``width`` x ``height`` picture."""
    block_w = width // BLOCKS
    band_h = max(8, height // 16)
    if block_w < 4:
        raise ValueError(f"picture too narrow for the clock: {width} px")
    return block_w, band_h, band_h // 2


def _row(bits: list[int], width: int, block_w: int) -> bytes:
    levels = [WHITE, *(WHITE if bit else BLACK for bit in bits), BLACK]
    row = b"".join(bytes([level]) * block_w for level in levels)
    return row + bytes([BACKGROUND]) * (width - len(row))


def stamp_bits(value: int) -> list[int]:
    return [(value >> (BITS - 1 - i)) & 1 for i in range(BITS)]


class FrameMaker:
    """I420 frames of a gray picture with ``stamp_ms`` drawn into its top bands."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.block_w, self.band_h, self.top = geometry(width, height)
        chroma = (width // 2) * (height // 2)
        self.luma = bytes([BACKGROUND]) * (width * height)
        self.chroma = bytes([128]) * (2 * chroma)

    def frame(self, stamp_ms: int, tick: int = 0) -> bytes:
        width = self.width
        y = bytearray(self.luma)
        bits = stamp_bits(stamp_ms)
        bands = (_row(bits, width, self.block_w), _row([1 - b for b in bits], width, self.block_w))
        for index, row in enumerate(bands):
            first = self.top + index * self.band_h
            for line in range(first, first + self.band_h):
                y[line * width : (line + 1) * width] = row
        # something that moves below the bands (a bar crossing the picture): real encoder work
        bar_x = (tick * 8) % max(1, width - 32)
        for line in range(self.height // 2, self.height // 2 + 32):
            start = line * width + bar_x
            y[start : start + 32] = bytes([WHITE]) * 32
        return bytes(y) + self.chroma


def _band_bits(gray: bytes, width: int, line: int, block_w: int) -> tuple[list[int], bool]:
    """The bits of one band read on ``line``; False when its markers are not white/black."""
    offset = line * width
    levels = []
    for block in range(BLOCKS):
        left = offset + block * block_w + block_w // 4
        samples = gray[left : left + max(1, block_w // 2)]
        levels.append(sum(samples) / len(samples))
    white, black = levels[0], levels[-1]
    if white - black < 60:
        return [], False
    threshold = (white + black) / 2
    return [1 if level > threshold else 0 for level in levels[1:-1]], True


def read_stamp(gray: bytes, width: int, height: int) -> int | None:
    """The stamp (epoch ms) drawn in a gray frame, or None when it does not read back."""
    if len(gray) < width * height:
        return None
    block_w, band_h, top = geometry(width, height)
    bits, ok = _band_bits(gray, width, top + band_h // 2, block_w)
    inverted, ok2 = _band_bits(gray, width, top + band_h + band_h // 2, block_w)
    if not (ok and ok2) or any(a == b for a, b in zip(bits, inverted, strict=True)):
        return None
    value = 0
    for bit in bits:
        value = (value << 1) | bit
    return value


# -- the server side (system Python with GStreamer) --------------------------------------------


def launch_line(width: int, height: int, fps: int, keyint: int, bitrate: int) -> str:
    caps = f"video/x-raw,format=I420,width={width},height={height},framerate={fps}/1"
    return (
        f"( appsrc name=src is-live=true do-timestamp=true format=time caps={caps} "
        f"! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={keyint} "
        f"bitrate={bitrate} ! rtph264pay name=pay0 pt=96 config-interval=1 )"
    )


def attach(factory, width: int, height: int, fps: int) -> None:
    """Feed every media the factory makes with stamped frames, one every 1/fps s, from a
    thread of its own (stamped at push: the capture time), until the media goes away."""
    from gi.repository import Gst

    maker = FrameMaker(width, height)
    period = 1.0 / fps

    def on_configure(_factory, media) -> None:
        source = media.get_element().get_child_by_name("src")
        stop = threading.Event()
        media.connect("unprepared", lambda *_: stop.set())

        def feed() -> None:
            tick = 0
            next_at = time.monotonic()
            while not stop.is_set():
                data = maker.frame(int(time.time() * 1000), tick)
                buffer = Gst.Buffer.new_wrapped(data)
                buffer.duration = Gst.SECOND // fps
                flow = source.emit("push-buffer", buffer)
                if flow != Gst.FlowReturn.OK and stop.wait(period):  # not playing (yet)
                    break
                tick += 1
                next_at += period
                delay = next_at - time.monotonic()
                if delay < -1.0:  # fell far behind (a paused media): start the schedule again
                    next_at = time.monotonic()
                elif delay > 0:
                    stop.wait(delay)

        threading.Thread(target=feed, name="clock-feed", daemon=True).start()

    factory.connect("media-configure", on_configure)
