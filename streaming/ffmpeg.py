"""FFmpeg command lines for the embedded media engine.

Pure functions: they build argv lists (never shell strings), parse ``-progress`` output and
turn FFmpeg's stderr into short messages. Nothing here starts a process or imports Django.

Facts these functions rely on (measured with imageio-ffmpeg's FFmpeg 9.0.2):

* The rtsp demuxer's ``-timeout`` is the socket I/O timeout in microseconds. Without it a
  camera that stops sending makes FFmpeg hang forever. When it fires mid-stream FFmpeg logs
  ``Connection timed out`` and still exits with status 0, so any exit is a failure to the
  caller unless it asked for it.
* The ``tee`` muxer needs explicit ``-map``. Its argument is split twice: first into outputs
  at ``|``, then each ``[key=value:...]`` option list at ``:`` and ``]``. Both levels take
  ``\\`` escapes, so values are escaped twice and the output path once (see ``tee_escape``).
* ``-strftime 1`` in the segment muxer formats names with ``localtime()``: the child must run
  with ``TZ=UTC`` (see ``ffmpeg_env``) for the ``...Z.ts`` names to be UTC.
* ``segments.csv`` (``-segment_list_type csv``) gets one line ``name,start,end`` appended and
  flushed as each recording segment closes (start/end: seconds since that FFmpeg started);
  it is truncated when FFmpeg restarts, and the segment open at a kill is never listed. With
  ``reset_timestamps`` every segment's own timestamps start at 0.
* Segment names have one-second resolution and are taken when a segment opens: segments
  must be longer than the burst FFmpeg reads at start-up (probing), or names collide and a
  file is overwritten. The default 10 s is safe.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from urllib.parse import unquote

import imageio_ffmpeg

from cidades.validators import mask_source_url, url_secrets

FFMPEG_BINARY_ENV = "FFMPEG_BINARY"
HLS_PLAYLIST = "index.m3u8"
SEGMENT_LIST = "segments.csv"
SEGMENT_NAME_PATTERN = "%Y%m%dT%H%M%SZ.ts"  # UTC because the child runs with TZ=UTC
DEFAULT_SOCKET_TIMEOUT_S = 5.0
# What the concat demuxer of a ``source_script`` may open (camera URLs are rtsp/rtsps).
SOURCE_PROTOCOLS = "file,rtsp,rtsps,tcp,udp,rtp,tls"

_COMMON = ["-hide_banner", "-nostdin", "-loglevel", "level+warning"]
_PROGRESS = ["-progress", "pipe:1", "-nostats"]
_JPEG = ["-frames:v", "1", "-an", "-q:v", "3", "-f", "image2", "-update", "1", "-y"]


def ffmpeg_exe() -> str:
    """Path of the FFmpeg binary: ``$FFMPEG_BINARY`` if set, else imageio-ffmpeg's static one."""
    return os.environ.get(FFMPEG_BINARY_ENV) or imageio_ffmpeg.get_ffmpeg_exe()


