"""The bot's side of the relay: send requests, and deliver replies once each, in channel order.

``submit`` records the request id at the tail of the channel's order list and queues the request
on the channel's shard stream (``Keys.request_stream``), so one worker answers the channel.
``deliver`` reads the bot's reply stream through its consumer group and hands each reply to the
platform's ``post`` callback only when every earlier request of that channel has been answered
(or has waited ``order_wait_s``), and only if no earlier delivery posted the same request id.
A reply is acked after it is posted, so a restarted bot posts what it had not posted yet.

Each read batch costs a few round trips however many replies it holds: one script call sets the
posted guards of every reply whose turn has come (``_RELEASE_LUA``), the posts follow, and one
transaction acks them all. ``submit`` is one script call too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from doppel.errors import Kind, classify
from doppel.health import Heartbeat
from doppel.relay import DEFAULT_MAX_TEXT_CHARS, BadMessage, Keys, Reply, Request

log = logging.getLogger(__name__)

Post = Callable[[Reply], Awaitable[None]]

_POSTED_TTL_S = 7 * 24 * 3600
_ORDER_TTL_S = 24 * 3600
_MAX_POST_ATTEMPTS = 5

# KEYS: the channel order list, the channel's request stream, the deployment's shard count.
# ARGV: request id, order TTL (s), this bot's shard count, the request's fields as name, value, ...
# The shard count only grows, and in the same step as the XADD: every stream a request is queued
# on is one that the workers cover.
_SUBMIT_LUA = """
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
local shards = tonumber(ARGV[3])
if shards > 1 and (tonumber(redis.call('GET', KEYS[3])) or 0) < shards then
  redis.call('SET', KEYS[3], shards)
