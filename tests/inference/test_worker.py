"""The worker loop against a real Redis: answers, ordering, bad input, reclaim and leases."""

from __future__ import annotations

import asyncio
import random

import pytest

from doppel.errors import EngineError
from doppel.relay import Reply
from inference.engine import EchoEngine, Generation


def replies(sync_redis, keys, bot="b1") -> list[Reply]:
    return [Reply.from_fields(fields) for _, fields in sync_redis.xrange(keys.replies(bot))]


async def queue(aredis, keys, requests) -> None:
    for request in requests:
        await aredis.xadd(keys.requests, request.to_fields())


class RecordingEngine(EchoEngine):
    """Echo with random delays that records how many generations overlap, overall and per channel."""

    def __init__(self, max_delay_ms: float = 30.0, fail_on: str | None = None):
        super().__init__()
        self.max_delay_ms = max_delay_ms
        self.fail_on = fail_on
        self.active: dict[str, int] = {}
        self.max_total = 0
        self.max_per_channel = 0

    async def generate(self, request):
        if request.text == self.fail_on:
            raise RuntimeError("boom")
        if request.text == "user-error":
            raise EngineError("adapter 'x' is missing")
        self.active[request.channel] = self.active.get(request.channel, 0) + 1
        self.max_total = max(self.max_total, sum(self.active.values()))
        self.max_per_channel = max(self.max_per_channel, self.active[request.channel])
        await asyncio.sleep(random.uniform(0, self.max_delay_ms) / 1000)
        self.active[request.channel] -= 1
        return Generation(parts=(f"echo: {request.text}",), adapter="rec")


async def test_burst_answers_everything_and_acks(aredis, sync_redis, keys, redis_url, make_worker, make_request):
    await queue(aredis, keys, [make_request(f"m{i}") for i in range(20)])
    worker = make_worker(redis_url)
    assert await worker.run(burst=True) == 20
    got = replies(sync_redis, keys)
    assert sorted(r.parts[0] for r in got) == sorted(f"echo: m{i}" for i in range(20))
    assert all(r.status == "ok" and r.worker == "w1" for r in got)
    assert sync_redis.xlen(keys.requests) == 0  # answered requests are deleted
    assert sync_redis.xpending(keys.requests, keys.workers_group)["pending"] == 0


async def test_echo_splits_bursts(aredis, sync_redis, keys, redis_url, make_worker, make_request):
    await queue(aredis, keys, [make_request("first\n\nsecond\n\n\n\nthird")])
    await make_worker(redis_url).run(burst=True)
    assert replies(sync_redis, keys)[0].parts == ("echo: first", "echo: second", "echo: third")


async def test_channels_run_concurrently_but_each_channel_in_order(aredis, sync_redis, keys, redis_url,
                                                                      make_worker, make_request):
    requests = [make_request(f"{c}-{i}", channel=f"test:{c}") for i in range(8) for c in "abcde"]
    await queue(aredis, keys, requests)
    engine = RecordingEngine()
    await make_worker(redis_url, engine, concurrency=8).run(burst=True)
    assert engine.max_total > 1, "channels should overlap"
    assert engine.max_per_channel == 1, "one channel must never run two generations at once"
    by_channel: dict[str, list[str]] = {}
    for reply in replies(sync_redis, keys):
        by_channel.setdefault(reply.channel, []).append(reply.parts[0])
    for c in "abcde":
        assert by_channel[f"test:{c}"] == [f"echo: {c}-{i}" for i in range(8)]


