"""The bot's relay client against a real Redis: submit, and deliver each reply once, in channel order.

Replies are mostly written by hand (``Reply(...).to_fields()`` on the bot's reply stream) so each
test controls exactly which answers arrive, in which order and how often; the end-to-end tests
run a real in-process Worker. Every wait is bounded (``eventually``); timings are short
(``order_wait_s``, ``retry_base_s``) so no test runs more than a couple of seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time

import pytest
from bot_helpers import eventually

from doppel.redis_client import async_client
from doppel.relay import BadMessage, Reply, Request
from inference.engine import EchoEngine


class Crash(BaseException):
    """Stands for the bot process dying: not an ``Exception``, so no boundary in the client catches it."""


class Recorder:
    """A ``post`` (and ``on_failed``) callback that records what it was given, and can fail on cue."""

    def __init__(self, fail: dict[str, int] | None = None, crash_after: str | None = None):
        self.posted: list[Reply] = []
        self.calls: list[str] = []
        self.fail = dict(fail or {})  # request id -> how many more calls raise
        self.crash_after = crash_after

    async def __call__(self, reply: Reply) -> None:
        self.calls.append(reply.request_id)
        if self.fail.get(reply.request_id, 0) > 0:
            self.fail[reply.request_id] -= 1
            raise RuntimeError("platform is down")
        self.posted.append(reply)
        if reply.request_id == self.crash_after:
            raise Crash  # the platform took the message; the process dies before the ack

    @property
    def ids(self) -> list[str]:
        return [r.request_id for r in self.posted]

    def by_channel(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for reply in self.posted:
            out.setdefault(reply.channel, []).append(reply.request_id)
        return out


@contextlib.asynccontextmanager
async def delivering(client, post, on_failed=None):
    """Run ``client.deliver`` in the background for the duration of the block."""
    task = asyncio.create_task(client.deliver(post, on_failed=on_failed))
    try:
        yield task
    finally:
        client.stop()
        await asyncio.wait_for(task, 10)


def answer(request, status: str = "ok", **fields) -> dict[str, str]:
    """The reply stream entry a worker would write for ``request``."""
    parts = (f"echo: {request.text}",) if status == "ok" else ()
    fields = {"worker": "hand", **fields}
    return Reply(request_id=request.id, channel=request.channel, status=status, parts=parts,
                 **fields).to_fields()


@pytest.fixture
async def clients(make_client):
    """Like ``make_client`` (started), with shutdown and connection close at teardown."""
    made = []

    async def make(url: str, bot: str = "b1", *, start: bool = True, **options):
        client = make_client(url, bot, **options)
        made.append(client)
        if start:
            await client.startup()
        return client

    yield make
    for client in made:
        await client.shutdown()
        await client.redis.aclose()


def pending(sync_redis, keys, bot: str = "b1") -> int:
    return sync_redis.xpending(keys.replies(bot), keys.bot_group(bot))["pending"]


def assert_all_consumed(sync_redis, keys, bot: str = "b1") -> None:
    """Every reply was acked and deleted: nothing would be delivered again."""
    assert sync_redis.xlen(keys.replies(bot)) == 0
    assert pending(sync_redis, keys, bot) == 0


def async_pending_is(redis, keys, count: int, bot: str = "b1"):
    """``pending`` on an async client (a private server), as a predicate for ``eventually``."""

    async def check() -> bool:
        return (await redis.xpending(keys.replies(bot), keys.bot_group(bot)))["pending"] == count

    return check


def held_is(redis, keys, count: int, bot: str = "b1"):
    """The bot's heartbeat reports ``count`` replies held back for ordering."""

    async def check() -> bool:
        raw = await redis.get(keys.heartbeat("bot", bot))
        return raw is not None and json.loads(raw)["held"] == count

    return check


# -- submit --------------------------------------------------------------------------------------