def ffmpeg_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for an FFmpeg child: ``base`` (default ``os.environ``) with ``TZ=UTC``."""
    env = dict(os.environ if base is None else base)
    env["TZ"] = "UTC"
    return env


def _is_rtsp(url: str) -> bool:
    return url.lower().startswith(("rtsp://", "rtsps://"))


def _input_args(source_url: str, timeout_s: float) -> list[str]:
    """Options before ``-i`` for a live source: TCP transport and a socket timeout."""
    return [
        arg for key, value in _input_options(source_url, timeout_s) for arg in (f"-{key}", value)
    ]


def _input_options(source_url: str, timeout_s: float) -> list[tuple[str, str]]:
    micros = str(int(timeout_s * 1_000_000))
    if _is_rtsp(source_url):
        return [("rtsp_transport", "tcp"), ("timeout", micros)]
    if "://" in source_url:
        return [("rw_timeout", micros)]  # generic protocol option (tcp, http, rtmp, ...)
    return []


def source_script(
    source_url: str, *, timeout_s: float = DEFAULT_SOCKET_TIMEOUT_S, analyze_s: float | None = None
) -> str:
    """An ffconcat script that opens ``source_url`` with the live input options.

    FFmpeg reads it with ``source_input_args(path)``: the URL (and its password) stays in a
    0600 file instead of the command line, where every local user could read it in
    ``/proc/PID/cmdline``. Measured with FFmpeg 9: packets and timestamps are the same as with
    ``-i URL`` (the "Timestamps are unset" warning on the first RTSP packet shows either way;
    ``-fflags +genpts`` on the output side fills it).
    """
    options = _input_options(source_url, timeout_s)
    if analyze_s is not None:
        options.append(("analyzeduration", str(int(analyze_s * 1_000_000))))
    lines = ["ffconcat version 1.0", f"file {_concat_quote(source_url)}"]
    lines += [f"option {key} {_concat_quote(value)}" for key, value in options]
    return "\n".join(lines) + "\n"


def source_input_args(script_path: str | Path) -> list[str]:
    """``-i`` of a ``source_script`` file (the concat demuxer, allowed to open network URLs)."""
    return ["-f", "concat", "-safe", "0", "-protocol_whitelist", SOURCE_PROTOCOLS,
            "-i", os.path.abspath(script_path)]  # fmt: skip


def tee_escape(value: str, specials: str) -> str:
    """Backslash-escape ``value`` for one level of FFmpeg's ``av_get_token`` parsing.

    Escapes ``\\``, ``'``, whitespace and every character of ``specials``.
    """
    out = []
    for char in value:
        if char in "\\'" or char in specials or char.isspace():
            out.append("\\")
        out.append(char)
    return "".join(out)


def _tee_output(fmt: str, options: Sequence[tuple[str, str]], path: str) -> str:
    """One ``[f=fmt:k=v:...]path`` element of a tee output, escaped for both levels."""
    opts = ":".join(f"{key}={tee_escape(val, ':]')}" for key, val in [("f", fmt), *options])
    return tee_escape(f"[{opts}]", "|") + tee_escape(path, "|")


def _pattern_dir(directory: str | Path) -> str:
    """Absolute directory for a name pattern; ``%`` is refused (the hls muxer can't escape it)."""
    path = os.path.abspath(directory)
    if "%" in path:
        raise ValueError(f"output directory cannot contain '%': {path!r}")
    return path


def _hls_options(hls_dir: str | Path, hls_time: int, hls_list_size: int) -> list[tuple[str, str]]:
    hls = _pattern_dir(hls_dir)
    return [
        ("hls_time", str(hls_time)),
        ("hls_list_size", str(hls_list_size)),
        ("hls_start_number_source", "epoch"),
        # The first segment closes on the first keyframe after 1 s, not after hls_time: with
        # a GOP of hls_time (2 s) the first keyframe comes a frame short of it and the first
        # playlist waited a whole extra GOP (4 s to play instead of 2 s).
        ("hls_init_time", str(min(1, hls_time))),
        ("hls_flags", "delete_segments+independent_segments+program_date_time+temp_file"),
        ("hls_segment_filename", f"{hls}/seg_%d.ts"),
    ]


def _segment_options(record_dir: str | Path, segment_seconds: int) -> list[tuple[str, str]]:
    record = os.path.abspath(record_dir)
    return [
        ("segment_time", str(segment_seconds)),
        ("segment_format", "mpegts"),
        ("segment_format_options", "flush_packets=1"),  # a kill -9 loses < 1 frame
        ("reset_timestamps", "1"),
        ("strftime", "1"),
        ("segment_list", os.path.join(record, SEGMENT_LIST)),
        ("segment_list_type", "csv"),
        ("segment_list_flags", "+live"),
    ]


def _head_and_inputs(
    source_url: str,
    *,
    stall_timeout_s: float,
    include_audio: bool,
    analyze_s: float | None,
    source_file: str | Path | None,
) -> list[str]:
    """FFmpeg, its input (from ``source_file`` when given) and the stream maps."""
    maps = ["-map", "0:v"] + (["-map", "0:a?"] if include_audio else [])
    probe = [] if analyze_s is None else ["-analyzeduration", str(int(analyze_s * 1_000_000))]
    if source_file is not None:
        inputs = [*probe, *source_input_args(source_file)]
    else:
        inputs = [*_input_args(source_url, stall_timeout_s), *probe, "-i", source_url]
    head = [ffmpeg_exe(), *_COMMON, "-fflags", "+genpts+discardcorrupt"]
    return [*head, *inputs, *maps, "-c", "copy", *_PROGRESS]


def _flat(options: Sequence[tuple[str, str]]) -> list[str]:
    return [arg for key, value in options for arg in (f"-{key}", value)]


def live_argv(
    source_url: str,
    hls_dir: str | Path,
    *,
    record_dir: str | Path | None = None,
    segment_seconds: int = 10,
    hls_time: int = 2,
    hls_list_size: int = 6,
    stall_timeout_s: float = DEFAULT_SOCKET_TIMEOUT_S,
    include_audio: bool = False,
    analyze_s: float | None = None,
    source_file: str | Path | None = None,
) -> list[str]:
    """One FFmpeg pulling ``source_url`` that writes live HLS and, optionally, recordings.

    HLS goes to ``hls_dir/index.m3u8`` with ``hls_time``-second segments named by epoch
    sequence number (``seg_<n>.ts``, increasing across restarts) and program date times.
    With ``record_dir``, the same packets are also written (codec copy, through ``tee``) as
    ``segment_seconds`` MPEG-TS files named ``YYYYmmddTHHMMSSZ.ts`` after the UTC wall clock at
    which each one opened (needs ``ffmpeg_env()``), each listed in ``record_dir/segments.csv``
    as ``name,start,end`` once closed. ``stall_timeout_s`` is FFmpeg's own socket timeout.
    Audio is left out by default: cameras often send G.711, which HLS/MPEG-TS cannot carry.
    ``analyze_s`` caps input probing (FFmpeg's default, 5 s, delays an MPEG-TS source's start).
    With ``source_file``, FFmpeg reads the source from that file, which the caller writes with
    ``source_script(source_url, ...)``: ``source_url`` is then not on the command line.

    The embedded engine runs ``record_argv`` and, while a live stream is active, ``hls_argv``
    instead (HLS only while watched); this single-process form stays for tools and tests.
    """
    playlist = os.path.join(os.path.abspath(hls_dir), HLS_PLAYLIST)
    outputs = [_tee_output("hls", _hls_options(hls_dir, hls_time, hls_list_size), playlist)]
    if record_dir is not None:
        pattern = f"{_pattern_dir(record_dir)}/{SEGMENT_NAME_PATTERN}"
        outputs.append(_tee_output("segment", _segment_options(record_dir, segment_seconds),
                                   pattern))  # fmt: skip
    head = _head_and_inputs(source_url, stall_timeout_s=stall_timeout_s,
                            include_audio=include_audio, analyze_s=analyze_s,
                            source_file=source_file)  # fmt: skip
    return [*head, "-f", "tee", "|".join(outputs)]


def record_argv(
    source_url: str,
    record_dir: str | Path,
    *,
    segment_seconds: int = 10,
    stall_timeout_s: float = DEFAULT_SOCKET_TIMEOUT_S,
    include_audio: bool = False,
    analyze_s: float | None = None,
    source_file: str | Path | None = None,
) -> list[str]:
    """A recorder only: ``source_url`` to ``segment_seconds`` MPEG-TS files, codec copy.

    The same files, names and ``segments.csv`` as ``live_argv(record_dir=...)``, straight
    through the segment muxer (no ``tee``, no HLS): what ``ffmpeg -c copy -f segment`` costs,
    plus ``-progress`` (the supervisor's stall detection). Live HLS of a recorded camera is a
    separate ``hls_argv`` process while someone watches, so this one never restarts for it.
    """
    head = _head_and_inputs(source_url, stall_timeout_s=stall_timeout_s,
                            include_audio=include_audio, analyze_s=analyze_s,
                            source_file=source_file)  # fmt: skip
    pattern = f"{_pattern_dir(record_dir)}/{SEGMENT_NAME_PATTERN}"
    options = _segment_options(record_dir, segment_seconds)
    return [*head, "-f", "segment", *_flat(options), pattern]


def hls_argv(
    source_url: str,
    hls_dir: str | Path,
    *,
    hls_time: int = 2,
    hls_list_size: int = 6,
    stall_timeout_s: float = DEFAULT_SOCKET_TIMEOUT_S,
    include_audio: bool = False,
    analyze_s: float | None = None,
    source_file: str | Path | None = None,
) -> list[str]:
    """Live HLS only: ``hls_dir/index.m3u8`` as in ``live_argv``, through the hls muxer."""
    head = _head_and_inputs(source_url, stall_timeout_s=stall_timeout_s,
                            include_audio=include_audio, analyze_s=analyze_s,
                            source_file=source_file)  # fmt: skip
    playlist = os.path.join(os.path.abspath(hls_dir), HLS_PLAYLIST)
    return [*head, "-f", "hls", *_flat(_hls_options(hls_dir, hls_time, hls_list_size)), playlist]


def snapshot_argv(input_path: str | Path, at_offset_s: float, out_path: str | Path) -> list[str]:
    """One JPEG frame of a recording at ``at_offset_s`` seconds (fast seek: ``-ss`` first)."""
    seek = ["-ss", f"{max(at_offset_s, 0.0):.3f}", "-i", str(input_path)]
    return [ffmpeg_exe(), *_COMMON, *seek, *_JPEG, str(out_path)]


def live_snapshot_argv(
    source_url: str, out_path: str | Path, *, timeout_s: float = DEFAULT_SOCKET_TIMEOUT_S
) -> list[str]:
    """One JPEG frame from a live source, probing as little as possible."""
    probe = ["-probesize", "32768", "-analyzeduration", "0", *_input_args(source_url, timeout_s)]
    return [ffmpeg_exe(), *_COMMON, *probe, "-i", source_url, *_JPEG, str(out_path)]


def _concat_quote(value: str) -> str:
    """One ffconcat token: single-quoted, ``'`` as ``'\\''`` (av_get_token's rules)."""
    if "\n" in value or "\r" in value or "\0" in value:
        raise ValueError("a concat list entry cannot contain a line break")
    return "'" + value.replace("'", "'\\''") + "'"


def concat_list(entries: Iterable[tuple[str | Path, float | None, float | None]]) -> str:
    """Concat demuxer script: ``file``, ``inpoint``, ``outpoint`` lines per entry.

    In/out points are seconds in each file's own timestamps (recording segments start at 0).
    The clip ends exactly at ``outpoint``; with MPEG-TS files it starts at the first keyframe
    at or after ``inpoint`` (measured), so pass ``start - GOP`` to include ``start``.
    """
    lines = ["ffconcat version 1.0"]
    for path, inpoint, outpoint in entries:
        lines.append(f"file {_concat_quote(os.path.abspath(path))}")
        if inpoint is not None:
            lines.append(f"inpoint {inpoint:.6f}")
        if outpoint is not None:
            lines.append(f"outpoint {outpoint:.6f}")
    return "\n".join(lines) + "\n"


def clip_argv(list_path: str | Path, out_path: str | Path) -> list[str]:
    """Join the segments of a concat list into one MP4 (codec copy, ``+faststart``)."""
    concat = ["-f", "concat", "-safe", "0", "-i", str(list_path)]
    copy = ["-map", "0:v", "-map", "0:a?", "-c", "copy"]
    # make_zero: the clip's first frame at 0, not at (keyframe - inpoint)
    mp4 = ["-avoid_negative_ts", "make_zero", "-movflags", "+faststart", "-f", "mp4", "-y"]
    return [ffmpeg_exe(), *_COMMON, *concat, *copy, *_PROGRESS, *mp4, str(out_path)]


# -- progress ---------------------------------------------------------------------------------

_INT_KEYS = ("frame", "out_time_us", "drop_frames", "dup_frames", "total_size")
_FLOAT_KEYS = ("fps",)


def _convert(key: str, raw: str) -> object:
    value = raw.strip()
    if value in ("", "N/A"):
        return None
    try:
        if key in _INT_KEYS:
            return int(value)
        if key in _FLOAT_KEYS:
            return float(value)
        if key == "speed":
            return float(value.rstrip("x"))
        if key == "bitrate":  # e.g. "1234.5kbits/s"
            return float(value.removesuffix("kbits/s"))
    except ValueError:
        return None
    return value


class ProgressParser:
    """Incremental parser of ``-progress`` output: ``feed`` a line, get a dict per block.

    A block ends with ``progress=continue`` or ``progress=end``. The dict holds ``frame``,
    ``fps``, ``out_time_us``, ``speed``, ``drop_frames``, ``dup_frames``, ``total_size``,
    ``bitrate`` (kbit/s) and ``progress``; ``N/A`` becomes None.
    """

    def __init__(self) -> None:
        self._block: dict[str, object] = {}

    def feed(self, line: str) -> dict[str, object] | None:
        key, sep, value = line.strip().partition("=")
        if not sep:
            return None
        key = key.strip()
        if key == "progress":
            block = {**self._block, "progress": value.strip()}
            self._block = {}
            return block
        self._block[key] = _convert(key, value)
        return None


def parse_progress(lines: Iterable[str]) -> dict[str, object]:
    """The last complete block of ``-progress`` output in ``lines`` (``{}`` if none)."""
    parser = ProgressParser()
    last: dict[str, object] = {}
    for line in lines:
        block = parser.feed(line)
        if block is not None:
            last = block
    return last


# -- credentials and error messages -----------------------------------------------------------

_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)([^\s/@:'\"]*):([^\s'\"]*)@")
_MIN_SECRET_LEN = 4  # shorter passwords are not replaced outside URLs (too many false hits)


def mask_credentials(url: str) -> str:
    """``rtsp://user:pass@host/x`` -> ``rtsp://user:***@host/x``; other URLs are unchanged."""
    scheme, sep, rest = url.partition("://")
    at = rest.rfind("@")
    if not sep or at < 0:
        return url
    user, colon, _password = rest[:at].partition(":")
    if not colon:
        return url
    return f"{scheme}://{user}:***@{rest[at + 1 :]}"


def _password(url: str) -> str:
    _scheme, sep, rest = url.partition("://")
    at = rest.rfind("@")
    if not sep or at < 0:
        return ""
    return rest[:at].partition(":")[2]


def redact_url(text: str, source_url: str) -> str:
    """``text`` with ``source_url``'s password (and any ``user:pass@`` in URLs) masked."""
    if source_url:
        # every credential form: userinfo and query/path parameters (?user=&password=...)
        text = text.replace(source_url, mask_source_url(source_url))
        for password in url_secrets(source_url) | {_password(source_url)}:
            if len(password) >= _MIN_SECRET_LEN:
                for secret in {password, unquote(password)}:
                    text = text.replace(secret, "***")
    return _URL_USERINFO.sub(lambda m: f"{m.group(1)}{m.group(2)}:***@", text)


COULD_NOT_CONNECT = "could not connect to the camera"
# Errors the source's server itself answered (or local ones): shown as they are.
_SERVER = "server"
# Network errors: distinct only once the source had sent media in this run; before that they
# all read COULD_NOT_CONNECT, so a camera URL cannot be used to port-scan the network
# (refused, timed out, no route, unknown host, a listener that closes: one message).
_NETWORK = "network"

# (priority, kind, pattern, message): the highest priority match in the tail wins.
_RULES: list[tuple[int, str, re.Pattern[str], str]] = [
    (90, _SERVER, re.compile(r"Unauthorized"), "authentication failed (401)"),
    (90, _SERVER, re.compile(r"Forbidden"), "access forbidden (403)"),
    (90, _SERVER, re.compile(r"Not Found"), "stream path not found (404)"),
    (
        80,
        _SERVER,
        re.compile(r"No space left on device", re.I),
        "disk full (no space left on device)",
    ),  # fmt: skip
    (80, _SERVER, re.compile(r"Permission denied", re.I), "permission denied writing output"),
    (70, _NETWORK, re.compile(r"Connection refused", re.I), COULD_NOT_CONNECT),
    (
        70,
        _NETWORK,
        re.compile(r"Failed to resolve|Name or service not known", re.I),
        COULD_NOT_CONNECT,
    ),  # fmt: skip
    (70, _NETWORK, re.compile(r"No route to host", re.I), COULD_NOT_CONNECT),
    (70, _NETWORK, re.compile(r"Network is unreachable", re.I), COULD_NOT_CONNECT),
    (60, _NETWORK, re.compile(r"timed out", re.I), "connection timed out (no data from source)"),
    (60, _NETWORK, re.compile(r"Connection reset by peer", re.I), "connection reset by source"),
    (50, _SERVER, re.compile(r"failed: 5\d\d|5XX Server Error"), "source server error (5xx)"),
    (40, _SERVER, re.compile(r"No such file or directory"), "no such file or directory"),
    (30, _NETWORK, re.compile(r"End of file|Broken pipe", re.I), "stream ended (source closed)"),
    (20, _NETWORK, re.compile(r"Invalid data found", re.I), "invalid data from source"),
]
MESSAGES = sorted({message for *_, message in _RULES} | {COULD_NOT_CONNECT})
_ERROR_TAG = re.compile(r"\[(error|fatal|panic)\]")
_OTHER_TAG = re.compile(r"\[(warning|info|verbose|debug|trace)\]")
_ERROR_WORD = re.compile(r"error|fail", re.I)
_LOG_PREFIX = re.compile(r"^(\[[^\]]*\]\s*)+")
_TAIL_LINES = 20
_MAX_MESSAGE = 200


def summarize_stderr(lines: Iterable[str], source_url: str = "", *, connected: bool = False) -> str:
    """Short English cause of an FFmpeg failure from its last stderr lines, password-free.

    ``connected``: the source had sent media in this run. Until it has, every network-level
    failure (and any unrecognised one) reads ``COULD_NOT_CONNECT``: only what a server answered
    (401, 403, 404, 5xx) and local errors (disk, permissions) are told apart.
    """
    tail = [line.strip() for line in lines if line.strip()][-_TAIL_LINES:]
    best: tuple[int, str, str] | None = None
    for line in tail:
        for priority, kind, pattern, message in _RULES:
            if pattern.search(line) and (best is None or priority > best[0]):
                best = (priority, kind, message)
    if best is not None:
        return best[2] if connected or best[1] == _SERVER else COULD_NOT_CONNECT
    errors = [line for line in tail if _ERROR_TAG.search(line)]
    if not errors:  # untagged output (no ``-loglevel level+...``): lines that say so
        errors = [ln for ln in tail if not _OTHER_TAG.search(ln) and _ERROR_WORD.search(ln)]
    if not errors:
        return ""
    if not connected:
        return COULD_NOT_CONNECT
    chosen = errors[-1]
    message = _LOG_PREFIX.sub("", chosen).strip()
    return redact_url(message, source_url)[:_MAX_MESSAGE]
