"""The status report on a real Redis: queue depth and pending counts over every request stream,
and which worker reads which shard."""

from __future__ import annotations

from doppel.health import read_status


def test_status_sums_the_shared_stream_and_every_shard(sync_redis, keys, make_request):
    sync_redis.set(keys.shard_count, 4)
    streams = keys.request_streams(4)
    for stream in streams:
        sync_redis.xgroup_create(stream, keys.workers_group, id="0", mkstream=True)
    for index, stream in enumerate(streams):
        for i in range(index + 1):  # 1 + 2 + 3 + 4 + 5 requests
            sync_redis.xadd(stream, make_request(f"m{i}").to_fields())
    sync_redis.xreadgroup(keys.workers_group, "w1", {streams[1]: ">", streams[2]: ">"}, count=1)
    sync_redis.xreadgroup(keys.workers_group, "w2", {streams[4]: ">"}, count=3)
    sync_redis.set(keys.shard_lease(0), "w1")
    sync_redis.set(keys.shard_lease(1), "w1")
    sync_redis.set(keys.shard_lease(3), "w2")
    status = read_status(sync_redis, keys)
    assert (status.shards, status.pending, status.queued) == (4, 5, 10)
    assert status.pending_by_worker == {"w1": 2, "w2": 3}
    assert status.shard_owners == {"w1": [0, 1], "w2": [3]} and status.unowned_shards == [2]


def test_status_without_shards_reads_the_shared_stream_only(sync_redis, keys, make_request):
    sync_redis.xgroup_create(keys.requests, keys.workers_group, id="0", mkstream=True)
    for i in range(3):
        sync_redis.xadd(keys.requests, make_request(f"m{i}").to_fields())
    sync_redis.xreadgroup(keys.workers_group, "w1", {keys.requests: ">"}, count=1)
    status = read_status(sync_redis, keys)
    assert (status.shards, status.pending, status.queued, status.pending_by_worker) == (1, 1, 2, {"w1": 1})
    assert status.shard_owners == {} and status.unowned_shards == []