@pytest.mark.parametrize("mutate, reason", [
    (lambda f: f.pop("channel"), "missing field channel"),
    (lambda f: f.update(colour="red"), "unknown field colour"),
    (lambda f: f.update(v="99"), "schema version '99'"),
    (lambda f: f.update(text="x" * 1_000_000), "limit is"),
    (lambda f: f.update(chat_type="room"), "chat_type"),
    (lambda f: f.update(sent_at="yesterday"), "sent_at"),
])
async def test_bad_requests_go_to_dead_letter_without_hurting_neighbours(
        aredis, sync_redis, keys, redis_url, make_worker, make_request, mutate, reason, caplog):
    bad = make_request("bad").to_fields()
    mutate(bad)
    await aredis.xadd(keys.requests, make_request("before").to_fields())
    await aredis.xadd(keys.requests, bad)
    await aredis.xadd(keys.requests, make_request("after").to_fields())
    worker = make_worker(redis_url)
    assert await worker.run(burst=True) == 2
    assert worker.rejected == 1
    ok = [r.parts[0] for r in replies(sync_redis, keys) if r.status == "ok"]
    assert ok == ["echo: before", "echo: after"]
    dead = sync_redis.xrange(keys.dead_letter)
    assert len(dead) == 1 and reason in dead[0][1]["reason"]
    assert all(len(v) <= 2000 for v in dead[0][1].values()), "dead letters keep a bounded copy"
    assert sync_redis.xlen(keys.requests) == 0
    assert reason in caplog.text


async def test_rejected_request_tells_the_bot(aredis, sync_redis, keys, redis_url, make_worker, make_request):
    bad = make_request("bad").to_fields()
    bad["v"] = "0"
    await aredis.xadd(keys.requests, bad)
    await make_worker(redis_url).run(burst=True)
    [reply] = replies(sync_redis, keys)
    assert reply.status == "rejected" and reply.request_id == bad["id"] and "schema version" in reply.reason


async def test_engine_failure_is_an_error_reply_and_the_worker_goes_on(
        aredis, sync_redis, keys, redis_url, make_worker, make_request):
    await queue(aredis, keys, [make_request("boom"), make_request("user-error"), make_request("fine")])
    worker = make_worker(redis_url, RecordingEngine(fail_on="boom"))
    assert await worker.run(burst=True) == 3
    by_text = {r.request_id: r for r in replies(sync_redis, keys)}
    statuses = sorted(r.status for r in by_text.values())
    assert statuses == ["error", "error", "ok"]
    assert any("adapter 'x' is missing" in r.reason for r in by_text.values())
    assert sync_redis.xlen(keys.dead_letter) == 2


async def test_requests_of_a_worker_without_heartbeat_are_taken_at_once(
        aredis, sync_redis, keys, redis_url, make_worker, make_request):
    await queue(aredis, keys, [make_request(f"m{i}") for i in range(3)])
    await aredis.xgroup_create(keys.requests, keys.workers_group, id="0", mkstream=True)
    # A worker read them and died: they are pending at "ghost", which has no heartbeat key.
    await aredis.xreadgroup(keys.workers_group, "ghost", {keys.requests: ">"}, count=10)
    worker = make_worker(redis_url, reclaim_idle_s=3600)
    assert await worker.run(burst=True) == 3
    assert {r.parts[0] for r in replies(sync_redis, keys)} == {"echo: m0", "echo: m1", "echo: m2"}
    consumers = {c["name"] for c in sync_redis.xinfo_consumers(keys.requests, keys.workers_group)}
    assert "ghost" not in consumers


async def test_live_workers_requests_are_reclaimed_only_after_idle_timeout(
        aredis, sync_redis, keys, redis_url, make_worker, make_request):
    await queue(aredis, keys, [make_request("stuck")])
    await aredis.xgroup_create(keys.requests, keys.workers_group, id="0", mkstream=True)
    await aredis.xreadgroup(keys.workers_group, "slow", {keys.requests: ">"}, count=10)
    await aredis.set(keys.heartbeat("worker", "slow"), "{}", px=60_000)  # alive, but hung
    assert await make_worker(redis_url, reclaim_idle_s=60).run(burst=True) == 0
    await asyncio.sleep(0.3)
    assert await make_worker(redis_url, name="w2", reclaim_idle_s=0.2).run(burst=True) == 1


