"""Claims alone, on a real Redis: reading, taking pending requests over, reclaiming, renewing.

Other workers are played by hand: a consumer that reads with XREADGROUP holds what it read, and
it is alive while its heartbeat key exists. Idle times are set with XCLAIM's IDLE, not waited for.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
import redis.exceptions

from inference.claims import Claims, is_nogroup


@pytest.fixture
def make_claims(aredis, keys):
    def make(name: str = "w1", held: set | None = None, reclaim_idle_s: float = 30.0) -> Claims:
        return Claims(aredis, keys, name, held=set() if held is None else held, reclaim_idle_s=reclaim_idle_s)

    return make


async def _queued(aredis, keys, make_request, count: int, stream: str | None = None) -> list[str]:
    """``count`` requests on ``stream`` (the shared one by default), with the workers' group; their ids."""
    stream = stream or keys.requests
    await aredis.xgroup_create(stream, keys.workers_group, id="0", mkstream=True)
    return [await aredis.xadd(stream, make_request(f"m{i}").to_fields()) for i in range(count)]


async def _read_by(aredis, keys, consumer: str, count: int, stream: str | None = None) -> None:
    await aredis.xreadgroup(keys.workers_group, consumer, {stream or keys.requests: ">"}, count=count)


async def _alive(aredis, keys, *names: str) -> None:
    for name in names:
        await aredis.set(keys.heartbeat("worker", name), "{}", px=60_000)


async def _make_idle(aredis, keys, consumer: str, ids: list[str], idle_ms: int, stream: str | None = None) -> None:
    await aredis.xclaim(stream or keys.requests, keys.workers_group, consumer, min_idle_time=0, message_ids=ids,
                        idle=idle_ms, justid=True)


async def _holders(aredis, keys, stream: str | None = None) -> dict[str, str]:
    """Entry id -> the consumer it is pending at."""
    pending = await aredis.xpending_range(stream or keys.requests, keys.workers_group, min="-", max="+", count=1000)
    return {p["message_id"]: p["consumer"] for p in pending}


async def _idle_ms(aredis, keys, entry_id: str, stream: str | None = None) -> int:
    [p] = await aredis.xpending_range(stream or keys.requests, keys.workers_group, min=entry_id, max=entry_id,
                                      count=1)
    return p["time_since_delivered"]


# -- reading -----------------------------------------------------------------------------------------

async def test_read_takes_new_requests_in_order_and_they_become_pending_at_the_reader(
        aredis, keys, make_request, make_claims):
    ids = await _queued(aredis, keys, make_request, 3)
    claims = make_claims()
    first = await claims.read([keys.requests], count=2, block_ms=None)
    assert [(stream, entry_id) for stream, entry_id, _ in first] == [(keys.requests, ids[0]), (keys.requests, ids[1])]
    assert first[0][2]["text"] == "m0"
    assert await _holders(aredis, keys) == {ids[0]: "w1", ids[1]: "w1"}
    assert [entry_id for _, entry_id, _ in await claims.read([keys.requests], count=2, block_ms=None)] == [ids[2]]
    assert await claims.read([keys.requests], count=2, block_ms=10) == []


# -- reclaiming ----------------------------------------------------------------------------------------

async def test_reclaim_takes_a_live_workers_request_only_once_idle_past_the_timeout(
        aredis, keys, make_request, make_claims):
    old, fresh = await _queued(aredis, keys, make_request, 2)
    await _read_by(aredis, keys, "slow", 2)
    await _alive(aredis, keys, "slow")
    await _make_idle(aredis, keys, "slow", [old], idle_ms=31_000)
    claimed = await make_claims(reclaim_idle_s=30.0).reclaim([keys.requests])
    assert [(stream, entry_id) for stream, entry_id, _ in claimed] == [(keys.requests, old)]
    assert claimed[0][2]["text"] == "m0"
    assert await _holders(aredis, keys) == {old: "w1", fresh: "slow"}, "the one not yet idle stays with its holder"


