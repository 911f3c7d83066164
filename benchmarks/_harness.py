"""What the benchmark scripts here share: their ``main``, their tables and JSON, the worker processes
and the simulated bot they measure the relay with.

* ``run_benchmark``: the common ``main``: a scratch directory, a Redis (its own ``RedisServer``, or
  the one ``--redis-url`` names), ``asyncio.run`` of the benchmark, then ``emit``: the report
  printed as a table and, with ``--json PATH``, written as JSON (what ``run_all.py`` reads).
  ``argument_parser`` and ``add_output_options`` give the scripts one ``--help`` layout and the
  same ``--redis-url`` and ``--json``.
* ``table``, ``environment``, ``cpu_seconds``: the pieces of a report.
* ``WorkerPool``: real worker processes (``python -m doppel worker run``, echo engine), stopped
  with SIGTERM, then SIGKILL.
* ``SimulatedBot``: a real ``RelayClient`` in the benchmark's loop, as a bot runs it: it submits
  requests and resolves a future per request when its reply is posted. ``ReplyWaiter`` is that
  future bookkeeping alone, for clients that are not a ``RelayClient`` (the relay benchmark's
  bare round trip).

Importing this module puts the repository root first on ``sys.path``, so the scripts import it
before anything of Doppel's. ``run_all.py`` does not run it: it skips names starting with ``_``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The scripts are named like the packages they measure (inference.py beside inference/): with the
# root first, ``import inference`` finds the package, never the script. This folder stays on the
# path, after it, so that a process vLLM spawns can import this module again.
sys.path[:] = [str(ROOT), *(p for p in sys.path if p != str(ROOT))]

from bot.relay_client import RelayClient  # noqa: E402
from doppel.machine import cpu_model  # noqa: E402
from doppel.redis_client import async_client  # noqa: E402
from doppel.redis_server import RedisServer  # noqa: E402
from doppel.relay import Keys, Reply, Request  # noqa: E402

OWN_REDIS = "own server, unix socket, appendfsync everysec"
GIVEN_REDIS = "given by --redis-url"
TEXT = "hey, are we still on for tonight? I can bring the board games"  # a typical chat line


def use_offline_models() -> None:
    """The benchmarks that load a model use the offline copies only: a run never waits on the network."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


# -- main ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BenchRedis:
    """The Redis a benchmark runs on."""

    url: str
    kind: str               # for the report: OWN_REDIS or GIVEN_REDIS
    pid: int | None = None  # the server's process when the benchmark started it (its CPU time is measured)


def argument_parser(doc: str) -> argparse.ArgumentParser:
    """A parser described by the first paragraph of the script's docstring, with defaults in ``--help``."""
    return argparse.ArgumentParser(description=doc.split("\n\n")[0],
                                   formatter_class=argparse.ArgumentDefaultsHelpFormatter)


def add_output_options(parser: argparse.ArgumentParser, *, redis_url: bool = False) -> None:
    """``--redis-url`` (where the benchmark can use a given Redis) and ``--json``, last in ``--help``."""
    if redis_url:
        parser.add_argument("--redis-url", default=None,
                            help="use this Redis instead of starting one (keys go under a fresh prefix, deleted after)")
    parser.add_argument("--json", dest="json_path", default=None, help="also write the figures to this JSON file")


Bench = Callable[[BenchRedis, Path, argparse.Namespace], Awaitable[dict]]


def run_benchmark(args: argparse.Namespace, bench: Bench, format_report: Callable[[dict], str], *,
                  scratch_prefix: str = "doppel-bench-") -> int:
    """A benchmark's ``main``: ``bench(redis, workdir, args)`` on a Redis in a scratch directory, then ``emit``.

    Its own Redis is stopped on the way out, also when SIGINT interrupts the run (``run_all.py``
    stops a benchmark so): ``asyncio.run`` cancels the benchmark, whose ``finally`` blocks stop
    its processes, and the server's context closes after it.
    """
    with tempfile.TemporaryDirectory(prefix=scratch_prefix) as tmp:
        workdir = Path(tmp)
        if getattr(args, "redis_url", None):
            report = asyncio.run(bench(BenchRedis(args.redis_url, GIVEN_REDIS), workdir, args))
        else:
            with RedisServer(workdir / "redis", appendfsync="everysec") as server:
                report = asyncio.run(bench(BenchRedis(server.url, OWN_REDIS, server.process.pid), workdir, args))
    emit(report, format_report, args.json_path)
    return 0


