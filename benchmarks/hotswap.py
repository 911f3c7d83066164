"""Hot-swap benchmark: requests/s while the default adapter changes every second, and whether any request
fails or is answered by an old adapter after the swap.

What it does, in one run on the tiny model with the transformers+peft engine:

1. trains two LoRA adapters (``tests/lora_helpers.train_adapter``) that answer the benchmark's
   question, asked in exactly the prompt ``ChatEngine`` builds (persona, time-stamped DM), with two
   different sentences, so a greedy reply says which adapter produced it;
2. starts its own Redis, a ``Registry`` and a ``ChatEngine`` over ``HFBackend``, publishes v1 and
   checks that v1 and v2 answer with their sentences;
3. **baseline**: ``--concurrency`` tasks send requests through ``ChatEngine.generate`` with the
   route fixed, for half of ``--baseline`` seconds before the swapping and half after it (so a
   drift in the machine's load hits both phases alike);
4. **swapping**: the same load for ``--duration`` seconds while, every ``--interval`` seconds, the
   other adapter is published as the next version (v3, v4, ...; odd versions answer with the first
   sentence, even ones with the second) and ``registry.use("me")`` routes the default to it.

Each request is a fresh DM channel (the prompt is the same every time) with greedy sampling. Counted:
**failed** (an exception or an empty reply), **wrong text** (the reply is not the sentence of the
version named in ``Generation.adapter``), and **stale** (a request started after a ``use`` had returned
but answered by an older version). Targets: zero of each while swapping. The table also gives
requests/s and latency in both phases (swapping/baseline ratio), the delay from each ``use`` to
the first reply by the new version, and how often the engine was asked to load the same version
twice (concurrent first requests for a new version).

Run from the repository root::

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/hotswap.py [--duration 30] [--interval 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from _harness import (
    ROOT,
    BenchRedis,
    add_output_options,
    argument_parser,
    environment,
    run_benchmark,
    table,
    use_offline_models,
)

from doppel.prompt import Turn, build_messages, persona_prompt
from doppel.redis_client import async_client, sync_client
from doppel.registry import AdapterRef, Card, Registry
from doppel.relay import Keys, Request
from inference.backends.base import Sampling
from inference.backends.hf import HFBackend
from inference.chat_engine import ChatEngine, ChatOptions
from training.offline_models import default_cache_dir, ensure_model

use_offline_models()
# After the root (whose packages tests/ mirrors by name): tests/lora_helpers.py trains the adapters.
sys.path.insert(1, str(ROOT / "tests"))

OWNER = "Mia"
NAME = "me"
QUESTION = "how was work?"
ANSWERS = ("awful, my boss yelled at the printer again", "great, we shipped the bakery app")
SENT_AT = 1_700_000_000.0  # fixed, so the time stamp in the prompt is the one the adapters learnt


@dataclass
class Outcome:
    started: float
    finished: float
    adapter: str = ""
    text: str = ""
    error: str = ""


@dataclass
class Swap:
    version: int
    before: float   # just before ``use``
    after: float    # ``use`` returned: every request started from here on must get this version


@dataclass
class Phase:
    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0
    swaps: list[Swap] = field(default_factory=list)


def answer_of(version: int) -> str:
    return ANSWERS[(version - 1) % 2]


def train(model_dir: Path, workdir: Path, system: str) -> list[Path]:
    from lora_helpers import train_adapter

    [_, user] = build_messages(system, [Turn("Ann", QUESTION, SENT_AT)], group=False)
    return [train_adapter(model_dir, workdir / f"adapter-{i}", [(user["content"], answer)], system=system)
            for i, answer in enumerate(ANSWERS)]


class CountingEngine(HFBackend):
    """The transformers engine, counting how often each adapter version is handed to it to load."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.adds: Counter[str] = Counter()

    async def add_adapter(self, adapter) -> None:
        self.adds[adapter.key] += 1
        await super().add_adapter(adapter)


def request(index: int) -> Request:
    return Request(platform="bench", bot="b1", channel=f"bench:hotswap:{index}", chat_type="dm", author_id="u1",
                   author_name="Ann", text=QUESTION, trigger="dm", sent_at=SENT_AT)


async def ask(chat: ChatEngine, index: int) -> Outcome:
    started = time.perf_counter()
    try:
        generation = await chat.generate(request(index))
    except Exception as exc:  # a benchmark counts failures; it does not stop on them
        return Outcome(started, time.perf_counter(), error=f"{type(exc).__name__}: {exc}")
    outcome = Outcome(started, time.perf_counter(), generation.adapter, " ".join(generation.parts))
    if not generation.parts:
        outcome.error = "empty reply"
    return outcome


