"""``benchmarks/web_load.py`` in miniature: a few guests for a few seconds through the real processes
(Redis, an echo worker, ``doppel bot web`` in public mode), its figures written, and nothing it
started left running, also when it is stopped with SIGTERM halfway."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "benchmarks" / "web_load.py"
SMALL = ["--guests", "4", "--seconds", "4", "--interval-s", "1", "--guest-idle-s", "3", "--session-s", "2",
         "--shards", "2"]


def _children(pid: int) -> set[int]:
    """Every process whose parent is ``pid`` (Linux /proc)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.add(pid)
    return alive


def test_the_load_benchmark_reports_its_figures(tmp_path):
    out = tmp_path / "web.json"
    result = subprocess.run([sys.executable, str(SCRIPT), *SMALL, "--json", str(out)], cwd=ROOT, capture_output=True,
                            text=True, timeout=180, env={k: v for k, v in os.environ.items() if k != "DOPPEL_CONFIG"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "reply latency p99 (ms)" in result.stdout and "asyncio tasks at 4 s" in result.stdout
    report = json.loads(out.read_text())
    assert report["errors"] == 0 and report["lost"] == 0, report["error_samples"]
    assert report["replied"] == report["sent"] > 0 and report["guest_sessions"] > 4, "guests came and went"
    assert {f["name"] for f in report["figures"]} >= {"errors", "lost replies"}
    assert report["first"]["tasks"] > 0 and report["last"]["rss_mib"] > 0


def test_sigterm_stops_everything_it_started(tmp_path):
    process = subprocess.Popen([sys.executable, str(SCRIPT), "--guests", "3", "--seconds", "60"], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stderr.readline()  # "3 guests for 60 s against ...": everything is running
        assert "guests for" in line, line + process.stderr.read()[-2000:]
        started = _children(process.pid)
        assert len(started) >= 4, "Redis, the reaper, a worker and the web chat"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 130
        deadline = time.monotonic() + 10
        while _alive(started) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(started), f"still running: {_alive(started)}"
    finally:
        if process.poll() is None:
            process.kill()