async def test_lease_renewal_keeps_a_slow_generation_from_being_reclaimed(
        aredis, sync_redis, keys, redis_url, make_worker, make_request):
    await queue(aredis, keys, [make_request("slow")])
    slow = make_worker(redis_url, EchoEngine(delay_ms=1500), name="slow", reclaim_idle_s=0.6)
    task = asyncio.create_task(slow.run(burst=True))
    await asyncio.sleep(1.0)  # past reclaim_idle_s, but leases were renewed every 0.2 s
    thief = make_worker(redis_url, name="thief", reclaim_idle_s=0.6)
    assert await thief.run(burst=True) == 0
    assert await task == 1
    assert [r.worker for r in replies(sync_redis, keys)] == ["slow"]


async def test_stop_lets_in_flight_requests_finish(aredis, sync_redis, keys, redis_url, make_worker, make_request):
    worker = make_worker(redis_url, EchoEngine(delay_ms=300))
    task = asyncio.create_task(worker.run())
    await queue(aredis, keys, [make_request("a", channel="test:1"), make_request("b", channel="test:2")])
    for _ in range(100):
        if len(worker._in_flight) == 2:
            break
        await asyncio.sleep(0.01)
    worker.stop()
    assert await asyncio.wait_for(task, 5) == 2
    assert len(replies(sync_redis, keys)) == 2
    assert not sync_redis.exists(keys.heartbeat("worker", "w1")), "a stopped worker removes its heartbeat"


async def test_worker_survives_a_redis_restart(make_redis_server, keys, make_worker, make_request):
    server = make_redis_server()
    worker = make_worker(server.url)
    task = asyncio.create_task(worker.run())
    from doppel.redis_client import async_client

    client = async_client(server.url)
    await queue(client, keys, [make_request("before")])
    for _ in range(200):
        if worker.processed == 1:
            break
        await asyncio.sleep(0.01)
    server.stop()
    await asyncio.sleep(0.5)  # the worker sees connection errors and backs off
    server.start()
    await queue(client, keys, [make_request("after")])
    for _ in range(500):
        if worker.processed == 2:
            break
        await asyncio.sleep(0.02)
    worker.stop()
    await asyncio.wait_for(task, 10)
    texts = [Reply.from_fields(f).parts[0] for _, f in await client.xrange(keys.replies("b1"))]
    await client.aclose()
    assert texts == ["echo: before", "echo: after"]


class FailingCommits:
    """The worker's Redis connection, but the next ``failures`` transactions fail as if Redis went away."""

    def __init__(self, redis, failures: int):
        self._redis = redis
        self.failures = failures
        self.commits = 0

    def __getattr__(self, name):
        return getattr(self._redis, name)

    def pipeline(self, *args, **kwargs):
        import redis.exceptions

        pipe = self._redis.pipeline(*args, **kwargs)
        self.commits += 1
        if self.failures:
            self.failures -= 1

            async def execute(*_args, **_kwargs):
                await pipe.reset()
                raise redis.exceptions.ConnectionError("injected: connection lost")

            pipe.execute = execute
        return pipe


async def test_requests_finishing_together_share_one_commit(aredis, sync_redis, keys, redis_url, make_worker,
                                                            make_request):
    await queue(aredis, keys, [make_request(f"m{i}", channel=f"test:{i}") for i in range(16)])
    worker = make_worker(redis_url, concurrency=16)
    worker.redis = counting = FailingCommits(worker.redis, failures=0)
    assert await worker.run(burst=True) == 16
    assert counting.commits < 16 / 2, "replies of one read go out in a few transactions, not one each"
    assert sorted(r.parts[0] for r in replies(sync_redis, keys)) == sorted(f"echo: m{i}" for i in range(16))
    assert sync_redis.xlen(keys.requests) == 0
    assert sync_redis.xpending(keys.requests, keys.workers_group)["pending"] == 0