def emit(report: dict, format_report: Callable[[dict], str], json_path: str | Path | None) -> None:
    """Print the report's table; with a path, write the report there too (``run_all.py`` reads it)."""
    print(format_report(report))
    if json_path:
        Path(json_path).write_text(json.dumps(report, indent=2) + "\n")


# -- report pieces ---------------------------------------------------------------------------------

def table(header: tuple, rows: list[tuple]) -> list[str]:
    """Aligned lines: the first column left-justified (labels), the others right-justified (numbers)."""
    widths = [max(len(str(row[i])) for row in (header, *rows)) for i in range(len(header))]

    def line(row: tuple) -> str:
        pairs = enumerate(zip(row, widths, strict=True))
        cells = [str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in pairs]
        return "  ".join(cells).rstrip()

    return [line(header), line(tuple("-" * w for w in widths)), *map(line, rows)]


def environment(**extra) -> dict:
    """The machine a report was measured on, plus what the benchmark adds."""
    return {"cpus": os.cpu_count(), "cpu_model": cpu_model(), "python": platform.python_version(), **extra}


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` so far (Linux /proc), or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


async def server_version(url: str) -> str:
    redis = async_client(url)
    try:
        return (await redis.info("server")).get("redis_version", "?")
    finally:
        await redis.aclose()


async def delete_prefix(url: str, prefix: str) -> None:
    """Delete a run's keys: on a Redis given by ``--redis-url`` nothing of the benchmark stays behind."""
    redis = async_client(url)
    try:
        keys = [key async for key in redis.scan_iter(match=f"{prefix}:*", count=1000)]
        for i in range(0, len(keys), 500):
            await redis.delete(*keys[i:i + 500])
    finally:
        await redis.aclose()


# -- worker processes ------------------------------------------------------------------------------

def stop_processes(processes: Iterable[subprocess.Popen], timeout_s: float = 20.0) -> None:
    """SIGTERM to all at once (each finishes what it holds in flight), SIGKILL to any still running after."""
    processes = list(processes)
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class WorkerPool:
    """Real worker processes (``python -m doppel --config NAME.toml worker run``, echo engine) on ``url``.

    A context manager: the processes start on entry and are stopped on exit. Each gets a config
    of its own in ``workdir`` and none of this process's ``DOPPEL_*`` variables, so only the
    benchmark's settings apply; ``None`` settings keep the config's defaults.
    """

    def __init__(self, url: str, prefix: str, workdir: Path, names: list[str], *, shards: int,
                 concurrency: int | None = None, echo_delay_ms: float | None = None):
        self.url, self.prefix, self.workdir, self.names = url, prefix, workdir, names
        self.shards, self.concurrency, self.echo_delay_ms = shards, concurrency, echo_delay_ms
        self.processes: dict[str, subprocess.Popen] = {}

    def __enter__(self) -> WorkerPool:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOPPEL_")}
        env.update({"DOPPEL_REDIS_URL": self.url, "PYTHONPATH": str(ROOT)})
        for name in self.names:
            worker = [f'name = "{name}"', 'engine = "echo"']
            if self.echo_delay_ms is not None:
                worker.append(f"echo_delay_ms = {self.echo_delay_ms}")
            if self.concurrency is not None:
                worker.append(f"concurrency = {self.concurrency}")
            config = self.workdir / f"{name}.toml"
            lines = [f'data_dir = "{self.workdir / "data"}"', "[redis]", f'prefix = "{self.prefix}"',
                     "[relay]", f"shards = {self.shards}", "[worker]", *worker]
            config.write_text("\n".join(lines) + "\n")
            with self.log_path(name).open("wb") as log:
                self.processes[name] = subprocess.Popen(
                    [sys.executable, "-m", "doppel", "--config", str(config), "worker", "run"],
                    cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)

    async def wait_ready(self, timeout_s: float) -> None:
        """Until every worker's heartbeat exists: a worker beats after joining the group, before its first read."""
        keys = Keys(self.prefix)
        redis = async_client(self.url)
        try:
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                for name, process in self.processes.items():
                    if process.poll() is not None:
                        raise RuntimeError(f"worker {name} exited with {process.returncode}:\n{self.log_tail(name)}")
                if all([await redis.exists(keys.heartbeat("worker", name)) for name in self.names]):
                    return
                await asyncio.sleep(0.05)
        finally:
            await redis.aclose()
        tails = "\n".join(f"{name}:\n{self.log_tail(name)}" for name in self.names)
        raise RuntimeError(f"{len(self.names)} worker(s) did not start within {timeout_s:.0f}s:\n{tails}")

    def stop(self) -> None:
        stop_processes(self.processes.values())

    def log_path(self, name: str) -> Path:
        return self.workdir / f"{name}.log"

    def log_tail(self, name: str, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path(name).read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


# -- the simulated bot -----------------------------------------------------------------------------

def chat_request(bot: str, channel: str) -> Request:
    """A group-chat mention with a typical line: what a bot submits for each message it answers."""
    return Request(platform="bench", bot=bot, channel=channel, chat_type="group", author_id="u1",
                   author_name="Ann", text=TEXT, trigger="mention", sent_at=time.time())


class ReplyWaiter:
    """A client's requests in flight: a future per request id, resolved with the ``perf_counter`` time
    its reply arrived. Subclasses say how a request is sent (``_submit``, of what ``_encode`` made)."""

    def __init__(self, name: str):
        self.name = name
        self.waiting: dict[str, asyncio.Future] = {}

    def _encode(self, request: Request):
        """What ``_submit`` sends; made before the clock starts in ``round_trip``."""
        return request

    async def _submit(self, encoded) -> None:
        raise NotImplementedError

    def expect(self, request: Request) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        self.waiting[request.id] = future
        return future

    def _resolve(self, request_id: str) -> None:
        future = self.waiting.pop(request_id, None)
        if future is not None and not future.done():
            future.set_result(time.perf_counter())

    def _reject(self, request_id: str, error: Exception) -> None:
        future = self.waiting.pop(request_id, None)
        if future is not None and not future.done():
            future.set_exception(error)

    async def round_trip(self, channel: str) -> float:
        """Seconds from submit to reply for one request."""
        request = chat_request(self.name, channel)
        encoded = self._encode(request)
        future = self.expect(request)
        started = time.perf_counter()
        await self._submit(encoded)
        return await future - started

    async def send(self, channel: str) -> asyncio.Future:
        """Submit one request; the future resolves when its reply arrives."""
        request = chat_request(self.name, channel)
        future = self.expect(request)
        await self._submit(self._encode(request))
        return future


class SimulatedBot(ReplyWaiter):
    """A bot without a platform: one real ``RelayClient`` (``submit`` + ``delivering``) in this loop.

    ``posted`` keeps every reply in the order it was posted (for order checks); ``failed`` counts
    the failed ones. ``client_options`` go to the ``RelayClient`` (``order_wait_s``...).
    """

    def __init__(self, url: str, prefix: str, name: str, *, shards: int, **client_options):
        super().__init__(name)
        self.redis = async_client(url)
        self.client = RelayClient(self.redis, Keys(prefix), name, shards=shards, **client_options)
        self.posted: list[Reply] = []
        self.failed = 0

    async def __aenter__(self) -> SimulatedBot:
        self._delivering = self.client.delivering(self._post, on_failed=self._on_failed)
        await self._delivering.__aenter__()
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self._delivering.__aexit__(*exc_info)
        await self.redis.aclose()

    async def _submit(self, request: Request) -> None:
        await self.client.submit(request)

    async def _post(self, reply: Reply) -> None:
        self.posted.append(reply)
        self._resolve(reply.request_id)

    async def _on_failed(self, reply: Reply) -> None:
        self.failed += 1
        self._reject(reply.request_id, RuntimeError(f"request {reply.status}: {reply.reason}"))