async def test_submit_writes_the_request_and_the_channel_order(clients, redis_url, sync_redis, keys,
                                                               make_request):
    client = await clients(redis_url, start=False)
    sent = [make_request("a1", channel="test:a"), make_request("b1", channel="test:b"),
            make_request("a2 ünïcødé 🙂", channel="test:a", reply_to="m42")]
    for request in sent:
        assert await client.submit(request) == request.id
    queued = [Request.from_fields(fields) for _, fields in sync_redis.xrange(keys.requests)]
    assert queued == sent
    assert sync_redis.lrange(keys.channel_order("b1", "test:a"), 0, -1) == [sent[0].id, sent[2].id]
    assert sync_redis.lrange(keys.channel_order("b1", "test:b"), 0, -1) == [sent[1].id]
    assert 0 < sync_redis.ttl(keys.channel_order("b1", "test:a")), "order lists must expire"


async def test_submit_puts_each_channel_on_its_shard_and_raises_the_shard_count(clients, redis_url, sync_redis,
                                                                                 keys, make_request):
    client = await clients(redis_url, start=False, shards=16)
    channels = [f"test:{i}" for i in range(30)]
    for channel in channels:
        await client.submit(make_request("hi", channel=channel))
        await client.submit(make_request("again", channel=channel))
    for channel in channels:
        queued = [f["channel"] for _, f in sync_redis.xrange(keys.request_stream(channel, 16))]
        assert queued.count(channel) == 2, "both of a channel's requests on its one shard"
    assert sync_redis.xlen(keys.requests) == 0
    assert sum(sync_redis.xlen(stream) for stream in keys.request_streams(16)) == 60
    assert sync_redis.get(keys.shard_count) == "16"
    fewer = await clients(redis_url, start=False, shards=4)
    await fewer.submit(make_request("hi", channel="test:0"))
    assert sync_redis.get(keys.shard_count) == "16", "the count only grows: workers keep covering every shard"


@pytest.mark.parametrize("fields, field_named", [
    (dict(chat_type="room"), "chat_type"),
    (dict(trigger="telepathy"), "trigger"),
    (dict(text="x" * 101), "text"),
    (dict(bot="b2"), "bot"),
    (dict(channel=""), "channel"),
    (dict(author_id=""), "author_id"),
])
async def test_submit_rejects_bad_requests_and_writes_nothing(clients, redis_url, sync_redis, make_request,
                                                              fields, field_named):
    client = await clients(redis_url, start=False, max_text_chars=100)
    with pytest.raises(BadMessage, match=field_named):
        await client.submit(make_request(**fields))
    assert sync_redis.keys("*") == []


async def test_submit_accepts_text_exactly_at_the_limit(clients, redis_url, sync_redis, keys, make_request):
    client = await clients(redis_url, start=False, max_text_chars=100)
    await client.submit(make_request("x" * 100))
    assert sync_redis.xlen(keys.requests) == 1


# -- end to end with a worker --------------------------------------------------------------------

async def test_end_to_end_every_reply_once_and_in_channel_order(clients, redis_url, sync_redis, keys,
                                                                make_worker, make_request):
    client = await clients(redis_url)
    channels = ["test:a", "test:b", "test:c"]
    sent: dict[str, list[str]] = {c: [] for c in channels}
    texts: dict[str, str] = {}
    rng = random.Random(7)
    for i in range(24):
        channel = rng.choice(channels)
        request = make_request(f"{channel}-{i}", channel=channel)
        sent[channel].append(await client.submit(request))
        texts[request.id] = request.text
    worker = make_worker(redis_url, EchoEngine(delay_ms=2), concurrency=8)
    worker_task = asyncio.create_task(worker.run())
    post = Recorder()
    try:
        async with delivering(client, post):
            await eventually(lambda: client.posted == 24, what="24 posts")
            await eventually(lambda: pending(sync_redis, keys) == 0, what="acks")
    finally:
        worker.stop()
        await asyncio.wait_for(worker_task, 10)
    assert sorted(post.ids) == sorted(i for ids in sent.values() for i in ids), "each reply exactly once"
    assert post.by_channel() == sent, "each channel in submit order"
    assert all(r.parts == (f"echo: {texts[r.request_id]}",) and r.status == "ok" for r in post.posted)
    assert (client.posted, client.finished, client.duplicates) == (24, 24, 0)
    assert_all_consumed(sync_redis, keys)
    assert all(sync_redis.llen(keys.channel_order("b1", c)) == 0 for c in channels)


