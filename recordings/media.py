"""FFmpeg runs on recorded files: duration, keyframes, snapshot, clip. Argv lists, no shell."""

from __future__ import annotations

import re
import subprocess
import tempfile
import threading
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

from streaming.ffmpeg import (
    ProgressParser,
    clip_argv,
    ffmpeg_env,
    ffmpeg_exe,
    parse_progress,
    snapshot_argv,
    summarize_stderr,
)

PROBE_TIMEOUT_S = 60
SNAPSHOT_TIMEOUT_S = 20
_QUIET = ["-hide_banner", "-nostdin", "-loglevel", "level+error"]
_TIMEBASE = re.compile(r"^#tb 0: (\d+)/(\d+)")


class MediaError(Exception):
    """An FFmpeg run on a recording failed; the message is short and readable."""


def _run(argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            argv,
            capture_output=True,
            text=True,
            errors="replace",
            env=ffmpeg_env(),
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise MediaError(f"ffmpeg timed out after {timeout:g} s") from exc


def measure_duration(path: Path) -> float | None:
    """Seconds of media in ``path`` (read through with codec copy); None when unreadable."""
    argv = [ffmpeg_exe(), *_QUIET, "-i", str(path), "-c", "copy"]
    argv += ["-progress", "pipe:1", "-nostats", "-f", "null", "-"]
    result = _run(argv, PROBE_TIMEOUT_S)
    progress = parse_progress(result.stdout.splitlines())
    micros = progress.get("out_time_us")
    if not isinstance(micros, int) or micros <= 0 or not progress.get("frame"):
        return None
    return micros / 1_000_000


def keyframe_times(path: Path) -> list[float]:
    """Presentation times (s, file's own timestamps) of the video keyframes, without decoding.

    ``framecrc`` prints one line per packet and adds ``F=0x..`` only to packets whose flags
    are not exactly "key".
    """
    argv = [ffmpeg_exe(), *_QUIET, "-i", str(path), "-map", "0:v:0", "-c", "copy"]
    argv += ["-f", "framecrc", "-"]
    result = _run(argv, PROBE_TIMEOUT_S)
    if result.returncode != 0:
        raise MediaError(summarize_stderr(result.stderr.splitlines()) or "unreadable segment")
    timebase = Fraction(1, 90000)
    times = []
    for line in result.stdout.splitlines():
        if match := _TIMEBASE.match(line):
            timebase = Fraction(int(match.group(1)), int(match.group(2)))
            continue
        if line.startswith("#"):
            continue
        fields = [field.strip() for field in line.split(",")]
        if len(fields) < 6:
            continue
        flags = next((f for f in fields[6:] if f.startswith("F=")), None)
        if flags is None or int(flags[2:], 16) & 1:
            times.append(float(int(fields[2]) * timebase))
    return times


def snapshot(path: Path, offset_s: float) -> bytes:
    """JPEG of the frame at ``offset_s`` (or, past the last frame, of the segment's start)."""
    with tempfile.TemporaryDirectory(prefix="gtv-snap-") as tmp:
        out = Path(tmp) / "frame.jpg"
        for offset in dict.fromkeys([max(offset_s, 0.0), 0.0]):
            result = _run(snapshot_argv(path, offset, out), SNAPSHOT_TIMEOUT_S)
            if out.exists() and out.stat().st_size > 0:
                return out.read_bytes()
        raise MediaError(summarize_stderr(result.stderr.splitlines()) or "no frame decoded")


def export_clip(
    list_path: Path,
    out_path: Path,
    *,
    on_progress: Callable[[float], None],
    timeout_s: float,
) -> None:
    """Run ``clip_argv``; ``on_progress`` gets the seconds written so far."""
    argv = clip_argv(list_path, out_path)
    with tempfile.TemporaryFile(mode="w+", errors="replace") as stderr:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=ffmpeg_env(),
            text=True,
            errors="replace",
        )
        timer = threading.Timer(timeout_s, proc.kill)
        timer.start()
        try:
            parser = ProgressParser()
            assert proc.stdout is not None
            for line in proc.stdout:
                block = parser.feed(line)
                micros = block.get("out_time_us") if block else None
                if isinstance(micros, int) and micros > 0:
                    on_progress(micros / 1_000_000)
            code = proc.wait()
        finally:
            timer.cancel()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if code != 0:
            stderr.seek(0)
            reason = summarize_stderr(stderr.read().splitlines())
            if code < 0:
                reason = reason or f"ffmpeg stopped after {timeout_s:g} s"
            raise MediaError(reason or f"ffmpeg exited with status {code}")
