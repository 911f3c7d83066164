"""Heartbeats and the status report.

Each worker and bot refreshes an expiring key with a small JSON status; a component whose key
has expired is gone. ``read_status`` gathers heartbeats, queue depth and pending counts (summed
over the shared request stream and every shard), and which worker holds which shard, for
``doppel status`` (and for health checks in containers).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from doppel.errors import Kind, classify
from doppel.relay import Keys

log = logging.getLogger(__name__)


class Heartbeat:
    """Refreshes ``key`` every ``interval_s`` with ``info()`` plus host, pid and times."""

    def __init__(self, redis, key: str, *, interval_s: float, ttl_s: float, info: Callable[[], dict] = dict):
        self.redis = redis
        self.key = key
        self.interval_s = interval_s
        self.ttl_ms = int(ttl_s * 1000)
        self.info = info
        self.started_at = time.time()
        self._task: asyncio.Task | None = None
        # An event rather than cancel(): redis-py may swallow a cancellation that lands mid-command.
        self._stop = asyncio.Event()

    async def beat(self) -> None:
        payload = {"host": socket.gethostname(), "pid": os.getpid(), "started_at": self.started_at,
                   "seen_at": time.time(), **self.info()}
        await self.redis.set(self.key, json.dumps(payload), px=self.ttl_ms)

    async def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                await self.beat()
            except Exception as exc:  # boundary: a missed beat must not stop the component
                if classify(exc) is Kind.TRANSIENT:
                    log.warning("heartbeat %s: Redis unavailable (%s)", self.key, exc)
                else:
                    log.exception("heartbeat %s failed", self.key)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.interval_s)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=f"heartbeat:{self.key}")

    async def stop(self) -> None:
        if self._task is not None:
            self._stop.set()
            await asyncio.wait_for(asyncio.gather(self._task, return_exceptions=True), 10)
            self._task = None
        try:
            await self.redis.delete(self.key)
        except Exception as exc:  # boundary: shutting down with Redis gone is fine
            log.debug("could not remove heartbeat %s: %s", self.key, exc)


@dataclass
class Status:
    workers: dict[str, dict] = field(default_factory=dict)
    bots: dict[str, dict] = field(default_factory=dict)
    queued: int = 0          # requests not yet read by any worker (all request streams)
    pending: int = 0         # requests read by a worker and not yet answered
    pending_by_worker: dict[str, int] = field(default_factory=dict)
    shards: int = 1          # request shards the deployment uses (1: the shared stream only)
    shard_owners: dict[str, list[int]] = field(default_factory=dict)  # worker -> shards it holds
    unowned_shards: list[int] = field(default_factory=list)           # no worker reads these now
    dead_letters: int = 0
    replies_unposted: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return self.__dict__.copy()


def _decode(value) -> str:
    return value.decode() if isinstance(value, bytes) else value


def read_status(redis, keys: Keys) -> Status:
    """Everything ``doppel status`` prints, read with a synchronous client."""
    status = Status()
    for key in redis.scan_iter(match=keys.heartbeat_pattern(), count=500):
        key = _decode(key)
        raw = redis.get(key)
        if raw is None:
            continue
        role, name = keys.heartbeat_name(key)
        info = json.loads(raw)
        (status.workers if role == "worker" else status.bots)[name] = info
    status.shards = max(1, int(redis.get(keys.shard_count) or 1))
    for stream in keys.request_streams(status.shards):
        if not redis.exists(stream):
            continue
        length = redis.xlen(stream)
        groups = {_decode(g["name"]): g for g in redis.xinfo_groups(stream)}
        group = groups.get(keys.workers_group)
        pending = int(group["pending"]) if group else 0
        status.pending += pending
        # Answered requests are deleted from the stream, so what remains is queued or pending.
        status.queued += max(0, length - pending)
        if group and pending:
            for consumer in redis.xinfo_consumers(stream, keys.workers_group):
                if int(consumer["pending"]):
                    name = _decode(consumer["name"])
                    status.pending_by_worker[name] = status.pending_by_worker.get(name, 0) + int(consumer["pending"])
    if status.shards > 1:
        holders = redis.mget([keys.shard_lease(k) for k in range(status.shards)])
        for shard, holder in enumerate(holders):
            if holder is None:
                status.unowned_shards.append(shard)
            else:
                status.shard_owners.setdefault(_decode(holder), []).append(shard)
    status.dead_letters = redis.xlen(keys.dead_letter) if redis.exists(keys.dead_letter) else 0
    for stream in redis.scan_iter(match=keys.reply_streams_pattern(), count=500):
        stream = _decode(stream)
        status.replies_unposted[keys.bot_of_replies(stream)] = redis.xlen(stream)
    return status