async def test_end_to_end_engine_error_goes_to_on_failed_and_the_channel_goes_on(
        clients, redis_url, sync_redis, keys, make_worker, make_request):
    class Flaky(EchoEngine):
        async def generate(self, request):
            if request.text == "boom":
                raise RuntimeError("engine exploded")
            return await super().generate(request)

    client = await clients(redis_url)
    ids = [await client.submit(make_request(text)) for text in ("one", "boom", "three")]
    await make_worker(redis_url, Flaky()).run(burst=True)
    post, failed = Recorder(), Recorder()
    async with delivering(client, post, on_failed=failed):
        await eventually(lambda: client.finished == 3, what="3 replies handled")
    assert post.ids == [ids[0], ids[2]]
    assert failed.ids == [ids[1]] and failed.posted[0].status == "error"
    assert_all_consumed(sync_redis, keys)


# -- at most once ----------------------------------------------------------------------------------

async def test_a_reply_written_twice_is_posted_once(clients, redis_url, aredis, sync_redis, keys, make_request):
    client = await clients(redis_url)
    request = make_request("hi")
    await client.submit(request)
    # A slow worker's request was reclaimed by another, and both answered it.
    await aredis.xadd(keys.replies("b1"), answer(request, worker="slow"))
    await aredis.xadd(keys.replies("b1"), answer(request, worker="thief"))
    post = Recorder()
    async with delivering(client, post):
        await eventually(lambda: client.duplicates == 1, what="the duplicate")
        await eventually(lambda: pending(sync_redis, keys) == 0, what="acks")
    assert post.ids == [request.id]
    assert (client.posted, client.finished) == (1, 1)
    assert_all_consumed(sync_redis, keys)


async def test_a_duplicate_arriving_after_the_post_is_dropped(clients, redis_url, aredis, sync_redis, keys,
                                                              make_request):
    client = await clients(redis_url)
    request = make_request("hi")
    await client.submit(request)
    post = Recorder()
    async with delivering(client, post):
        await aredis.xadd(keys.replies("b1"), answer(request))
        await eventually(lambda: client.posted == 1, what="the first post")
        await aredis.xadd(keys.replies("b1"), answer(request, worker="late"))
        await eventually(lambda: client.duplicates == 1, what="the duplicate")
        await eventually(lambda: pending(sync_redis, keys) == 0, what="acks")
    assert post.ids == [request.id]
    assert_all_consumed(sync_redis, keys)


async def test_a_duplicate_of_a_held_reply_is_dropped_and_acked(clients, redis_url, aredis, sync_redis, keys,
                                                                make_request):
    client = await clients(redis_url)
    first, second = make_request("1"), make_request("2")
    await client.submit(first)
    await client.submit(second)
    post = Recorder()
    async with delivering(client, post):
        # Two answers to the second request arrive while it waits for the first one's.
        await aredis.xadd(keys.replies("b1"), answer(second, worker="slow"))
        await aredis.xadd(keys.replies("b1"), answer(second, worker="thief"))
        await eventually(lambda: client.duplicates == 1, what="the duplicate")
        assert post.ids == []
        await aredis.xadd(keys.replies("b1"), answer(first))
        await eventually(lambda: client.posted == 2, what="both posts")
        await eventually(lambda: pending(sync_redis, keys) == 0, what="acks")
    assert post.ids == [first.id, second.id]
    assert [r.worker for r in post.posted] == ["hand", "slow"], "the first answer is the one posted"
    assert_all_consumed(sync_redis, keys)


# -- ordering --------------------------------------------------------------------------------------

