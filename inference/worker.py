"""The worker: a plain async loop that answers relay requests.

It reads the request streams through the workers' consumer group: the shared stream, and the
shards whose leases it holds (``inference/shards.py``: each channel's requests are on one shard,
so one worker answers a channel while it lives). It runs up to ``concurrency`` requests at once
(one at a time per channel, so a channel's replies are produced in order), and writes each reply,
acks and deletes its request in one transaction (shared by the requests that finish together): a
request is acked only once its reply exists. Requests held by a worker that stopped heartbeating,
or idle past ``reclaim_idle_s``, are claimed by another: on the shared stream by any worker. The
worker that takes a shard claims all of its pending requests, whoever holds them, before it reads
the shard's new ones; a worker restarted under its name claims its own from its previous run.
Malformed requests go to the dead-letter stream.

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
from inference.engine import Engine
from inference.shards import ShardLeases

log = logging.getLogger(__name__)

_MAX_BACKOFF_S = 5.0
_RECLAIM_BATCH = 100
_DEAD_LETTER_MAXLEN = 100_000

Entry = tuple[str, str, dict]  # (stream, entry id, fields)


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

    @classmethod
    def from_settings(cls, settings, **overrides) -> WorkerOptions:
        w, r = settings.worker, settings.relay
        values = dict(
            name=settings.worker_name(), concurrency=w.concurrency, read_batch=w.read_batch,
            read_block_ms=w.read_block_ms, reclaim_idle_s=w.reclaim_idle_s,
            reclaim_interval_s=w.reclaim_interval_s, max_text_chars=r.max_text_chars,
            heartbeat_interval_s=r.heartbeat_interval_s, heartbeat_ttl_s=r.heartbeat_ttl_s, shards=r.shards,
        )
        values.update(overrides)
        return cls(**values)


class Worker:
    def __init__(self, redis, engine: Engine, keys: Keys, options: WorkerOptions):
        self.redis = redis  # redis.asyncio.Redis with decode_responses=True
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
        self._recovered = False  # own pending requests on the shared stream claimed (after a restart)
        self.heartbeat = Heartbeat(
            redis, keys.heartbeat("worker", self.name), interval_s=options.heartbeat_interval_s,
            ttl_s=options.heartbeat_ttl_s, info=self._heartbeat_info,
        )
        self.shards = ShardLeases(redis, keys, self.name, shards=options.shards, ttl_s=options.heartbeat_ttl_s)
        self._lease_tasks: list[asyncio.Task] = []
        self._leases_done = asyncio.Event()
        self._commits: list[tuple[str, list, asyncio.Future]] = []  # (entry id, writes, done) for _group_commit
        self._committer: asyncio.Task | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    async def startup(self) -> None:
        await self._ensure_groups([self.keys.requests])
        await self.engine.startup()
        await self.heartbeat.beat()  # visible before the first read or lease, so no one reclaims from us
        self.heartbeat.start()
        await self.shards.round()  # a burst run reads its shards from the start
        self._lease_tasks = [asyncio.create_task(self._refresh_claims(), name="worker:claims"),
                             asyncio.create_task(self._keep_shards(), name="worker:shards")]
        log.info("worker %s started (engine %s, concurrency %d)", self.name, self.engine.name, self.options.concurrency)

    async def shutdown(self) -> None:
        if self._tasks:
            _, still_running = await asyncio.wait(self._tasks, timeout=self.options.shutdown_grace_s)
            for task in still_running:  # left pending in Redis: another worker will reclaim them
                task.cancel()
            await asyncio.gather(*still_running, return_exceptions=True)
        if self._committer is not None and not self._committer.done():  # writes of requests given up on
            self._committer.cancel()
            await asyncio.gather(self._committer, return_exceptions=True)
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
                    for entry in await self.reclaim(self.shards.streams()):
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
                if _is_nogroup(exc):
                    await self._ensure_groups(self.keys.request_streams(self.shards.count))
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
        response = await self.redis.xreadgroup(
            self.keys.workers_group, self.name, dict.fromkeys(streams, ">"), count=count,
            block=None if burst else self.options.read_block_ms,
        )
        return [(stream, entry_id, fields) for stream, entries in response or () for entry_id, fields in entries]

    async def _shard_changes(self) -> None:
        """Claim the pending requests of shards just taken (and, once, this worker's own on the
        shared stream, left by its previous run under the same name) before reading new ones:
        they are older, so they go first; hand over shards whose requests are done."""
        if not self._recovered:
            for entry in await self._claim_pending(self.keys.requests, consumer=self.name):
                self._dispatch(*entry)
            self._recovered = True
        fresh = sorted(self.shards.fresh)
        if fresh:
            streams = [self.keys.request_shard(k) for k in fresh]
            await self._ensure_groups(streams)
            claimed = [entry for stream in streams for entry in await self._claim_pending(stream)]
            self.shards.fresh.difference_update(fresh)
            for entry in claimed:
                self._dispatch(*entry)
        if self.shards.draining:
            busy = {self.keys.shard_of_stream(stream) for stream, _ in self._in_flight}
            await self.shards.release_drained(busy)

    async def _claim_pending(self, stream: str, consumer: str | None = None) -> list[Entry]:
        """Claim every pending request of ``stream`` (of ``consumer`` only, if given) that this worker
        is not handling, however recently its holder touched it, in stream order.

        The holder may be alive (its lease expired before its heartbeat, it stalled past the TTL, or
        a request failed there): answering again is harmless (the bot posts a reply once), answering
        the channel out of order, or without the earlier exchange in its history, is not.
        """
        claimed: list[Entry] = []
        start = "-"
        while True:
            pending = await self.redis.xpending_range(stream, self.keys.workers_group, min=start, max="+",
                                                      count=_RECLAIM_BATCH, consumername=consumer)
            ids = [p["message_id"] for p in pending if (stream, p["message_id"]) not in self._in_flight]
            if ids:
                entries = await self.redis.xclaim(stream, self.keys.workers_group, self.name,
                                                  min_idle_time=0, message_ids=ids)
                # Entries deleted while pending come back empty (or not at all): nothing to answer.
                claimed += [(stream, entry_id, fields) for entry_id, fields in entries if entry_id]
                await self._log_claimed(stream, [p for p in pending if p["message_id"] in ids])
            if len(pending) < _RECLAIM_BATCH:
                return sorted(claimed, key=lambda entry: _id_order(entry[1]))
            start = "(" + pending[-1]["message_id"]

    async def _log_claimed(self, stream: str, pending: list[dict]) -> None:
        by_holder: dict[str, int] = {}
        for entry in pending:
            by_holder[entry["consumer"]] = by_holder.get(entry["consumer"], 0) + 1
        for holder, count in sorted(by_holder.items()):
            if holder == self.name:
                log.warning("worker %s: took %d request(s) of %s left by its previous run", self.name, count, stream)
                continue
            alive = await self.redis.exists(self.keys.heartbeat("worker", holder))
            log.warning("worker %s: took %d request(s) of %s from %s worker %s", self.name, count, stream,
                        "live" if alive else "stopped", holder)

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
                await self._finish(stream, entry_id, request.bot, reply,
                                   dead_letter=failure and {**fields, "reason": failure})
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
        await self._finish(stream, entry_id, bot, reply, dead_letter={**dead, "reason": reason}, count=False)

    async def _finish(self, stream: str, entry_id: str, bot: str | None, reply: Reply | None, *,
                      dead_letter: dict | None = None, count: bool = True) -> None:
        """Write the reply (and dead letter), ack and delete the request: all or nothing."""
        writes: list[tuple[str, dict, int | None]] = []  # (stream, fields, maxlen) to XADD
        if dead_letter:
            writes.append((self.keys.dead_letter, {**dead_letter, "worker": self.name, "entry": entry_id},
                           _DEAD_LETTER_MAXLEN))
        if bot and reply is not None:
            writes.append((self.keys.replies(bot), reply.to_fields(), None))
        backoff_s = 0.05
        while True:
            try:
                await self._commit(stream, entry_id, writes)
                if count:
                    self.processed += 1
                return
            except Exception as exc:
                if classify(exc) is not Kind.TRANSIENT or self._stopping.is_set():
                    raise  # the request stays pending; a live worker reclaims it
                log.warning("worker %s: cannot write reply for %s (%s); retrying", self.name, entry_id, exc)
                await asyncio.sleep(backoff_s)
                backoff_s = min(backoff_s * 2, _MAX_BACKOFF_S)

    def _commit(self, stream: str, entry_id: str, writes: list[tuple[str, dict, int | None]]) -> asyncio.Future:
        """Queue a request's writes, its ack and its delete for the next group commit."""
        done = asyncio.get_running_loop().create_future()
        self._commits.append(((stream, entry_id), writes, done))
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._group_commit(), name="worker:commit")
        return done

    async def _group_commit(self) -> None:
        """Commit queued requests in one transaction: their XADDs, then one XACK and one XDEL per
        request stream.

        Requests finishing in the same loop tick, or while the previous commit is in flight, share
        one round trip. Each request's future gets the first error among its own writes and its
        stream's ack/delete, so one bad write fails only its request (MULTI does not roll back either way).
        """
        await asyncio.sleep(0)  # requests finishing in this tick join the first commit
        while self._commits:
            batch, self._commits = self._commits, []
            by_stream: dict[str, list[str]] = {}
            for (stream, entry_id), _, _ in batch:
                by_stream.setdefault(stream, []).append(entry_id)
            try:
                async with self.redis.pipeline(transaction=True) as pipe:
                    for _, writes, _ in batch:
                        for stream, fields, maxlen in writes:
                            pipe.xadd(stream, fields, maxlen=maxlen, approximate=True)
                    for stream, ids in by_stream.items():
                        pipe.xack(stream, self.keys.workers_group, *ids)
                        pipe.xdel(stream, *ids)
                    results = await pipe.execute(raise_on_error=False)
            except Exception as exc:  # the whole commit failed (Redis unavailable...): each caller decides
                results = [exc] * (sum(len(writes) for _, writes, _ in batch) + 2 * len(by_stream))
            except BaseException:
                for _, _, done in batch + self._commits:
                    done.cancel()
                self._commits = []
                raise
            acks = results[len(results) - 2 * len(by_stream):]
            acked = {stream: next((r for r in acks[2 * i:2 * i + 2] if isinstance(r, Exception)), None)
                     for i, stream in enumerate(by_stream)}
            at = 0
            for (stream, _), writes, done in batch:
                error = next((r for r in results[at:at + len(writes)] if isinstance(r, Exception)), acked[stream])
                at += len(writes)
                if done.done():  # its request was cancelled meanwhile
                    continue
                if error is None:
                    done.set_result(None)
                else:
                    done.set_exception(error)

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

    # -- reclaiming other workers' requests ----------------------------------------------------
    async def reclaim(self, streams: list[str]) -> list[Entry]:
        """On ``streams``: claim requests of workers whose heartbeat expired, then any request idle too long."""
        claimed: list[Entry] = []
        for stream in streams:
            claimed += [(stream, entry_id, fields) for entry_id, fields in await self._reclaim_stream(stream)]
        # Entries deleted while pending come back empty; nothing is left to answer for them.
        return [(stream, entry_id, fields) for stream, entry_id, fields in claimed
                if entry_id and (stream, entry_id) not in self._in_flight]

    async def _reclaim_stream(self, stream: str) -> list[tuple[str, dict]]:
        claimed: list[tuple[str, dict]] = []
        for consumer in await self.redis.xinfo_consumers(stream, self.keys.workers_group):
            name, pending = consumer["name"], int(consumer["pending"])
            if name == self.name:
                continue
            alive = await self.redis.exists(self.keys.heartbeat("worker", name))
            if alive:
                continue
            if pending == 0:
                await self.redis.xgroup_delconsumer(stream, self.keys.workers_group, name)
                continue
            entries = await self.redis.xpending_range(stream, self.keys.workers_group, min="-", max="+",
                                                      count=_RECLAIM_BATCH, consumername=name)
            ids = [entry["message_id"] for entry in entries]
            if ids:
                claimed += await self.redis.xclaim(stream, self.keys.workers_group, self.name,
                                                   min_idle_time=0, message_ids=ids)
                log.warning("worker %s: took %d request(s) of %s from stopped worker %s",
                            self.name, len(ids), stream, name)
        response = await self.redis.xautoclaim(
            stream, self.keys.workers_group, self.name,
            min_idle_time=int(self.options.reclaim_idle_s * 1000), start_id="0-0", count=_RECLAIM_BATCH,
        )
        return claimed + response[1]

    async def _refresh_claims(self) -> None:
        """Reset the idle time of held requests so slow generations are not reclaimed."""
        interval_s = self.options.reclaim_idle_s / 3
        while not self._leases_done.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._leases_done.wait(), interval_s)
            by_stream: dict[str, list[str]] = {}
            for stream, entry_id in self._in_flight:
                by_stream.setdefault(stream, []).append(entry_id)
            if not by_stream or self._leases_done.is_set():
                continue
            try:
                for stream, ids in by_stream.items():
                    # min idle: only our own entries are that idle; a fresh claim by another is left alone.
                    await self.redis.xclaim(stream, self.keys.workers_group, self.name,
                                            min_idle_time=int(interval_s * 500), message_ids=ids, justid=True)
            except Exception as exc:  # boundary: a missed renewal only risks a duplicate reply
                log.warning("worker %s: claim renewal failed (%s)", self.name, exc)

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
    async def _ensure_groups(self, streams: list[str]) -> None:
        for stream in streams:
            try:
                await self.redis.xgroup_create(stream, self.keys.workers_group, id="0", mkstream=True)
            except Exception as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    def _heartbeat_info(self) -> dict:
        return {"engine": self.engine.name, "processed": self.processed, "rejected": self.rejected,
                "in_flight": len(self._in_flight), "concurrency": self.options.concurrency,
                "shards": ",".join(map(str, self.shards.reading())) or "-"}


def _id_order(entry_id: str) -> tuple[int, int]:
    millis, _, seq = entry_id.partition("-")
    return int(millis), int(seq or 0)


def _is_nogroup(exc: Exception) -> bool:
    return "NOGROUP" in str(exc)
