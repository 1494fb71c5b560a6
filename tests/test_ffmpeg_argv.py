"""Pure functions of streaming.ffmpeg: argv shapes, concat lists, progress, error messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from streaming import ffmpeg
from streaming.ffmpeg import (
    COULD_NOT_CONNECT,
    ProgressParser,
    clip_argv,
    concat_list,
    hls_argv,
    live_argv,
    live_snapshot_argv,
    mask_credentials,
    parse_progress,
    record_argv,
    redact_url,
    snapshot_argv,
    source_input_args,
    source_script,
    summarize_stderr,
    tee_escape,
)

URL = "rtsp://admin:Secr3t@127.0.0.1:18555/live"


def _after(argv: list[str], option: str) -> str:
    return argv[argv.index(option) + 1]


def test_ffmpeg_exe_env_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FFMPEG_BINARY", "/opt/ffmpeg")
    assert ffmpeg.ffmpeg_exe() == "/opt/ffmpeg"
    monkeypatch.delenv("FFMPEG_BINARY")
    assert "ffmpeg" in Path(ffmpeg.ffmpeg_exe()).name


def test_ffmpeg_env_sets_utc() -> None:
    assert ffmpeg.ffmpeg_env({"TZ": "America/Sao_Paulo", "A": "1"}) == {"TZ": "UTC", "A": "1"}


def test_live_argv_rtsp_hls_only(tmp_path) -> None:
    argv = live_argv(URL, tmp_path / "hls", stall_timeout_s=4)
    assert all(isinstance(a, str) for a in argv)
    assert _after(argv, "-rtsp_transport") == "tcp"
    assert _after(argv, "-timeout") == "4000000"
    assert argv.index("-timeout") < argv.index("-i")
    assert _after(argv, "-i") == URL
    assert _after(argv, "-map") == "0:v" and "0:a?" not in argv
    assert _after(argv, "-c") == "copy"
    assert _after(argv, "-progress") == "pipe:1" and "-nostats" in argv
    assert _after(argv, "-f") == "tee"
    tee = argv[-1]
    assert "|" not in tee.replace("\\|", "")  # one output
    assert tee.startswith("[f=hls:hls_time=2:hls_list_size=6:")
    assert "hls_flags=delete_segments+independent_segments+program_date_time" in tee
    assert tee.endswith(f"]{tmp_path}/hls/index.m3u8")


def test_live_argv_with_recording(tmp_path) -> None:
    argv = live_argv(URL, tmp_path / "h", record_dir=tmp_path / "r", segment_seconds=10)
    hls, record = argv[-1].split("|")
    assert hls.startswith("[f=hls:")
    assert record.startswith("[f=segment:segment_time=10:segment_format=mpegts:")
    for option in ("reset_timestamps=1", "strftime=1", "segment_list_type=csv"):
        assert option in record
    assert f"segment_list={tmp_path}/r/segments.csv:" in record
    assert "segment_list_flags=+live" in record
    assert record.endswith(f"]{tmp_path}/r/%Y%m%dT%H%M%SZ.ts")


def test_live_argv_reads_the_source_from_a_file(tmp_path) -> None:
    """With ``source_file`` the URL (and its password) is not on the command line."""
    script = tmp_path / "cam1.ffconcat"
    argv = live_argv(URL, tmp_path / "h", record_dir=tmp_path / "r", analyze_s=1,
                     source_file=script)  # fmt: skip
    assert not any("Secr3t" in a or "rtsp://" in a for a in argv)
    assert argv[argv.index("-f") : argv.index("-i") + 2] == [
        "-f", "concat", "-safe", "0", "-protocol_whitelist", "file,rtsp,rtsps,tcp,udp,rtp,tls",
        "-i", str(script),
    ]  # fmt: skip
    assert "-rtsp_transport" not in argv and "-timeout" not in argv  # in the script instead
    assert _after(argv, "-analyzeduration") == "1000000"
    assert _after(argv, "-map") == "0:v" and argv[-1].count("|") - argv[-1].count("\\|") == 1
    assert source_input_args("rel.ffconcat")[-1].startswith("/")


def test_source_script_quotes_the_url() -> None:
    text = source_script(URL, timeout_s=4, analyze_s=1)
    assert text.splitlines() == [
        "ffconcat version 1.0",
        f"file '{URL}'",
        "option rtsp_transport 'tcp'",
        "option timeout '4000000'",
        "option analyzeduration '1000000'",
    ]
    odd = "rtsp://u:it's a #pass@h/p"
    assert "file 'rtsp://u:it'\\''s a #pass@h/p'" in source_script(odd)
    assert "option rw_timeout '5000000'" in source_script("tcp://127.0.0.1:9")
    for bad in ("rtsp://h/a\nfile '/etc/passwd'", "rtsp://h/a\rb"):
        with pytest.raises(ValueError):
            source_script(bad)


def test_live_argv_other_sources(tmp_path) -> None:
    tcp = live_argv("tcp://127.0.0.1:9", tmp_path, stall_timeout_s=2, analyze_s=1)
    assert "-rtsp_transport" not in tcp and _after(tcp, "-rw_timeout") == "2000000"
    assert _after(tcp, "-analyzeduration") == "1000000"
    assert "-rw_timeout" not in live_argv("/tmp/file.ts", tmp_path)
    audio = live_argv(URL, tmp_path, include_audio=True)
    assert audio[audio.index("-map") : audio.index("-map") + 4] == ["-map", "0:v", "-map", "0:a?"]


def test_live_argv_escapes_tee_specials(tmp_path) -> None:
    odd = tmp_path / "we ird:d|i'r[x],=\\z"
    tee = live_argv(URL, odd, record_dir=odd)[-1]
    assert tee.count("|") - tee.count("\\|") == 1  # exactly one unescaped output separator
    assert tee.endswith(f"]{tee_escape(str(odd), '|')}/%Y%m%dT%H%M%SZ.ts")
    # option values are escaped twice: once for ':' and ']', then the whole for '|'
    assert tee_escape(tee_escape(f"{odd}/segments.csv", ":]"), "|") in tee
    with pytest.raises(ValueError):
        live_argv(URL, tmp_path / "100%")


def test_record_argv_is_a_plain_segmenter(tmp_path) -> None:
    """The recorder of an unwatched camera: one input, codec copy, the segment muxer alone."""
    script = tmp_path / "cam1.ffconcat"
    argv = record_argv(URL, tmp_path / "r", segment_seconds=10, analyze_s=1, source_file=script)
    assert all(isinstance(a, str) for a in argv)
    assert not any("Secr3t" in a or "rtsp://" in a for a in argv)  # the URL is in the file
    assert argv[argv.index("-f") : argv.index("-i") + 2] == [
        "-f", "concat", "-safe", "0", "-protocol_whitelist", "file,rtsp,rtsps,tcp,udp,rtp,tls",
        "-i", str(script),
    ]  # fmt: skip
    assert argv.count("-i") == 1 and "tee" not in argv and not any("hls" in a for a in argv)
    assert _after(argv, "-map") == "0:v" and _after(argv, "-c") == "copy"
    assert _after(argv, "-progress") == "pipe:1"
    out = argv[len(argv) - argv[::-1].index("-f") :]  # after the last -f: the output
    assert out[0] == "segment" and out[-1] == f"{tmp_path}/r/%Y%m%dT%H%M%SZ.ts"
    options = dict(zip(out[1:-1:2], out[2:-1:2], strict=True))
    assert options == {
        "-segment_time": "10",
        "-segment_format": "mpegts",
        "-segment_format_options": "flush_packets=1",
        "-reset_timestamps": "1",
        "-strftime": "1",
        "-segment_list": f"{tmp_path}/r/segments.csv",
        "-segment_list_type": "csv",
        "-segment_list_flags": "+live",
    }
    # the same segments (names, list) as the tee'd recorder of live_argv
    tee = live_argv(URL, tmp_path / "h", record_dir=tmp_path / "r", segment_seconds=10)[-1]
    for key, value in options.items():
        assert f"{key[1:]}={tee_escape(value, ':]')}" in tee.replace("\\|", "|")
    with_url = record_argv(URL, tmp_path / "r", stall_timeout_s=4)
    assert (
        _after(with_url, "-rtsp_transport") == "tcp" and _after(with_url, "-timeout") == "4000000"
    )
    with pytest.raises(ValueError):
        record_argv(URL, tmp_path / "50%")


def test_hls_argv_is_live_only(tmp_path) -> None:
    script = tmp_path / "cam1-live.ffconcat"
    argv = hls_argv(URL, tmp_path / "h", hls_time=2, hls_list_size=6, analyze_s=1,
                    source_file=script)  # fmt: skip
    assert not any("Secr3t" in a or "rtsp://" in a for a in argv)
    assert _after(argv, "-i") == str(script) and argv.count("-i") == 1
    assert "tee" not in argv and not any("segment_list" in a for a in argv)
    out = argv[len(argv) - argv[::-1].index("-f") :]
    assert out[0] == "hls" and out[-1] == f"{tmp_path}/h/index.m3u8"
    options = dict(zip(out[1:-1:2], out[2:-1:2], strict=True))
    assert options["-hls_time"] == "2" and options["-hls_list_size"] == "6"
    assert options["-hls_init_time"] == "1" and options["-hls_start_number_source"] == "epoch"
    # temp_file: a segment is listed only once fully written (what a player may fetch)
    assert options["-hls_flags"] == (
        "delete_segments+independent_segments+program_date_time+temp_file"
    )
    assert options["-hls_segment_filename"] == f"{tmp_path}/h/seg_%d.ts"
    audio = hls_argv(URL, tmp_path / "h", include_audio=True)
    assert audio[audio.index("-map") : audio.index("-map") + 4] == ["-map", "0:v", "-map", "0:a?"]
    with pytest.raises(ValueError):
        hls_argv(URL, tmp_path / "100%")


def test_tee_escape() -> None:
    assert tee_escape("a b:c]d|e'f\\g", ":]") == "a\\ b\\:c\\]d|e\\'f\\\\g"
    assert tee_escape("plain/path.ts", "|") == "plain/path.ts"


def test_snapshot_argvs(tmp_path) -> None:
    argv = snapshot_argv(tmp_path / "a.ts", 12.5, tmp_path / "a.jpg")
    assert argv.index("-ss") < argv.index("-i") and _after(argv, "-ss") == "12.500"
    assert _after(argv, "-frames:v") == "1" and "-y" in argv and argv[-1].endswith("a.jpg")
    live = live_snapshot_argv(URL, tmp_path / "b.jpg")
    assert _after(live, "-probesize") == "32768" and _after(live, "-analyzeduration") == "0"
    assert _after(live, "-rtsp_transport") == "tcp" and _after(live, "-i") == URL


def test_concat_list_quoting(tmp_path) -> None:
    text = concat_list(
        [
            (tmp_path / "a.ts", 3.25, None),
            (tmp_path / "it's here.ts", None, None),
            (tmp_path / "c.ts", None, 7.0),
        ]
    )
    assert text.splitlines() == [
        "ffconcat version 1.0",
        f"file '{tmp_path}/a.ts'",
        "inpoint 3.250000",
        f"file '{tmp_path}/it'\\''s here.ts'",
        f"file '{tmp_path}/c.ts'",
        "outpoint 7.000000",
    ]
    with pytest.raises(ValueError):
        concat_list([("bad\nname.ts", None, None)])


def test_clip_argv() -> None:
    argv = clip_argv("/x/list.txt", "/x/out.mp4")
    assert _after(argv, "-f") == "concat" and _after(argv, "-safe") == "0"
    assert _after(argv, "-i") == "/x/list.txt" and _after(argv, "-c") == "copy"
    assert _after(argv, "-movflags") == "+faststart"
    assert _after(argv, "-avoid_negative_ts") == "make_zero"
    assert "-ss" not in argv and "-to" not in argv
    assert argv[-3:] == ["mp4", "-y", "/x/out.mp4"]


# Captured from FFmpeg 9.0.2: a tee recording (N/A sizes), then a concat -> mp4 clip.
TEE_PROGRESS = """frame=35
fps=0.00
stream_0_0_q=-1.0
bitrate=N/A
total_size=N/A
out_time_us=2266667
out_time_ms=2266667
out_time=00:00:02.266667
dup_frames=0
drop_frames=0
speed=4.53x
progress=continue
frame=43
fps=42.96
stream_0_0_q=-1.0
bitrate=N/A
total_size=N/A
out_time_us=2800000
"""
CLIP_PROGRESS = """frame=128
fps=0.00
stream_0_0_q=-1.0
bitrate= 884.7kbits/s
total_size=1046891
out_time_us=9466667
out_time_ms=9466667
out_time=00:00:09.466667
dup_frames=0
drop_frames=0
speed= 872x
progress=end
"""


def test_progress_parser_incremental() -> None:
    parser = ProgressParser()
    blocks = [b for b in map(parser.feed, TEE_PROGRESS.splitlines()) if b is not None]
    assert len(blocks) == 1  # the second block is not finished yet
    block = blocks[0]
    assert block["frame"] == 35 and block["fps"] == 0.0 and block["out_time_us"] == 2266667
    assert block["speed"] == 4.53 and block["drop_frames"] == 0
    assert block["bitrate"] is None and block["total_size"] is None
    assert block["progress"] == "continue"
    assert parser.feed("fps=1.0") is None and parser.feed("progress=continue")["frame"] == 43


def test_parse_progress_last_block() -> None:
    last = parse_progress((TEE_PROGRESS + CLIP_PROGRESS).splitlines())
    assert last["frame"] == 128 and last["progress"] == "end"
    assert last["bitrate"] == 884.7 and last["total_size"] == 1046891 and last["speed"] == 872.0
    assert parse_progress([]) == {}


def test_mask_credentials() -> None:
    assert mask_credentials(URL) == "rtsp://admin:***@127.0.0.1:18555/live"
    assert mask_credentials("rtsp://u:p@ss/w@rd@cam/x") == "rtsp://u:***@cam/x"
    assert mask_credentials("rtsp://cam/live") == "rtsp://cam/live"
    assert mask_credentials("rtsp://user@cam/live") == "rtsp://user@cam/live"


def test_redact_url() -> None:
    text = f"Error opening input file {URL}. then 'rtsp://x:y@h/p' and Secr3t alone"
    out = redact_url(text, URL)
    assert "Secr3t" not in out and ":y@" not in out
    assert "rtsp://admin:***@127.0.0.1:18555/live" in out and "rtsp://x:***@h/p" in out
    encoded = "rtsp://admin:p%40ssw0rd@cam/live"
    assert "p@ssw0rd" not in redact_url("bad password p@ssw0rd", encoded)


def _stderr(*lines: str) -> list[str]:
    return [line.replace("URL", URL) for line in lines]


# Captured from FFmpeg 9.0.2 (-loglevel level+warning) against a GStreamer RTSP server.
UNAUTHORIZED = _stderr(
    "[in#0 @ 0x563017c901c0] [error] method DESCRIBE failed: 401 (Unauthorized)",
    "[in#0 @ 0x563017c8fe80] [error] Error opening input: Server returned 401 Unauthorized "
    "(authorization failed)",
    "[error] Error opening input file URL.",
    "[fatal] Error opening input files: Server returned 401 Unauthorized (authorization failed)",
)
NOT_FOUND = _stderr(
    "[in#0 @ 0x564e842bb1c0] [error] method DESCRIBE failed: 404 (Not Found)",
    "[in#0 @ 0x564e842bae80] [error] Error opening input: Server returned 404 Not Found",
    "[error] Error opening input file URL.",
    "[fatal] Error opening input files: Server returned 404 Not Found",
)
REFUSED = _stderr(
    "[tcp @ 0x560215e88500] [error] Connection to tcp://127.0.0.1:18559?timeout=2000000 "
    "failed: Connection refused",
    "[in#0 @ 0x560215e84e80] [error] Error opening input: Connection refused",
    "[error] Error opening input file URL.",
    "[fatal] Error opening input files: Connection refused",
)
TIMEOUT = _stderr(
    "[in#0 @ 0x562c28d651c0] [warning] Failed reading RTSP data: Connection timed out",
    "[in#0 @ 0x562c28d64e80] [error] Error opening input: Invalid data found when processing input",
    "[error] Error opening input file URL.",
    "[fatal] Error opening input files: Invalid data found when processing input",
)


RESOLVE = ["[error] Failed to resolve hostname cam.invalid: Name or service not known"]
NO_ROUTE = ["[tcp @ 0x1] [error] Connection to tcp://10.9.9.9:554 failed: No route to host"]
UNREACHABLE = [
    "[tcp @ 0x1] [error] Connection to tcp://10.9.9.9:554 failed: Network is unreachable"
]
RESET = ["[in#0 @ 0x1] [error] Error opening input: Connection reset by peer"]
EOF_ = ["[in#0 @ 0x1] [error] Error opening input: End of file"]
ODD = ["[in#0 @ 0x1] [error] Error opening input: Something nobody foresaw 10.9.9.9:22"]


@pytest.mark.parametrize(
    ("lines", "before_media", "after_media"),
    [
        # what a server answered: the same before and after media flowed
        (UNAUTHORIZED, "authentication failed (401)", "authentication failed (401)"),
        (NOT_FOUND, "stream path not found (404)", "stream path not found (404)"),
        # network failures: one message until the source has sent media (no port scanning)
        (REFUSED, COULD_NOT_CONNECT, COULD_NOT_CONNECT),
        (RESOLVE, COULD_NOT_CONNECT, COULD_NOT_CONNECT),
        (NO_ROUTE, COULD_NOT_CONNECT, COULD_NOT_CONNECT),
        (UNREACHABLE, COULD_NOT_CONNECT, COULD_NOT_CONNECT),
        (TIMEOUT, COULD_NOT_CONNECT, "connection timed out (no data from source)"),
        (RESET, COULD_NOT_CONNECT, "connection reset by source"),
        (EOF_, COULD_NOT_CONNECT, "stream ended (source closed)"),
        (ODD, COULD_NOT_CONNECT, "Error opening input: Something nobody foresaw 10.9.9.9:22"),
    ],
)
def test_summarize_stderr_known_causes(lines: list[str], before_media: str, after_media: str):
    assert summarize_stderr(lines, URL) == before_media  # the safe default
    assert summarize_stderr(lines, URL, connected=False) == before_media
    assert summarize_stderr(lines, URL, connected=True) == after_media


def test_summarize_stderr_fallback_is_redacted() -> None:
    lines = [
        "[vost#0:0/copy @ 0x1] [warning] Non-monotonic DTS; previous: 401, current: 401",
        f"[out#0/tee @ 0x2] [error] Something odd happened with {URL}",
    ]
    message = summarize_stderr(lines, URL, connected=True)
    assert message == "Something odd happened with rtsp://admin:***@127.0.0.1:18555/live"
    assert "Secr3t" not in message
    assert summarize_stderr(["[warning] Timestamps are unset in a packet"], URL) == ""
    assert summarize_stderr([], URL) == ""
    assert summarize_stderr([f"Error opening input file {URL}."], URL).count("Secr3t") == 0