async def test_replies_arriving_out_of_order_are_posted_in_submit_order(clients, redis_url, aredis, sync_redis,
                                                                        keys, make_request):
    client = await clients(redis_url, order_wait_s=30)
    r1, r2, r3 = (make_request(f"m{i}") for i in (1, 2, 3))
    other = make_request("elsewhere", channel="test:other")
    for request in (r1, r2, r3, other):
        await client.submit(request)
    post = Recorder()
    async with delivering(client, post):
        for request in (r3, r2, other):
            await aredis.xadd(keys.replies("b1"), answer(request))
        # "other" was written last, so r3 and r2 were read before it was posted.
        await eventually(lambda: post.ids == [other.id], what="the other channel's reply")
        assert pending(sync_redis, keys) == 2, "r2 and r3 are held, unacked"
        await aredis.xadd(keys.replies("b1"), answer(r1))
        await eventually(lambda: client.posted == 4, what="all posts")
        await eventually(lambda: pending(sync_redis, keys) == 0, what="acks")
    assert post.by_channel()["test:c1"] == [r1.id, r2.id, r3.id]
    assert_all_consumed(sync_redis, keys)


@pytest.mark.parametrize("arrival", ["in order", "reversed"])
async def test_a_missing_reply_is_skipped_after_order_wait(clients, redis_url, aredis, sync_redis, keys,
                                                           make_request, arrival):
    wait_s = 0.3
    client = await clients(redis_url, order_wait_s=wait_s)
    r1, r2, r3 = (make_request(f"m{i}") for i in (1, 2, 3))
    for request in (r1, r2, r3):
        await client.submit(request)
    post = Recorder()
    order = keys.channel_order("b1", "test:c1")
    async with delivering(client, post):
        started = time.monotonic()
        for request in ((r2, r3) if arrival == "in order" else (r3, r2)):
            await aredis.xadd(keys.replies("b1"), answer(request))
        await eventually(lambda: client.posted == 2, what="the replies after the missing one")
        waited = time.monotonic() - started
        assert post.ids == [r2.id, r3.id], "the replies that did come keep their order"
        assert waited >= wait_s, "they waited order_wait_s for the missing one"
        assert r1.id not in sync_redis.lrange(order, 0, -1), "the skipped id leaves the order list"
        # The missing answer turns up after all: it is still posted, once, and blocks nothing.
        r4 = make_request("m4")
        await client.submit(r4)
        await aredis.xadd(keys.replies("b1"), answer(r1))
        await aredis.xadd(keys.replies("b1"), answer(r4))
        await eventually(lambda: client.posted == 4, what="the late reply and the next one")
        await eventually(lambda: pending(sync_redis, keys) == 0, what="acks")
    assert post.ids == [r2.id, r3.id, r1.id, r4.id]
    assert sync_redis.llen(order) == 0
    assert_all_consumed(sync_redis, keys)


async def test_a_reply_for_a_request_not_in_the_order_list_waits_for_no_one(
        clients, redis_url, aredis, sync_redis, keys, make_request):
    client = await clients(redis_url, order_wait_s=30)
    unanswered = make_request("still thinking")
    await client.submit(unanswered)
    stranger = make_request("sent by an older bot")  # never submitted by this client
    post = Recorder()
    async with delivering(client, post):
        await aredis.xadd(keys.replies("b1"), answer(stranger))
        await eventually(lambda: client.posted == 1, what="the loose reply")
    assert post.ids == [stranger.id]
    assert sync_redis.lrange(keys.channel_order("b1", "test:c1"), 0, -1) == [unanswered.id]


async def test_malformed_replies_are_dropped_without_stopping_delivery(clients, redis_url, aredis, sync_redis,
                                                                       keys, make_request, caplog):
    client = await clients(redis_url)
    request = make_request("fine")
    await client.submit(request)
    bad = answer(request)
    bad["v"] = "99"
    await aredis.xadd(keys.replies("b1"), {"colour": "red"})
    await aredis.xadd(keys.replies("b1"), bad)
    await aredis.xadd(keys.replies("b1"), answer(request))
    post = Recorder()
    async with delivering(client, post):
        await eventually(lambda: client.posted == 1, what="the good reply")
        await eventually(lambda: pending(sync_redis, keys) == 0, what="acks")
    assert post.ids == [request.id]
    assert "schema version" in caplog.text and "missing field" in caplog.text
    assert_all_consumed(sync_redis, keys)


