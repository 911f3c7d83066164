"""Shared pieces of the web chat tests: start the web chat the way ``doppel demo`` does."""

from __future__ import annotations

import asyncio
import contextlib

from bot.webchat.platform import serve_web


@contextlib.asynccontextmanager
async def serving_web(settings, redis_url: str, **options):
    """Run ``serve_web`` for the block; yields the started ``WebPlatform``."""
    stop, started = asyncio.Event(), asyncio.Future()
    task = asyncio.create_task(serve_web(settings, redis_url, stop=stop, drain_s=5, on_started=started.set_result,
                                         **options))
    done, _ = await asyncio.wait({started, task}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
    assert started in done, task.exception() if task.done() else "the web chat did not start in 10 s"
    try:
        yield started.result()
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
