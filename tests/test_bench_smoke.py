"""The benchmark suite keeps working: ``python -m bench --smoke`` at tiny sizes.

It starts its own embedded PostgreSQL in a temporary data dir (DATABASE_URL is not passed
on), Daphne, the media supervisor, the test camera and FFmpeg, and must leave none behind.
No figure is asserted: only that every benchmark ran and reported numbers.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.report import ORDER, TITLES
from testcamera import INSTALL_HINT, TestCamera

ROOT = Path(__file__).resolve().parent.parent
# every benchmark the bench knows (a new one is checked without editing this list)
SECTIONS = [TITLES[key] for key in ORDER]

pytestmark = [pytest.mark.camera, pytest.mark.timeout(900)]


def _section(report: str, title: str) -> str:
    start = report.index(f"## {title}")
    following = report.find("\n## ", start + 1)
    return report[start : following if following >= 0 else len(report)]


def test_bench_smoke_reports_every_benchmark(tmp_path):
    assert TestCamera.available(), INSTALL_HINT
    out = tmp_path / "benchmarks.md"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.pop("GTV_DATABASE_NAME", None)
    env["TMPDIR"] = str(tmp_path)  # the bench's own data dir goes under the test's tmp dir
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=840,
    )
    assert result.returncode == 0, result.stderr[-6000:]
    report = out.read_text()
    assert "## Machine" in report and "## Summary" in report
    for title in SECTIONS:
        section = _section(report, title)
        assert "Failed" not in section, section[-3000:]
        table_rows = [line for line in section.splitlines() if line.startswith("|")]
        assert len(table_rows) >= 3, section
        assert re.search(r"\d+(\.\d+)? (ms|s|MB|MB/s|rows/s|×)", section), section
    # Nothing left behind: no process still runs from the bench's data dir.
    leftovers = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if str(tmp_path).encode() in cmdline:
            leftovers.append(cmdline.replace(b"\0", b" ").decode(errors="replace"))
    assert not leftovers, leftovers
    assert not list(tmp_path.glob("gtv-bench-*")), "the data dir was not removed"


@pytest.mark.timeout(120)
def test_bench_stops_its_postgres_even_when_pg_ctl_cannot(tmp_path):
    """The bench's teardown leaves no server on its data dir: here ``pg_ctl stop`` fails
    (its ``postmaster.pid`` is gone), and the running server is still stopped."""
    from bench.common import postmaster_pids, stop_embedded_postgres

    code = (
        "import sys; from pathlib import Path; from gtvision import embedded_db as e; "
        "e.ensure_running(Path(sys.argv[1]))"
    )
    subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        cwd=ROOT,
        check=True,
        env={**os.environ, "TMPDIR": str(tmp_path)},
        stdout=subprocess.DEVNULL,
    )
    pgdata = tmp_path / "pgdata"
    assert postmaster_pids(pgdata)
    (pgdata / "postmaster.pid").unlink()
    try:
        stop_embedded_postgres(tmp_path, timeout=5)
        assert not postmaster_pids(pgdata)
    finally:
        for pid in postmaster_pids(pgdata):
            os.kill(pid, 9)