async def test_a_reply_the_parser_chokes_on_does_not_wedge_delivery(clients, redis_url, aredis, sync_redis, keys,
                                                                     make_request):
    # Reply.from_fields raises a bare ValueError for a non-numeric gen_ms (see test_relay.py); the
    # entry must be dropped like any malformed one, not re-read forever.
    client = await clients(redis_url)
    request = make_request("fine")
    await client.submit(request)
    poison = answer(request)
    poison["gen_ms"] = "fast"
    await aredis.xadd(keys.replies("b1"), poison)
    await aredis.xadd(keys.replies("b1"), answer(request))
    post = Recorder()
    async with delivering(client, post):
        await eventually(lambda: client.posted == 1, what="the good reply")
        await eventually(lambda: pending(sync_redis, keys) == 0, what="acks")
    assert post.ids == [request.id]
    assert_all_consumed(sync_redis, keys)


async def test_a_lost_reply_group_is_made_again_without_a_second_heartbeat(clients, redis_url, aredis, sync_redis,
                                                                            keys, make_request):
    client = await clients(redis_url)
    r1, r2 = make_request("1"), make_request("2")
    await client.submit(r1)
    await client.submit(r2)
    post = Recorder()
    heartbeat_task = f"heartbeat:{keys.heartbeat('bot', 'b1')}"
    async with delivering(client, post):
        await aredis.xadd(keys.replies("b1"), answer(r1))
        await eventually(lambda: client.posted == 1, what="the first post")
        await aredis.delete(keys.replies("b1"))  # as a Redis that came back without its data
        await eventually(lambda: sync_redis.exists(keys.replies("b1")), what="the group made again")
        await aredis.xadd(keys.replies("b1"), answer(r2))
        await eventually(lambda: client.posted == 2, what="the post after the loss")
        assert [t.get_name() for t in asyncio.all_tasks()].count(heartbeat_task) == 1
    assert post.ids == [r1.id, r2.id]


class FlakyDelete:
    """The client's real Redis connection, but the next ``delete`` fails as if Redis just went away."""

    def __init__(self, redis):
        self._redis = redis
        self.fail_deletes = 0

    def __getattr__(self, name):
        return getattr(self._redis, name)

    async def delete(self, *names):
        import redis.exceptions

        if self.fail_deletes:
            self.fail_deletes -= 1
            raise redis.exceptions.ConnectionError("injected: connection lost")
        return await self._redis.delete(*names)


async def test_a_failed_post_is_retried_even_if_its_guard_could_not_be_released(
        clients, redis_url, aredis, sync_redis, keys, make_request):
    client = await clients(redis_url, retry_base_s=0.01)
    flaky = FlakyDelete(client.redis)
    flaky.fail_deletes = 1
    client.redis = flaky
    request = make_request("1")
    await client.submit(request)
    await aredis.xadd(keys.replies("b1"), answer(request))
    post = Recorder(fail={request.id: 1})
    async with delivering(client, post):
        await eventually(lambda: client.finished == 1, what="the reply handled")
    client.redis = flaky._redis
    assert post.ids == [request.id], "the retry posts it: the guard left behind is this client's own"
    assert client.duplicates == 0
    assert_all_consumed(sync_redis, keys)


# -- failures ------------------------------------------------------------------------------------

async def test_a_failed_post_is_retried_and_holds_back_only_its_channel(clients, redis_url, aredis, sync_redis,
                                                                        keys, make_request):
    client = await clients(redis_url, retry_base_s=0.05)
    r1, r2 = make_request("1"), make_request("2")
    other = make_request("x", channel="test:other")
    for request in (r1, r2, other):
        await client.submit(request)
        await aredis.xadd(keys.replies("b1"), answer(request))
    post = Recorder(fail={r1.id: 1})
    async with delivering(client, post):
        await eventually(lambda: client.posted == 3, what="all posts")
        await eventually(lambda: pending(sync_redis, keys) == 0, what="acks")
    assert post.calls.count(r1.id) == 2, "one failure, one retry"
    assert post.ids == [other.id, r1.id, r2.id], "r2 waited for r1's retry; the other channel did not"
    assert (client.posted, client.finished, client.duplicates) == (3, 3, 0)
    assert sync_redis.exists(keys.posted("b1", r1.id)), "the successful retry is guarded"
    assert_all_consumed(sync_redis, keys)