async def test_a_commit_that_fails_transiently_is_retried_for_each_of_its_requests(
        aredis, sync_redis, keys, redis_url, make_worker, make_request, caplog):
    bad = make_request("bad").to_fields()
    bad["v"] = "0"  # rejected: its rejection and dead letter share the failing commit
    await queue(aredis, keys, [make_request(f"m{i}", channel=f"test:{i}") for i in range(8)])
    await aredis.xadd(keys.requests, bad)
    worker = make_worker(redis_url, concurrency=16)
    worker.redis = FailingCommits(worker.redis, failures=1)
    assert await worker.run(burst=True) == 8
    assert "cannot write reply" in caplog.text
    got = replies(sync_redis, keys)
    assert sorted(r.parts[0] for r in got if r.status == "ok") == sorted(f"echo: m{i}" for i in range(8))
    assert [r.request_id for r in got if r.status == "rejected"] == [bad["id"]], "each reply written once"
    assert sync_redis.xlen(keys.dead_letter) == 1 and worker.rejected == 1
    assert sync_redis.xlen(keys.requests) == 0
    assert sync_redis.xpending(keys.requests, keys.workers_group)["pending"] == 0


async def test_a_write_that_fails_in_a_shared_commit_fails_only_its_request(
        aredis, sync_redis, keys, redis_url, make_worker, make_request, caplog):
    await aredis.set(keys.replies("b2"), "not a stream")  # XADD to it fails with WRONGTYPE
    await queue(aredis, keys, [make_request(f"m{i}", channel=f"test:{i}") for i in range(4)])
    await queue(aredis, keys, [make_request("lost", channel="test:x", bot="b2")])
    worker = make_worker(redis_url, concurrency=16)
    assert await worker.run(burst=True) == 4
    assert sorted(r.parts[0] for r in replies(sync_redis, keys)) == sorted(f"echo: m{i}" for i in range(4))
    assert "could not answer" in caplog.text and "WRONGTYPE" in caplog.text


# -- shards ------------------------------------------------------------------------------------------

async def test_a_shard_taken_from_a_dead_worker_answers_its_pending_requests_first(
        aredis, sync_redis, keys, redis_url, make_worker, make_request, caplog):
    channel = "test:sharded"
    stream = keys.request_stream(channel, 2)
    assert stream == keys.request_shard(keys.shard_of_stream(stream)) != keys.requests
    await aredis.xgroup_create(stream, keys.workers_group, id="0", mkstream=True)
    for i in range(3):
        await aredis.xadd(stream, make_request(f"m{i}", channel=channel).to_fields())
    # "ghost" held the shard, read those three and died: lease still there, heartbeat gone.
    await aredis.xreadgroup(keys.workers_group, "ghost", {stream: ">"}, count=10)
    await aredis.set(keys.shard_lease(keys.shard_of_stream(stream)), "ghost", px=60_000)
    await aredis.sadd(keys.workers, "ghost")
    for i in range(3, 5):
        await aredis.xadd(stream, make_request(f"m{i}", channel=channel).to_fields())
    worker = make_worker(redis_url, shards=2, reclaim_idle_s=3600)
    assert await worker.run(burst=True) == 5
    assert [r.parts[0] for r in replies(sync_redis, keys)] == [f"echo: m{i}" for i in range(5)], \
        "the dead worker's requests first, then the newer ones, in order"
    assert "from stopped worker(s) ghost" in caplog.text
    assert sync_redis.xlen(stream) == 0 and sync_redis.xpending(stream, keys.workers_group)["pending"] == 0
    assert not sync_redis.exists(keys.shard_lease(keys.shard_of_stream(stream))), "released on a clean stop"
    assert sync_redis.smembers(keys.workers) == set(), "the dead worker left the set of workers too"


