"""The ``doppel`` command as a user runs it: help, errors without tracebacks, demo, status."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GROUPS = ("data", "train", "eval", "adapters", "worker", "bot", "chat", "demo", "status")


def doppel(*args: str, env: dict | None = None, input: str | None = None, timeout: float = 60,
           cwd: Path | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("DOPPEL_")}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "doppel", *args], input=input, capture_output=True,
                          text=True, timeout=timeout, env=full_env, cwd=cwd or ROOT)


def test_help_lists_every_group():
    result = doppel("--help")
    assert result.returncode == 0
    for group in GROUPS:
        assert f"  {group} " in result.stdout, f"{group} missing from doppel --help"


@pytest.mark.parametrize("group", GROUPS)
def test_every_group_explains_itself(group):
    result = doppel(group, "--help")
    assert result.returncode == 0, result.stderr
    description = result.stdout.split("\n\n")[1].strip()
    assert len(description) > 20, f"doppel {group} --help has no description"


@pytest.mark.parametrize("toml, env, expected", [
    ("[worker]\nconcurrency = -3\n", {}, "worker.concurrency = -3"),
    ("[redis]\nurl = 'localhost:6379'\n", {}, "redis.url = 'localhost:6379': must be a redis://"),
    ("[telegram]\nenable = true\n", {}, "unknown key 'telegram.enable'"),
    ("[telegram]\nenabled = true\n", {}, "DOPPEL_TELEGRAM_TOKEN is not set"),
])
def test_config_errors_are_one_line_and_exit_nonzero(tmp_path, toml, env, expected):
    config = tmp_path / "doppel.toml"
    config.write_text(toml)
    result = doppel("--config", str(config), "bot", "check", env=env)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and expected in lines[0], result.stderr


def test_demo_chats_through_the_embedded_redis_and_stops_it(tmp_path):
    env = {"DOPPEL_DATA_DIR": str(tmp_path / "data")}
    result = doppel("demo", "--no-train", "--engine", "echo", "--chat", "terminal", "--timeout", "20", env=env,
                    input="hi there\nsecond\n\nthird\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["clone> echo: hi there", "clone> echo: second", "clone> echo: third"]
    # The demo keeps to its own corner of the data dir: its own Redis, registry and runs.
    redis_dir = tmp_path / "data" / "demo" / "redis"
    assert (redis_dir / "appendonly.aof").exists() or (redis_dir / "appendonlydir").exists()
    assert not (redis_dir / "redis.sock").exists(), "the demo stops the Redis it started"


def test_status_reports_workers_queue_and_health(tmp_path):
    env = {"DOPPEL_DATA_DIR": str(tmp_path / "data")}
    down = doppel("status", env=env)
    assert down.returncode == 3 and "not running" in down.stderr and "Traceback" not in down.stderr
    config = tmp_path / "doppel.toml"
    config.write_text("[worker]\nname = 'status-w'\n[relay]\nheartbeat_interval_s = 0.2\n")
    full_env = {**{k: v for k, v in os.environ.items() if not k.startswith("DOPPEL_")}, **env}
    worker = subprocess.Popen([sys.executable, "-m", "doppel", "--config", str(config), "worker", "run"],
                              env=full_env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        report = None
        for _ in range(100):
            result = doppel("--config", str(config), "status", "--json", env=env)
            if result.returncode == 0:
                report = json.loads(result.stdout)
                if "status-w" in report["workers"]:
                    break
            time.sleep(0.1)
        assert report and report["workers"]["status-w"]["engine"] == "echo"
        assert report["queued"] == 0 and report["pending"] == 0
        assert doppel("--config", str(config), "status", "--require", "worker", env=env).returncode == 0
        missing_bot = doppel("--config", str(config), "status", "--require", "bot", env=env)
        assert missing_bot.returncode == 1 and "no live bot" in missing_bot.stderr
        table = doppel("--config", str(config), "status", env=env)
        assert "status-w" in table.stdout and "queued: 0" in table.stdout
    finally:
        worker.terminate()
        _, stderr = worker.communicate(timeout=20)
    assert worker.returncode == 0, stderr
    assert "worker stopped" in stderr


def test_status_self_counts_only_this_hosts_components(redis_url, sync_redis, keys):
    """A pod's probe must fail when only other pods' workers are alive."""
    sync_redis.set(keys.heartbeat("worker", "elsewhere-1"), json.dumps({"host": "other-host", "pid": 1}), px=60_000)
    env = {"DOPPEL_REDIS_URL": redis_url}
    assert doppel("status", "--require", "worker", env=env).returncode == 0
    mine = doppel("status", "--require", "worker", "--self", env=env)
    assert mine.returncode == 1 and "no live worker on" in mine.stderr


def test_status_text_names_shards_no_live_worker_holds(capsys):
    from doppel.cli import _print_status
    from doppel.health import Status

    report = Status(workers={"w1": {"host": "h", "pid": 1}}, shards=4, unowned_shards=[3],
                    shard_owners={"w1": [0], "gone": [1, 2]})
    _print_status(report)
    assert "shards no live worker holds: 1,2,3" in capsys.readouterr().out
    _print_status(Status(workers={"w1": {}}, shards=2, shard_owners={"w1": [0, 1]}))
    assert "no live worker holds" not in capsys.readouterr().out
