"""The bot's side of the relay: send requests, and deliver replies once each, in channel order.

``submit`` records the request id at the tail of the channel's order list and queues the request.
``deliver`` reads the bot's reply stream through its consumer group and hands each reply to the
platform's ``post`` callback only when every earlier request of that channel has been answered
(or has waited ``order_wait_s``), and only if no earlier delivery posted the same request id.
A reply is acked after it is posted, so a restarted bot posts what it had not posted yet.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from doppel.errors import Kind, classify
from doppel.health import Heartbeat
from doppel.relay import DEFAULT_MAX_TEXT_CHARS, BadMessage, Keys, Reply, Request

log = logging.getLogger(__name__)

Post = Callable[[Reply], Awaitable[None]]

_POSTED_TTL_S = 7 * 24 * 3600
_ORDER_TTL_S = 24 * 3600
_MAX_POST_ATTEMPTS = 5


@dataclass
class _Held:
    entry_id: str
    reply: Reply
    since: float = field(default_factory=time.monotonic)
    attempts: int = 0
    retry_at: float = 0.0
    claimed: bool = False  # this client holds the posted key for a post that failed and awaits retry


class RelayClient:
    def __init__(self, redis, keys: Keys, bot: str, *, order_wait_s: float = 120.0,
                 max_text_chars: int = DEFAULT_MAX_TEXT_CHARS, heartbeat_interval_s: float = 5.0,
                 heartbeat_ttl_s: float = 15.0, read_block_ms: int = 500, retry_base_s: float = 1.0):
        self.redis = redis  # redis.asyncio.Redis with decode_responses=True
        self.keys = keys
        self.bot = bot
        self.order_wait_s = order_wait_s
        self.max_text_chars = max_text_chars
        self.read_block_ms = read_block_ms
        self.retry_base_s = retry_base_s  # a failed post is retried after retry_base_s * 2**attempts
        self.posted = 0
        self.finished = 0  # replies handled for the first time, posted or not (rejected, failed)
        self.duplicates = 0
        self._held: dict[str, _Held] = {}  # request id -> reply waiting for its turn
        self._stopping = asyncio.Event()
        self._on_failed: Post | None = None
        self.heartbeat = Heartbeat(redis, keys.heartbeat("bot", bot), interval_s=heartbeat_interval_s,
                                   ttl_s=heartbeat_ttl_s, info=lambda: {"posted": self.posted, "held": len(self._held)})

    @classmethod
    def from_settings(cls, redis, settings, *, bot: str | None = None, **overrides) -> RelayClient:
        values = dict(order_wait_s=settings.bot.order_wait_s, max_text_chars=settings.relay.max_text_chars,
                      heartbeat_interval_s=settings.relay.heartbeat_interval_s,
                      heartbeat_ttl_s=settings.relay.heartbeat_ttl_s)
        values.update(overrides)
        return cls(redis, Keys(settings.redis.prefix), bot or settings.bot.name, **values)

    async def startup(self) -> None:
        await self._ensure_group()
        self.heartbeat.start()

    async def _ensure_group(self) -> None:
        try:
            await self.redis.xgroup_create(self.keys.replies(self.bot), self.keys.bot_group(self.bot),
                                           id="0", mkstream=True)
        except Exception as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def shutdown(self) -> None:
        await self.heartbeat.stop()

    def stop(self) -> None:
        self._stopping.set()

    # -- sending -------------------------------------------------------------------------------
    async def submit(self, request: Request) -> str:
        """Queue ``request`` for a worker; raises ``BadMessage`` if it breaks the schema."""
        if request.bot != self.bot:
            raise BadMessage(f"request is for bot {request.bot!r}, this client is {self.bot!r}")
        request.validate(max_text_chars=self.max_text_chars)
        order = self.keys.channel_order(self.bot, request.channel)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.rpush(order, request.id)
            pipe.expire(order, _ORDER_TTL_S)
            pipe.xadd(self.keys.requests, request.to_fields())
            await pipe.execute()
        return request.id

    # -- delivering ----------------------------------------------------------------------------
    async def deliver(self, post: Post, *, on_failed: Post | None = None,
                      until: Callable[[], bool] | None = None) -> None:
        """Post replies as they arrive until ``stop()`` (or ``until()`` is true).

        ``post`` gets the replies to send; ``on_failed`` the ones a worker rejected or could not
        answer (for logs, or to tell the owner).
        """
        self._on_failed = on_failed
        backoff_s = 0.05
        # First page through our own pending replies (a restart, or a lost connection), from "0"
        # then from the last entry id seen; once that page comes back empty, read new ones (">").
        from_id = "0"
        while not self._stopping.is_set() and not (until and until()):
            try:
                stream = self.keys.replies(self.bot)
                pending = from_id != ">"
                response = await self.redis.xreadgroup(
                    self.keys.bot_group(self.bot), self.bot, {stream: from_id}, count=100,
                    block=None if pending else self.read_block_ms,
                )
                entries = response[0][1] if response else []
                held_entries = {h.entry_id for h in self._held.values()}
                for entry_id, fields in entries:
                    if pending and entry_id in held_entries:
                        continue
                    await self._accept(entry_id, fields or {}, post)
                if pending:
                    from_id = entries[-1][0] if entries else ">"
                await self._release_due(post)
                backoff_s = 0.05
            except Exception as exc:  # boundary: keep delivering through Redis restarts
                nogroup = "NOGROUP" in str(exc)
                if classify(exc) is not Kind.TRANSIENT and not nogroup:
                    log.exception("bot %s: unexpected error while delivering", self.bot)
                else:
                    log.warning("bot %s: Redis unavailable (%s); retrying", self.bot, exc)
                if nogroup:  # Redis came back without our group (no persistence): make it again
                    try:
                        await self._ensure_group()
                    except Exception as again:  # boundary: retried on the next round
                        log.warning("bot %s: cannot create the reply group yet (%s)", self.bot, again)
                await asyncio.sleep(backoff_s)
                backoff_s = min(backoff_s * 2, 5.0)
                from_id = "0"

    async def _accept(self, entry_id: str, fields: dict, post: Post) -> None:
        try:
            reply = Reply.from_fields(fields)
        except Exception as exc:  # BadMessage, or any parser slip: one poison entry must not wedge delivery
            log.warning("bot %s: dropping malformed reply %s: %s", self.bot, entry_id, str(exc)[:200])
            await self._ack(entry_id)
            return
        held = self._held.get(reply.request_id)
        if held is not None and held.entry_id != entry_id:
            # A second answer to a request whose first answer is still waiting its turn (a reclaimed
            # request answered twice): keep the first, ack this one.
            self.duplicates += 1
            log.info("bot %s: dropping duplicate reply %s for %s", self.bot, entry_id, reply.request_id)
            await self._ack(entry_id)
            return
        self._held[reply.request_id] = _Held(entry_id, reply)
        await self._release(reply.channel, post)

    async def _release(self, channel: str, post: Post) -> None:
        """Post held replies of ``channel`` while the head of its order list has one."""
        order = self.keys.channel_order(self.bot, channel)
        while True:
            head = await self.redis.lindex(order, 0)
            held = self._held.get(head) if head else None
            if held is None:
                # A reply whose request is not in the order list (say, sent by an older bot) waits for no one.
                loose = [h for h in self._held.values() if h.reply.channel == channel
                         and await self.redis.lpos(order, h.reply.request_id) is None]
                if not loose:
                    return
                held = loose[0]
            if time.monotonic() < held.retry_at or not await self._post_once(held, post):
                return

    async def _release_due(self, post: Post) -> None:
        """Retry failed posts; a reply that waited ``order_wait_s`` for an earlier one goes out anyway."""
        now = time.monotonic()
        channels = {held.reply.channel for held in self._held.values()}
        for held in list(self._held.values()):
            if now - held.since < self.order_wait_s:
                continue
            order = self.keys.channel_order(self.bot, held.reply.channel)
            ahead = await self.redis.lrange(order, 0, -1)
            if held.reply.request_id in ahead:
                # Only requests with no reply yet are given up on; earlier replies already here
                # keep their place (and go out first).
                skipped = [request_id for request_id in ahead[: ahead.index(held.reply.request_id)]
                           if request_id not in self._held]
                if skipped:
                    log.warning("bot %s: no reply for %s after %.0fs; posting later replies",
                                self.bot, ", ".join(skipped), self.order_wait_s)
                    for request_id in skipped:
                        await self.redis.lrem(order, 1, request_id)
        for channel in channels:
            await self._release(channel, post)

    async def _post_once(self, held: _Held, post: Post) -> bool:
        """Post ``held`` unless its request id was posted before; False if the platform failed."""
        reply = held.reply
        posted_key = self.keys.posted(self.bot, reply.request_id)
        # A claim kept from a failed attempt (its release failed too) is ours: not a duplicate.
        first = held.claimed or await self.redis.set(posted_key, str(time.time()), nx=True, ex=_POSTED_TTL_S)
        if not first:
            self.duplicates += 1
        elif reply.status == "ok":
            held.claimed = True
            try:
                await post(reply)
                self.posted += 1
            except Exception:  # boundary: the platform failed; retry later, with backoff
                held.attempts += 1
                try:
                    await self.redis.delete(posted_key)
                    held.claimed = False
                except Exception as exc:  # boundary: keep the claim; the retry needs no new one
                    log.warning("bot %s: cannot release the posted key of %s (%s)", self.bot, reply.request_id, exc)
                if held.attempts < _MAX_POST_ATTEMPTS:
                    log.exception("bot %s: posting %s failed (attempt %d)", self.bot, reply.request_id, held.attempts)
                    held.retry_at = time.monotonic() + self.retry_base_s * 2 ** held.attempts
                    return False
                log.error("bot %s: giving up on %s after %d attempts", self.bot, reply.request_id, held.attempts)
        else:
            log.info("bot %s: request %s was %s: %s", self.bot, reply.request_id, reply.status, reply.reason)
            if self._on_failed is not None:
                try:
                    await self._on_failed(reply)
                except Exception:  # boundary: a failing report must not stall the channel
                    log.exception("bot %s: on_failed raised for %s", self.bot, reply.request_id)
        if first:
            self.finished += 1
        await self._done(held)
        return True

    async def _done(self, held: _Held) -> None:
        self._held.pop(held.reply.request_id, None)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.lrem(self.keys.channel_order(self.bot, held.reply.channel), 1, held.reply.request_id)
            pipe.xack(self.keys.replies(self.bot), self.keys.bot_group(self.bot), held.entry_id)
            pipe.xdel(self.keys.replies(self.bot), held.entry_id)
            await pipe.execute()

    async def _ack(self, entry_id: str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xack(self.keys.replies(self.bot), self.keys.bot_group(self.bot), entry_id)
            pipe.xdel(self.keys.replies(self.bot), entry_id)
            await pipe.execute()
