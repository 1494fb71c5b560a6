"""The demo camera that ``./gtv run`` serves with the GStreamer test camera."""

from __future__ import annotations

from gtvision.env import env_int

MOUNT = "demo"
USER = "demo"
PASSWORD = "gtvision-demo"  # noqa: S105 - the local test camera of the demo


def port() -> int:
    return env_int("DEMO_CAMERA_PORT", 8554)


def camera_url() -> str:
    return f"rtsp://{USER}:{PASSWORD}@127.0.0.1:{port()}/{MOUNT}"


def camera_available() -> bool:
    from testcamera import available

    return available()


def server_argv() -> list[str]:
    from testcamera import SERVER_SCRIPT, SYSTEM_PYTHON

    return [
        SYSTEM_PYTHON,
        str(SERVER_SCRIPT),
        "--port", str(port()),
        "--mounts", MOUNT,
        "--user", USER,
        "--password", PASSWORD,
    ]  # fmt: skip
