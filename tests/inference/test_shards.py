"""Shard leases on a real Redis: the plan, taking, handing over, taking a dead worker's shards.

Each ``ShardLeases`` stands for one worker; a round is driven by hand (``round()``), and a worker
is alive while its heartbeat key exists, as in the worker.
"""

from __future__ import annotations

import asyncio

from hypothesis import given
from hypothesis import strategies as st

from doppel.redis_client import async_client
from inference.shards import ShardLeases, plan


@given(shards=st.integers(1, 64), held=st.lists(st.integers(0, 64), min_size=1, max_size=8))
def test_the_plan_shares_every_shard_evenly_and_moves_few(shards, held):
    holdings = {f"w{i}": count for i, count in enumerate(held)}
    shares = plan(shards, holdings)
    assert sum(shares.values()) == shards
    assert max(shares.values()) - min(shares.values()) <= 1
    # The larger shares go to those holding the most: they keep what they have, the fewest move.
    bigger = [name for name in shares if shares[name] > min(shares.values())]
    assert all(holdings[b] >= holdings[s] for b in bigger for s in shares if s not in bigger)


def test_the_plan_is_the_same_whoever_computes_it():
    assert plan(8, {"a": 4, "b": 4, "c": 0}) == {"a": 3, "b": 3, "c": 2}
    assert plan(8, {"c": 0, "b": 4, "a": 4}) == {"a": 3, "b": 3, "c": 2}
    assert plan(8, {"a": 2, "b": 2, "c": 2, "d": 2, "e": 0}) == {"a": 2, "b": 2, "c": 2, "d": 1, "e": 1}


class Workers:
    """Lease managers on one Redis, each with a heartbeat key while it is "alive"."""

    def __init__(self, redis_url: str, keys, shards: int = 8, ttl_s: float = 5.0):
        self.redis = async_client(redis_url)
        self.keys, self.shards, self.ttl_s = keys, shards, ttl_s
        self.leases: dict[str, ShardLeases] = {}

    async def start(self, name: str, shards: int | None = None) -> ShardLeases:
        await self.redis.set(self.keys.heartbeat("worker", name), "{}", px=60_000)
        self.leases[name] = ShardLeases(self.redis, self.keys, name, shards=shards or self.shards, ttl_s=self.ttl_s)
        return self.leases[name]

    async def die(self, name: str) -> None:
        await self.redis.delete(self.keys.heartbeat("worker", name))
        del self.leases[name]

    async def settle(self, rounds: int = 6) -> None:
        """Rounds for everyone, with hand-overs finished (nothing in flight)."""
        for _ in range(rounds):
            for leases in list(self.leases.values()):
                await leases.round()
                leases.fresh.clear()  # the worker claims their pending requests, then reads them
                await leases.release_drained(set())

    async def holders(self) -> list[str | None]:
        count = max(leases.count for leases in self.leases.values())
        return await self.redis.mget([self.keys.shard_lease(k) for k in range(count)])


async def test_one_worker_takes_every_shard_and_a_second_gets_half(redis_url, keys):
    workers = Workers(redis_url, keys)
    a = await workers.start("a")
    assert await a.round() == set(range(8))
    assert a.fresh == set(range(8)) and a.reading() == [], "taken shards are read once their pending are claimed"
    a.fresh.clear()
    assert a.streams() == [keys.requests, *(keys.request_shard(k) for k in range(8))]
    b = await workers.start("b")
    await workers.settle()
    assert (len(a.reading()), len(b.reading())) == (4, 4)
    assert set(a.reading()) | set(b.reading()) == set(range(8))
    assert sorted(await workers.holders()) == ["a"] * 4 + ["b"] * 4
    await workers.redis.aclose()


async def test_a_worker_hands_shards_over_only_once_their_requests_are_done(redis_url, keys):
    workers = Workers(redis_url, keys, shards=4)
    a = await workers.start("a")
    await workers.settle()
    b = await workers.start("b")
    assert await b.round() == set(), "nothing free: b joins the set of workers and waits"
    await a.round()
    handed = set(a.draining)
    assert len(handed) == 2 and not handed & set(a.reading()), "shards being handed over are no longer read"
    busy, idle = sorted(handed)
    await a.release_drained({busy})  # a request of ``busy`` is still in flight
    holders = await workers.holders()
    assert (holders[busy], holders[idle]) == ("a", None)
    await a.round()
    assert (await workers.holders())[busy] == "a", "renewed while it drains"
    await a.release_drained(set())
    await workers.settle()
    assert sorted(await workers.holders()) == ["a", "a", "b", "b"]
    assert set(b.reading()) == handed
    await workers.redis.aclose()


