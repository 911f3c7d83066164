"""History benchmark: prompt assembly cost against stored history, and prefix sharing between prompts.

Two measurements, on a real Redis (its own ``RedisServer`` in a temp dir, unix socket, AOF
``appendfsync everysec`` like the embedded default) and the tiny model's tokenizer and chat
template (no model weights are run):

* **(a) assembly cost**: what ``ChatEngine.generate`` does before it calls the model, exactly
  (``_read_state``: one pipelined round trip for history, routes and overrides; ``_turns_for``;
  ``_fit``: ``history.window`` + ``build_messages`` + chat-template tokenization), for a channel
  with 10 turns stored and one with 100,000 turns stored (bulk-loaded with the same Lua append
  ``history.record`` uses, with ``max_stored`` raised so the list really holds them). The two are
  timed alternately, ``--iterations`` times each, and the medians compared. Target: large/small
  <= 1.5 (the cost must not grow with stored history). The target row uses a window that holds
  the same 10 turns in both channels (``max_turns`` 10, ``chunk_turns`` 1), so only the stored
  length differs; a second row with the default window options is informational (the two
  channels' windows differ there, see the ``window`` column).
* **(b) prefix share**: a scripted 200-turn group conversation (four speakers, the clone answering
  about one message in four, sometimes in bursts) goes through the real recording path
  (``history.record`` for every message, ``ChatEngine.generate`` with a scripted model for the
  clone's turns, which records the reply). For each prompt after the first, the share of its
  tokens that equals a prefix of the previous prompt (token ids of the chat-templated prompt).
  Target: median >= 0.8. The same script with a sliding window (``chunk_turns`` 1) is the
  baseline of the same run. ``block share`` counts only whole 16-token blocks (vLLM's prefix
  cache unit).

Run from the repository root::

    .venv/bin/python benchmarks/history.py [--iterations 300] [--turns 200] [--json out.json]
"""

from __future__ import annotations

import argparse
import itertools
import random
import statistics
import sys
import time
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path

from _harness import (
    BenchRedis,
    add_output_options,
    argument_parser,
    environment,
    run_benchmark,
    server_version,
    table,
    use_offline_models,
)

from doppel import history
from doppel.history import HistoryOptions
from doppel.prompt import Turn
from doppel.redis_client import async_client
from doppel.relay import Keys, Request
from inference.backends.base import Sampling
from inference.backends.hf import HFBackend
from inference.chat_engine import ChatEngine, ChatOptions
from training.offline_models import default_cache_dir, ensure_model
from training.offline_models.tiny_model import corpus_pairs

use_offline_models()

TARGET_COST_RATIO = 1.5
TARGET_MEDIAN_SHARE = 0.8
BLOCK = 16              # vLLM's default KV block size: the unit its prefix cache hits in
OWNER = "Mia"
SPEAKERS = ("Ann", "Bob", "Cat", "Dev")


