"""The engine interface the worker talks to (request -> reply parts), and the echo engine.

An engine turns one request into the parts of a reply. The echo engine needs no model: it
returns a deterministic transform of the request, so the relay can be tested and measured alone.
The engine for a real model is ``inference/chat_engine.py`` (history, persona, routed adapter) on
top of a model backend (``inference/backends/``); ``inference/serve.create_engine`` picks one.

Tested in ``tests/inference/test_worker.py`` (the echo engine behind the worker: one part per burst
segment, ``delay_ms``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol

from doppel.prompt import split_burst
from doppel.relay import Request


@dataclass(frozen=True)
class Generation:
    parts: tuple[str, ...]
    adapter: str = ""
    notice: str = ""  # something the owner should know (an adapter failed to load, ...)


class Engine(Protocol):
    name: str

    async def startup(self) -> None: ...

    async def shutdown(self) -> None: ...

    async def generate(self, request: Request) -> Generation: ...


class EchoEngine:
    """Replies ``echo: <text>``, one part per burst segment of the input, after ``delay_ms``."""

    name = "echo"

    def __init__(self, delay_ms: float = 0.0):
        self.delay_ms = delay_ms

    async def startup(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    async def generate(self, request: Request) -> Generation:
        if self.delay_ms:
            await asyncio.sleep(self.delay_ms / 1000)
        segments = split_burst(request.text) or [""]
        return Generation(parts=tuple(f"echo: {s}" for s in segments), adapter="echo")
