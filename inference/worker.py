"""The worker: a plain async loop that answers relay requests.

It reads the request streams through the workers' consumer group: the shared stream, and the
shards whose leases it holds (``inference/shards.py``: each channel's requests are on one shard,
so one worker answers a channel while it lives). It runs up to ``concurrency`` requests at once
(one at a time per channel, so a channel's replies are produced in order), and writes each reply,
acks and deletes its request in one transaction, shared by the requests that finish together
(``inference/commit.py``): a request is acked only once its reply exists. Requests held by a worker
that stopped heartbeating, or idle past ``reclaim_idle_s``, are claimed by another; the worker that
takes a shard claims all of its pending requests before it reads the shard's new ones; a worker
restarted under its name claims its own from its previous run (``inference/claims.py``).
Malformed requests, and the requests the engine failed on, go to the dead-letter stream, which
keeps them ``[relay] dead_letter_ttl_s`` (the commit trims it).

``run(burst=True)`` drains what is queued and returns, for tests and batch jobs. ``startup`` and
``shutdown`` own the engine and the heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass

from doppel.errors import DoppelError, Kind, classify
from doppel.health import Heartbeat
from doppel.relay import MAX_CHANNEL_CHARS, MAX_ID_CHARS, BadMessage, Keys, Reply, Request, bot_of
from inference.claims import Claims, Entry, is_nogroup
from inference.commit import DEFAULT_DEAD_LETTER_TTL_S, GroupCommit
from inference.engine import Engine
from inference.shards import ShardLeases

log = logging.getLogger(__name__)

_MAX_BACKOFF_S = 5.0


@dataclass(frozen=True)
class WorkerOptions:
    name: str
    concurrency: int = 16
    read_batch: int = 64
    read_block_ms: int = 1000
    reclaim_idle_s: float = 30.0
    reclaim_interval_s: float = 5.0
    max_text_chars: int = 16_000
    heartbeat_interval_s: float = 5.0
    heartbeat_ttl_s: float = 15.0
    shutdown_grace_s: float = 30.0
    shards: int = 24
    dead_letter_ttl_s: float = DEFAULT_DEAD_LETTER_TTL_S

    @classmethod
    def from_settings(cls, settings, **overrides) -> WorkerOptions:
        w, r = settings.worker, settings.relay
        values = dict(
            name=settings.worker_name(), concurrency=w.concurrency, read_batch=w.read_batch,
            read_block_ms=w.read_block_ms, reclaim_idle_s=w.reclaim_idle_s,
            reclaim_interval_s=w.reclaim_interval_s, max_text_chars=r.max_text_chars,
            heartbeat_interval_s=r.heartbeat_interval_s, heartbeat_ttl_s=r.heartbeat_ttl_s, shards=r.shards,
            dead_letter_ttl_s=r.dead_letter_ttl_s,
        )
        values.update(overrides)
        return cls(**values)


class Worker:
    def __init__(self, redis, engine: Engine, keys: Keys, options: WorkerOptions):
        self._redis = redis  # redis.asyncio.Redis with decode_responses=True
        self.engine = engine
        self.keys = keys
        self.options = options
        self.name = options.name
        self.processed = 0
        self.rejected = 0
        self._tasks: set[asyncio.Task] = set()
        self._in_flight: set[tuple[str, str]] = set()  # (stream, entry id) of the requests this worker holds
        self._backlog: deque[Entry] = deque()  # read beyond the free slots (COUNT is per stream): next up
        self._channel_locks: dict[str, tuple[asyncio.Lock, int]] = {}
        self._stopping = asyncio.Event()
        self._last_reclaim = 0.0
        self.claims = Claims(redis, keys, self.name, held=self._in_flight, reclaim_idle_s=options.reclaim_idle_s)
        self.commits = GroupCommit(redis, keys, self.name, dead_letter_ttl_s=options.dead_letter_ttl_s)
        self.heartbeat = Heartbeat(
            redis, keys.heartbeat("worker", self.name), interval_s=options.heartbeat_interval_s,
            ttl_s=options.heartbeat_ttl_s, info=self._heartbeat_info,
        )
        self.shards = ShardLeases(redis, keys, self.name, shards=options.shards, ttl_s=options.heartbeat_ttl_s)
        self._lease_tasks: list[asyncio.Task] = []
        self._leases_done = asyncio.Event()

    @property
    def redis(self):
        return self._redis

    @redis.setter
    def redis(self, redis) -> None:
        # Whoever swaps the connection (a test injecting failures) swaps it for claims and commits too.
        self._redis = self.claims.redis = self.commits.redis = redis

    # -- lifecycle ---------------------------------------------------------------------------
    async def startup(self) -> None:
        await self.claims.ensure_groups([self.keys.requests])
        await self.engine.startup()
        await self.heartbeat.beat()  # visible before the first read or lease, so no one reclaims from us
        self.heartbeat.start()
        await self.shards.round()  # a burst run reads its shards from the start
        self._lease_tasks = [asyncio.create_task(self.claims.keep_renewed(self._leases_done), name="worker:claims"),
                             asyncio.create_task(self._keep_shards(), name="worker:shards")]
        log.info("worker %s started (engine %s, concurrency %d)", self.name, self.engine.name, self.options.concurrency)

    async def shutdown(self) -> None:
        if self._tasks:
            _, still_running = await asyncio.wait(self._tasks, timeout=self.options.shutdown_grace_s)
            for task in still_running:  # left pending in Redis: another worker will reclaim them
                task.cancel()
            await asyncio.gather(*still_running, return_exceptions=True)
        await self.commits.close()  # writes of requests given up on
        self._leases_done.set()
        if self._lease_tasks:
            await asyncio.wait_for(asyncio.gather(*self._lease_tasks, return_exceptions=True), 10)
        await self.heartbeat.stop()
        try:  # after the heartbeat: whoever takes a shard claims what is left of ours at once
            await self.shards.release_all()
        except Exception as exc:  # boundary: the leases expire by themselves
            log.warning("worker %s: could not release its shard leases (%s)", self.name, exc)
        await self.engine.shutdown()
        log.info("worker %s stopped after %d requests", self.name, self.processed)

    def stop(self) -> None:
        """Ask ``run`` to finish: no new reads; in-flight requests complete (within the grace time)."""
        self._stopping.set()

    async def run(self, *, burst: bool = False) -> int:
        """Serve until ``stop()`` (or, with ``burst``, until the queue is drained). Returns requests answered."""
        await self.startup()
        try:
            await self._loop(burst)
        finally:
            await self.shutdown()
        return self.processed

    # -- the loop ----------------------------------------------------------------------------
    async def _loop(self, burst: bool) -> None:
        backoff_s = 0.05
        while not self._stopping.is_set():
            try:
                await self._shard_changes()
                if burst or time.monotonic() - self._last_reclaim >= self.options.reclaim_interval_s:
                    self._last_reclaim = time.monotonic()
                    for entry in await self.claims.reclaim(self.shards.streams()):
                        self._dispatch(*entry)
                free = self.options.concurrency - len(self._tasks)
                if free <= 0:
                    await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
                    continue
                if self._backlog:
                    for _ in range(min(free, len(self._backlog))):
                        self._dispatch(*self._backlog.popleft())
                    continue
                entries = await self._read(min(free, self.options.read_batch), burst)
                if not entries:
                    if burst:
                        if self._tasks:
                            await asyncio.wait(self._tasks)
                            continue
                        return
                    continue
                for entry in entries[:free]:
                    self._dispatch(*entry)
                for stream, entry_id, fields in entries[free:]:
                    self._in_flight.add((stream, entry_id))  # ours until answered: its claim is kept fresh
                    self._backlog.append((stream, entry_id, fields))
                backoff_s = 0.05
            except Exception as exc:  # boundary: the loop outlives Redis restarts and bugs alike
                if is_nogroup(exc):
                    await self.claims.ensure_groups(self.keys.request_streams(self.shards.count))
                    continue
                if classify(exc) is Kind.TRANSIENT:
                    log.warning("worker %s: Redis unavailable (%s); retrying in %.2fs", self.name, exc, backoff_s)
                else:
                    log.exception("worker %s: unexpected error in the read loop", self.name)
                await self._sleep(backoff_s)
                backoff_s = min(backoff_s * 2, _MAX_BACKOFF_S)

    async def _read(self, count: int, burst: bool) -> list[Entry]:
        """New requests of the shared stream and of the shards this worker reads, up to ``count`` per stream."""
        # Only shards whose lease outlasts this read's block time: a stalled worker stops at once.
        streams = self.shards.streams(margin_s=self.options.read_block_ms / 1000)
        return await self.claims.read(streams, count, block_ms=None if burst else self.options.read_block_ms)

    async def _shard_changes(self) -> None:
        """Before reading new requests, claim the older ones of shards just taken (and, once, this
        worker's own left by its previous run); hand over shards whose requests are done."""
        await self.claims.claim_older(self.shards.fresh, self._dispatch)
        if self.shards.draining:
            busy = {self.keys.shard_of_stream(stream) for stream, _ in self._in_flight}
            await self.shards.release_drained(busy)

    def _dispatch(self, stream: str, entry_id: str, fields: dict | None) -> None:
        self._in_flight.add((stream, entry_id))
        task = asyncio.create_task(self._handle(stream, entry_id, fields or {}))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, stream: str, entry_id: str, fields: dict) -> None:
        try:
            try:
                request = Request.from_fields(fields, max_text_chars=self.options.max_text_chars)
            except BadMessage as exc:
                await self._reject(stream, entry_id, fields, str(exc))
                return
            async with self._channel_turn(request.channel):
                reply, failure = await self._generate(request)
                await self.commits.answer(stream, entry_id, request.bot, reply, stopping=self._stopping,
                                          dead_letter=failure and {**fields, "reason": failure})
                self.processed += 1
        except Exception as exc:  # boundary: the request stays pending in Redis and is reclaimed
            if classify(exc) is Kind.TRANSIENT:
                log.warning("worker %s: left %s pending for another worker (%s)", self.name, entry_id, exc)
            else:
                log.exception("worker %s: could not answer %s", self.name, entry_id)
        finally:
            self._in_flight.discard((stream, entry_id))

    async def _generate(self, request: Request) -> tuple[Reply, str | None]:
        started = time.perf_counter()
        common = dict(request_id=request.id, channel=request.channel, worker=self.name, reply_to=request.reply_to)
        try:
            generation = await self.engine.generate(request)
        except DoppelError as exc:
            log.warning("request %s: %s", request.id, exc)
            return Reply(status="error", reason=str(exc), **common), str(exc)
        except Exception:  # boundary: one bad generation must not take the worker down
            log.exception("request %s: engine %s failed", request.id, self.engine.name)
            return Reply(status="error", reason="the engine failed; see the worker log", **common), "engine failed"
        gen_ms = (time.perf_counter() - started) * 1000
        return Reply(status="ok", parts=generation.parts, adapter=generation.adapter, gen_ms=gen_ms,
                     reason=generation.notice, **common), None

    async def _reject(self, stream: str, entry_id: str, fields: dict, reason: str) -> None:
        self.rejected += 1
        log.warning("request %s rejected: %s", entry_id, reason)
        bot = bot_of(fields)
        reply = None
        request_id, channel = fields.get("id", ""), fields.get("channel", "")
        if bot and 0 < len(request_id) <= MAX_ID_CHARS and 0 < len(channel) <= MAX_CHANNEL_CHARS:
            # Tell the bot, so it does not hold later replies of that channel waiting for this one.
            reply = Reply(request_id=request_id, channel=channel, status="rejected", reason=reason,
                          worker=self.name)
        dead = {k[:100]: v[:2000] for k, v in list(fields.items())[:50]}  # bounded copy of garbage
        await self.commits.answer(stream, entry_id, bot, reply, dead_letter={**dead, "reason": reason},
                                  stopping=self._stopping)

    @contextlib.asynccontextmanager
    async def _channel_turn(self, channel: str) -> AsyncIterator[None]:
        """One request per channel at a time, in arrival order (asyncio.Lock wakes waiters FIFO)."""
        lock, users = self._channel_locks.get(channel, (None, 0))
        lock = lock or asyncio.Lock()
        self._channel_locks[channel] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._channel_locks[channel]
            if users == 1:
                del self._channel_locks[channel]
            else:
                self._channel_locks[channel] = (lock, users - 1)

    # -- shard leases ---------------------------------------------------------------------------
    async def _keep_shards(self) -> None:
        """Renew, take and hand over shard leases every heartbeat interval."""
        while not self._leases_done.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._leases_done.wait(), self.options.heartbeat_interval_s)
            if self._leases_done.is_set():
                return
            try:
                await self.shards.round()
            except Exception as exc:  # boundary: retried next round; leases outlive a few missed ones
                if classify(exc) is Kind.TRANSIENT:
                    log.warning("worker %s: shard leases not renewed (%s)", self.name, exc)
                else:
                    log.exception("worker %s: shard lease round failed", self.name)

    # -- helpers -------------------------------------------------------------------------------
    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    def _heartbeat_info(self) -> dict:
        return {"engine": self.engine.name, "processed": self.processed, "rejected": self.rejected,
                "in_flight": len(self._in_flight), "concurrency": self.options.concurrency,
                "shards": ",".join(map(str, self.shards.reading())) or "-"}
