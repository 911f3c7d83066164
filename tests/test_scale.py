"""Scale-out: several worker processes on one consumer group, one bot, many channels.

Three real ``python -m doppel worker run`` processes (echo engine with a small delay, so requests
overlap and the workers really share the load) answer requests that one ``RelayClient`` submits
for 50 channels, interleaved. Across processes nothing serializes a channel, so a channel's
replies can be written out of order; the bot's order list must still post them in order, each
exactly once. A second test kills one worker mid-run (SIGKILL, as a crash): its requests are
taken over by the others once its heartbeat expires, and still nothing is lost or doubled.

A third test checks that adapters reach every worker from the one store: three workers (in this
process, each with its own chat engine and adapter set over a stand-in model) serve the routed
adapter version, and a publish + use switches all three to the new version.

The tests are bounded: each wait has a deadline and the whole file runs in well under 40 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from bot.relay_client import RelayClient
from doppel.relay import Keys, Reply
from inference.chat_engine import ChatEngine, ChatOptions
from inference.model_engine import LoadedAdapter, Sampling
from inference.registry import Card, Registry
from inference.serve import async_redis

ROOT = Path(__file__).resolve().parent.parent
CHANNELS = 50
PER_CHANNEL = 8
BURST = 2  # requests a channel gets back to back
ECHO_DELAY_MS = 15
START_TIMEOUT_S = 20.0
RUN_TIMEOUT_S = 25.0


def _config(tmp_path: Path, name: str, redis_url: str, prefix: str) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(
        f'data_dir = "{tmp_path / "data"}"\n'
        f'[redis]\nurl = "{redis_url}"\nprefix = "{prefix}"\n'
        # Fast heartbeats so a killed worker is noticed (and its requests taken) within a second.
        "[relay]\nheartbeat_interval_s = 0.2\nheartbeat_ttl_s = 1.0\n"
        f'[worker]\nname = "{name}"\nengine = "echo"\necho_delay_ms = {ECHO_DELAY_MS}\n'
        "concurrency = 8\nread_block_ms = 100\nreclaim_interval_s = 0.2\nreclaim_idle_s = 5.0\n"
    )
    return path


@contextlib.contextmanager
def worker_processes(tmp_path: Path, redis_url: str, prefix: str, count: int):
    """``count`` worker processes named w0, w1, ...; stopped (SIGTERM, then SIGKILL) on exit."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOPPEL_")}
    env["PYTHONPATH"] = str(ROOT)
    processes: dict[str, subprocess.Popen] = {}
    logs = []
    try:
        for index in range(count):
            name = f"w{index}"
            log = (tmp_path / f"{name}.log").open("wb")
            logs.append(log)
            processes[name] = subprocess.Popen(
                [sys.executable, "-m", "doppel", "--config", str(_config(tmp_path, name, redis_url, prefix)),
                 "worker", "run", "--engine", "echo"],
                cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        yield processes
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes.values():
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        for log in logs:
            log.close()


def _log(tmp_path: Path, name: str) -> str:
    with contextlib.suppress(OSError):
        return (tmp_path / f"{name}.log").read_text(errors="replace")
    return "(no log)"


async def _wait_for_heartbeats(aredis, keys: Keys, names, processes, tmp_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        for name, process in processes.items():
            if process.poll() is not None:
                raise AssertionError(f"worker {name} exited with {process.returncode}:\n{_log(tmp_path, name)[-2000:]}")
        if all([await aredis.exists(keys.heartbeat("worker", name)) for name in names]):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"workers {names} did not all start within {START_TIMEOUT_S:.0f}s")


async def _submit_interleaved(client, make_request, bot: str, seed: int) -> dict[str, list[str]]:
    """PER_CHANNEL requests for each of CHANNELS channels: rounds over the channels in a shuffled
    order, BURST requests back to back per channel in each round (so one channel's requests are
    often in flight on two workers at once).

    Several submitter tasks run at once (each owns a fixed set of channels, so each channel's
    submit order is well defined), as a bot does when many chats are active.
    """
    rng = random.Random(seed)
    channels = [f"test:c{index:02d}" for index in range(CHANNELS)]
    submitted: dict[str, list[str]] = defaultdict(list)

    async def submitter(mine: list[str]) -> None:
        for _ in range(PER_CHANNEL // BURST):
            order = mine[:]
            rng.shuffle(order)
            for channel in order:
                for _ in range(BURST):  # people send several lines in a row
                    request = make_request(f"{channel} #{len(submitted[channel])}", channel=channel, bot=bot)
                    submitted[channel].append(await client.submit(request))
            await asyncio.sleep(rng.uniform(0, 0.01))

    await asyncio.gather(*(submitter(channels[i::5]) for i in range(5)))
    return submitted


async def _run_load(client, make_request, bot: str, *, seed: int, on_progress=None):
    """Submit the load, deliver until every request is answered (or the deadline); return what was posted."""
    posted: list[Reply] = []
    failed: list[Reply] = []
    total = CHANNELS * PER_CHANNEL

    async def post(reply: Reply) -> None:
        posted.append(reply)
        if on_progress is not None:
            await on_progress(len(posted))

    async def on_failed(reply: Reply) -> None:
        failed.append(reply)

    task = asyncio.create_task(client.deliver(post, on_failed=on_failed))
    try:
        submitted = await _submit_interleaved(client, make_request, bot, seed)
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while len(posted) + len(failed) < total and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    finally:
        client.stop()
        await asyncio.wait_for(task, 10)
    return submitted, posted, failed


def _client(redis_url: str, keys: Keys) -> RelayClient:
    # order_wait_s well past the run: a reply posted early because its predecessor "timed out"
    # would hide an ordering bug instead of failing the test.
    return RelayClient(async_redis(redis_url), keys, "b1", order_wait_s=60.0, heartbeat_interval_s=0.2,
                       heartbeat_ttl_s=1.0, read_block_ms=50)


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


@pytest.mark.timeout(60)
async def test_three_workers_answer_fifty_channels_once_each_and_in_order(tmp_path, redis_url,
                                                                          make_request, aredis, sync_redis):
    prefix = "scale"
    keys = Keys(prefix)
    names = ["w0", "w1", "w2"]
    client = _client(redis_url, keys)
    with worker_processes(tmp_path, redis_url, prefix, 3) as processes:
        await _wait_for_heartbeats(aredis, keys, names, processes, tmp_path)
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
    # Each worker took a real part of the load: the consumer group spreads it, no one hogs it.
    assert all(count >= len(posted) // 10 for count in share.values()), share
    assert client.duplicates == 0
    assert sync_redis.xlen(keys.requests) == 0, "every request was acked and deleted"
    assert elapsed < RUN_TIMEOUT_S


@pytest.mark.timeout(60)
async def test_a_worker_killed_mid_run_loses_nothing_and_keeps_order(tmp_path, redis_url,
                                                                     make_request, aredis, sync_redis):
    prefix = "scalekill"
    keys = Keys(prefix)
    names = ["w0", "w1", "w2"]
    client = _client(redis_url, keys)
    with worker_processes(tmp_path, redis_url, prefix, 3) as processes:
        await _wait_for_heartbeats(aredis, keys, names, processes, tmp_path)
        killed_at: list[float] = []

        async def kill_one(done: int) -> None:
            # A third of the way in, w1 dies holding requests (SIGKILL: no clean shutdown, no ack).
            if not killed_at and done >= CHANNELS * PER_CHANNEL // 3:
                processes["w1"].kill()
                processes["w1"].wait(5)
                killed_at.append(time.time())

        await client.startup()
        try:
            submitted, posted, failed = await _run_load(client, make_request, "b1", seed=2, on_progress=kill_one)
        finally:
            await client.shutdown()
            await client.redis.aclose()
    assert killed_at, "the load finished before the kill"
    _assert_once_and_in_order(submitted, posted, failed)
    # w1's replies are all from before its death; what it held was answered by the others.
    assert all(reply.created_at <= killed_at[0] for reply in posted if reply.worker == "w1")
    taken = _log(tmp_path, "w0") + _log(tmp_path, "w2")
    assert "from stopped worker w1" in taken, "no worker took over w1's requests"
    assert sync_redis.xlen(keys.requests) == 0


class StandInModel:
    """A ModelEngine without a model: answers with the adapter it was given, after a short wait."""

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
    workers = [make_worker(redis_url, ChatEngine(async_redis(redis_url), keys, model, registry.root, ChatOptions()),
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