async def test_a_post_that_keeps_failing_is_given_up_and_the_channel_goes_on(
        clients, redis_url, aredis, sync_redis, keys, make_request):
    client = await clients(redis_url, retry_base_s=0.005)
    r1, r2 = make_request("1"), make_request("2")
    for request in (r1, r2):
        await client.submit(request)
        await aredis.xadd(keys.replies("b1"), answer(request))
    post = Recorder(fail={r1.id: 1000})
    async with delivering(client, post):
        await eventually(lambda: client.finished == 2, what="both handled")
        await eventually(lambda: pending(sync_redis, keys) == 0, what="acks")
    assert post.calls.count(r1.id) == 5, "five attempts, then give up"
    assert post.ids == [r2.id]
    assert_all_consumed(sync_redis, keys)


async def test_rejected_and_error_replies_go_to_on_failed_and_do_not_block(
        clients, redis_url, aredis, sync_redis, keys, make_request):
    client = await clients(redis_url, order_wait_s=30)
    r1, r2, r3 = (make_request(f"m{i}") for i in (1, 2, 3))
    for request in (r1, r2, r3):
        await client.submit(request)
    post, failed = Recorder(), Recorder()
    async with delivering(client, post, on_failed=failed):
        await aredis.xadd(keys.replies("b1"), answer(r3))
        await aredis.xadd(keys.replies("b1"), answer(r2, status="error", reason="the engine failed"))
        await aredis.xadd(keys.replies("b1"), answer(r1, status="rejected", reason="schema version '0'"))
        await eventually(lambda: client.finished == 3, what="all handled")
        await eventually(lambda: pending(sync_redis, keys) == 0, what="acks")
    assert post.ids == [r3.id]
    assert failed.ids == [r1.id, r2.id], "failures are reported in channel order too"
    assert [r.status for r in failed.posted] == ["rejected", "error"]
    assert (client.posted, client.finished, client.duplicates) == (1, 3, 0)
    assert_all_consumed(sync_redis, keys)


async def test_an_on_failed_that_raises_does_not_stall_the_channel(clients, redis_url, aredis, sync_redis,
                                                                   keys, make_request):
    client = await clients(redis_url)
    r1, r2 = make_request("1"), make_request("2")
    for request in (r1, r2):
        await client.submit(request)
    calls = []

    async def on_failed(reply):
        calls.append(reply.request_id)
        raise RuntimeError("owner notification failed")

    await aredis.xadd(keys.replies("b1"), answer(r1, status="error", reason="nope"))
    await aredis.xadd(keys.replies("b1"), answer(r2))
    post = Recorder()
    async with delivering(client, post, on_failed=on_failed):
        await eventually(lambda: client.posted == 1, what="the next reply")
        await eventually(lambda: pending(sync_redis, keys) == 0, what="acks")
    assert calls == [r1.id] and post.ids == [r2.id]
    assert client.duplicates == 0
    assert_all_consumed(sync_redis, keys)


# -- bot restart ---------------------------------------------------------------------------------

async def test_a_restarted_bot_posts_what_the_crashed_one_had_not(clients, redis_url, sync_redis, keys,
                                                                  make_worker, make_request):
    first = await clients(redis_url)
    ids = [await first.submit(make_request(f"m{i}")) for i in range(4)]
    await make_worker(redis_url).run(burst=True)
    # The platform accepts m1, then the process dies before acking it; m2 and m3 were read, not posted.
    before = Recorder(crash_after=ids[1])
    with pytest.raises(Crash):  # awaited directly: a BaseException must not cross a Task boundary
        await first.deliver(before)
    assert before.ids == ids[:2]
    assert pending(sync_redis, keys) == 3
    await first.shutdown()

    second = await clients(redis_url)
    after = Recorder()
    async with delivering(second, after):
        await eventually(lambda: second.finished == 2 and second.duplicates == 1, what="redelivery")
        await eventually(lambda: pending(sync_redis, keys) == 0, what="acks")
    assert after.ids == ids[2:], "m1 is not posted again; m2 and m3 are posted"
    assert_all_consumed(sync_redis, keys)


