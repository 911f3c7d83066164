"""Web chat load benchmark: 500 guest WebSockets on loopback, each sending for 60 s, against the echo engine.

What it runs, on its own Redis (or ``--redis-url``) in a scratch directory:

* one worker process (``benchmarks/_harness.WorkerPool``: ``python -m doppel worker run``, echo
  engine, ``--echo-delay-ms`` of simulated generation per reply, like ``scale.py``);
* the web chat as ``python -m doppel -v --config CONFIG bot web --no-friends`` in a process of its
  own (its own session and process group, and it gets SIGTERM should this process die), in
  public mode behind a make-believe proxy: ``[web] public = true``, ``trusted_proxies =
  ["127.0.0.1"]``, and each guest's socket carries an ``X-Forwarded-For`` address of its own, so
  the per-address limits and the proxy path are what is measured. Its config sets
  ``stats_every_s = 1``: the server logs ``web: stats: tasks=N ...`` (its asyncio task count)
  every second, which this script reads from its stderr; the count stays off the public page;
* ``--guests`` guests in this process (aiohttp), all connected at once: each joins under a name
  of its own, sends a line to its DM with the clone, waits for the reply (``--reply-timeout-s``),
  pauses ``--interval-s`` on average (0.5x to 1.5x), and so on until ``--seconds`` have passed.
  With ``--session-s`` (default 20; each visit 0.5x to 1.5x that, the first ones already under
  way) a guest leaves and a new one (a new browser token, a new address) takes its place, so
  guests keep arriving and being let go (``[web] guest_idle_s = --guest-idle-s``, default 6): what
  a page shared with thousands sees, in a steady state from about ``guest_idle_s`` on. Every guest stays
  within its limits (``rate_limit`` and ``[bot] user_rate_limit`` are set above the fastest
  pace), so any refusal counts as an error.

It prints messages/s (replies received per second), p50/p99 reply latency (from sending to the
clone's message on the page), the server's RSS (``VmRSS`` of ``/proc/<pid>/status``) and asyncio
task count after the warm-up (``--warmup-s``, 10 s) and at the end (60 s), errors (failed
connects, refused joins or messages, unexpected closes, server ERROR log lines) and lost replies
(sent, accepted, and no reply within the timeout). Targets: RSS and tasks flat after the warm-up
(at most 1.1x their value at 10 s), 0 errors, 0 lost replies. The load average before and after
is printed with the machine: everything runs on one machine, so other load shows in the latency.

Every process it starts is stopped on the way out, also on SIGINT or SIGTERM (the handlers cancel
the run, whose ``finally`` blocks stop the web chat's process group, the worker and Redis), and
even when this process is killed outright: the web chat gets SIGTERM from the kernel when its
parent dies (``PR_SET_PDEATHSIG``), and a reaper process in a session of its own, told every
process id as it starts, stops them all when its pipe from this process closes without a goodbye.

Run from the repository root::

    .venv/bin/python benchmarks/web_load.py                       # 500 guests, 60 s
    .venv/bin/python benchmarks/web_load.py --guests 50 --seconds 15 --json web.json
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from _harness import (
    GIVEN_REDIS,
    ROOT,
    TEXT,
    BenchRedis,
    WorkerPool,
    add_output_options,
    argument_parser,
    delete_prefix,
    environment,
    run_benchmark,
    server_version,
    table,
)

from doppel.machine import memory_gib
from doppel.settings_sections import RelaySettings

_STATS = re.compile(r"web: stats: tasks=(\d+) pages=(\d+) guests=(\d+) senders=(\d+) windows=(\d+)")
_URL = re.compile(r"open (http://\S+?)\?key=")
FLAT_MAX = 1.1  # RSS and tasks at the end, at most this times their value after the warm-up


def load_average() -> list[float]:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except (OSError, ValueError):
        return []


def rss_mib(pid: int) -> float | None:
    """Resident memory of ``pid`` (``VmRSS`` in /proc), in MiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when this benchmark dies, even by SIGKILL (Linux prctl)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


