"""Runs a worker process: Redis (configured or embedded), the engine, signals, clean shutdown."""

from __future__ import annotations

import asyncio
import logging
import signal

from doppel.redis_server import redis_url
from doppel.relay import Keys
from inference.engine import create_engine
from inference.worker import Worker, WorkerOptions

log = logging.getLogger(__name__)


def async_redis(url: str):
    import redis.asyncio as aioredis

    # Health checks make a client notice a restarted server on its next command, not on a hang.
    return aioredis.Redis.from_url(url, decode_responses=True, health_check_interval=10)


def build_worker(settings, url: str, **overrides) -> Worker:
    redis = async_redis(url)
    engine = create_engine(settings, redis)
    return Worker(redis, engine, Keys(settings.redis.prefix), WorkerOptions.from_settings(settings, **overrides))


async def _serve(worker: Worker, burst: bool) -> int:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, worker.stop)
    try:
        return await worker.run(burst=burst)
    finally:
        await worker.redis.aclose()


def run_worker(settings, *, burst: bool = False, **overrides) -> int:
    """Serve requests until SIGINT/SIGTERM (or, with ``burst``, until the queue is empty)."""
    with redis_url(settings) as url:
        worker = build_worker(settings, url, **overrides)
        return asyncio.run(_serve(worker, burst))