async def test_a_restarted_bot_posts_held_replies_and_then_reads_new_ones(clients, redis_url, aredis, sync_redis,
                                                                          keys, make_request):
    first = await clients(redis_url, order_wait_s=30)
    r1, r2, r3 = (make_request(f"m{i}") for i in (1, 2, 3))
    for request in (r1, r2, r3):
        await first.submit(request)
    post_first = Recorder()
    async with delivering(first, post_first):
        await aredis.xadd(keys.replies("b1"), answer(r2))
        await aredis.xadd(keys.replies("b1"), answer(r3))
        await eventually(lambda: pending(sync_redis, keys) == 2, what="r2 and r3 read and held")
    await first.shutdown()  # stopped while r2 and r3 wait for r1
    assert post_first.ids == []

    second = await clients(redis_url, order_wait_s=30)
    post = Recorder()
    async with delivering(second, post):
        await aredis.xadd(keys.replies("b1"), answer(r1))  # a new reply, after the restart
        await eventually(lambda: second.posted == 3, what="all three posts")
        await eventually(lambda: pending(sync_redis, keys) == 0, what="acks")
    assert post.ids == [r1.id, r2.id, r3.id]
    assert_all_consumed(sync_redis, keys)


# -- Redis restart -------------------------------------------------------------------------------

async def test_delivery_goes_on_across_a_redis_restart_with_a_reply_held(make_redis_server, clients, keys,
                                                                         make_request):
    server = make_redis_server()
    client = await clients(server.url, order_wait_s=30)
    r1, r2 = make_request("1"), make_request("2")
    await client.submit(r1)
    await client.submit(r2)
    probe = async_client(server.url)
    post = Recorder()
    try:
        async with delivering(client, post):
            await probe.xadd(keys.replies("b1"), answer(r2))
            await eventually(held_is(probe, keys, 1), what="r2 held")
            server.stop()
            await asyncio.sleep(0.3)  # the client sees connection errors and backs off
            server.start()
            await probe.xadd(keys.replies("b1"), answer(r1))  # written after the restart
            await eventually(lambda: client.posted == 2, what="both posts")
            await eventually(async_pending_is(probe, keys, 0), what="acks")
        assert post.ids == [r1.id, r2.id]
        assert await probe.xlen(keys.replies("b1")) == 0
    finally:
        await probe.aclose()


async def test_requests_accepted_before_a_redis_restart_are_answered_after_it(
        make_redis_server, clients, keys, make_worker, make_request):
    server = make_redis_server()
    client = await clients(server.url)
    post = Recorder()
    probe = async_client(server.url)
    try:
        async with delivering(client, post):
            before = await client.submit(make_request("before", channel="test:a"))
            await make_worker(server.url).run(burst=True)
            await eventually(lambda: client.posted == 1, what="the first post")
            queued = [await client.submit(make_request(f"q{i}", channel=f"test:{'ab'[i % 2]}")) for i in range(4)]
            server.stop()  # nothing has answered the queued requests yet
            await asyncio.sleep(0.3)
            server.start()
            assert await probe.xlen(keys.requests) == 4, "accepted requests survive the restart"
            worker = make_worker(server.url, name="w2")
            assert await worker.run(burst=True) == 4
            await eventually(lambda: client.posted == 5, what="the queued requests' posts")
            await eventually(async_pending_is(probe, keys, 0), what="acks")
        assert post.ids[0] == before
        assert sorted(post.ids[1:]) == sorted(queued)
        assert post.by_channel() == {"test:a": [before, queued[0], queued[2]], "test:b": [queued[1], queued[3]]}
        assert client.duplicates == 0
    finally:
        await probe.aclose()


# -- one read, many replies ------------------------------------------------------------------------