_REAPER = """
import os, signal, sys, time
pids = []
for line in sys.stdin:
    if line.strip() == "bye":
        sys.exit(0)
    pids.append(int(line))
def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False
for pid in pids:
    if alive(pid):
        os.kill(pid, signal.SIGTERM)
deadline = time.monotonic() + 5
while any(map(alive, pids)) and time.monotonic() < deadline:
    time.sleep(0.1)
for pid in filter(alive, pids):
    os.kill(pid, signal.SIGKILL)
"""


class Reaper:
    """A process that outlives this one only to stop what this one started, should it be killed."""

    def __init__(self):
        self.process = subprocess.Popen([sys.executable, "-c", _REAPER], stdin=subprocess.PIPE, text=True,
                                        start_new_session=True, stdout=subprocess.DEVNULL)

    def watch(self, *pids: int | None) -> None:
        for pid in pids:
            if pid:
                self.process.stdin.write(f"{pid}\n")
        self.process.stdin.flush()

    def close(self) -> None:
        """Everything was stopped in order: the reaper leaves without touching anything."""
        with contextlib.suppress(OSError, ValueError):
            self.process.stdin.write("bye\n")
            self.process.stdin.close()
        self.process.wait()


class WebServer:
    """``doppel bot web`` in its own process group; its stderr read on a thread (URL, stats, errors)."""

    def __init__(self, config: Path, log_path: Path):
        self.config, self.log_path = config, log_path
        self.process: subprocess.Popen | None = None
        self.url = ""
        self.stats: dict[str, int] = {}
        self.error_lines: list[str] = []
        self.tail: deque[str] = deque(maxlen=40)
        self._started = threading.Event()

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOPPEL_")}
        env["PYTHONPATH"] = str(ROOT)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "doppel", "-v", "--config", str(self.config), "bot", "web", "--no-friends"],
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True, start_new_session=True, preexec_fn=_die_with_parent)
        atexit.register(self.stop)
        threading.Thread(target=self._read, name="web-server-stderr", daemon=True).start()

    def _read(self) -> None:
        with self.log_path.open("w") as log:
            for line in self.process.stderr:
                log.write(line)
                self.tail.append(line.rstrip())
                if not self.url and (found := _URL.search(line)):
                    self.url = found.group(1)
                    self._started.set()
                elif found := _STATS.search(line):
                    self.stats = dict(zip(("tasks", "pages", "guests", "senders", "windows"),
                                          map(int, found.groups()), strict=True))
                elif " ERROR " in line or line.startswith("Traceback"):
                    self.error_lines.append(line.rstrip())
        self._started.set()

    async def wait_started(self, timeout_s: float) -> str:
        await asyncio.to_thread(self._started.wait, timeout_s)
        if not self.url:
            raise RuntimeError("the web chat did not start:\n" + "\n".join(self.tail))
        return self.url

    def stop(self, timeout_s: float = 20.0) -> None:
        """SIGTERM to its process group (it drains and exits), SIGKILL after ``timeout_s``."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@dataclass
class Tally:
    sent: int = 0
    replied: int = 0
    lost: int = 0
    refused: int = 0
    errors: int = 0
    sessions: int = 0
    notices: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    samples: list[str] = field(default_factory=list)  # the first few errors, for the report

    def error(self, what: str) -> None:
        self.errors += 1
        if len(self.samples) < 10:
            self.samples.append(what[:200])


async def guest_session(http: aiohttp.ClientSession, url: str, number: int, until: float, args,
                        tally: Tally, rng: random.Random) -> None:
    """One guest: join, then send / wait for the reply / pause until ``until``; then leave."""
    address = f"10.{(number >> 16) & 255}.{(number >> 8) & 255}.{number & 255}"
    try:
        ws = await http.ws_connect(url + "ws", headers={"X-Forwarded-For": address}, heartbeat=None)
    except (aiohttp.ClientError, OSError) as exc:
        tally.error(f"connect: {exc}")
        return
    events: asyncio.Queue = asyncio.Queue()

    async def read() -> None:
        async for frame in ws:
            if frame.type == aiohttp.WSMsgType.TEXT:
                events.put_nowait(json.loads(frame.data))
        events.put_nowait({"type": "closed"})

    reader = asyncio.create_task(read())
    try:
        await ws.send_json({"type": "join", "name": f"Guest {number}", "guest": f"bench-{uuid.uuid4().hex}"})
        welcome = await asyncio.wait_for(events.get(), 30)
        if welcome.get("type") != "welcome":
            return tally.error(f"join: {welcome.get('message') or welcome}")
        tally.sessions += 1
        dm = next(c["key"] for c in welcome["channels"] if c["type"] == "dm")
        while time.monotonic() < until:
            nonce = f"n{tally.sent}"
            started = time.perf_counter()
            await ws.send_json({"type": "send", "channel": dm, "text": TEXT, "nonce": nonce})
            tally.sent += 1
            deadline = time.monotonic() + args.reply_timeout_s
            while True:
                try:
                    event = await asyncio.wait_for(events.get(), max(0.01, deadline - time.monotonic()))
                except TimeoutError:
                    tally.lost += 1
                    break
                kind = event.get("type")
                if kind == "message" and event["message"]["author"]["kind"] == "clone" and event["channel"] == dm:
                    tally.replied += 1
                    tally.latencies_ms.append((time.perf_counter() - started) * 1000)
                    break
                if kind == "queue" and event.get("position"):
                    tally.notices += 1
                elif kind == "error" and event.get("nonce") == nonce:
                    tally.refused += 1
                    tally.error(f"refused: {event['message']}")
                    break
                elif kind in ("error", "bye", "closed"):
                    tally.error(f"{kind}: {event.get('message', '')}")
                    return None
            await asyncio.sleep(args.interval_s * rng.uniform(0.5, 1.5))
    except (aiohttp.ClientError, ConnectionError, TimeoutError) as exc:
        tally.error(f"{type(exc).__name__}: {exc}")
    finally:
        await ws.close()
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
    return None


async def guest_slot(http, url: str, slot: int, deadline: float, args, tally: Tally, numbers) -> None:
    """One of the ``--guests`` places: guests one after another (``--session-s`` each) until ``deadline``."""
    rng = random.Random(slot)
    await asyncio.sleep(rng.uniform(0, min(args.interval_s, 2.0)))  # arrivals spread over a moment
    # The first guest of each place is already some way into its visit: guests leave (and are let
    # go guest_idle_s later) at a steady rate from the start, so the warm-up reaches the steady state.
    session_s = rng.uniform(0, args.session_s)
    while time.monotonic() < deadline:
        until = min(deadline, time.monotonic() + session_s) if args.session_s else deadline
        await guest_session(http, url, next(numbers), until, args, tally, rng)
        session_s = args.session_s * rng.uniform(0.5, 1.5)


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def server_config(workdir: Path, url: str, prefix: str, args) -> Path:
    # The fastest pace a guest keeps is one message per interval_s / 2 (plus its reply's latency):
    # the limits sit above it, so a guest within its limits is never refused.
    per_minute = int(60 / (args.interval_s * 0.5)) + 5
    lines = [f'data_dir = "{workdir / "data"}"', "[redis]", f'url = "{url}"', f'prefix = "{prefix}"',
             "[relay]", f"shards = {args.shards}", "[bot]", 'name = "load"', f"user_rate_limit = {per_minute}",
             "user_rate_window_s = 60.0", "[web]", "port = 0", "friends = false", "public = true",
             'trusted_proxies = ["127.0.0.1"]', f"max_guests = {args.guests * 2}",
             f"guest_idle_s = {args.guest_idle_s}", f"rate_limit = {per_minute}", f"ip_rate_limit = {per_minute}",
             "stats_every_s = 1.0"]
    config = workdir / "web.toml"
    config.write_text("\n".join(lines) + "\n")
    return config


async def bench(redis: BenchRedis, workdir: Path, args) -> dict:
    loop, me = asyncio.get_running_loop(), asyncio.current_task()
    loop.add_signal_handler(signal.SIGTERM, me.cancel)  # SIGINT: asyncio.run cancels the run itself
    load_before = load_average()
    prefix = f"webload{uuid.uuid4().hex[:8]}"
    env = environment(memory_gib=memory_gib(), redis_server=await server_version(redis.url), redis=redis.kind)
    server = WebServer(server_config(workdir, redis.url, prefix, args),
                       Path(args.server_log) if args.server_log else workdir / "web.log")
    tally, samples = Tally(), []
    reaper = Reaper()
    reaper.watch(redis.pid)
    try:
        with WorkerPool(redis.url, prefix, workdir, ["web-load-w1"], shards=args.shards,
                        echo_delay_ms=args.echo_delay_ms) as pool:
            reaper.watch(*(process.pid for process in pool.processes.values()))
            server.start()
            reaper.watch(server.process.pid)
            await pool.wait_ready(60)
            url = await server.wait_started(60)
            print(f"{args.guests} guests for {args.seconds:g} s against {url} ...", file=sys.stderr, flush=True)
            connector = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(connector=connector) as http:
                started = time.monotonic()
                deadline = started + args.seconds
                numbers = iter(range(1, 1 << 24))
                slots = [asyncio.create_task(guest_slot(http, url, n, deadline, args, tally, numbers))
                         for n in range(args.guests)]
                warm = min(args.warmup_s, args.seconds / 2)
                for mark in sorted({warm, *range(5, int(args.seconds), 5), args.seconds}):
                    await asyncio.sleep(max(0.0, started + mark - time.monotonic()))
                    samples.append({"t_s": round(mark, 1), "warm": mark == warm, "rss_mib": rss_mib(server.process.pid),
                                    **server.stats, "replied": tally.replied})
                await asyncio.wait_for(asyncio.gather(*slots), args.reply_timeout_s + 30)
                elapsed = time.monotonic() - started
            server.stop()
    finally:
        server.stop()
        if redis.kind == GIVEN_REDIS:
            await delete_prefix(redis.url, prefix)
        # Redis is still to be stopped by run_benchmark, in order; the reaper is for a kill only.
        reaper.close()
    first, last = next(s for s in samples if s["warm"]), samples[-1]
    return build_report(args, env, tally, samples, first, last, elapsed, server.error_lines,
                        load_before, load_average())


def _flat(name: str, unit: str, first: dict, last: dict, key: str) -> dict:
    value, base = last.get(key), first.get(key)
    ratio = value / base if value is not None and base else None
    return {"name": name, "value": value, "unit": unit, "baseline": f"at {first['t_s']:g} s", "baseline_value": base,
            "ratio": ratio, "higher_is_better": False, "target": f"<= {FLAT_MAX:g}x",
            "pass": ratio is not None and ratio <= FLAT_MAX}


def build_report(args, env: dict, tally: Tally, samples: list[dict], first: dict, last: dict, elapsed: float,
                 server_errors: list[str], load_before: list[float], load_after: list[float]) -> dict:
    errors = tally.errors + len(server_errors)
    figures = [_flat(f"server RSS at {last['t_s']:g} s", "MiB", first, last, "rss_mib"),
               _flat(f"server asyncio tasks at {last['t_s']:g} s", "tasks", first, last, "tasks"),
               {"name": "errors", "value": errors, "unit": "", "higher_is_better": False, "target": "0",
                "pass": errors == 0},
               {"name": "lost replies", "value": tally.lost, "unit": "", "higher_is_better": False, "target": "0",
                "pass": tally.lost == 0}]
    return {
        "benchmark": "web_load",
        "parameters": {k: getattr(args, k) for k in ("guests", "seconds", "session_s", "interval_s", "echo_delay_ms",
                                                     "guest_idle_s", "reply_timeout_s", "warmup_s", "shards")},
        "messages_per_s": tally.replied / elapsed if elapsed else 0.0,
        "latency_ms": {"p50": percentile(tally.latencies_ms, 0.5), "p99": percentile(tally.latencies_ms, 0.99),
                       "max": max(tally.latencies_ms, default=None)},
        "sent": tally.sent, "replied": tally.replied, "lost": tally.lost, "refused": tally.refused,
        "errors": errors, "error_samples": tally.samples + server_errors[:5], "guest_sessions": tally.sessions,
        "line_notices": tally.notices, "samples": samples, "first": first, "last": last,
        "load_average": {"before": load_before, "after": load_after},
        "environment": env, "figures": figures,
    }


def format_report(report: dict) -> str:
    p, latency, first, last = report["parameters"], report["latency_ms"], report["first"], report["last"]
    fig = {f["name"].split(" at ")[0]: f for f in report["figures"]}

    def verdict(name: str) -> str:
        return "PASS" if fig[name]["pass"] else "MISS"

    def num(value, fmt: str = "{:,.0f}") -> str:
        return "-" if value is None else fmt.format(value)

    rows = [("messages/s (replies received)", num(report["messages_per_s"], "{:,.1f}"), "", ""),
            ("reply latency p50 (ms)", num(latency["p50"], "{:,.1f}"), "", ""),
            ("reply latency p99 (ms)", num(latency["p99"], "{:,.1f}"), "", ""),
            (f"server RSS at {first['t_s']:g} s (MiB)", num(first.get("rss_mib"), "{:,.1f}"), "", ""),
            (f"server RSS at {last['t_s']:g} s (MiB)", num(last.get("rss_mib"), "{:,.1f}"),
             f"<= {FLAT_MAX:g}x", verdict("server RSS")),
            (f"asyncio tasks at {first['t_s']:g} s", num(first.get("tasks")), "", ""),
            (f"asyncio tasks at {last['t_s']:g} s", num(last.get("tasks")), f"<= {FLAT_MAX:g}x",
             verdict("server asyncio tasks")),
            ("errors", str(report["errors"]), "0", verdict("errors")),
            ("lost replies", str(report["lost"]), "0", verdict("lost replies"))]
    lines = table(("metric", "value", "target", "result"), rows)
    env, load = report["environment"], report["load_average"]
    lines += ["", f"{p['guests']} guests at once for {p['seconds']:g} s"
              + (f", each for {p['session_s']:g} s then a new one" if p["session_s"] else "")
              + f"; {report['guest_sessions']} guest sessions, {report['sent']:,} messages sent, "
              f"{report['replied']:,} replies, {report['refused']} refused, {report['line_notices']} 'in line' "
              f"notices; a message every {p['interval_s']:g} s on average per guest; echo engine "
              f"{p['echo_delay_ms']:g} ms; guest_idle_s {p['guest_idle_s']:g}",
              "server over time: " + ", ".join(f"{s['t_s']:g}s {num(s.get('rss_mib'), '{:.0f}')} MiB/"
                                               f"{s.get('tasks', '-')} tasks/{s.get('guests', '-')} guests"
                                               for s in report["samples"]),
              f"load average before {load['before']}, after {load['after']}; machine: {env['cpus']} CPUs "
              f"({env['cpu_model']}), {env['memory_gib']} GiB, Python {env['python']}, Redis {env['redis_server']}"]
    lines += [f"error: {sample}" for sample in report["error_samples"]]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argument_parser(__doc__)
    parser.add_argument("--guests", type=int, default=500, help="guest WebSockets open at once")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the guests send")
    parser.add_argument("--session-s", type=float, default=20.0,
                        help="a guest leaves after this long and a new one takes its place (0: they all stay)")
    parser.add_argument("--interval-s", type=float, default=2.5, help="mean pause after a reply, per guest")
    parser.add_argument("--echo-delay-ms", type=float, default=50.0, help="the echo engine's generation time")
    parser.add_argument("--guest-idle-s", type=float, default=6.0,
                        help="[web] guest_idle_s of the server (above the longest pause, 1.5x --interval-s)")
    parser.add_argument("--reply-timeout-s", type=float, default=30.0, help="a reply later than this is lost")
    parser.add_argument("--warmup-s", type=float, default=10.0, help="when the first RSS and task figures are read")
    parser.add_argument("--shards", type=int, default=RelaySettings().shards, help="[relay] shards")
    parser.add_argument("--server-log", default=None, help="keep the web chat's log here (default: scratch, deleted)")
    add_output_options(parser, redis_url=True)
    args = parser.parse_args(argv)
    for name in ("guests", "seconds", "interval_s", "reply_timeout_s", "warmup_s", "guest_idle_s", "shards"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    if args.guest_idle_s <= 1.5 * args.interval_s + 1:
        parser.error("--guest-idle-s must be above 1.5x --interval-s + 1: a guest pausing that long is still here")
    return args


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt  # outside the event loop too: the with blocks stop what was started


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return run_benchmark(parse_args(argv), bench, format_report, scratch_prefix="doppel-web-load-")
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted: the web chat, the worker and Redis were stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