async def test_a_bot_with_more_shards_than_the_worker_is_still_answered(
        sync_redis, keys, redis_url, make_worker, make_client, make_request):
    client = make_client(redis_url, shards=16)
    channels = [f"test:{i}" for i in range(40)]
    for channel in channels:
        await client.submit(make_request("hi", channel=channel))
    await client.redis.aclose()
    used = {keys.request_stream(channel, 16) for channel in channels}
    assert len(used) > 8 and sync_redis.get(keys.shard_count) == "16"
    worker = make_worker(redis_url, shards=1)  # configured for the shared stream only
    assert await worker.run(burst=True) == 40
    assert sorted(r.channel for r in replies(sync_redis, keys)) == sorted(channels)


async def _shard_with_pending(aredis, keys, make_request, held_by: dict[str, list[int]], new: int):
    """A shard stream whose first requests are pending at the given consumers (request index ->
    consumer, read in stream order), followed by ``new`` requests nobody read."""
    channel = "test:sharded"
    stream = keys.request_stream(channel, 2)
    await aredis.xgroup_create(stream, keys.workers_group, id="0", mkstream=True)
    at = {i: name for name, indexes in held_by.items() for i in indexes}
    for i in sorted(at):
        await aredis.xadd(stream, make_request(f"m{i}", channel=channel).to_fields())
        await aredis.xreadgroup(keys.workers_group, at[i], {stream: ">"}, count=1)
    for i in range(len(at), len(at) + new):
        await aredis.xadd(stream, make_request(f"m{i}", channel=channel).to_fields())
    return stream


async def test_a_shard_taken_over_answers_pending_requests_of_live_holders_first(
        aredis, sync_redis, keys, redis_url, make_worker, make_request, caplog):
    # "slow" lost the lease (expired before its heartbeat) with two requests pending; "ghost" died.
    stream = await _shard_with_pending(aredis, keys, make_request, {"slow": [0, 2], "ghost": [1]}, new=2)
    await aredis.set(keys.heartbeat("worker", "slow"), "{}", px=60_000)
    worker = make_worker(redis_url, shards=2, reclaim_idle_s=3600)
    assert await worker.run(burst=True) == 5
    assert [r.parts[0] for r in replies(sync_redis, keys)] == [f"echo: m{i}" for i in range(5)], \
        "every pending request of the shard first, in stream order, then the new ones"
    assert "took 2 request(s)" in caplog.text and "from live worker slow" in caplog.text
    assert sync_redis.xpending(stream, keys.workers_group)["pending"] == 0


@pytest.mark.parametrize("lease", ["kept", "expired"])
async def test_a_worker_restarted_under_its_name_answers_its_own_pending_requests_first(
        aredis, sync_redis, keys, redis_url, make_worker, make_request, lease):
    # The previous run of "w1" (a container: same hostname and pid) read two requests and was killed.
    stream = await _shard_with_pending(aredis, keys, make_request, {"w1": [0, 1]}, new=2)
    if lease == "kept":
        await aredis.set(keys.shard_lease(keys.shard_of_stream(stream)), "w1", px=60_000)
        await aredis.sadd(keys.workers, "w1")
    worker = make_worker(redis_url, shards=2, reclaim_idle_s=3600)
    assert await worker.run(burst=True) == 4
    assert [r.parts[0] for r in replies(sync_redis, keys)] == [f"echo: m{i}" for i in range(4)]
    assert not sync_redis.exists(keys.shard_lease(keys.shard_of_stream(stream))), "released on a clean stop"


async def test_a_worker_restarted_under_its_name_answers_its_own_pending_on_the_shared_stream(
        aredis, sync_redis, keys, redis_url, make_worker, make_request):
    await queue(aredis, keys, [make_request(f"m{i}") for i in range(3)])
    await aredis.xgroup_create(keys.requests, keys.workers_group, id="0", mkstream=True)
    await aredis.xreadgroup(keys.workers_group, "w1", {keys.requests: ">"}, count=2)
    assert await make_worker(redis_url, shards=1, reclaim_idle_s=3600).run(burst=True) == 3
    assert [r.parts[0] for r in replies(sync_redis, keys)] == ["echo: m0", "echo: m1", "echo: m2"]
