"""Camera URLs for FFmpeg in files only their owner can read, never on a command line.

``/proc/PID/cmdline`` is readable by every local user: FFmpeg gets ``-i X.ffconcat`` (see
``ffmpeg.source_script`` and ``ffmpeg.source_input_args``) and the URL, password included,
stays in that file. No Django here.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path


class SourceFile:
    """A file only its owner can read (0600, in a 0700 directory) that holds a source URL for
    FFmpeg (``ffmpeg.source_script``), so the URL's password is never on a command line.

    ``ManagedFFmpeg`` writes it before each start and removes it when the child exits and when
    it is stopped; ``sweep_source_files`` removes what a killed supervisor left.
    """

    def __init__(self, path: str | Path, text: str) -> None:
        self.path = Path(path)
        self.text = text

    def write(self) -> None:
        directory = self.path.parent
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        directory.chmod(0o700)
        temporary = directory / f".{self.path.name}.{os.getpid()}.tmp"
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(temporary, flags, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(self.text)
        os.replace(temporary, self.path)

    def remove(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def source_files_dir(root: str | Path) -> Path:
    """This process's directory of ``SourceFile``s under ``root``."""
    return Path(root) / f"ffmpeg-{os.getpid()}"


def sweep_source_files(root: str | Path) -> int:
    """Remove the ``SourceFile`` directories of processes that are gone. Returns how many."""
    root = Path(root)
    removed = 0
    try:
        entries = list(root.iterdir())
    except FileNotFoundError:
        return 0
    for entry in entries:
        name = entry.name
        if not name.startswith("ffmpeg-") or not name[7:].isdigit():
            continue
        pid = int(name[7:])
        if pid != os.getpid() and os.path.exists(f"/proc/{pid}"):
            continue  # a live supervisor's (another node's, on this host)
        shutil.rmtree(entry, ignore_errors=True)
        removed += 1
    return removed