async def load(chat: ChatEngine, seconds: float, concurrency: int, counter: list[int],
               swapper=None) -> Phase:
    phase = Phase()
    stop = time.perf_counter() + seconds

    async def lane() -> None:
        while time.perf_counter() < stop:
            counter[0] += 1
            phase.outcomes.append(await ask(chat, counter[0]))

    begin = time.perf_counter()
    tasks = [asyncio.create_task(lane()) for _ in range(concurrency)]
    if swapper is not None:
        tasks.append(asyncio.create_task(swapper(stop, phase)))
    await asyncio.gather(*tasks)
    phase.seconds = time.perf_counter() - begin
    return phase


def make_swapper(registry: Registry, adapters: list[Path], interval: float, first_version: int):
    async def swapper(stop: float, phase: Phase) -> None:
        version = first_version
        next_at = time.perf_counter() + interval
        while next_at < stop:
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
            version += 1
            path = adapters[(version - 1) % 2]
            before = time.perf_counter()
            ref = await asyncio.to_thread(_publish_and_use, registry, path)
            after = time.perf_counter()
            if ref.version != version:
                raise RuntimeError(f"published {ref}, expected version {version}")
            phase.swaps.append(Swap(version, before, after))
            next_at += interval

    return swapper


def _publish_and_use(registry: Registry, path: Path) -> AdapterRef:
    ref = registry.publish(path, Card(name=NAME, version=0, base_model="tiny", rank=8))
    registry.use(NAME)
    return ref


def _version(adapter: str) -> int:
    try:
        return AdapterRef.parse(adapter).version
    except Exception:  # "" (the base model) or anything unexpected
        return 0


def summarize(phases: list[tuple[Phase, int]]) -> dict:
    """Pooled figures of ``phases``, each with the version routed when it began."""
    outcomes, stale, effect_ms, swaps, seconds = [], [], [], 0, 0.0
    for phase, initial_version in phases:
        outcomes += phase.outcomes
        done = [o for o in phase.outcomes if not o.error]
        for o in done:
            routed = [s.version for s in phase.swaps if s.after <= o.started]
            expected = routed[-1] if routed else initial_version
            if _version(o.adapter) < expected:
                stale.append(o)
        for swap in phase.swaps:
            first = min((o.finished for o in done if _version(o.adapter) == swap.version), default=None)
            if first is not None:
                effect_ms.append((first - swap.after) * 1000)
        swaps += len(phase.swaps)
        seconds += phase.seconds
    done = [o for o in outcomes if not o.error]
    failed = [o for o in outcomes if o.error]
    wrong = [o for o in done if not o.text.startswith(answer_of(_version(o.adapter))) or _version(o.adapter) == 0]
    latencies = sorted((o.finished - o.started) * 1000 for o in outcomes)
    versions = Counter(_version(o.adapter) for o in done)
    return {
        "requests": len(outcomes),
        "completed": len(done),
        "failed": len(failed),
        "wrong_text": len(wrong),
        "stale": len(stale),
        "seconds": seconds,
        "rps": len(done) / seconds if seconds else float("nan"),
        "latency_p50_ms": statistics.median(latencies) if latencies else float("nan"),
        "latency_p99_ms": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] if latencies else float("nan"),
        "latency_max_ms": latencies[-1] if latencies else float("nan"),
        "swaps": swaps,
        "versions_served": len(versions),
        "swap_effect_ms": effect_ms,
        "swap_effect_p50_ms": statistics.median(effect_ms) if effect_ms else float("nan"),
        "swap_effect_max_ms": max(effect_ms, default=float("nan")),
        "swaps_never_served": swaps - len(effect_ms),
        "errors": sorted({o.error for o in failed})[:5],
        "wrong_examples": sorted({f"{o.adapter}: {o.text[:60]}" for o in wrong})[:5],
    }


# -- report ------------------------------------------------------------------------------------------