async def test_a_failed_post_in_the_middle_of_a_read_holds_back_only_what_follows_it(
        clients, redis_url, aredis, sync_redis, keys, make_request):
    client = await clients(redis_url, retry_base_s=0.2)
    r1, r2, r3 = (make_request(f"m{i}") for i in (1, 2, 3))
    other = make_request("x", channel="test:other")
    for request in (r1, r2, r3, other):
        await client.submit(request)
    for request in (r1, r2, r3, other):  # all there before delivery starts: one read takes them all
        await aredis.xadd(keys.replies("b1"), answer(request))
    post = Recorder(fail={r2.id: 1})
    async with delivering(client, post):
        await eventually(lambda: pending(sync_redis, keys) == 2, what="r2 and r3 waiting, unacked")
        assert post.ids == [r1.id, other.id]
        assert not sync_redis.exists(keys.posted("b1", r3.id)), "r3 was not posted: its guard is not kept"
        await eventually(lambda: client.posted == 4, what="the retry and what waited for it")
        await eventually(lambda: pending(sync_redis, keys) == 0, what="acks")
    assert post.ids == [r1.id, other.id, r2.id, r3.id]
    assert post.calls.count(r3.id) == 1
    assert (client.posted, client.finished, client.duplicates) == (4, 4, 0)
    assert_all_consumed(sync_redis, keys)


@pytest.mark.parametrize("late_first", [True, False])
async def test_a_late_reply_and_the_next_one_read_together_go_out_as_they_arrived(
        clients, redis_url, aredis, sync_redis, keys, make_request, late_first):
    client = await clients(redis_url)
    late, following = make_request("late"), make_request("next")
    await client.submit(following)  # ``late`` was skipped already: it is no longer in the order list
    arrivals = (late, following) if late_first else (following, late)
    for request in arrivals:
        await aredis.xadd(keys.replies("b1"), answer(request))
    post = Recorder()
    async with delivering(client, post):
        await eventually(lambda: client.posted == 2, what="both posts")
        await eventually(lambda: pending(sync_redis, keys) == 0, what="acks")
    assert post.ids == [r.id for r in arrivals]
    assert_all_consumed(sync_redis, keys)


async def test_a_crash_mid_read_leaves_the_unposted_replies_to_the_next_bot(clients, redis_url, aredis, sync_redis,
                                                                            keys, make_request):
    first = await clients(redis_url)
    sent = [make_request(f"m{i}", channel=f"test:{i % 2}") for i in range(6)]
    for request in sent:
        await first.submit(request)
        await aredis.xadd(keys.replies("b1"), answer(request))
    before = Recorder(crash_after=sent[2].id)
    with pytest.raises(Crash):
        await first.deliver(before)
    posted_before = before.ids
    assert posted_before[-1] == sent[2].id
    await first.shutdown()

    second = await clients(redis_url)
    after = Recorder()
    async with delivering(second, after):
        await eventually(lambda: second.finished + second.duplicates == 6 - len(posted_before) + 1, what="the rest")
        await eventually(lambda: pending(sync_redis, keys) == 0, what="acks")
    assert second.duplicates == 1, "only the post in progress at the crash counts as posted"
    assert sorted(posted_before + after.ids) == sorted(r.id for r in sent), "every reply posted once"
    assert_all_consumed(sync_redis, keys)


async def test_scripts_lost_by_redis_are_loaded_again(clients, redis_url, aredis, sync_redis, keys, make_request):
    client = await clients(redis_url)
    r1, r2 = make_request("1"), make_request("2")
    post = Recorder()
    async with delivering(client, post):
        await client.submit(r1)
        await aredis.xadd(keys.replies("b1"), answer(r1))
        await eventually(lambda: client.posted == 1, what="the first post")
        await aredis.script_flush()  # as a restarted Redis: no scripts cached
        await client.submit(r2)
        await aredis.xadd(keys.replies("b1"), answer(r2))
        await eventually(lambda: client.posted == 2, what="the post after the flush")
    assert post.ids == [r1.id, r2.id]
    assert_all_consumed(sync_redis, keys)
