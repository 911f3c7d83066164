"""Training-step benchmark: padded batches vs Doppel's packed, padding-free batches on the same data.

What it does:

1. builds chat samples shaped like ``doppel data build``'s (one per owner reply, with up to 10
   earlier turns of its session as context: uneven lengths) from the tiny model's corpus, and
   encodes them with ``training.sft.dataset.encode`` (loss on the owner's reply only), once;
2. loads the base model with a LoRA twice, exactly as ``training.sft.trainer`` does, once per mode,
   and times ``--steps`` training steps (forward, backward, AdamW step) of each after ``--warmup``
   unmeasured ones, on the same batches. The two modes take turns step by step (alternating
   which goes first), so a machine whose load changes during the run -- a shared CI box -- slows
   both alike:

   * **padded**: ``training.sft.dataset.padded_collator``, each batch padded to its longest sample,
     transformers' SDPA attention with the padding mask;
   * **packed**: ``training.sft.dataset.packed_collator``, the batch in one row without padding, with
     ``training.sft.attention``'s per-sample attention;

3. measures each mode's peak memory in a fresh process of its own (resident set on a CPU,
   ``max_memory_allocated`` on a GPU);
4. prints effective tokens/s (real tokens, padding excluded), the share of padding, the median
   step time and the peak memory per mode, and the packed/padded speed-up against the target
   (>= 1.3x).

On a CPU it runs the ``tiny`` preset; on a GPU the same script runs ``--preset`` (e.g. smollm2,
or qwen2.5-1.5b where the model is available) in bf16 and reports tokens/s per GPU and peak VRAM.
``--json PATH`` writes the figures. Run from the repository root::

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/train.py [--preset tiny] [--steps 30] [--batch-size 8]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TARGET_SPEEDUP = 1.3


def make_records(count: int, seed: int, context_turns: int = 10) -> list[dict]:
    """ShareGPT samples shaped like ``doppel data build``'s: chat sessions of 1-20 exchanges (most
    of them short) from the tiny model's corpus (friends' messages now and then several lines long, the owner sometimes
    answering in a burst of two or three messages), one
    sample per owner reply with up to ``context_turns`` earlier turns of its session. Early replies
    of a session have little context and late ones a full window: the uneven lengths of real data."""
    from doppel.prompt import Turn, build_messages, join_burst, persona_prompt
    from training.offline_models.tiny_model import corpus_pairs

    rng = random.Random(seed)
    pairs = corpus_pairs()
    system = persona_prompt("Mia")
    records: list[dict] = []
    while len(records) < count:
        turns: list[Turn] = []
        # Most chat sessions are short (a question, a reply, "see ya"); a few run long.
        exchanges = 1
        while rng.random() < 0.75 and exchanges < 20:
            exchanges += 1
        for question, answer in rng.sample(pairs, exchanges):
            # Chat message lengths are heavy-tailed: now and then a friend writes a paragraph.
            while rng.random() < 0.35:
                question += " " + rng.choice(pairs)[0]
            turns.append(Turn("Ann", question))
            extra = [a for _, a in rng.sample(pairs, rng.choice((0, 0, 0, 1, 2)))]
            turns.append(Turn("Mia", join_burst([answer, *extra]), is_owner=True))
            window = turns[-(context_turns + 1):]
            while window[0].is_owner:
                window = window[1:]
            messages = build_messages(system, window, group=False)
            records.append({"conversations": [{"from": "human" if m["role"] == "user" else "gpt",
                                               "value": m["content"]} for m in messages[1:]],
                            "system": messages[0]["content"]})
    return records[:count]


class Runner:
    """One mode's model (base + LoRA, as ``training.sft.trainer`` builds it), collator and optimizer."""

    def __init__(self, mode: str, preset: str):
        import torch
        from peft import get_peft_model
        from transformers import set_seed

        from training.sft.dataset import packed_collator, padded_collator
        from training.sft.modeling import load_model, load_tokenizer, lora_config, pick_device, resolve_base
        from training.sft.presets import load_preset

        self.mode = mode
        config = load_preset(preset, overrides={"packing": mode == "packed"})
        self.device = pick_device()
        base = resolve_base(config.base_model)
        tokenizer = load_tokenizer(base)
        set_seed(0)
        self.model = get_peft_model(load_model(base, self.device, for_training=True, packed=mode == "packed"),
                                    lora_config(config))
        self.model.train()
        self.collate = packed_collator() if mode == "packed" else padded_collator(tokenizer)
        self.optimizer = torch.optim.AdamW([p for p in self.model.parameters() if p.requires_grad],
                                           lr=config.learning_rate)

    def step(self, rows: list[dict]) -> tuple[float, int, int]:
        """Seconds, real tokens and computed (padded) tokens of one training step on ``rows``."""
        import torch

        cuda = self.device.name == "cuda"
        batch = self.collate(rows)
        batch = {k: v.to(self.device.name) if hasattr(v, "to") else v for k, v in batch.items()}
        if cuda:
            torch.cuda.synchronize()
        began = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            loss = self.model(**batch).loss
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if cuda:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - began
        mask = batch.get("attention_mask")
        real = int(mask.sum()) if mask is not None else batch["input_ids"].numel()
        return seconds, real, batch["input_ids"].numel()


