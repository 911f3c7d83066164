"""Worker processes as deployed: ``doppel worker run`` killed with SIGKILL mid-request."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def start_worker(tmp_path: Path, url: str, name: str, delay_ms: float) -> subprocess.Popen:
    config = tmp_path / f"{name}.toml"
    config.write_text(
        f"[worker]\nname = '{name}'\necho_delay_ms = {delay_ms}\nread_block_ms = 50\nreclaim_interval_s = 0.2\n"
        "[relay]\nheartbeat_interval_s = 0.2\nheartbeat_ttl_s = 1.0\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOPPEL_")}
    env.update(DOPPEL_REDIS_URL=url, DOPPEL_DATA_DIR=str(tmp_path / "data"))
    return subprocess.Popen([sys.executable, "-m", "doppel", "--config", str(config), "worker", "run"],
                            env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def wait_until(condition, timeout_s: float = 15.0) -> None:
    for _ in range(int(timeout_s / 0.05)):
        if await condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def test_sigkilled_worker_request_is_finished_by_another_and_posted_once(
        tmp_path, redis_url, aredis, keys, make_client, make_request):
    client = make_client(redis_url)
    await client.startup()
    posted = []

    async def post(reply):
        posted.append(reply)

    delivery = asyncio.create_task(client.deliver(post))
    victim = start_worker(tmp_path, redis_url, "victim", delay_ms=60_000)
    rescuer = None
    try:
        await wait_until(lambda: aredis.exists(keys.heartbeat("worker", "victim")))
        request_id = await client.submit(make_request("are you there?"))

        async def held_by_victim():
            pending = await aredis.xpending_range(keys.requests, keys.workers_group, min="-", max="+",
                                                  count=10, consumername="victim")
            return len(pending) == 1

        await wait_until(held_by_victim)
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        rescuer = start_worker(tmp_path, redis_url, "rescuer", delay_ms=0)
        await wait_until(lambda: _true(len(posted) == 1), timeout_s=20)
        await asyncio.sleep(1.0)  # room for a duplicate to show up, if there were one
        expected = [(request_id, "rescuer", ("echo: are you there?",))]
        assert [(r.request_id, r.worker, r.parts) for r in posted] == expected
        assert await aredis.xlen(keys.requests) == 0
    finally:
        client.stop()
        await delivery
        await client.shutdown()
        await client.redis.aclose()
        for process in (victim, rescuer):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(20)
    assert rescuer.returncode == 0


async def _true(value: bool) -> bool:
    return value


def test_worker_cli_serves_the_tiny_model_end_to_end(tmp_path, redis_url, sync_redis, keys, make_request, tiny_model):
    """`doppel worker run --engine hf --burst` answers from history + persona with the real model."""
    from doppel.relay import Reply

    sync_redis.xadd(keys.requests, make_request("how was work?", channel="test:dm", chat_type="dm").to_fields())
    config = tmp_path / "doppel.toml"
    config.write_text(f"[model]\nbase = '{tiny_model}'\nmax_model_len = 512\n[sampling]\nmax_tokens = 24\n"
                      "[data]\nowner_name = 'Mia'\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOPPEL_")}
    env.update(DOPPEL_REDIS_URL=redis_url, DOPPEL_DATA_DIR=str(tmp_path / "data"))
    result = subprocess.run([sys.executable, "-m", "doppel", "--config", str(config), "worker", "run",
                             "--engine", "hf", "--burst"], env=env, cwd=ROOT, capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    [(_, fields)] = sync_redis.xrange(keys.replies("b1"))
    reply = Reply.from_fields(fields)
    assert reply.status == "ok" and reply.parts, reply
    history = sync_redis.lrange(keys.history("test:dm"), 0, -1)
    assert len(history) == 1 and '"speaker": "Mia"' in history[0] and '"is_owner": true' in history[0]
