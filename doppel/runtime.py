"""How every long-running Doppel process stops: SIGINT or SIGTERM sets a stop event (or calls a
stop function), the process finishes what is in flight and shuts down in order.

``run_until_signal`` is the usual entry: ``asyncio.run`` of a coroutine that gets the stop event.
``on_stop_signals`` is for code that already runs in a loop (the worker's own ``stop``, the demo).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def on_stop_signals(callback: Callable[[], object]) -> None:
    """Call ``callback`` on SIGINT/SIGTERM; must be called from inside the running loop."""
    loop = asyncio.get_running_loop()
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, callback)


def run_until_signal(main: Callable[[asyncio.Event], Awaitable[T]]) -> T:
    """Run ``main(stop)`` in a new event loop; ``stop`` is set on SIGINT/SIGTERM."""

    async def runner() -> T:
        stop = asyncio.Event()
        on_stop_signals(stop.set)
        return await main(stop)

    return asyncio.run(runner())
