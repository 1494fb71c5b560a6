#!/usr/bin/python3
"""RTSP test camera: a GStreamer RTSP server streaming synthetic H.264 video.

Run it with the system interpreter (only it can import ``gi``)::

    /usr/bin/python3 testcamera/server.py --port 8554 --mounts cam1,cam2 [--user U --password P]

Prints ``READY rtsp://HOST:PORT/`` once listening; exits cleanly on SIGTERM/SIGINT.
Packages: see scripts/install-test-deps.
"""

import argparse
import os
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

ROLE = "user"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8554)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--mounts", default="cam1", help="comma-separated mount names")
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--fps", type=int, default=15)
    parser.add_argument("--keyint", type=int, default=30, help="frames between keyframes")
    parser.add_argument("--bitrate", type=int, default=1000, help="kbit/s")
    parser.add_argument("--parent-pid", type=int, help="exit when this process goes away")
    parser.add_argument("--frames-dir", help="plate mode: stream these *.jpg frames, looped")
    parser.add_argument(
        "--clock", action="store_true", help="clock mode: wall-clock ms drawn in every frame"
    )
    parser.add_argument(
        "--replay",
        nargs="?",
        const="",
        metavar="FILE",
        help="replay mode: serve pre-encoded H.264 looped (FILE: an AUD-delimited Annex B clip "
        "from replay.encode; without FILE it is encoded now with --ffmpeg)",
    )
    parser.add_argument("--ffmpeg", default="ffmpeg", help="FFmpeg for --replay without FILE")
    parser.add_argument("--replay-seconds", type=int, default=20, help="replay clip length")
    args = parser.parse_args(argv)
    if (args.user is None) != (args.password is None):
        parser.error("--user and --password go together")
    if args.replay is not None and (args.clock or args.frames_dir):
        parser.error("--replay serves its own clip: not with --clock or --frames-dir")
    return args


def launch_line(args: argparse.Namespace) -> str:
    # A clock overlay makes frames visually different; the pango plugin (Debian package
    # gstreamer1.0-x) may be missing, then a moving ball does the job.
    if Gst.ElementFactory.find("timeoverlay"):
        source = 'videotestsrc is-live=true ! timeoverlay font-desc="Sans 24"'
    else:
        source = "videotestsrc is-live=true pattern=ball"
    return (
        f"( {source} ! video/x-raw,width={args.width},height={args.height},"
        f"framerate={args.fps}/1 ! x264enc tune=zerolatency speed-preset=ultrafast "
        f"key-int-max={args.keyint} bitrate={args.bitrate} "
        "! rtph264pay name=pay0 pt=96 config-interval=1 )"
    )


def build_server(args: argparse.Namespace) -> GstRtspServer.RTSPServer:
    server = GstRtspServer.RTSPServer()
    server.set_address(args.host)
    server.set_service(str(args.port))

    if args.user is not None:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, ROLE)
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password), token)
        server.set_auth(auth)

    launch = launch_line(args)
    frames = None
    if args.frames_dir:
        import image_source

        frames = image_source.load_frames(args.frames_dir)
        launch = image_source.launch_line(args.fps, args.keyint, args.bitrate)
    units = None
    if args.replay is not None:
        import replay

        clip = args.replay or replay.encode(
            args.ffmpeg, width=args.width, height=args.height, fps=args.fps,
            keyint=args.keyint, bitrate=args.bitrate, seconds=args.replay_seconds,
        )  # fmt: skip
        units = replay.load(clip)
        launch = replay.launch_line()
    if args.clock:  # testcamera/clock.py
        import clock

        launch = clock.launch_line(args.width, args.height, args.fps, args.keyint, args.bitrate)
    mounts = server.get_mount_points()
    for name in filter(None, (m.strip() for m in args.mounts.split(","))):
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(launch)
        if args.clock:
            clock.attach(factory, args.width, args.height, args.fps)
        if frames is not None:
            image_source.attach(factory, frames, args.fps)
        if units is not None:
            replay.attach(factory, units, args.fps)
        # Shared media crashed in gst-rtsp-server 1.22 with simultaneous first clients.
        factory.set_shared(False)
        if args.user is not None:
            factory.add_role_from_structure(
                Gst.Structure.from_string(
                    f"{ROLE}, media.factory.access=(boolean)true, "
                    "media.factory.construct=(boolean)true"
                )[0]
            )
        mounts.add_factory(f"/{name}", factory)
    return server


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    Gst.init(None)
    server = build_server(args)
    if not server.attach(None):
        print(f"cannot listen on {args.host}:{args.port}", file=sys.stderr)
        return 1

    loop = GLib.MainLoop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signum, loop.quit)
    if args.parent_pid is not None:

        def parent_alive() -> bool:
            if os.getppid() != args.parent_pid:
                loop.quit()
                return False
            return True

        GLib.timeout_add_seconds(1, parent_alive)

    print(f"READY rtsp://{args.host}:{server.get_bound_port()}/", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