end
return redis.call('XADD', KEYS[2], '*', unpack(ARGV, 4))
"""

# Per channel, KEYS: its order list, then the posted guard of each of its n candidate replies;
# ARGV (after the guard TTL and value): n, then the candidates' request ids in arrival order.
# Walks the candidates as they arrived, as if each had been released on arrival: a candidate
# whose request is not in the order list (sent by an older bot) goes at once; then the head of
# the list goes while its reply is a candidate. Sets the guard of each reply that goes (SET NX).
# Returns per channel {index, set, index, set, ...} in posting order: the candidate's 1-based
# index, and 1 if this call set its guard, 0 if the guard was there (posted before).
_RELEASE_LUA = """
local out, k, a = {}, 1, 3
while a <= #ARGV do
  local order, n = KEYS[k], tonumber(ARGV[a])
  local slot, arrived, claimed, got, inhead = {}, {}, {}, {}, {}
  for i = 1, n do slot[ARGV[a + i]] = i end
  local head = redis.call('LRANGE', order, 0, n - 1)
  for _, id in ipairs(head) do inhead[id] = true end
  local pos = 1
  local function claim(i)
    claimed[i] = true
    got[#got + 1] = i
    got[#got + 1] = redis.call('SET', KEYS[k + i], ARGV[2], 'NX', 'EX', ARGV[1]) and 1 or 0
  end
  for i = 1, n do
    local id = ARGV[a + i]
    arrived[id] = true
    if not inhead[id] and not redis.call('LPOS', order, id) then claim(i) end
    while pos <= #head and arrived[head[pos]] and not claimed[slot[head[pos]]] do
      claim(slot[head[pos]])
      pos = pos + 1
    end
  end
  out[#out + 1] = got
  k, a = k + n + 1, a + n + 1
end
return out
"""


@dataclass
class _Held:
    entry_id: str
    reply: Reply
    since: float = field(default_factory=time.monotonic)
    attempts: int = 0
    retry_at: float = 0.0
    claimed: bool = False  # this client set the posted key and has not released it (it may post)


class RelayClient:
    def __init__(self, redis, keys: Keys, bot: str, *, order_wait_s: float = 120.0,
                 max_text_chars: int = DEFAULT_MAX_TEXT_CHARS, heartbeat_interval_s: float = 5.0,
                 heartbeat_ttl_s: float = 15.0, read_block_ms: int = 500, retry_base_s: float = 1.0,
                 shards: int = 1):
        self.redis = redis  # redis.asyncio.Redis with decode_responses=True
        self.keys = keys
        self.bot = bot
        self.order_wait_s = order_wait_s
        self.max_text_chars = max_text_chars
        self.read_block_ms = read_block_ms
        self.retry_base_s = retry_base_s  # a failed post is retried after retry_base_s * 2**attempts
        # Request streams a channel may go to ([relay] shards); 1: the stream every worker shares.
        self.shards = shards
        self.posted = 0
        self.finished = 0  # replies handled for the first time, posted or not (rejected, failed)
        self.duplicates = 0
        self._held: dict[str, _Held] = {}  # request id -> reply waiting for its turn
        self._stopping = asyncio.Event()
        self._on_failed: Post | None = None
        self._submit_script = redis.register_script(_SUBMIT_LUA)
        self._release_script = redis.register_script(_RELEASE_LUA)
        self.heartbeat = Heartbeat(redis, keys.heartbeat("bot", bot), interval_s=heartbeat_interval_s,
                                   ttl_s=heartbeat_ttl_s, info=lambda: {"posted": self.posted, "held": len(self._held)})

    @classmethod
    def from_settings(cls, redis, settings, *, bot: str | None = None, **overrides) -> RelayClient:
        values = dict(order_wait_s=settings.bot.order_wait_s, max_text_chars=settings.relay.max_text_chars,
                      heartbeat_interval_s=settings.relay.heartbeat_interval_s,
                      heartbeat_ttl_s=settings.relay.heartbeat_ttl_s, shards=settings.relay.shards)
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

    @contextlib.asynccontextmanager
    async def delivering(self, post: Post, *, on_failed: Post | None = None,
                         drain_s: float = 5.0) -> AsyncIterator[RelayClient]:
        """Join the relay and deliver in the background; on exit stop, let delivery finish (up to
        ``drain_s``, then cancel it) and leave. For callers with nothing to do in between."""
        await self.startup()
        task = asyncio.create_task(self.deliver(post, on_failed=on_failed), name=f"deliver:{self.bot}")
        try:
            yield self
        finally:
            self.stop()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), drain_s)
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            await self.shutdown()

    # -- sending -------------------------------------------------------------------------------
    async def submit(self, request: Request) -> str:
        """Queue ``request`` for a worker; raises ``BadMessage`` if it breaks the schema."""
        if request.bot != self.bot:
            raise BadMessage(f"request is for bot {request.bot!r}, this client is {self.bot!r}")
        request.validate(max_text_chars=self.max_text_chars)
        fields = [item for pair in request.to_fields().items() for item in pair]
        await self._submit_script(
            keys=[self.keys.channel_order(self.bot, request.channel),
                  self.keys.request_stream(request.channel, self.shards), self.keys.shard_count],
            args=[request.id, _ORDER_TTL_S, self.shards, *fields])
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
                held_entries = {h.entry_id for h in self._held.values()} if pending else set()
                drop = self._accept([entry for entry in entries if entry[0] not in held_entries])
                if pending:
                    from_id = entries[-1][0] if entries else ">"
                await self._release_due(post, drop)
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

    def _accept(self, entries: list[tuple[str, dict]]) -> list[str]:
        """Hold each reply for its turn; returns the entries to ack without posting."""
        drop = []
        for entry_id, fields in entries:
            try:
                reply = Reply.from_fields(fields or {})
            except Exception as exc:  # BadMessage, or any parser slip: one poison entry must not wedge delivery
                log.warning("bot %s: dropping malformed reply %s: %s", self.bot, entry_id, str(exc)[:200])
                drop.append(entry_id)
                continue
            held = self._held.get(reply.request_id)
            if held is not None and held.entry_id != entry_id:
                # A second answer to a request whose first answer is still waiting its turn (a reclaimed
                # request answered twice): keep the first, ack this one.
                self.duplicates += 1
                log.info("bot %s: dropping duplicate reply %s for %s", self.bot, entry_id, reply.request_id)
                drop.append(entry_id)
                continue
            self._held[reply.request_id] = _Held(entry_id, reply)
        return drop

    async def _release(self, post: Post, drop: list[str]) -> None:
        """Post every held reply whose turn has come, then ack them (and ``drop``) in one transaction.

        A failed post holds back the rest of its channel: their guards are dropped again, so they
        are posted after it (by this bot or, should it die, by the next one).
        """
        now = time.monotonic()
        waiting: dict[str, list[_Held]] = {}
        for held in self._held.values():
            if now >= held.retry_at:
                waiting.setdefault(held.reply.channel, []).append(held)
        turn = await self._claim(waiting) if waiting else []
        done: list[_Held] = []
        unclaim: list[_Held] = []
        blocked: set[str] = set()
        index = 0
        try:
            for index in range(len(turn)):
                held, first = turn[index]
                if held.reply.channel in blocked:
                    if held.claimed:
                        unclaim.append(held)
                elif await self._post_once(held, first, post):
                    done.append(held)
                else:
                    blocked.add(held.reply.channel)
        except BaseException:  # the process is going down mid-post: ack what was posted, free what was not
            unclaim += [held for held, _ in turn[index + 1:] if held.claimed]
            try:
                await self._done(done, drop, unclaim)
            except Exception as exc:  # boundary: the original error matters more
                log.warning("bot %s: cannot ack posted replies on the way out (%s)", self.bot, exc)
            raise
        await self._done(done, drop, unclaim)

    async def _claim(self, waiting: dict[str, list[_Held]]) -> list[tuple[_Held, bool]]:
        """The replies of ``waiting`` whose turn has come, in posting order, with their guards set.

        Each comes with whether this client may post it: False if its request was posted before.
        """
        keys, args = [], [_POSTED_TTL_S, str(time.time())]
        for channel, held in waiting.items():
            keys += [self.keys.channel_order(self.bot, channel),
                     *(self.keys.posted(self.bot, h.reply.request_id) for h in held)]
            args += [len(held), *(h.reply.request_id for h in held)]
        turn = []
        for held, claims in zip(waiting.values(), await self._release_script(keys=keys, args=args), strict=True):
            for index, was_set in zip(claims[::2], claims[1::2], strict=True):
                # A claim kept from a failed attempt (its release failed too) is ours: not a duplicate.
                held[index - 1].claimed = held[index - 1].claimed or bool(was_set)
                turn.append((held[index - 1], held[index - 1].claimed))
        return turn

    async def _release_due(self, post: Post, drop: list[str] | None = None) -> None:
        """Post what is due (``drop``: entries to ack unposted), failed posts whose retry time came
        included; a reply that waited ``order_wait_s`` for an earlier one goes out anyway."""
        now = time.monotonic()
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
        await self._release(post, drop or [])

    async def _post_once(self, held: _Held, first: bool, post: Post) -> bool:
        """Post ``held`` unless its request id was posted before (not ``first``); False if the platform failed."""
        reply = held.reply
        posted_key = self.keys.posted(self.bot, reply.request_id)
        if not first:
            self.duplicates += 1
        elif reply.status == "ok":
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
        return True

    async def _done(self, done: list[_Held], drop: list[str], unclaim: list[_Held]) -> None:
        """One transaction: ack and delete ``done`` (off their order lists too) and the ``drop``
        entries; delete the guards of ``unclaim``, set for replies that were not posted."""
        for held in done:
            self._held.pop(held.reply.request_id, None)
        ids = [held.entry_id for held in done] + drop
        if not ids and not unclaim:
            return
        stream = self.keys.replies(self.bot)
        async with self.redis.pipeline(transaction=True) as pipe:
            for held in done:
                pipe.lrem(self.keys.channel_order(self.bot, held.reply.channel), 1, held.reply.request_id)
            if ids:
                pipe.xack(stream, self.keys.bot_group(self.bot), *ids)
                pipe.xdel(stream, *ids)
            if unclaim:
                pipe.delete(*(self.keys.posted(self.bot, held.reply.request_id) for held in unclaim))
            await pipe.execute()
        for held in unclaim:
            held.claimed = False
