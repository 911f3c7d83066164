"""Runs a worker process: Redis (configured or embedded), the engine, signals, clean shutdown."""

from __future__ import annotations

import asyncio
import logging

from doppel.errors import ConfigError
from doppel.redis_client import async_client
from doppel.redis_server import redis_url
from doppel.relay import Keys
from doppel.runtime import on_stop_signals
from inference.engine import EchoEngine, Engine
from inference.worker import Worker, WorkerOptions

log = logging.getLogger(__name__)


def create_engine(settings, redis=None, resolve_model=None) -> Engine:
    """The engine named by ``settings.worker.engine``; model engines need the async ``redis``.

    ``resolve_model(base, source) -> Path`` turns ``[model] base`` into a model directory
    (default: ``chat_engine.model_directory``, directories only).
    """
    name = settings.worker.engine
    if name == "echo":
        return EchoEngine(delay_ms=settings.worker.echo_delay_ms)
    if name in ("hf", "vllm"):
        from inference.chat_engine import chat_engine_from_settings

        if resolve_model is None:
            return chat_engine_from_settings(settings, redis)
        return chat_engine_from_settings(settings, redis, resolve_model)
    raise ConfigError(f"{settings.source}: worker.engine = {name!r}: no such engine (allowed: echo, hf, vllm)")


def build_worker(settings, url: str, *, resolve_model=None, **overrides) -> Worker:
    """A worker on ``url``; ``resolve_model`` turns ``[model] base`` into a directory (see ``create_engine``)."""
    redis = async_client(url)
    engine = create_engine(settings, redis, resolve_model)
    return Worker(redis, engine, Keys(settings.redis.prefix), WorkerOptions.from_settings(settings, **overrides))


async def _serve(worker: Worker, burst: bool) -> int:
    on_stop_signals(worker.stop)
    try:
        return await worker.run(burst=burst)
    finally:
        await worker.redis.aclose()


def run_worker(settings, *, burst: bool = False, resolve_model=None, **overrides) -> int:
    """Serve requests until SIGINT/SIGTERM (or, with ``burst``, until the queue is empty)."""
    with redis_url(settings) as url:
        worker = build_worker(settings, url, resolve_model=resolve_model, **overrides)
        return asyncio.run(_serve(worker, burst))