def format_report(report: dict) -> str:
    b, s = report["baseline"], report["swapping"]

    def ratio(key: str) -> str:
        return f"{s[key] / b[key]:.2f}x" if b[key] else ""

    def verdict(value: int) -> str:
        return "PASS" if value == 0 else "MISS"

    rows = [
        ("requests/s", f"{b['rps']:.1f}", f"{s['rps']:.1f}", ratio("rps"), "", ""),
        *((f"latency {q} (ms)", f"{b[f'latency_{q}_ms']:.0f}", f"{s[f'latency_{q}_ms']:.0f}",
           ratio(f"latency_{q}_ms"), "", "") for q in ("p50", "p99")),
        ("requests", b["requests"], s["requests"], "", "", ""),
        ("failed", b["failed"], s["failed"], "", "0", verdict(s["failed"])),
        ("wrong text for version", b["wrong_text"], s["wrong_text"], "", "0", verdict(s["wrong_text"])),
        ("stale after a swap", b["stale"], s["stale"], "", "0", verdict(s["stale"])),
        ("swaps / versions served", "-", f"{s['swaps']} / {s['versions_served']}", "", "", ""),
        ("use -> first new reply p50 (ms)", "-", f"{s['swap_effect_p50_ms']:.0f}", "", "", ""),
        ("use -> first new reply max (ms)", "-", f"{s['swap_effect_max_ms']:.0f}", "", "", ""),
    ]
    out = [*table(("metric", "baseline", "swapping", "ratio", "target", "result"), rows), ""]
    p, env = report["parameters"], report["environment"]
    out.append(f"HF engine on the tiny model through ChatEngine + Registry; {p['concurrency']} concurrent senders, "
               f"greedy, max_tokens {p['max_tokens']}; baseline {b['seconds']:.1f}s (half before, half after), "
               f"swapping {s['seconds']:.1f}s with a publish + use every {p['interval']:g}s")
    duplicates = report["duplicate_loads"]
    out.append(f"adapter loads handed to the engine: {report['loads']} for {report['versions_loaded']} versions"
               + (f" ({duplicates} duplicate: concurrent first requests for a new version)" if duplicates else ""))
    if s["swaps_never_served"]:
        out.append(f"{s['swaps_never_served']} swap(s) were replaced before any reply used them")
    for label, phase in (("baseline", b), ("swapping", s)):
        for error in phase["errors"]:
            out.append(f"{label} error: {error}")
        for example in phase["wrong_examples"]:
            out.append(f"{label} wrong text: {example}")
    out.append(f"machine: {env['cpus']} CPUs ({env['cpu_model']}), Python {env['python']}, torch {env['torch']}")
    return "\n".join(out)


async def bench(server: BenchRedis, workdir: Path, args) -> dict:
    import torch

    model_dir = ensure_model("tiny", default_cache_dir(), progress=False)
    system = persona_prompt(OWNER)
    print("training two adapters ...", file=sys.stderr, flush=True)
    adapters = train(model_dir, workdir, system)
    keys = Keys("bench")
    sync = sync_client(server.url)
    registry = Registry(workdir / "registry", sync, keys)
    engine = CountingEngine(model_dir, max_model_len=512)
    options = ChatOptions(owner=OWNER, sampling=Sampling(temperature=0, max_tokens=args.max_tokens,
                                                         repetition_penalty=1.0))
    redis = async_client(server.url)
    chat = ChatEngine(redis, keys, engine, registry.root, options)
    counter = [0]
    try:
        await chat.startup()
        _publish_and_use(registry, adapters[0])            # v1
        first = await ask(chat, 0)
        await asyncio.to_thread(_publish_and_use, registry, adapters[1])  # v2
        second = await ask(chat, 0)
        for outcome, version in ((first, 1), (second, 2)):
            if outcome.error or not outcome.text.startswith(answer_of(version)):
                raise RuntimeError(f"adapter v{version} answered {outcome.text!r} ({outcome.error or 'no error'}); "
                                   f"expected {answer_of(version)!r}: the check cannot tell the adapters apart")
        print(f"baseline: {args.baseline / 2:g}s at concurrency {args.concurrency} ...", file=sys.stderr, flush=True)
        before = await load(chat, args.baseline / 2, args.concurrency, counter)
        print(f"swapping every {args.interval:g}s for {args.duration:g}s ...", file=sys.stderr, flush=True)
        swapping = await load(chat, args.duration, args.concurrency, counter,
                              make_swapper(registry, adapters, args.interval, first_version=2))
        last = swapping.swaps[-1].version if swapping.swaps else 2
        print(f"baseline again: {args.baseline / 2:g}s ...", file=sys.stderr, flush=True)
        after = await load(chat, args.baseline / 2, args.concurrency, counter)
    finally:
        await chat.shutdown()
        await redis.aclose()
        sync.close()
    env = environment(torch=torch.__version__, torch_threads=torch.get_num_threads())
    return {
        "benchmark": "hotswap",
        "environment": env,
        "parameters": {k: getattr(args, k) for k in ("duration", "interval", "baseline", "concurrency", "max_tokens")},
        "baseline": summarize([(before, 2), (after, last)]),
        "swapping": summarize([(swapping, 2)]),
        "loads": sum(engine.adds.values()),
        "versions_loaded": len(engine.adds),
        "duplicate_loads": sum(n - 1 for n in engine.adds.values()),
        "targets": {"failed": 0, "wrong_text": 0, "stale": 0},
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argument_parser(__doc__)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of load while swapping")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between swaps")
    parser.add_argument("--baseline", type=float, default=10.0,
                        help="seconds of load without swaps: half before the swapping, half after")
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight")
    parser.add_argument("--max-tokens", type=int, default=24, help="max_tokens of each (greedy) request")
    add_output_options(parser)
    args = parser.parse_args(argv)
    if args.duration <= 0 or args.interval <= 0 or args.baseline <= 0 or args.concurrency < 1 or args.max_tokens < 12:
        parser.error("durations must be positive, --concurrency >= 1 and --max-tokens >= 12")
    return args


def main(argv: list[str] | None = None) -> int:
    return run_benchmark(parse_args(argv), bench, format_report)


if __name__ == "__main__":
    sys.exit(main())
