"""Shared pieces of the bot tests: bounded waits, an in-memory platform, a running worker.

``MemoryPlatform`` implements ``bot.platform.Platform`` in memory (what it sent, typed and
registered, with times), so the core's rules are tested without a network; the platform
adapters are tested against the fake servers in ``tests/fakes``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import time
from dataclasses import dataclass, field

from bot.platform import Incoming, Platform, RateLimit, SendFailed


async def eventually(predicate, timeout: float = 5.0, what: str = "condition", interval: float = 0.01) -> None:
    """Wait until ``predicate()`` (sync or async) is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


@contextlib.asynccontextmanager
async def running(worker):
    """Run ``worker`` in the background for the duration of the block."""
    task = asyncio.create_task(worker.run())
    await eventually(lambda: worker.heartbeat._task is not None, what="worker start")
    try:
        yield worker
    finally:
        worker.stop()
        await asyncio.wait_for(task, 10)


@dataclass
class Sent:
    channel: str
    text: str
    reply_to: str
    message_id: str
    at: float = field(default_factory=time.monotonic)


class MemoryPlatform(Platform):
    name = "telegram"  # reads the [telegram] settings (owner ids, chats)
    max_message_chars = 50
    typing_lifetime_s = 0.5
    channel_limits = (RateLimit(100, 1.0),)
    username = "doppel_test_bot"
    display_name = "Doppel"

    def __init__(self, fail_first: int = 0, refuse: bool = False):
        self.sent: list[Sent] = []
        self.typing: list[tuple[str, float]] = []
        self.registered: list = []
        self.attempts = 0
        self.fail_first = fail_first  # this many sends raise a transient error first
        self.refuse = refuse          # every send fails for good
        self._ids = itertools.count(5000)

    async def connect(self) -> None:
        return None

    async def listen(self, core) -> None:
        return None

    async def close(self) -> None:
        return None

    async def send_text(self, channel: str, text: str, *, reply_to: str = "") -> str:
        self.attempts += 1
        assert len(text) <= self.max_message_chars, f"{len(text)} characters is over the limit"
        if self.refuse:
            raise SendFailed("chat not found")
        if self.fail_first > 0:
            self.fail_first -= 1
            raise ConnectionError("platform hiccup")
        message_id = str(next(self._ids))
        self.sent.append(Sent(channel, text, reply_to, message_id))
        return message_id

    async def send_typing(self, channel: str) -> None:
        self.typing.append((channel, time.monotonic()))

    async def register_commands(self, commands) -> None:
        self.registered = list(commands)

    async def owner_channel(self, user_id: str) -> str | None:
        return f"telegram:{user_id}"

    def texts(self, channel: str | None = None) -> list[str]:
        return [s.text for s in self.sent if channel is None or s.channel == channel]


_message_ids = itertools.count(1)


def incoming(text: str, *, channel: str = "telegram:-100", chat_type: str = "group", author_id: str = "11",
             author_name: str = "Ann", at: float | None = None, **flags) -> Incoming:
    return Incoming(platform="telegram", channel=channel, chat_type=chat_type, author_id=author_id,
                    author_name=author_name, text=text, message_id=str(next(_message_ids)),
                    at=time.time() if at is None else at,
                    chat_ids=(channel.split(":")[1],) if chat_type == "group" else (), **flags)


# Fast pacing for tests: short but measurable pauses between parts.
FAST_BOT = {"pause_min_s": 0.05, "pause_max_s": 0.2, "typing_chars_per_s": 1000.0, "cooldown_s": 0.0,
            "trigger_probability": 0.0}