def batches(rows: list[dict], batch_size: int, count: int) -> list[list[dict]]:
    return [[rows[(step * batch_size + i) % len(rows)] for i in range(batch_size)] for step in range(count)]


def peak_memory(mode: str, preset: str, rows: list[dict], batch_size: int, steps: int) -> float:
    """Peak memory (MB) of a few training steps of one mode; call in a fresh process."""
    import torch

    runner = Runner(mode, preset)
    if runner.device.name == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for batch in batches(rows, batch_size, steps):
        runner.step(batch)
    peak = (torch.cuda.max_memory_allocated() if runner.device.name == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return round(peak / 2**20, 1)


def speed(preset: str, rows: list[dict], batch_size: int, steps: int, warmup: int) -> dict:
    """Both modes in one process, step by step in alternating order on the same batches, so that
    a machine whose load changes during the run slows both alike."""
    runners = {mode: Runner(mode, preset) for mode in ("padded", "packed")}
    times: dict[str, list[float]] = {mode: [] for mode in runners}
    real = dict.fromkeys(runners, 0)
    computed = dict.fromkeys(runners, 0)
    for index, batch in enumerate(batches(rows, batch_size, warmup + steps)):
        order = list(runners) if index % 2 else list(reversed(runners))
        for mode in order:
            seconds, n_real, n_computed = runners[mode].step(batch)
            if index >= warmup:
                times[mode].append(seconds)
                real[mode] += n_real
                computed[mode] += n_computed
    device = runners["packed"].device
    results = {}
    for mode, values in times.items():
        median = sorted(values)[len(values) // 2]
        results[mode] = {"mode": mode, "device": f"{device.name}/{device.dtype}", "steps": steps,
                         "batch_size": batch_size, "real_tokens": real[mode], "computed_tokens": computed[mode],
                         "padding_share": round(1 - real[mode] / computed[mode], 4),
                         "seconds": round(sum(values), 3), "median_step_ms": round(1000 * median, 1),
                         "tokens_per_s": round(real[mode] / sum(values), 1)}
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--samples", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="Also write the figures here.")
    parser.add_argument("--measure", choices=["padded", "packed"], help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    if args.measure:  # a child process measuring one mode's peak memory
        rows = json.loads(args.rows.read_text())
        print("RESULT " + json.dumps(peak_memory(args.measure, args.preset, rows, args.batch_size, args.warmup + 3)))
        return 0

    from training.sft.dataset import EncodeStats, encode_all
    from training.sft.modeling import load_tokenizer, resolve_base
    from training.sft.presets import load_preset

    config = load_preset(args.preset)
    tokenizer = load_tokenizer(resolve_base(config.base_model))
    stats = EncodeStats()
    rows = encode_all(tokenizer, make_records(args.samples, args.seed), config.max_length, config.train_on, stats)
    random.Random(args.seed).shuffle(rows)
    lengths = sorted(len(r["input_ids"]) for r in rows)
    print(f"{len(rows)} samples, {lengths[0]}-{lengths[-1]} tokens (median {lengths[len(lengths) // 2]}); "
          f"preset {args.preset}, batch {args.batch_size}, {args.steps} timed steps after {args.warmup} warm-up; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    results = speed(args.preset, rows, args.batch_size, args.steps, args.warmup)
    with tempfile.TemporaryDirectory() as tmp:
        rows_path = Path(tmp) / "rows.json"
        rows_path.write_text(json.dumps(rows))
        for mode in ("padded", "packed"):
            command = [sys.executable, __file__, "--measure", mode, "--rows", str(rows_path), "--preset", args.preset,
                       "--batch-size", str(args.batch_size), "--warmup", str(args.warmup)]
            done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
            lines = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
            if done.returncode or not lines:
                print(done.stderr[-3000:], file=sys.stderr)
                return 1
            results[mode]["peak_memory_mb"] = json.loads(lines[-1][len("RESULT "):])
    print(f"{'mode':<8}{'tokens/s':>10}{'padding':>9}{'median step ms':>16}{'peak MB':>9}   device")
    for mode, r in results.items():
        print(f"{mode:<8}{r['tokens_per_s']:>10.0f}{r['padding_share']:>9.1%}{r['median_step_ms']:>16.1f}"
              f"{r['peak_memory_mb']:>9.0f}   {r['device']}")
    speedup = results["packed"]["tokens_per_s"] / results["padded"]["tokens_per_s"]
    verdict = "meets" if speedup >= TARGET_SPEEDUP else "BELOW"
    print(f"packed / padded effective tokens/s: {speedup:.2f}x ({verdict} the {TARGET_SPEEDUP}x target)")
    if args.json:
        args.json.write_text(json.dumps({"preset": args.preset, "results": results, "speedup": round(speedup, 3),
                                         "target": TARGET_SPEEDUP}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