async def test_a_dead_workers_shards_are_taken_at_once_by_the_survivors(redis_url, keys):
    workers = Workers(redis_url, keys, ttl_s=60.0)  # its leases would outlive the test: liveness decides
    for name in "abc":
        await workers.start(name)
    await workers.settle()
    before = await workers.holders()
    assert sorted(before.count(name) for name in "abc") == [2, 3, 3]
    await workers.die("b")
    await workers.settle(rounds=2)
    after = await workers.holders()
    assert set(after) == {"a", "c"} and after.count("a") == after.count("c") == 4
    assert all(after[k] == before[k] for k in range(8) if before[k] != "b"), "survivors keep their own shards"
    await workers.redis.aclose()


async def test_a_lease_lost_while_stalled_is_no_longer_read(redis_url, keys):
    workers = Workers(redis_url, keys, shards=2, ttl_s=0.3)
    a = await workers.start("a")
    await workers.settle(rounds=1)
    await asyncio.sleep(0.4)  # a stalls past its lease TTL; b takes the shards meanwhile
    b = await workers.start("b")
    await b.round()
    [taken] = b.held  # its share: a is alive, so one each
    await a.round()
    assert taken not in a.held, "a lease in another worker's hands is dropped, not renewed"
    assert a.held == {1 - taken} and a.fresh == {1 - taken}, "the expired one is taken anew (claim first)"
    assert (await workers.holders()) == [("a", "b")[k == taken] for k in range(2)]
    await workers.redis.aclose()


async def test_workers_cover_the_largest_shard_count_a_bot_used(redis_url, keys, sync_redis):
    workers = Workers(redis_url, keys, shards=4)
    a = await workers.start("a")
    sync_redis.set(keys.shard_count, 16)  # a bot configured with 16 shards queued a request
    await workers.settle()
    assert a.count == 16 and a.reading() == list(range(16))
    await workers.redis.aclose()


async def test_one_shard_means_no_leases_only_the_shared_stream(redis_url, keys, sync_redis):
    workers = Workers(redis_url, keys, shards=1)
    a = await workers.start("a")
    assert await a.round() == set()
    assert a.streams() == [keys.requests]
    assert not sync_redis.exists(keys.shard_count) and not sync_redis.exists(keys.workers)
    await workers.redis.aclose()


async def test_a_clean_stop_frees_every_lease_at_once(redis_url, keys, sync_redis):
    workers = Workers(redis_url, keys, shards=4)
    a = await workers.start("a")
    await workers.settle()
    await a.release_all()
    assert sync_redis.mget([keys.shard_lease(k) for k in range(4)]) == [None] * 4
    assert sync_redis.smembers(keys.workers) == set()
    await workers.redis.aclose()


async def test_a_stalled_worker_stops_reading_a_shard_once_its_lease_may_have_run_out(redis_url, keys):
    workers = Workers(redis_url, keys, shards=2, ttl_s=0.3)
    a = await workers.start("a")
    await workers.settle(rounds=1)
    assert a.reading() == [0, 1]
    assert a.reading(margin_s=0.4) == [], "a read blocking past the lease's end does not start"
    await asyncio.sleep(0.35)  # no round ran: the leases may be another worker's by now
    assert a.reading() == [] and a.streams() == [keys.requests]
    await a.round()  # renewed (still free) or taken anew: read again once claimed
    a.fresh.clear()
    assert a.reading() == [0, 1]
    await workers.redis.aclose()


async def test_a_worker_restarted_under_its_name_holds_its_leases_again(redis_url, keys, sync_redis):
    workers = Workers(redis_url, keys, shards=4, ttl_s=60.0)
    await workers.start("a")
    await workers.settle()
    again = await workers.start("a")  # a new process, same name: its leases outlive the old one
    assert await again.round() == set(range(4))
    assert again.fresh == set(range(4)), "its previous run's pending requests are claimed first"
    assert sync_redis.mget([keys.shard_lease(k) for k in range(4)]) == ["a"] * 4
    await workers.redis.aclose()
