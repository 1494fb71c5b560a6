"""``manage.py runall``: a process that exits is restarted with backoff, within a budget;
SIGTERM stops everything, grandchildren included."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.supervisor import wait_for

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(120)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead
        return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] != "Z"
    except OSError:
        return False


def runall(procfile: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "runall", "--procfile", str(procfile), *args],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(process: subprocess.Popen) -> str:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.communicate(timeout=40)[0].decode()
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        return process.communicate()[0].decode()


def test_an_exiting_process_is_restarted_with_backoff_until_its_budget(tmp_path):
    starts = tmp_path / "starts"
    pids = tmp_path / "steady.pid"
    procfile = tmp_path / "Procfile"
    procfile.write_text(
        f"flaky: python -c \"import time; open('{starts}', 'a').write(f'{{time.time()}}\\\\n')\"\n"
        f"steady: python -c \"import os, time; open('{pids}', 'w').write(str(os.getpid()));"
        ' time.sleep(600)"\n'
    )
    process = runall(procfile, "--max-restarts", "3", "--restart-window", "60")
    try:
        process.wait(timeout=60)  # 1 + 2 + 4 s of backoff, then the 4th exit ends the budget
    finally:
        output = stop(process)
    assert process.returncode == 1, output
    times = [float(line) for line in starts.read_text().split()]
    assert len(times) == 4, output  # started once, restarted three times
    gaps = [later - earlier for earlier, later in zip(times, times[1:], strict=False)]
    assert gaps[0] >= 0.9 and gaps[1] >= 1.9 and gaps[2] >= 3.9, gaps  # exponential backoff
    assert "flaky exited with 0; restarting in 1 s" in output
    assert "restart budget used up" in output
    # the other process ran the whole time (never restarted) and was stopped with the rest
    steady = int(pids.read_text())
    assert output.count("steady exited") == 0
    wait_for(lambda: not alive(steady), timeout=5)


def test_sigterm_stops_every_process_and_its_children(tmp_path):
    pids = tmp_path / "pids"
    procfile = tmp_path / "Procfile"
    # a process with a child of its own (as FFmpeg under a supervisor, or a shell pipeline)
    procfile.write_text(
        'parent: python -c "import os, subprocess, time; '
        "child = subprocess.Popen(['sleep', '600']); "
        f"open('{pids}', 'w').write(f'{{os.getpid()}} {{child.pid}}'); time.sleep(600)\"\n"
        'web: python -c "import time; time.sleep(600)"\n'
    )
    process = runall(procfile)
    try:
        wait_for(lambda: pids.exists() and len(pids.read_text().split()) == 2, timeout=30)
        parent, child = (int(pid) for pid in pids.read_text().split())
        assert alive(parent) and alive(child)
        process.send_signal(signal.SIGTERM)
        output = stop(process)
    finally:
        stop(process)
    assert process.returncode == 0, output
    assert not alive(parent) and not alive(child)


def test_a_killed_process_is_restarted_and_the_others_keep_running(tmp_path):
    pids = tmp_path / "pids"
    procfile = tmp_path / "Procfile"
    procfile.write_text(
        f"victim: python -c \"import os, time; open('{pids}', 'a').write(f'{{os.getpid()}}\\\\n');"
        ' time.sleep(600)"\n'
        'web: python -c "import time; time.sleep(600)"\n'
    )
    process = runall(procfile)
    try:
        wait_for(lambda: pids.exists() and pids.read_text().split(), timeout=30)
        first = int(pids.read_text().split()[0])
        os.kill(first, signal.SIGKILL)
        wait_for(lambda: len(pids.read_text().split()) == 2, timeout=15)
        second = int(pids.read_text().split()[1])
        assert second != first and alive(second)
        assert process.poll() is None
    finally:
        output = stop(process)
    assert "victim exited with -9; restarting in 1 s" in output
    assert process.returncode == 0, output
    assert not alive(second)
