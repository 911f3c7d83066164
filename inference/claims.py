"""Claims: which pending requests of the workers' consumer group a worker takes, and keeping its own.

A request a worker has read stays pending at that worker, in the group, until its reply is
committed (``inference/commit.py``). One worker's ``Claims`` moves requests to it:

* ``read``: new requests (XREADGROUP), which become pending at the worker;
* ``claim_older`` (``claim_pending``, ``take_over``): before it reads new ones, every pending
  request of the shards the worker has just taken, whoever holds it and however recently it was
  touched, and, once, its own on the shared stream, left by a previous run under its name; each
  stream's in stream order;
* ``reclaim``: on the streams it reads, the requests of workers whose heartbeat is gone, at once,
  then any request idle past ``reclaim_idle_s``, whoever holds it (XAUTOCLAIM);
* ``renew`` / ``keep_renewed``: resets the idle time of the requests the worker is handling, so a
  slow generation is not reclaimed by another worker.

The requests the worker is handling (``held``, the worker's own set) are never claimed again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from doppel.relay import Keys

log = logging.getLogger(__name__)

_RECLAIM_BATCH = 100

Entry = tuple[str, str, dict]  # (stream, entry id, fields)


class Claims:
    def __init__(self, redis, keys: Keys, name: str, *, held: set[tuple[str, str]], reclaim_idle_s: float):
        self.redis = redis  # redis.asyncio.Redis with decode_responses=True
        self.keys = keys
        self.name = name
        # Shared with the worker, which adds and discards: a request it is answering is not taken again.
        self.held = held
        self.reclaim_idle_s = reclaim_idle_s
        self._recovered = False  # own pending requests on the shared stream claimed (after a restart)

    async def read(self, streams: list[str], count: int, block_ms: int | None) -> list[Entry]:
        """New requests of ``streams``, up to ``count`` per stream, waiting up to ``block_ms`` (None: not)."""
        response = await self.redis.xreadgroup(self.keys.workers_group, self.name, dict.fromkeys(streams, ">"),
                                               count=count, block=block_ms)
        return [(stream, entry_id, fields) for stream, entries in response or () for entry_id, fields in entries]

    async def claim_older(self, fresh_shards: set[int], dispatch: Callable[[str, str, dict | None], None]) -> None:
        """Claim and ``dispatch`` the requests older than the new ones, so they go first: once, this
        worker's own pending on the shared stream (left by its previous run under the same name),
        then every pending request of the shards just taken (removed from ``fresh_shards`` once claimed).

        Each batch is dispatched as soon as it is claimed: if the next claim fails, the first is not lost.
        """
        if not self._recovered:
            for entry in await self.claim_pending(self.keys.requests, consumer=self.name):
                dispatch(*entry)
            self._recovered = True
        fresh = sorted(fresh_shards)
        if fresh:
            claimed = await self.take_over([self.keys.request_shard(k) for k in fresh])
            fresh_shards.difference_update(fresh)
            for entry in claimed:
                dispatch(*entry)

    async def ensure_groups(self, streams: list[str]) -> None:
        """Create the workers' group on each stream (and the stream) unless it exists."""
        for stream in streams:
            try:
                await self.redis.xgroup_create(stream, self.keys.workers_group, id="0", mkstream=True)
            except Exception as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def take_over(self, streams: list[str]) -> list[Entry]:
        """Every pending request of ``streams`` (shards just taken), stream by stream, each in order."""
        await self.ensure_groups(streams)
        return [entry for stream in streams for entry in await self.claim_pending(stream)]

    async def claim_pending(self, stream: str, consumer: str | None = None) -> list[Entry]:
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
            ids = [p["message_id"] for p in pending if (stream, p["message_id"]) not in self.held]
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

    async def reclaim(self, streams: list[str]) -> list[Entry]:
        """On ``streams``: claim requests of workers whose heartbeat expired, then any request idle too long."""
        claimed: list[Entry] = []
        for stream in streams:
            claimed += [(stream, entry_id, fields) for entry_id, fields in await self._reclaim_stream(stream)]
        # Entries deleted while pending come back empty; nothing is left to answer for them.
        return [(stream, entry_id, fields) for stream, entry_id, fields in claimed
                if entry_id and (stream, entry_id) not in self.held]

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
            min_idle_time=int(self.reclaim_idle_s * 1000), start_id="0-0", count=_RECLAIM_BATCH,
        )
        return claimed + response[1]

    async def renew(self, min_idle_ms: int) -> None:
        """Reset the idle time of the held requests that are at least ``min_idle_ms`` idle."""
        by_stream: dict[str, list[str]] = {}
        for stream, entry_id in self.held:
            by_stream.setdefault(stream, []).append(entry_id)
        for stream, ids in by_stream.items():
            # min idle: only our own entries are that idle; a fresh claim by another is left alone.
            await self.redis.xclaim(stream, self.keys.workers_group, self.name,
                                    min_idle_time=min_idle_ms, message_ids=ids, justid=True)

    async def keep_renewed(self, done: asyncio.Event) -> None:
        """Until ``done``: renew the held requests three times per ``reclaim_idle_s``, so slow
        generations are not reclaimed."""
        interval_s = self.reclaim_idle_s / 3
        while not done.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(done.wait(), interval_s)
            if done.is_set():
                return
            try:
                await self.renew(min_idle_ms=int(interval_s * 500))
            except Exception as exc:  # boundary: a missed renewal only risks a duplicate reply
                log.warning("worker %s: claim renewal failed (%s)", self.name, exc)


def _id_order(entry_id: str) -> tuple[int, int]:
    millis, _, seq = entry_id.partition("-")
    return int(millis), int(seq or 0)


def is_nogroup(exc: Exception) -> bool:
    """Whether ``exc`` says the workers' group is missing (Redis lost it): ``ensure_groups`` makes it again."""
    return "NOGROUP" in str(exc)
