"""Scale-out: several worker processes, one bot, many channels; channel affinity through shards.

Three real ``python -m doppel worker run`` processes (echo engine with a small delay, so requests
overlap and the workers really share the load) answer requests that one ``RelayClient`` submits
for 50 channels, interleaved. With shards (``[relay] shards = 8``, the default) each channel's
requests land on one shard stream, each shard is read by the one worker holding its lease, so a
channel is answered by one worker while all live. With one shared stream (``shards = 1``) the
consumer group hands requests to whichever worker asks, and nothing serializes a channel across
processes: the bot's order list must still post its replies in order, each exactly once.

The other tests change the set of workers mid-run: one is killed (SIGKILL, as a crash), and its
shards and pending requests are taken by the survivors once its heartbeat and leases expire; one
joins, and the others hand it its share. Either way nothing is lost or doubled, every channel's
replies are posted in order, and a channel moves to another worker at most once.

A last test checks that adapters reach every worker from the one store: three workers (in this
process, each with its own chat engine and adapter set over a stand-in model) serve the routed
adapter version, and a publish + use switches all three to the new version.

The tests are bounded: each wait has a deadline and the whole file runs in well under a minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.relay_client import RelayClient
from doppel.redis_client import async_client
from doppel.registry import Card, Registry
from doppel.relay import Keys, Reply
from inference.backends.base import LoadedAdapter, Sampling
from inference.chat_engine import ChatEngine, ChatOptions
from inference.shards import plan

ROOT = Path(__file__).resolve().parents[2]
CHANNELS = 50
PER_CHANNEL = 8
BURST = 2  # requests a channel gets back to back
ECHO_DELAY_MS = 15
SHARDS = 8
START_TIMEOUT_S = 20.0
RUN_TIMEOUT_S = 25.0
# A worker whose heartbeat (and leases) are older than this is gone. Long enough that a worker
# stalled for a moment on the 2 shared cores keeps its shards; short enough for a quick takeover.
HEARTBEAT = {"heartbeat_interval_s": 0.25, "heartbeat_ttl_s": 2.0}


class Workers:
    """Worker processes named w0, w1, ... on one Redis and prefix; stopped (SIGTERM, then SIGKILL) on close."""

    def __init__(self, tmp_path: Path, redis_url: str, prefix: str, *, shards: int = SHARDS):
        self.tmp_path, self.redis_url, self.prefix, self.shards = tmp_path, redis_url, prefix, shards
        self.processes: dict[str, subprocess.Popen] = {}
        self._logs = []

    def start(self, name: str) -> None:
        config = self.tmp_path / f"{name}.toml"
        config.write_text(
            f'data_dir = "{self.tmp_path / "data"}"\n'
            f'[redis]\nurl = "{self.redis_url}"\nprefix = "{self.prefix}"\n'
            f"[relay]\nshards = {self.shards}\n"
            + "".join(f"{key} = {value}\n" for key, value in HEARTBEAT.items())
            + f'[worker]\nname = "{name}"\nengine = "echo"\necho_delay_ms = {ECHO_DELAY_MS}\n'
            "concurrency = 8\nread_block_ms = 100\nreclaim_interval_s = 0.2\nreclaim_idle_s = 5.0\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOPPEL_")}
        env["PYTHONPATH"] = str(ROOT)
        log = (self.tmp_path / f"{name}.log").open("wb")
        self._logs.append(log)
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", "doppel", "--config", str(config), "worker", "run", "--engine", "echo"],
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)

    def close(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        for log in self._logs:
            log.close()

    def log(self, name: str) -> str:
        with contextlib.suppress(OSError):
            return (self.tmp_path / f"{name}.log").read_text(errors="replace")
        return "(no log)"

    async def wait_for_heartbeats(self, aredis, names) -> None:
        keys = Keys(self.prefix)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            self._check_running()
            if all([await aredis.exists(keys.heartbeat("worker", name)) for name in names]):
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"workers {names} did not all start within {START_TIMEOUT_S:.0f}s")

    async def wait_for_shares(self, aredis, names) -> dict[str, list[int]]:
        """Until ``names`` hold every shard, as many each as the plan says, in two looks a round apart."""
        keys = Keys(self.prefix)
        deadline = time.monotonic() + START_TIMEOUT_S
        before = None
        while time.monotonic() < deadline:
            self._check_running()
            holders = await aredis.mget([keys.shard_lease(k) for k in range(self.shards)])
            owned = {name: [k for k, holder in enumerate(holders) if holder == name] for name in names}
            counts = {name: len(shards) for name, shards in owned.items()}
            balanced = sum(counts.values()) == self.shards and counts == plan(self.shards, counts)
            if balanced and owned == before:
                return owned
            before = owned if balanced else None
            await asyncio.sleep(HEARTBEAT["heartbeat_interval_s"] * 2)
        raise AssertionError(f"the shards were not shared out among {names} within {START_TIMEOUT_S:.0f}s")

    def _check_running(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None and process.returncode != -signal.SIGKILL:
                raise AssertionError(f"worker {name} exited with {process.returncode}:\n{self.log(name)[-2000:]}")


@contextlib.contextmanager
def worker_processes(tmp_path: Path, redis_url: str, prefix: str, count: int, *, shards: int = SHARDS):
    workers = Workers(tmp_path, redis_url, prefix, shards=shards)
    try:
        for index in range(count):
            workers.start(f"w{index}")
        yield workers
    finally:
        workers.close()


async def _submit_interleaved(client, make_request, bot: str, seed: int, more: Callable[[int], bool] | None = None,
                              pause_s: float = 0.01) -> dict[str, list[str]]:
    """Rounds over CHANNELS channels in a shuffled order, BURST requests back to back per channel in
    each round (so one channel's requests are often in flight together), up to ``pause_s`` apart:
    PER_CHANNEL // BURST rounds, or while ``more(round)``.

    Several submitter tasks run at once (each owns a fixed set of channels, so each channel's
    submit order is well defined), as a bot does when many chats are active.
    """
    rng = random.Random(seed)
    channels = [f"test:c{index:02d}" for index in range(CHANNELS)]
    submitted: dict[str, list[str]] = defaultdict(list)
    more = more or (lambda round_: round_ < PER_CHANNEL // BURST)

    async def submitter(mine: list[str]) -> None:
        round_ = 0
        while more(round_):
            order = mine[:]
            rng.shuffle(order)
            for channel in order:
                for _ in range(BURST):  # people send several lines in a row
                    request = make_request(f"{channel} #{len(submitted[channel])}", channel=channel, bot=bot)
                    submitted[channel].append(await client.submit(request))
            round_ += 1
            await asyncio.sleep(rng.uniform(0, pause_s))

    await asyncio.gather(*(submitter(channels[i::5]) for i in range(5)))
    return submitted


async def _run_load(client, make_request, bot: str, *, seed: int, on_progress=None, more=None, pause_s=0.01):
    """Submit the load, deliver until every request is answered (or the deadline); return what was posted."""
    posted: list[Reply] = []
    failed: list[Reply] = []

    async def post(reply: Reply) -> None:
        posted.append(reply)
        if on_progress is not None:
            await on_progress(len(posted))

    async def on_failed(reply: Reply) -> None:
        failed.append(reply)

    task = asyncio.create_task(client.deliver(post, on_failed=on_failed))
    try:
        submitted = await _submit_interleaved(client, make_request, bot, seed, more, pause_s)
        total = sum(map(len, submitted.values()))
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while len(posted) + len(failed) < total and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    finally:
        client.stop()
        await asyncio.wait_for(task, 10)
    return submitted, posted, failed


def _client(redis_url: str, keys: Keys, shards: int = SHARDS) -> RelayClient:
    # order_wait_s well past the run: a reply posted early because its predecessor "timed out"
    # would hide an ordering bug instead of failing the test.
    return RelayClient(async_client(redis_url), keys, "b1", order_wait_s=60.0, heartbeat_interval_s=0.2,
                       heartbeat_ttl_s=1.0, read_block_ms=50, shards=shards)


def _assert_once_and_in_order(submitted: dict[str, list[str]], posted: list[Reply], failed: list[Reply]) -> None:
    assert not failed, f"{len(failed)} request(s) failed, e.g. {failed[0]}"
    ids = [reply.request_id for reply in posted]
    assert len(ids) == len(set(ids)), "a reply was posted twice"
    expected = {request_id for ids_ in submitted.values() for request_id in ids_}
    missing = expected - set(ids)
    assert not missing, f"{len(missing)} of {len(expected)} requests got no reply"
    by_channel: dict[str, list[str]] = defaultdict(list)
    for reply in posted:
        by_channel[reply.channel].append(reply.request_id)
    for channel, ids_ in submitted.items():
        assert by_channel[channel] == ids_, f"replies of {channel} were posted out of order"
    for reply in posted:
        channel, _, round_ = reply.parts[0].removeprefix("echo: ").partition(" #")
        assert channel == reply.channel and submitted[channel][int(round_)] == reply.request_id


def _workers_by_channel(posted: list[Reply]) -> dict[str, list[str]]:
    """Per channel, the workers that answered it, in posting order, runs collapsed: [w0] or [w1, w2]."""
    runs: dict[str, list[str]] = defaultdict(list)
    for reply in posted:
        if not runs[reply.channel] or runs[reply.channel][-1] != reply.worker:
            runs[reply.channel].append(reply.worker)
    return runs


@pytest.mark.timeout(60)
@pytest.mark.parametrize("shards", [SHARDS, 1])
async def test_three_workers_answer_fifty_channels_once_each_and_in_order(tmp_path, redis_url, make_request, aredis,
                                                                          sync_redis, shards):
    prefix = f"scale{shards}"
    keys = Keys(prefix)
    names = ["w0", "w1", "w2"]
    client = _client(redis_url, keys, shards)
    with worker_processes(tmp_path, redis_url, prefix, 3, shards=shards) as workers:
        await workers.wait_for_heartbeats(aredis, names)
        owned = await workers.wait_for_shares(aredis, names) if shards > 1 else {}
        await client.startup()
        try:
            started = time.monotonic()
            submitted, posted, failed = await _run_load(client, make_request, "b1", seed=1)
            elapsed = time.monotonic() - started
        finally:
            await client.shutdown()
            await client.redis.aclose()
    _assert_once_and_in_order(submitted, posted, failed)
    share = {name: sum(reply.worker == name for reply in posted) for name in names}
    # Each worker took a real part of the load: no one hogs it.
    assert all(count >= len(posted) // 10 for count in share.values()), share
    assert client.duplicates == 0
    assert all(sync_redis.xlen(stream) == 0 for stream in keys.request_streams(shards)), "all acked and deleted"
    assert elapsed < RUN_TIMEOUT_S
    if shards > 1:
        runs = _workers_by_channel(posted)
        moved = {channel: workers_ for channel, workers_ in runs.items() if len(workers_) > 1}
        assert not moved, f"channels answered by more than one worker while all lived: {moved}"
        for channel, [worker] in runs.items():
            assert keys.shard_of_stream(keys.request_stream(channel, shards)) in owned[worker]


@pytest.mark.timeout(60)
async def test_a_worker_killed_mid_run_loses_nothing_and_its_channels_move_once(tmp_path, redis_url, make_request,
                                                                                aredis, sync_redis):
    prefix = "scalekill"
    keys = Keys(prefix)
    names = ["w0", "w1", "w2"]
    client = _client(redis_url, keys)
    with worker_processes(tmp_path, redis_url, prefix, 3) as workers:
        await workers.wait_for_heartbeats(aredis, names)
        await workers.wait_for_shares(aredis, names)
        killed_at: list[float] = []

        async def kill_one(done: int) -> None:
            # A third of the way in, w1 dies holding requests (SIGKILL: no clean shutdown, no ack).
            if not killed_at and done >= CHANNELS * PER_CHANNEL // 3:
                workers.processes["w1"].kill()
                workers.processes["w1"].wait(5)
                killed_at.append(time.time())

        await client.startup()
        try:
            submitted, posted, failed = await _run_load(client, make_request, "b1", seed=2, on_progress=kill_one)
        finally:
            await client.shutdown()
            await client.redis.aclose()
        owned = await workers.wait_for_shares(aredis, ["w0", "w2"])
        taken = workers.log("w0") + workers.log("w2")
    assert killed_at, "the load finished before the kill"
    _assert_once_and_in_order(submitted, posted, failed)
    # w1's replies are all from before its death; what it held was answered by the others.
    assert all(reply.created_at <= killed_at[0] for reply in posted if reply.worker == "w1")
    assert re.search(r"took .* from stopped worker(\(s\))? w1", taken), "no worker took over w1's requests"
    runs = _workers_by_channel(posted)
    for channel, workers_ in runs.items():
        # A survivor's channel stays; one of w1's moves once, to the survivor now holding its shard.
        shard = keys.shard_of_stream(keys.request_stream(channel, SHARDS))
        now = next(name for name, shards in owned.items() if shard in shards)
        assert workers_ in ([now], ["w1", now]), f"{channel}: answered by {workers_}, its shard is now {now}'s"
    assert any(len(workers_) == 2 for workers_ in runs.values()), "w1 answered none of its channels before it died"
    assert all(sync_redis.xlen(stream) == 0 for stream in keys.request_streams(SHARDS))


@pytest.mark.timeout(60)
async def test_a_worker_joining_takes_its_share_and_channels_move_once(tmp_path, redis_url, make_request,
                                                                       aredis, sync_redis):
    prefix = "scalejoin"
    keys = Keys(prefix)
    client = _client(redis_url, keys)
    with worker_processes(tmp_path, redis_url, prefix, 2) as workers:
        await workers.wait_for_heartbeats(aredis, ["w0", "w1"])
        before = await workers.wait_for_shares(aredis, ["w0", "w1"])
        joined = asyncio.Event()
        after: dict[str, list[int]] = {}

        async def join() -> None:
            await asyncio.sleep(0.3)  # under load: requests in flight on every shard
            workers.start("w2")
            after.update(await workers.wait_for_shares(aredis, ["w0", "w1", "w2"]))
            joined.set()

        joining = asyncio.create_task(join())
        await client.startup()
        try:
            # Rounds about 0.1 s apart go on until the newcomer has its share, then two more.
            rounds_after: list[int] = []
            give_up = time.monotonic() + START_TIMEOUT_S

            def more(round_: int) -> bool:
                if joined.is_set() and not rounds_after:
                    rounds_after.append(round_)
                return time.monotonic() < give_up and (not rounds_after or round_ < rounds_after[0] + 2)

            submitted, posted, failed = await _run_load(client, make_request, "b1", seed=3, more=more, pause_s=0.2)
        finally:
            await client.shutdown()
            await client.redis.aclose()
            await asyncio.wait_for(joining, START_TIMEOUT_S)
    _assert_once_and_in_order(submitted, posted, failed)
    assert sum(len(after[name]) for name in ("w0", "w1")) == SHARDS - len(after["w2"]) and len(after["w2"]) >= 2
    assert all(set(after[name]) <= set(before[name]) for name in ("w0", "w1")), "only what w2 needed moved"
    runs = _workers_by_channel(posted)
    for channel, workers_ in runs.items():
        shard = keys.shard_of_stream(keys.request_stream(channel, SHARDS))
        first = next(name for name, shards in before.items() if shard in shards)
        expected = ([first, "w2"], ["w2"]) if shard in after["w2"] else ([first],)
        assert workers_ in expected, f"{channel} (shard {shard}): answered by {workers_}"
    assert any(workers_[-1] == "w2" for workers_ in runs.values()), "w2 answered nothing"


class StandInModel:
    """A ModelBackend without a model: answers with the adapter it was given, after a short wait."""

    name = "stand-in"
    max_model_len = 4096

    def __init__(self):
        self.added: list[str] = []
        self.removed: list[str] = []

    async def startup(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    async def add_adapter(self, adapter: LoadedAdapter) -> None:
        self.added.append(adapter.key)

    async def remove_adapter(self, adapter: LoadedAdapter) -> None:
        self.removed.append(adapter.key)

    def count_tokens(self, text: str) -> int:
        return len(text.split()) + 1

    def prompt_ids(self, messages: list[dict]) -> list[int]:
        return list(range(sum(self.count_tokens(m["content"]) for m in messages)))

    async def complete(self, request_id: str, messages: list[dict], adapter: LoadedAdapter | None,
                       sampling: Sampling) -> str:
        await asyncio.sleep(0.01)  # requests overlap, so all three workers take part
        return f"served by {adapter.key if adapter else 'base'}"


@pytest.mark.timeout(60)
async def test_a_publish_reaches_all_three_workers(tmp_path, redis_url, sync_redis, keys, make_worker,
                                                   make_client, make_request):
    registry = Registry(tmp_path / "adapters", sync_redis, keys)  # the one store every worker reads
    weights = tmp_path / "trained"
    weights.mkdir()
    (weights / "adapter_config.json").write_text("{}")
    models = [StandInModel() for _ in range(3)]
    workers = [make_worker(redis_url, ChatEngine(async_client(redis_url), keys, model, registry.root, ChatOptions()),
                           name=f"w{index}", concurrency=4)
               for index, model in enumerate(models)]
    client = make_client(redis_url, "b1", order_wait_s=30.0)
    posted: list[Reply] = []

    async def post(reply: Reply) -> None:
        posted.append(reply)

    async def round_of_requests(tag: str, count: int = 60) -> list[Reply]:
        start = len(posted)
        for index in range(count):
            await client.submit(make_request(f"{tag} {index}", channel=f"test:{tag}:{index % 30}"))
        deadline = time.monotonic() + 20
        while len(posted) - start < count and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        return posted[start:]

    runs = [asyncio.create_task(worker.run()) for worker in workers]
    await client.startup()
    delivering = asyncio.create_task(client.deliver(post))
    try:
        registry.publish(weights, Card(name="me", version=0, base_model="stand-in", rank=8))  # routes to v1
        first = await round_of_requests("one")
        registry.publish(weights, Card(name="me", version=0, base_model="stand-in", rank=8))
        registry.use("me")  # the default route moves to v2 for every worker at once
        second = await round_of_requests("two")
    finally:
        client.stop()
        await asyncio.wait_for(delivering, 10)
        await client.shutdown()
        await client.redis.aclose()
        for worker in workers:
            worker.stop()
        await asyncio.wait_for(asyncio.gather(*runs), 20)
        for worker in workers:
            await worker.engine.redis.aclose()
    assert len(first) == len(second) == 60
    assert {reply.parts for reply in first} == {("served by me@v1",)}
    assert {reply.parts for reply in second} == {("served by me@v2",)}
    assert {reply.worker for reply in first} == {reply.worker for reply in second} == {"w0", "w1", "w2"}
    for model in models:
        # Each worker loaded each version from the shared directory once, and let v1 go after the swap.
        assert model.added == ["me@v1", "me@v2"] and model.removed == ["me@v1"]
