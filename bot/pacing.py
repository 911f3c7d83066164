"""Posting like a person, within the platform's limits: splitting, pauses, typing, rate windows.

Each channel has one ``ChannelSender``: a queue of outgoing messages and a task that posts them
in order. A reply's parts go out as separate messages; the first at once (the typing indicator
was already showing while the worker generated it), each later one after a pause that grows with
its length, between ``pause_min_s`` and ``pause_max_s``, with the typing indicator on. Sends wait
for the platform's rate windows (per channel, per group, per bot) instead of running into them,
and a failed send is retried with backoff: limits and errors delay messages, never drop them.

Typing shows while a channel has requests waiting for the worker (``expect``/``done``) and while
a multi-part reply is being posted, refreshed before the platform lets it expire.

Tested in ``tests/bot/test_core.py`` (splitting, pauses, rate windows, typing, retried sends).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import unicodedata
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from bot.platform import Platform, RateLimit, SendFailed

log = logging.getLogger(__name__)

# Cut points, best first: paragraph, line, sentence end, any whitespace.
_BOUNDARIES = (
    re.compile(r"\n\s*\n"),
    re.compile(r"\n"),
    re.compile(r"(?<=[.!?…])[\"'”’)\]]*\s+|(?<=[。！？])"),
    re.compile(r"\s+"),
)


def _fit(text: str, limit: int, measure: Callable[[str], int]) -> int:
    """The longest prefix length of ``text`` whose measure is within ``limit``."""
    if measure(text) <= limit:
        return len(text)
    low, high = 0, min(len(text), limit)
    while low < high:  # measure grows with the prefix, so bisect
        mid = (low + high + 1) // 2
        if measure(text[:mid]) <= limit:
            low = mid
        else:
            high = mid - 1
    return low


def _joins(char: str) -> bool:
    """True if ``char`` belongs to the character before it (accents, emoji modifiers and joiners)."""
    return (unicodedata.combining(char) > 0 or char in "\u200d\ufe0e\ufe0f"
            or "\U0001f3fb" <= char <= "\U0001f3ff" or "\U000e0020" <= char <= "\U000e007f")


def split_message(text: str, limit: int, measure: Callable[[str], int] = len) -> list[str]:
    """``text`` as messages within ``limit``, cut at paragraph, line, sentence or word ends.

    A cut point in the second half of the allowed length is preferred in that order; only text
    with no whitespace at all (a long URL, CJK without punctuation) is cut mid-word, and then
    never inside an emoji sequence or between a letter and its accent.
    """
    pieces: list[str] = []
    text = text.strip()
    while text and measure(text) > limit:
        room = _fit(text, limit, measure)
        cut = 0
        for pattern in _BOUNDARIES:
            # Matches end within the room; the cut goes after the boundary (its whitespace is
            # stripped), so a closing quote stays with its sentence.
            ends = [m.end() for m in pattern.finditer(text, 0, room) if m.start() >= room // 2 and m.end()]
            if ends:
                cut = ends[-1]
                break
        if cut <= 0:
            cut = max(1, room)
            while cut > 1 and (_joins(text[cut]) or text[cut - 1] == "\u200d"):
                cut -= 1
        head, text = text[:cut].rstrip(), text[cut:].lstrip()
        if head:
            pieces.append(head)
    if text:
        pieces.append(text)
    return pieces


@dataclass(frozen=True)
class PacingOptions:
    chars_per_s: float = 5.0      # typing speed the pauses imitate
    pause_min_s: float = 1.0
    pause_max_s: float = 6.0
    retry_base_s: float = 1.0     # a failed send is retried after retry_base_s * 2**attempt...
    max_attempts: int = 6         # ...this many times in all, then given up (and logged)

    @classmethod
    def from_settings(cls, settings, **overrides) -> PacingOptions:
        bot = settings.bot
        values = dict(chars_per_s=bot.typing_chars_per_s, pause_min_s=bot.pause_min_s, pause_max_s=bot.pause_max_s)
        values.update(overrides)
        return cls(**values)

    def pause_before(self, part: str) -> float:
        """Seconds to wait (typing) before sending ``part`` after an earlier part."""
        return min(max(len(part) / self.chars_per_s, self.pause_min_s), self.pause_max_s)


class RateWindow:
    """At most ``limit.count`` acquisitions per ``limit.period_s``; waiters go in FIFO order."""

    def __init__(self, limit: RateLimit):
        self.limit = limit
        self._times: deque[float] = deque()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = time.monotonic()
                while self._times and now - self._times[0] >= self.limit.period_s:
                    self._times.popleft()
                if len(self._times) < self.limit.count:
                    self._times.append(now)
                    return
                await asyncio.sleep(self._times[0] + self.limit.period_s - now)

    def settle(self) -> None:
        """The send that took the newest slot is done: count the slot from now.

        The platform counts a message when it arrives, not when we decided to send it; timing the
        window from the completed send keeps network jitter from making a burst look too fast.
        """
        if self._times:
            self._times[-1] = max(self._times[-1], time.monotonic())


@dataclass
class Outgoing:
    """One batch of messages for a channel: a reply's parts, or a notice."""

    parts: Sequence[str]          # each already within the platform's limit
    reply_to: str = ""            # the first part quotes this message
    paced: bool = True            # pauses between parts (a reply), or none (a notice)
    on_sent: Callable[[str, str], Awaitable[None]] | None = None  # (text, message id) after each part


