"""Group commit: a worker's replies, with the acks and deletes of their requests, in shared transactions.

A request is acked only once its reply exists: its writes (the reply, a dead letter), its XACK
and its XDEL go in one MULTI/EXEC. Requests that finish in the same loop tick, or while the
previous commit is in flight, share one round trip: their XADDs, then one XACK and one XDEL per
request stream. Each request learns its own outcome (``commit`` returns a future), so one bad
write fails only its request; MULTI does not roll back the others either way. ``answer`` commits
a request's reply and dead letter, retrying while Redis is unavailable.

Dead letters hold what people wrote, so they do not stay forever (``[relay] dead_letter_ttl_s``).
Stream entries cannot expire one by one; instead the commit that writes a dead letter also trims
the stream of the entries older than the TTL (XTRIM MINID: entry ids are their write times, in
ms) and sets the stream to expire a TTL after that write, and any commit trims at most once a
minute while a worker is busy. So an entry lives about its TTL, and at worst twice that when no
worker commits anything at all after it.

Tested in ``tests/inference/test_commit.py``.
"""

from __future__ import annotations

import asyncio
import logging
import time

from doppel.errors import Kind, classify
from doppel.relay import Keys, Reply

log = logging.getLogger(__name__)

_MAX_BACKOFF_S = 5.0
_DEAD_LETTER_MAXLEN = 100_000
DEFAULT_DEAD_LETTER_TTL_S = 7 * 24 * 3600
_TRIM_EVERY_S = 60.0  # a commit without a dead letter trims the stream at most this often

Write = tuple[str, dict, int | None]  # (stream, fields, maxlen) to XADD


class GroupCommit:
    def __init__(self, redis, keys: Keys, name: str, *, dead_letter_ttl_s: float = DEFAULT_DEAD_LETTER_TTL_S):
        self.redis = redis  # redis.asyncio.Redis with decode_responses=True
        self.keys = keys
        self.name = name  # the worker's: signs its dead letters
        self.dead_letter_ttl_s = dead_letter_ttl_s
        self._trimmed_at = -_TRIM_EVERY_S  # monotonic time of the last trim: the first commit trims
        self._queued: list[tuple[tuple[str, str], list[Write], asyncio.Future]] = []  # ((stream, entry id), ...)
        self._committer: asyncio.Task | None = None

    async def answer(self, stream: str, entry_id: str, bot: str | None, reply: Reply | None, *,
                     dead_letter: dict | None = None, stopping: asyncio.Event) -> None:
        """Write the reply to ``bot`` (and the dead letter), ack and delete the request: all or nothing.

        Retried while the failure is transient and the worker is not ``stopping``; otherwise the
        error is raised and the request stays pending.
        """
        writes: list[Write] = []
        if dead_letter:
            writes.append((self.keys.dead_letter, {**dead_letter, "worker": self.name, "entry": entry_id},
                           _DEAD_LETTER_MAXLEN))
        if bot and reply is not None:
            writes.append((self.keys.replies(bot), reply.to_fields(), None))
        backoff_s = 0.05
        while True:
            try:
                await self.commit(stream, entry_id, writes)
                return
            except Exception as exc:
                if classify(exc) is not Kind.TRANSIENT or stopping.is_set():
                    raise  # the request stays pending; a live worker reclaims it
                log.warning("worker %s: cannot write reply for %s (%s); retrying", self.name, entry_id, exc)
                await asyncio.sleep(backoff_s)
                backoff_s = min(backoff_s * 2, _MAX_BACKOFF_S)

    def commit(self, stream: str, entry_id: str, writes: list[Write]) -> asyncio.Future:
        """Queue a request's writes, its ack and its delete for the next group commit.

        The future is done when they are committed, or fails with the first error among the
        request's own writes and its stream's ack/delete (the request then stays pending).
        """
        done = asyncio.get_running_loop().create_future()
        self._queued.append(((stream, entry_id), writes, done))
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._run(), name="worker:commit")
        return done

    async def close(self) -> None:
        """Give up the commit in flight, if any (its requests stay pending: another worker reclaims them)."""
        if self._committer is not None and not self._committer.done():
            self._committer.cancel()
            await asyncio.gather(self._committer, return_exceptions=True)

    async def _run(self) -> None:
        await asyncio.sleep(0)  # requests finishing in this tick join the first commit
        while self._queued:
            batch, self._queued = self._queued, []
            by_stream: dict[str, list[str]] = {}
            for (stream, entry_id), _, _ in batch:
                by_stream.setdefault(stream, []).append(entry_id)
            writes_count = sum(len(writes) for _, writes, _ in batch)
            extra = 0
            try:
                async with self.redis.pipeline(transaction=True) as pipe:
                    for _, writes, _ in batch:
                        for stream, fields, maxlen in writes:
                            pipe.xadd(stream, fields, maxlen=maxlen, approximate=True)
                    extra = self._trim(pipe, batch)  # between the writes and the acks: both are indexed
                    for stream, ids in by_stream.items():
                        pipe.xack(stream, self.keys.workers_group, *ids)
                        pipe.xdel(stream, *ids)
                    results = await pipe.execute(raise_on_error=False)
            except Exception as exc:  # the whole commit failed (Redis unavailable...): each caller decides
                results = [exc] * (writes_count + extra + 2 * len(by_stream))
                extra = 0  # nothing to report about the trim: the commit's failure says it all
            except BaseException:
                for _, _, done in batch + self._queued:
                    done.cancel()
                self._queued = []
                raise
            trim_error = next((r for r in results[writes_count:writes_count + extra] if isinstance(r, Exception)), None)
            if trim_error is not None:  # e.g. a Redis before 6.2 has no MINID: the letters stay, the replies go
                log.warning("worker %s: cannot trim the dead letters (%s)", self.name, trim_error)
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

    def _trim(self, pipe, batch) -> int:
        """Queue the dead-letter trim on ``pipe`` when due; returns how many commands it added.

        Their results only get logged: a request's outcome is its own writes and its ack.
        """
        stream = self.keys.dead_letter
        wrote = any(target == stream for _, writes, _ in batch for target, _, _ in writes)
        now = time.monotonic()
        if not wrote and now - self._trimmed_at < _TRIM_EVERY_S:
            return 0
        self._trimmed_at = now
        oldest_ms = max(0, int((time.time() - self.dead_letter_ttl_s) * 1000))
        # Exact, not "~": an approximate trim keeps whole nodes of old entries, possibly for good.
        pipe.xtrim(stream, minid=str(oldest_ms), approximate=False)
        if not wrote:
            return 1
        pipe.expire(stream, max(1, int(self.dead_letter_ttl_s)))
        return 2
