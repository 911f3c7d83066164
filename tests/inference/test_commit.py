"""The group commit alone, on a real Redis: shared transactions, exactly which requests are acked,
failures of one write or of the whole transaction, retries, giving up.

The requests are read by hand (XREADGROUP as "w1"), so they are pending as a worker's would be.
The connection is wrapped to count transactions and, where a test says so, to delay or fail them.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
import redis.exceptions as rexc

from doppel.relay import Reply
from inference.commit import GroupCommit


class Transactions:
    """The test's connection, counting pipelines; the next ``failures`` fail as if Redis went
    away, and each waits ``delay_s`` before it is sent (``started`` is set when one is on its way)."""

    def __init__(self, redis, failures: int = 0, delay_s: float = 0.0):
        self._redis = redis
        self.failures = failures
        self.delay_s = delay_s
        self.count = 0
        self.started = asyncio.Event()

    def __getattr__(self, name):
        return getattr(self._redis, name)

    def pipeline(self, *args, **kwargs):
        pipe = self._redis.pipeline(*args, **kwargs)
        self.count += 1
        fail, self.failures = self.failures > 0, max(self.failures - 1, 0)
        execute = pipe.execute

        async def delayed(*exec_args, **exec_kwargs):
            self.started.set()
            await asyncio.sleep(self.delay_s)
            if fail:
                await pipe.reset()
                raise rexc.ConnectionError("injected: connection lost")
            return await execute(*exec_args, **exec_kwargs)

        pipe.execute = delayed
        return pipe


async def _pending(aredis, keys, make_request, count: int, stream: str | None = None) -> list[str]:
    """``count`` requests on ``stream`` (the shared one by default), read by "w1": their ids."""
    stream = stream or keys.requests
    await aredis.xgroup_create(stream, keys.workers_group, id="0", mkstream=True)
    ids = [await aredis.xadd(stream, make_request(f"m{i}").to_fields()) for i in range(count)]
    await aredis.xreadgroup(keys.workers_group, "w1", {stream: ">"}, count=count)
    return ids


async def _pending_ids(aredis, keys, stream: str | None = None) -> list[str]:
    pending = await aredis.xpending_range(stream or keys.requests, keys.workers_group, min="-", max="+", count=100)
    return [p["message_id"] for p in pending]


def _reply(text: str) -> Reply:
    return Reply(request_id=f"r-{text}", channel="test:c1", status="ok", parts=(f"echo: {text}",), worker="w1")


def _reply_write(keys, text: str, bot: str = "b1") -> tuple[str, dict, None]:
    return keys.replies(bot), _reply(text).to_fields(), None


async def _reply_texts(aredis, keys, bot: str = "b1") -> list[str]:
    return [Reply.from_fields(fields).parts[0] for _, fields in await aredis.xrange(keys.replies(bot))]


async def test_requests_committed_together_share_one_transaction_that_acks_exactly_them(
        aredis, keys, make_request):
    shard = keys.request_shard(1)
    shared_ids = await _pending(aredis, keys, make_request, 4)
    shard_ids = await _pending(aredis, keys, make_request, 2, stream=shard)
    conn = Transactions(aredis)
    commits = GroupCommit(conn, keys, "w1")
    await asyncio.gather(
        commits.commit(keys.requests, shared_ids[0], [_reply_write(keys, "a")]),
        commits.commit(keys.requests, shared_ids[2], [_reply_write(keys, "b")]),
        commits.commit(shard, shard_ids[1], [_reply_write(keys, "c")]),
    )
    assert conn.count == 1
    assert await _reply_texts(aredis, keys) == ["echo: a", "echo: b", "echo: c"]
    assert await _pending_ids(aredis, keys) == [shared_ids[1], shared_ids[3]]
    assert await _pending_ids(aredis, keys, shard) == [shard_ids[0]]
    assert [i for i, _ in await aredis.xrange(keys.requests)] == [shared_ids[1], shared_ids[3]], "acked ones deleted"
    assert [i for i, _ in await aredis.xrange(shard)] == [shard_ids[0]]


async def test_requests_finishing_while_a_commit_is_in_flight_share_the_next_one(aredis, keys, make_request):
    ids = await _pending(aredis, keys, make_request, 4)
    conn = Transactions(aredis, delay_s=0.2)
    commits = GroupCommit(conn, keys, "w1")
    first = commits.commit(keys.requests, ids[0], [_reply_write(keys, "a")])
    await asyncio.wait_for(conn.started.wait(), 5)
    rest = [commits.commit(keys.requests, entry_id, [_reply_write(keys, f"{i}")]) for i, entry_id in enumerate(ids[1:])]
    await asyncio.gather(first, *rest)
    assert conn.count == 2
    assert await _reply_texts(aredis, keys) == ["echo: a", "echo: 0", "echo: 1", "echo: 2"]
    assert await _pending_ids(aredis, keys) == [] and await aredis.xlen(keys.requests) == 0


async def test_a_write_that_fails_in_a_shared_transaction_fails_only_its_request(aredis, keys, make_request):
    ids = await _pending(aredis, keys, make_request, 3)
    await aredis.set(keys.replies("b2"), "not a stream")  # XADD to it fails with WRONGTYPE
    commits = GroupCommit(aredis, keys, "w1")
    outcomes = await asyncio.gather(
        commits.commit(keys.requests, ids[0], [_reply_write(keys, "a")]),
        commits.commit(keys.requests, ids[1], [_reply_write(keys, "lost", bot="b2")]),
        commits.commit(keys.requests, ids[2], [_reply_write(keys, "c")]),
        return_exceptions=True,
    )
    assert outcomes[0] is None and outcomes[2] is None
    assert isinstance(outcomes[1], rexc.ResponseError) and "WRONGTYPE" in str(outcomes[1])
    assert await _reply_texts(aredis, keys) == ["echo: a", "echo: c"]
    assert ids[0] not in await _pending_ids(aredis, keys) and ids[2] not in await _pending_ids(aredis, keys)


async def test_a_transaction_that_fails_as_a_whole_fails_each_request_and_acks_none(aredis, keys, make_request):
    ids = await _pending(aredis, keys, make_request, 2)
    commits = GroupCommit(Transactions(aredis, failures=1), keys, "w1")
    outcomes = await asyncio.gather(*(commits.commit(keys.requests, entry_id, [_reply_write(keys, entry_id)])
                                      for entry_id in ids), return_exceptions=True)
    assert all(isinstance(o, rexc.ConnectionError) for o in outcomes)
    assert await _reply_texts(aredis, keys) == []
    assert await _pending_ids(aredis, keys) == ids and await aredis.xlen(keys.requests) == 2


async def test_answer_retries_a_transient_failure_and_writes_the_reply_once(aredis, keys, make_request, caplog):
    [entry_id] = await _pending(aredis, keys, make_request, 1)
    conn = Transactions(aredis, failures=2)
    caplog.set_level(logging.WARNING)
    await GroupCommit(conn, keys, "w1").answer(keys.requests, entry_id, "b1", _reply("a"), stopping=asyncio.Event())
    assert conn.count == 3
    assert caplog.text.count(f"cannot write reply for {entry_id}") == 2
    assert await _reply_texts(aredis, keys) == ["echo: a"]
    assert await _pending_ids(aredis, keys) == [] and await aredis.xlen(keys.requests) == 0


async def test_answer_gives_up_at_once_when_stopping(aredis, keys, make_request):
    [entry_id] = await _pending(aredis, keys, make_request, 1)
    conn = Transactions(aredis, failures=5)
    stopping = asyncio.Event()
    stopping.set()
    with pytest.raises(rexc.ConnectionError):
        await GroupCommit(conn, keys, "w1").answer(keys.requests, entry_id, "b1", _reply("a"), stopping=stopping)
    assert conn.count == 1
    assert await _pending_ids(aredis, keys) == [entry_id], "left pending for a live worker to reclaim"


async def test_answer_does_not_retry_an_error_that_is_not_transient(aredis, keys, make_request):
    [entry_id] = await _pending(aredis, keys, make_request, 1)
    await aredis.set(keys.replies("b2"), "not a stream")
    conn = Transactions(aredis)
    with pytest.raises(rexc.ResponseError, match="WRONGTYPE"):
        await GroupCommit(conn, keys, "w1").answer(keys.requests, entry_id, "b2", _reply("a"),
                                                    stopping=asyncio.Event())
    assert conn.count == 1


async def test_answer_writes_a_signed_dead_letter_and_a_reply_only_for_a_bot(aredis, keys, make_request):
    ids = await _pending(aredis, keys, make_request, 3)
    commits = GroupCommit(aredis, keys, "w1")
    never = asyncio.Event()
    await commits.answer(keys.requests, ids[0], "b1", _reply("failed"), dead_letter={"reason": "engine failed"},
                         stopping=never)
    await commits.answer(keys.requests, ids[1], None, _reply("no bot"), dead_letter={"reason": "garbage"},
                         stopping=never)
    await commits.answer(keys.requests, ids[2], "b1", None, stopping=never)
    assert await _reply_texts(aredis, keys) == ["echo: failed"]
    dead = [fields for _, fields in await aredis.xrange(keys.dead_letter)]
    assert dead == [{"reason": "engine failed", "worker": "w1", "entry": ids[0]},
                    {"reason": "garbage", "worker": "w1", "entry": ids[1]}]
    assert await _pending_ids(aredis, keys) == [] and await aredis.xlen(keys.requests) == 0


async def test_dead_letters_older_than_their_ttl_are_trimmed_and_the_stream_expires(aredis, keys, make_request):
    import time

    day_ms = 86_400_000
    now_ms = int(time.time() * 1000)
    for age_days, text in ((9, "my id is 110101199003074518"), (8, "call me at 13812345678"), (1, "recent")):
        await aredis.xadd(keys.dead_letter, {"text": text, "channel": "test:c1"}, id=f"{now_ms - age_days * day_ms}-0")
    ids = await _pending(aredis, keys, make_request, 3)
    commits = GroupCommit(aredis, keys, "w1", dead_letter_ttl_s=7 * 86_400)
    never = asyncio.Event()
    await commits.answer(keys.requests, ids[0], "b1", _reply("x"), dead_letter={"reason": "engine failed"},
                         stopping=never)
    texts = [fields.get("text", fields.get("reason")) for _, fields in await aredis.xrange(keys.dead_letter)]
    assert texts == ["recent", "engine failed"], "entries older than the TTL are gone at the next write"
    assert 0 < await aredis.ttl(keys.dead_letter) <= 7 * 86_400, "and the stream expires if none comes"
    # A reply-only commit trims too (at most once a minute), so a busy worker does not keep old letters.
    commits.dead_letter_ttl_s = 0.2
    await asyncio.sleep(0.3)
    await commits.answer(keys.requests, ids[1], "b1", _reply("y"), stopping=never)
    assert await aredis.xlen(keys.dead_letter) == 2, "not again within the minute"
    commits._trimmed_at -= 60
    await commits.answer(keys.requests, ids[2], "b1", _reply("z"), stopping=never)
    assert await aredis.xlen(keys.dead_letter) == 0
    assert await _reply_texts(aredis, keys) == ["echo: x", "echo: y", "echo: z"]
    assert await _pending_ids(aredis, keys) == []


def test_the_worker_takes_the_dead_letter_ttl_from_the_settings(make_settings, aredis, keys):
    from inference.engine import EchoEngine
    from inference.worker import Worker, WorkerOptions

    options = WorkerOptions.from_settings(make_settings(relay={"dead_letter_ttl_s": 3600}))
    assert options.dead_letter_ttl_s == 3600
    assert Worker(aredis, EchoEngine(), keys, options).commits.dead_letter_ttl_s == 3600
    assert WorkerOptions.from_settings(make_settings()).dead_letter_ttl_s == 7 * 86_400


async def test_close_gives_up_the_commit_in_flight_and_its_requests_stay_pending(aredis, keys, make_request):
    ids = await _pending(aredis, keys, make_request, 3)
    conn = Transactions(aredis, delay_s=5.0)
    commits = GroupCommit(conn, keys, "w1")
    in_flight = commits.commit(keys.requests, ids[0], [_reply_write(keys, "a")])
    await asyncio.wait_for(conn.started.wait(), 5)
    queued = commits.commit(keys.requests, ids[1], [_reply_write(keys, "b")])
    await asyncio.wait_for(commits.close(), 2)
    assert in_flight.cancelled() and queued.cancelled()
    assert await _reply_texts(aredis, keys) == []
    assert await _pending_ids(aredis, keys) == ids
    conn.delay_s = 0.0
    await commits.commit(keys.requests, ids[2], [_reply_write(keys, "c")])  # a later commit starts afresh
    assert await _reply_texts(aredis, keys) == ["echo: c"]
    assert await _pending_ids(aredis, keys) == ids[:2]