class ChannelSender:
    """The outbox and typing indicator of one channel."""

    def __init__(self, platform: Platform, channel: str, chat_type: str, options: PacingOptions,
                 shared: Sequence[RateWindow] = (), *, max_wait_s: float = 120.0):
        self.platform = platform
        self.channel = channel
        self.options = options
        self.max_wait_s = max_wait_s  # stop showing typing for a request after this long
        self.windows = [RateWindow(limit) for limit in platform.limits_for(chat_type)] + list(shared)
        self.sent = 0
        self._queue: asyncio.Queue[Outgoing] = asyncio.Queue()
        self._waiting: dict[str, float] = {}  # request id -> when it was submitted
        self._busy = False
        self._last_typing = 0.0
        self._wake = asyncio.Event()
        self._sender = asyncio.create_task(self._send_loop(), name=f"send:{channel}")
        self._typing: asyncio.Task | None = None

    # -- typing --------------------------------------------------------------------------------
    def expect(self, request_id: str) -> None:
        """A request for this channel went to the worker: show typing until ``done``."""
        self._waiting[request_id] = time.monotonic()
        self._start_typing()

    def done(self, request_id: str) -> None:
        self._waiting.pop(request_id, None)
        self._wake.set()

    def _start_typing(self) -> None:
        if self._typing is None or self._typing.done():
            self._typing = asyncio.create_task(self._typing_loop(), name=f"typing:{self.channel}")
        self._wake.set()

    def _wants_typing(self) -> bool:
        now = time.monotonic()
        for request_id in [r for r, since in self._waiting.items() if now - since > self.max_wait_s]:
            del self._waiting[request_id]  # the worker never answered: a person would stop typing too
        return bool(self._waiting) or self._busy

    async def _typing_loop(self) -> None:
        # Refresh a little before the indicator expires, so it never flickers off.
        refresh_s = self.platform.typing_lifetime_s * 0.8
        while self._wants_typing():
            if time.monotonic() - self._last_typing >= refresh_s:
                await self._type()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.05, self._last_typing + refresh_s - time.monotonic()))

    async def _type(self) -> None:
        self._last_typing = time.monotonic()
        try:
            await self.platform.send_typing(self.channel)
        except Exception as exc:  # boundary: a missed typing indicator is cosmetic
            log.debug("typing in %s failed: %s", self.channel, exc)

    # -- sending -------------------------------------------------------------------------------
    def put(self, outgoing: Outgoing) -> None:
        if outgoing.parts:
            self._queue.put_nowait(outgoing)

    @property
    def idle(self) -> bool:
        return self._queue.empty() and not self._busy

    async def _send_loop(self) -> None:
        while True:
            outgoing = await self._queue.get()
            self._busy = len(outgoing.parts) > 1
            try:
                for index, part in enumerate(outgoing.parts):
                    if index and outgoing.paced:
                        self._start_typing()
                        await self._type()  # a sent message clears the indicator on some platforms
                        await asyncio.sleep(self.options.pause_before(part))
                    message_id = await self._send(part, outgoing.reply_to if index == 0 else "")
                    if message_id is not None and outgoing.on_sent is not None:
                        try:
                            await outgoing.on_sent(part, message_id)
                        except Exception:  # boundary: bookkeeping must not stop the outbox
                            log.exception("after-send hook failed in %s", self.channel)
            finally:
                self._busy = False
                self._queue.task_done()
                # After a message the platform hides the indicator: show it again if more is coming.
                self._last_typing = 0.0
                self._wake.set()

    async def _send(self, text: str, reply_to: str) -> str | None:
        for attempt in range(self.options.max_attempts):
            for window in self.windows:
                await window.acquire()
            try:
                message_id = await self.platform.send_text(self.channel, text, reply_to=reply_to)
                for window in self.windows:
                    window.settle()
                self.sent += 1
                return message_id
            except SendFailed as exc:
                log.error("%s: cannot post to %s: %s", self.platform.name, self.channel, exc)
                return None
            except Exception as exc:  # boundary: the platform or the network failed; retry
                for window in self.windows:
                    window.settle()
                delay = self.options.retry_base_s * 2 ** attempt
                log.warning("%s: sending to %s failed (%s: %s); retry %d in %.1fs", self.platform.name,
                            self.channel, type(exc).__name__, exc, attempt + 1, delay)
                await asyncio.sleep(delay)
        log.error("%s: gave up on a message to %s after %d attempts", self.platform.name, self.channel,
                  self.options.max_attempts)
        return None

    async def drain(self, timeout_s: float) -> bool:
        """Wait until everything queued was sent (or ``timeout_s``); True if it was."""
        try:
            await asyncio.wait_for(self._queue.join(), timeout_s)
            return True
        except TimeoutError:
            return False

    async def close(self) -> None:
        self._waiting.clear()
        for task in (self._sender, self._typing):
            if task is not None:
                task.cancel()
        await asyncio.gather(*(t for t in (self._sender, self._typing) if t is not None), return_exceptions=True)