async def test_reclaim_takes_a_dead_workers_requests_at_once_and_forgets_dead_consumers(
        aredis, keys, make_request, make_claims, caplog):
    ids = await _queued(aredis, keys, make_request, 3)
    await _read_by(aredis, keys, "ghost", 2)  # no heartbeat: stopped
    await _read_by(aredis, keys, "live", 1)
    await _alive(aredis, keys, "live")
    await aredis.xgroup_createconsumer(keys.requests, keys.workers_group, "empty-ghost")
    caplog.set_level(logging.WARNING)
    claims = make_claims(reclaim_idle_s=3600)
    assert [entry_id for _, entry_id, _ in await claims.reclaim([keys.requests])] == ids[:2]
    assert await _holders(aredis, keys) == {ids[0]: "w1", ids[1]: "w1", ids[2]: "live"}
    assert "took 2 request(s) of doppel:requests from stopped worker ghost" in caplog.text
    consumers = {c["name"] for c in await aredis.xinfo_consumers(keys.requests, keys.workers_group)}
    assert "empty-ghost" not in consumers and "live" in consumers
    assert await claims.reclaim([keys.requests]) == []
    consumers = {c["name"] for c in await aredis.xinfo_consumers(keys.requests, keys.workers_group)}
    assert "ghost" not in consumers, "a dead consumer left with nothing pending is deleted on the next pass"


async def test_reclaim_leaves_out_held_requests_and_entries_deleted_while_pending(
        aredis, keys, make_request, make_claims):
    ids = await _queued(aredis, keys, make_request, 3)
    await _read_by(aredis, keys, "ghost", 3)
    await aredis.xdel(keys.requests, ids[1])
    held = {(keys.requests, ids[2])}  # being answered here already (claimed before, now dispatched)
    claimed = await make_claims(held=held, reclaim_idle_s=3600).reclaim([keys.requests])
    assert [entry_id for _, entry_id, _ in claimed] == [ids[0]]


async def test_reclaim_covers_every_stream_given(aredis, keys, make_request, make_claims):
    shard = keys.request_shard(1)
    [on_shared] = await _queued(aredis, keys, make_request, 1)
    [on_shard] = await _queued(aredis, keys, make_request, 1, stream=shard)
    await _read_by(aredis, keys, "ghost", 1)
    await _read_by(aredis, keys, "ghost", 1, stream=shard)
    claimed = await make_claims(reclaim_idle_s=3600).reclaim([keys.requests, shard])
    assert [(stream, entry_id) for stream, entry_id, _ in claimed] == [(keys.requests, on_shared), (shard, on_shard)]


# -- taking over pending requests ---------------------------------------------------------------------

async def test_claim_pending_takes_every_pending_request_in_stream_order_however_fresh(
        aredis, keys, make_request, make_claims, caplog):
    ids = await _queued(aredis, keys, make_request, 250)  # more than one XPENDING page
    for i in range(250):  # interleaved holders: a live one (it lost its lease) and a dead one
        await _read_by(aredis, keys, "slow" if i % 2 else "ghost", 1)
    await _alive(aredis, keys, "slow")
    extra = await aredis.xadd(keys.requests, make_request("new").to_fields())
    caplog.set_level(logging.WARNING)
    claimed = await make_claims().claim_pending(keys.requests)
    assert [entry_id for _, entry_id, _ in claimed] == ids, "all of them, in stream order; not the unread one"
    assert set((await _holders(aredis, keys)).values()) == {"w1"} and extra not in await _holders(aredis, keys)
    assert "from live worker slow" in caplog.text and "from stopped worker ghost" in caplog.text


async def test_claim_pending_of_one_consumer_leaves_the_others_and_what_is_held(
        aredis, keys, make_request, make_claims, caplog):
    ids = await _queued(aredis, keys, make_request, 4)
    await _read_by(aredis, keys, "w1", 3)  # this worker's previous run
    await _read_by(aredis, keys, "other", 1)
    caplog.set_level(logging.WARNING)
    claims = make_claims(held={(keys.requests, ids[1])})
    assert [entry_id for _, entry_id, _ in await claims.claim_pending(keys.requests, consumer="w1")] == [ids[0], ids[2]]
    assert (await _holders(aredis, keys))[ids[3]] == "other"
    assert "took 2 request(s) of doppel:requests left by its previous run" in caplog.text