class ScriptedModel:
    """A ModelBackend with the tiny model's tokenizer and chat template but no weights.

    ``count_tokens`` and ``prompt_ids`` are the transformers engine's own methods, so prompts are
    tokenized exactly as served; ``complete`` returns the next scripted reply and keeps the prompt.
    """

    name = "scripted"
    count_tokens = HFBackend.count_tokens
    prompt_ids = HFBackend.prompt_ids

    def __init__(self, model_dir: Path, max_model_len: int):
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.max_model_len = max_model_len
        self.replies: deque[str] = deque()
        self.prompts: list[list[dict]] = []

    async def startup(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    async def add_adapter(self, adapter) -> None:
        return None

    async def remove_adapter(self, adapter) -> None:
        return None

    async def complete(self, request_id, messages, adapter, sampling) -> str:
        self.prompts.append(messages)
        return self.replies.popleft() if self.replies else "ok"


def chat_engine(redis, keys: Keys, model: ScriptedModel, root: Path, options: HistoryOptions) -> ChatEngine:
    chat_options = ChatOptions(owner=OWNER, sampling=Sampling(temperature=0, max_tokens=32), history=options)
    return ChatEngine(redis, keys, model, root, chat_options)


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


# -- (a) assembly cost -------------------------------------------------------------------------------

@dataclass
class Channel:
    name: str
    stored: int
    request: Request


def _text(rng: random.Random, pairs: list[tuple[str, str]]) -> str:
    return rng.choice(pairs)[rng.randrange(2)]


async def load_channel(redis, keys: Keys, name: str, count: int, seed: int) -> Channel:
    """``count`` turns through ``history.record``'s Lua append, pipelined in batches."""
    rng = random.Random(seed)
    pairs = corpus_pairs()
    options = HistoryOptions(max_stored=count + 10)
    start = time.time() - count  # one turn a second, ending now
    last = None
    for first in range(0, count, 2000):
        async with redis.pipeline(transaction=False) as pipe:
            for i in range(first, min(count, first + 2000)):
                speaker = SPEAKERS[i % len(SPEAKERS)]
                last = Turn(speaker, _text(rng, pairs), start + i)
                history.record_commands(pipe, keys, name, last, message_id=str(i + 1), options=options)
            await pipe.execute()
    stored = await redis.llen(keys.history(name))
    request = Request(platform="bench", bot="b1", channel=name, chat_type="group", author_id="u1",
                      author_name=last.speaker, text=last.text, trigger="mention", sent_at=last.at,
                      reply_to=str(count))
    return Channel(name, stored, request)


async def assemble(chat: ChatEngine, request: Request) -> tuple[float, float, list[dict]]:
    """What ``ChatEngine.generate`` does before the model: seconds in Redis, seconds in total, messages."""
    t0 = time.perf_counter()
    stored, *_ = await chat._read_state(request)
    t1 = time.perf_counter()
    turns = chat._turns_for(request, stored)
    messages = chat._fit(turns, group=request.chat_type == "group")
    return t1 - t0, time.perf_counter() - t0, messages


async def measure_cost(chat: ChatEngine, small: Channel, large: Channel, iterations: int) -> dict:
    for _ in range(20):  # warm-up: connection, tokenizer caches, Lua script cache
        await assemble(chat, small.request)
        await assemble(chat, large.request)
    timings = {"small": ([], []), "large": ([], [])}
    for i in range(iterations):
        order = (("small", small), ("large", large)) if i % 2 == 0 else (("large", large), ("small", small))
        for label, channel in order:
            redis_s, total_s, _ = await assemble(chat, channel.request)
            timings[label][0].append(redis_s)
            timings[label][1].append(total_s)
    result = {}
    for label, channel in (("small", small), ("large", large)):
        _, _, messages = await assemble(chat, channel.request)
        stored, *_ = await chat._read_state(channel.request)
        chosen = history.window(chat._turns_for(channel.request, stored), chat.options.history,
                                chat.model.count_tokens)
        redis_s, total_s = timings[label]
        result[label] = {
            "stored_turns": channel.stored,
            "window_turns": len(chosen),
            "prompt_tokens": len(chat.model.prompt_ids(messages)),
            "read_state_us": _median(redis_s) * 1e6,
            "assemble_us": _median(total_s) * 1e6,
            "assemble_p90_us": sorted(total_s)[int(0.9 * (len(total_s) - 1))] * 1e6,
        }
    result["ratio"] = result["large"]["assemble_us"] / result["small"]["assemble_us"]
    result["read_state_ratio"] = result["large"]["read_state_us"] / result["small"]["read_state_us"]
    return result


# -- (b) prefix share --------------------------------------------------------------------------------

def script(turns: int, seed: int) -> list[tuple[str, str, str | None]]:
    """(speaker, text, clone reply or None) steps whose turns, clone replies included, add up to ``turns``."""
    rng = random.Random(seed)
    pairs = corpus_pairs()
    steps, count = [], 0
    while count < turns:
        speaker = rng.choice(SPEAKERS)
        question, answer = rng.choice(pairs)
        text = question if rng.random() < 0.6 else answer
        reply = None
        if count + 1 < turns and rng.random() < 0.25:  # the clone is asked about one message in four
            parts = [rng.choice(pairs)[1] for _ in range(rng.choice((1, 1, 1, 2, 3)))]
            reply = "\n\n".join(parts)
        steps.append((speaker, text, reply))
        count += 1 + (reply is not None)
    return steps


async def run_conversation(redis, keys: Keys, model: ScriptedModel, root: Path, options: HistoryOptions,
                           steps, channel: str) -> tuple[list[list[int]], int]:
    """Play ``steps`` through the recording path: the prompt token ids of every clone reply, and how
    many of those prompts held only the newest turn although the channel had more."""
    chat = chat_engine(redis, keys, model, root, options)
    model.prompts.clear()
    recorded, lone = 0, 0
    for index, (speaker, text, reply) in enumerate(steps):
        at = time.time()  # the clone's reply is recorded at the real time: the script keeps to it
        message_id = str(index + 1)
        await history.record(redis, keys, channel, Turn(speaker, text, at), message_id=message_id, options=options)
        recorded += 1
        if reply is not None:
            model.replies.append(reply)
            request = Request(platform="bench", bot="b1", channel=channel, chat_type="group",
                              author_id=speaker.lower(), author_name=speaker, text=text, trigger="mention",
                              sent_at=at, reply_to=message_id)
            generation = await chat.generate(request)
            if not generation.parts:
                raise RuntimeError(f"the scripted reply {reply!r} came back empty")
            messages = model.prompts[-1]
            lone += recorded > 1 and len(messages) == 2 and "\n" not in messages[1]["content"]
            recorded += 1
    return [model.prompt_ids(messages) for messages in model.prompts], lone


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def prefix_shares(prompts: list[list[int]], lone: int) -> dict:
    shares, blocks = [], []
    for previous, current in itertools.pairwise(prompts):
        common = _common_prefix(previous, current)
        shares.append(common / len(current))
        blocks.append((common // BLOCK) * BLOCK / len(current))
    lengths = [len(p) for p in prompts]
    return {
        "prompts": len(prompts),
        "single_turn_prompts": lone,
        "median": _median(shares),
        "p10": sorted(shares)[len(shares) // 10] if shares else float("nan"),
        "mean": statistics.fmean(shares) if shares else float("nan"),
        "min": min(shares, default=float("nan")),
        "below_half": sum(s < 0.5 for s in shares),
        "block_median": _median(blocks),
        "block_mean": statistics.fmean(blocks) if blocks else float("nan"),
        "prompt_tokens_median": _median(lengths),
        "prompt_tokens_max": max(lengths, default=0),
        "shares": [round(s, 4) for s in shares],
    }


# -- report ------------------------------------------------------------------------------------------

def format_report(report: dict) -> str:
    out = ["(a) prompt assembly cost (ChatEngine: read state + window + build_messages + tokenize), median of "
           f"{report['parameters']['iterations']} each, alternated"]
    rows = []
    for key, label in (("equal_windows", "equal windows"), ("default_window", "default window")):
        cost = report["cost"][key]
        s, big = cost["small"], cost["large"]
        target = f"<= {TARGET_COST_RATIO:g}x" if key == "equal_windows" else "(info)"
        result = ("PASS" if cost["ratio"] <= TARGET_COST_RATIO else "MISS") if key == "equal_windows" else ""
        rows.append((f"{label}, {s['stored_turns']:,} stored", s["window_turns"], s["prompt_tokens"],
                     f"{s['read_state_us']:.0f}", f"{s['assemble_us']:.0f}", "", "", ""))
        rows.append((f"{label}, {big['stored_turns']:,} stored", big["window_turns"], big["prompt_tokens"],
                     f"{big['read_state_us']:.0f}", f"{big['assemble_us']:.0f}", f"{cost['ratio']:.2f}x",
                     target, result))
    out += table(("channel", "window", "tokens", "redis us", "total us", "ratio", "target", "result"), rows)
    out.append("")
    out.append(f"(b) prefix share over a scripted {report['parameters']['turns']}-turn group conversation "
               "(tiny tokenizer, chat template)")
    rows = []
    for key, share in report["prefix"].items():
        label = {"chunked": "chunked (default)", "sliding": "sliding (baseline)"}.get(key, "other settings")
        target = f">= {TARGET_MEDIAN_SHARE:g}" if key == "chunked" else ""
        result = ("PASS" if share["median"] >= TARGET_MEDIAN_SHARE else "MISS") if key == "chunked" else ""
        rows.append((label, f"{share['max_turns']}/{share['chunk_turns']}", share["prompts"],
                     share["single_turn_prompts"], f"{share['prompt_tokens_median']:.0f}", f"{share['median']:.3f}",
                     f"{share['p10']:.3f}", f"{share['mean']:.3f}", share["below_half"],
                     f"{share['block_median']:.3f}", target, result))
    out += table(("window", "turns/chunk", "prompts", "1-turn", "tokens", "median", "p10", "mean", "<0.5",
                   "block median", "target", "result"), rows)
    out.append("1-turn: prompts that held only the newest turn although the channel had more; "
               "<0.5: prompts sharing less than half; block: whole 16-token blocks only")
    env, p = report["environment"], report["parameters"]
    out.append("")
    out.append(f"default window: max_turns {p['max_turns']}, chunk_turns {p['chunk_turns']}, token_budget "
               f"{p['token_budget']}; Redis {env['redis_server']} ({env['redis']}); loading 100,000 turns took "
               f"{report['cost']['load_s']:.1f}s")
    out.append(f"machine: {env['cpus']} CPUs ({env['cpu_model']}), Python {env['python']}")
    return "\n".join(out)


async def bench(server: BenchRedis, workdir: Path, args) -> dict:
    keys = Keys("bench")
    model_dir = ensure_model("tiny", default_cache_dir(), progress=False)
    model = ScriptedModel(model_dir, max_model_len=1024)
    redis = async_client(server.url)
    try:
        env = environment(redis_server=await server_version(server.url), redis=server.kind)
        defaults = HistoryOptions()
        print(f"loading {args.small:,} and {args.large:,} turns ...", file=sys.stderr, flush=True)
        small = await load_channel(redis, keys, "bench:small", args.small, seed=1)
        t0 = time.perf_counter()
        large = await load_channel(redis, keys, "bench:large", args.large, seed=2)
        load_s = time.perf_counter() - t0
        cost = {"load_s": load_s}
        equal = replace(defaults, max_turns=args.small, chunk_turns=1)
        for key, options in (("equal_windows", equal), ("default_window", defaults)):
            print(f"assembly cost, {key.replace('_', ' ')} ({args.iterations} x 2) ...", file=sys.stderr, flush=True)
            chat = chat_engine(redis, keys, model, workdir / "adapters", options)
            cost[key] = await measure_cost(chat, small, large, args.iterations)
        steps = script(args.turns, seed=args.seed)
        prefix = {}
        variants = [("chunked", defaults), ("sliding", replace(defaults, chunk_turns=1))]
        variants += [(f"{m}:{c}", replace(defaults, max_turns=m, chunk_turns=c)) for m, c in args.also]
        for key, options in variants:
            print(f"prefix share, window {key} ({args.turns} turns) ...", file=sys.stderr, flush=True)
            prompts, lone = await run_conversation(redis, keys, model, workdir / "adapters", options, steps,
                                                   f"bench:group:{key}")
            prefix[key] = {"max_turns": options.max_turns, "chunk_turns": options.chunk_turns,
                           **prefix_shares(prompts, lone)}
    finally:
        await redis.aclose()
    chunked = prefix["chunked"]
    return {
        "benchmark": "history",
        "environment": env,
        "parameters": {"iterations": args.iterations, "turns": args.turns, "small": args.small, "large": args.large,
                       "seed": args.seed, "also": args.also, "max_turns": defaults.max_turns,
                       "chunk_turns": defaults.chunk_turns, "token_budget": defaults.token_budget},
        "cost": cost,
        "prefix": prefix,
        "targets": {
            "cost_ratio_max": TARGET_COST_RATIO, "cost_ratio_pass": cost["equal_windows"]["ratio"] <= TARGET_COST_RATIO,
            "median_share_min": TARGET_MEDIAN_SHARE, "median_share_pass": chunked["median"] >= TARGET_MEDIAN_SHARE,
        },
    }


def _window_setting(text: str) -> tuple[int, int]:
    turns, _, chunk = text.partition(":")
    if not (turns.isdigit() and chunk.isdigit() and int(turns) >= 1 and int(chunk) >= 1):
        raise argparse.ArgumentTypeError(f"{text!r} is not TURNS:CHUNK")
    return int(turns), int(chunk)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argument_parser(__doc__)
    parser.add_argument("--iterations", type=int, default=300, help="timed assemblies per channel and window")
    parser.add_argument("--small", type=int, default=10, help="turns stored in the small channel")
    parser.add_argument("--large", type=int, default=100_000, help="turns stored in the large channel")
    parser.add_argument("--turns", type=int, default=200, help="turns in the scripted group conversation")
    parser.add_argument("--seed", type=int, default=7, help="seed of the scripted conversation")
    parser.add_argument("--also", type=_window_setting, nargs="*", default=[(40, 20), (60, 20)],
                        metavar="TURNS:CHUNK", help="other max_turns:chunk_turns settings to run the script with")
    add_output_options(parser)
    args = parser.parse_args(argv)
    if args.iterations < 1 or args.small < 1 or args.large < args.small or args.turns < 3:
        parser.error("need --iterations >= 1, 1 <= --small <= --large and --turns >= 3")
    return args


def main(argv: list[str] | None = None) -> int:
    return run_benchmark(parse_args(argv), bench, format_report)


if __name__ == "__main__":
    sys.exit(main())