async def test_claim_older_takes_its_own_once_then_the_fresh_shards_and_dispatches_in_order(
        aredis, keys, make_request, make_claims):
    shard = keys.request_shard(3)
    own = await _queued(aredis, keys, make_request, 2)
    await _read_by(aredis, keys, "w1", 2)
    on_shard = await _queued(aredis, keys, make_request, 2, stream=shard)
    await _read_by(aredis, keys, "ghost", 2, stream=shard)
    dispatched: list[tuple[str, str]] = []
    fresh = {3}
    claims = make_claims()
    await claims.claim_older(fresh, lambda stream, entry_id, fields: dispatched.append((stream, entry_id)))
    assert dispatched == [(keys.requests, i) for i in own] + [(shard, i) for i in on_shard]
    assert fresh == set(), "a shard's pending requests are claimed once"
    new = await aredis.xadd(keys.requests, make_request("later").to_fields())
    await _read_by(aredis, keys, "w1", 1)
    dispatched.clear()
    await claims.claim_older(fresh, lambda stream, entry_id, fields: dispatched.append((stream, entry_id)))
    assert dispatched == [] and (await _holders(aredis, keys))[new] == "w1", "its own are taken back only at start"


async def test_take_over_makes_the_group_of_a_shard_never_used(aredis, keys, make_claims):
    shard = keys.request_shard(5)
    assert await make_claims().take_over([shard]) == []
    assert [g["name"] for g in await aredis.xinfo_groups(shard)] == [keys.workers_group]


# -- renewing -----------------------------------------------------------------------------------------

async def test_renew_resets_the_idle_time_of_held_requests_but_leaves_one_claimed_meanwhile(
        aredis, keys, make_request, make_claims):
    mine, taken = await _queued(aredis, keys, make_request, 2)
    await _read_by(aredis, keys, "w1", 2)
    await _make_idle(aredis, keys, "w1", [mine], idle_ms=10_000)
    await _make_idle(aredis, keys, "thief", [taken], idle_ms=0)  # reclaimed by another a moment ago
    await make_claims(held={(keys.requests, mine), (keys.requests, taken)}).renew(min_idle_ms=5_000)
    assert await _idle_ms(aredis, keys, mine) < 5_000
    assert (await _holders(aredis, keys)) == {mine: "w1", taken: "thief"}


async def test_keep_renewed_keeps_a_held_request_fresh_until_done_and_outlives_failures(
        aredis, keys, make_request, make_claims, caplog):
    [entry_id] = await _queued(aredis, keys, make_request, 1)
    await _read_by(aredis, keys, "w1", 1)
    held = {(keys.requests, entry_id)}
    claims = make_claims(held=held, reclaim_idle_s=0.3)  # renewed every 0.1 s
    done = asyncio.Event()
    task = asyncio.create_task(claims.keep_renewed(done))
    await asyncio.sleep(0.5)
    assert await _idle_ms(aredis, keys, entry_id) < 300, "renewed more often than reclaim_idle_s"
    held.add(("doppel:no-such-stream", "1-0"))  # NOGROUP there: logged, the loop goes on
    caplog.set_level(logging.WARNING)
    await asyncio.sleep(0.3)
    assert "claim renewal failed" in caplog.text
    done.set()
    await asyncio.wait_for(task, 2)


# -- groups -------------------------------------------------------------------------------------------

async def test_ensure_groups_is_idempotent_and_nogroup_is_recognised(aredis, keys, make_claims):
    claims = make_claims()
    await claims.ensure_groups([keys.requests])
    await claims.ensure_groups([keys.requests])
    assert len(await aredis.xinfo_groups(keys.requests)) == 1
    await aredis.delete(keys.requests)
    with pytest.raises(redis.exceptions.ResponseError) as lost:
        await claims.read([keys.requests], count=1, block_ms=None)
    assert is_nogroup(lost.value)
    assert not is_nogroup(redis.exceptions.ResponseError("WRONGTYPE Operation against a key"))
