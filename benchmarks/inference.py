"""Inference benchmark: the vLLM engine and the transformers+peft engine, base model vs LoRA adapters.

For each model (``tiny`` by default; ``--smollm2`` adds SmolLM2-135M; ``--model-dir`` any model
directory, e.g. a real model on a GPU) and each engine (``vllm``: ``inference.backends.vllm``,
vLLM's AsyncLLM with LoRA; ``hf``: ``inference.backends.hf``, transformers + peft), it measures:

* **single stream**: ``--single`` requests one after the other: time to first token (TTFT) and
  decode tokens/s (tokens after the first / time from the first to the last);
* **batched**: ``--batch`` requests sent at once: generated tokens/s over the wall time from the
  first request to the last reply (continuous batching in vLLM; the HF engine serves them one at a
  time, as it does in production);

each for three **variants**: ``base`` (no adapter), ``lora`` (every request with adapter A) and
``mix`` (requests alternate adapters A and B in one batch). It prints LoRA/base ratios per engine
and the vLLM/HF ratio per variant, all measured in the same run: one child process per model runs
both engines, and the measurement rounds interleave engines and variants (``--rounds``, medians),
so load from other processes hits them alike. The CPU time the engine's processes spent per
generated token (this process, plus vLLM's engine-core processes) is printed too: on a shared
machine it moves less than wall time.

Every request generates exactly ``--max-tokens`` tokens (end-of-sequence ignored, as in vLLM's own
throughput benchmark), greedy, from a distinct group-chat prompt of about 150-250 tokens built by
``doppel.prompt.build_messages``. The engines are the serving classes with ``complete``
overridden only to force that length and to time the first token. Adapters are rank ``--rank`` on
all linear layers with small random weights (shape, not content, sets the cost).

On a GPU (``torch.cuda.is_available()``) the same script runs in bfloat16 and also prints, per engine,
the single-stream decode rate against the memory-bandwidth bound: bandwidth / bytes of weights read
per token (all parameters at the serving dtype); ``--gpu-bandwidth`` overrides the bandwidth looked
up from the device name. Use ``--model-dir`` for a real model there.

Run from the repository root (the ``__main__`` guard matters: vLLM spawns its engine core)::

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/inference.py [--smollm2] [--engines vllm,hf] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from _harness import ROOT, add_output_options, argument_parser, emit, environment, use_offline_models

from doppel.prompt import Turn, build_messages, persona_prompt
from inference.backends.base import LoadedAdapter, Sampling
from inference.backends.hf import HFBackend
from inference.backends.vllm import VLLMBackend, VLLMOptions

use_offline_models()

VARIANTS = ("base", "lora", "mix")
ENGINES = ("vllm", "hf")
SPEAKERS = ("Ann", "Bob", "Cat", "Dev")

# Peak memory bandwidth (GB/s) by a fragment of torch.cuda.get_device_name(); first match wins.
GPU_BANDWIDTH_GBS = (
    ("B200", 8000), ("H200", 4800), ("GH200", 4000), ("H100 NVL", 3900), ("H100 PCIe", 2000), ("H100", 3350),
    ("H800", 3350), ("A100-SXM4-80GB", 2039), ("A100 80GB", 1935), ("A100", 1555), ("L40S", 864), ("L40", 864),
    ("L4", 300), ("A10G", 600), ("A10", 600), ("RTX 4090", 1008), ("RTX 3090", 936), ("A6000", 768),
    ("V100", 900), ("T4", 320),
)
_DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}

# Default workload per model, so the default run stays within minutes on a 2-core CPU; flags override.
WORKLOADS = {
    "tiny": {"max_tokens": 64, "single": 4, "batch": 8, "rounds": 3},  # single: per variant and round
    "smollm2": {"max_tokens": 16, "single": 1, "batch": 4, "rounds": 2},
    "cpu": {"max_tokens": 16, "single": 2, "batch": 4, "rounds": 1},      # another model on a CPU
    "gpu": {"max_tokens": 128, "single": 4, "batch": 32, "rounds": 3},    # any model on a GPU
}


def workload(args, label: str, on_gpu: bool) -> dict:
    profile = WORKLOADS.get(label) or WORKLOADS["gpu" if on_gpu else "cpu"]
    return {key: getattr(args, key) if getattr(args, key) is not None else value for key, value in profile.items()}


# -- workload ----------------------------------------------------------------------------------------

def make_prompts(count: int, seed: int, system: str) -> list[list[dict]]:
    """Distinct group-chat prompts (4-8 turns): only the persona is shared between them."""
    from training.offline_models.tiny_model import corpus_pairs

    rng = random.Random(seed)
    pairs = corpus_pairs()
    prompts = []
    for index in range(count):
        turns = []
        for i in range(rng.randint(4, 8)):
            question, answer = rng.choice(pairs)
            owner = i % 3 == 2
            turns.append(Turn("me" if owner else rng.choice(SPEAKERS), answer if owner else question,
                              1_700_000_000.0 + 60 * i, is_owner=owner))
        turns.append(Turn(rng.choice(SPEAKERS), f"#{index} {rng.choice(pairs)[0]}", 1_700_000_000.0 + 600))
        prompts.append(build_messages(system, turns, group=True))
    return prompts


def make_adapter(model_dir: Path, out: Path, rank: int, seed: int, dtype: str = "float32") -> Path:
    """A LoRA of ``rank`` on all linear layers with small random weights (non-zero, output near the base)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, dtype))
    config = LoraConfig(r=rank, lora_alpha=2 * rank, target_modules="all-linear", lora_dropout=0.0,
                        task_type="CAUSAL_LM")
    model = get_peft_model(model, config)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, 1e-3)
    model.save_pretrained(out)
    return out


def weights_bytes(model_dir: Path, dtype: str) -> int:
    """Bytes of all parameters at ``dtype``, from the safetensors headers (no weights are read)."""
    total = 0
    for file in sorted(Path(model_dir).glob("*.safetensors")):
        with open(file, "rb") as fh:
            (length,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(length))
        for name, info in header.items():
            if name != "__metadata__":
                numel = 1
                for dim in info["shape"]:
                    numel *= dim
                total += numel
    return total * _DTYPE_BYTES.get(dtype, 4)


def gpu_bandwidth_gbs(device_name: str) -> float | None:
    for fragment, gbs in GPU_BANDWIDTH_GBS:
        if fragment.lower() in device_name.lower():
            return float(gbs)
    return None


# -- engines that time their requests ----------------------------------------------------------------

@dataclass
class Stat:
    prompt_tokens: int
    tokens: int
    sent: float      # perf_counter when complete() was called
    first: float     # first generated token
    last: float      # last generated token


class _Stamps:
    """A transformers streamer that notes when each generated token arrives (the first put is the prompt)."""

    def __init__(self):
        self.times: list[float] = []
        self._prompt_seen = False

    def put(self, value) -> None:
        value.tolist()  # waits for the device, so the stamp is when the token exists
        if self._prompt_seen:
            self.times.append(time.perf_counter())
        self._prompt_seen = True

    def end(self) -> None:
        return None


class TimedHF(HFBackend):
    """``HFBackend`` generating exactly ``max_tokens`` tokens and timing them; otherwise its own code."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.stats: dict[str, Stat] = {}

    async def complete(self, request_id, messages, adapter, sampling) -> str:
        sent = time.perf_counter()
        async with self._lock:
            return await asyncio.to_thread(self._timed, request_id, sent, messages, adapter, sampling)

    def _timed(self, request_id: str, sent: float, messages, adapter, sampling: Sampling) -> str:
        import torch

        ids = self.prompt_ids(messages)
        max_new = max(1, min(sampling.max_tokens, self.max_model_len - len(ids)))
        inputs = torch.tensor([ids], device=self.device)
        stamps = _Stamps()
        kwargs = dict(max_new_tokens=max_new, min_new_tokens=max_new, repetition_penalty=sampling.repetition_penalty,
                      pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
                      do_sample=False, temperature=None, top_p=None, top_k=None, streamer=stamps)
        with self._adapter_context(adapter), torch.inference_mode():
            output = self.model.generate(inputs, attention_mask=torch.ones_like(inputs), **kwargs)
        new = output[0, len(ids):]
        self.stats[request_id] = Stat(len(ids), len(new), sent, stamps.times[0], stamps.times[-1])
        return self.tokenizer.decode(new, skip_special_tokens=True)


class TimedVLLM(VLLMBackend):
    """``VLLMBackend`` with ``ignore_eos`` (exactly ``max_tokens`` tokens) and the first token timed."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.stats: dict[str, Stat] = {}

    async def complete(self, request_id, messages, adapter, sampling) -> str:
        from vllm import SamplingParams

        sent = time.perf_counter()
        ids = self.prompt_ids(messages)
        params = SamplingParams(
            temperature=sampling.temperature, top_p=1.0, max_tokens=max(1, min(sampling.max_tokens,
                                                                              self.max_model_len - len(ids))),
            ignore_eos=True, repetition_penalty=sampling.repetition_penalty, seed=sampling.seed,
        )
        first = final = None
        async for output in self.engine.generate({"prompt_token_ids": ids}, params, request_id,
                                                 lora_request=self._lora(adapter) if adapter else None):
            if first is None and output.outputs and output.outputs[0].token_ids:
                first = time.perf_counter()
            final = output
        last = time.perf_counter()
        self.stats[request_id] = Stat(len(ids), len(final.outputs[0].token_ids), sent, first or last, last)
        return final.outputs[0].text


# -- measurement -------------------------------------------------------------------------------------

class CpuClock:
    """CPU seconds (user + system) of this process and, optionally, of its child processes."""

    def __init__(self, children: bool, me: bool = True):
        import psutil

        self.me = psutil.Process()
        self.children = children
        self.include_me = me

    def read(self) -> float:
        import psutil

        procs = ([self.me] if self.include_me else []) + (self.me.children(recursive=True) if self.children else [])
        total = 0.0
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                total += times.user + times.system
        return total


class Runner:
    def __init__(self, engine, clock: CpuClock, adapters: tuple[LoadedAdapter, LoadedAdapter],
                 prompts: list[list[dict]], sampling: Sampling):
        self.engine = engine
        self.clock = clock
        self.adapters = adapters
        self.prompts = prompts
        self.sampling = sampling
        self.sent = 0
        # CPU that other processes of this run (an idle vLLM) spent while this engine was measured.
        self.others: CpuClock | None = None
        self.others_cpu_s = 0.0
        self.measured_s = 0.0

    @contextlib.contextmanager
    def _bystanders(self):
        start, others = time.perf_counter(), self.others.read() if self.others else 0.0
        yield
        self.measured_s += time.perf_counter() - start
        if self.others:
            self.others_cpu_s += self.others.read() - others

    def adapter(self, variant: str, index: int) -> LoadedAdapter | None:
        if variant == "base":
            return None
        return self.adapters[index % 2] if variant == "mix" else self.adapters[0]

    def _next(self) -> tuple[str, list[dict]]:
        self.sent += 1
        return f"{self.engine.name}-{self.sent}", self.prompts[self.sent % len(self.prompts)]

    async def singles(self, count: int, into: dict[str, list]) -> None:
        """``count`` requests per variant, one at a time, the variants taking turns (request by request,
        so a burst of load from elsewhere hits them alike); appends (Stat, CPU seconds) to ``into``."""
        with self._bystanders():
            for i in range(count):
                for variant in VARIANTS[i % 3:] + VARIANTS[:i % 3]:
                    request_id, prompt = self._next()
                    cpu = self.clock.read()
                    await self.engine.complete(request_id, prompt, self.adapter(variant, i), self.sampling)
                    into.setdefault(variant, []).append((self.engine.stats.pop(request_id), self.clock.read() - cpu))

    @staticmethod
    def single_figures(samples: list[tuple[Stat, float]]) -> dict:
        stats = [s for s, _ in samples]
        return {"ttft_ms": statistics.median((s.first - s.sent) * 1000 for s in stats),
                "decode_tps": statistics.median((s.tokens - 1) / (s.last - s.first) for s in stats
                                                if s.last > s.first),
                "e2e_tps": sum(s.tokens for s in stats) / sum(s.last - s.sent for s in stats),
                "cpu_ms_per_token": sum(cpu for _, cpu in samples) * 1000 / sum(s.tokens for s in stats),
                "requests": len(stats),
                "prompt_tokens": statistics.median(s.prompt_tokens for s in stats)}

    async def batch(self, variant: str, count: int) -> dict:
        requests = [(*self._next(), self.adapter(variant, i)) for i in range(count)]
        cpu = self.clock.read()
        start = time.perf_counter()
        with self._bystanders():
            await asyncio.gather(*(self.engine.complete(rid, prompt, adapter, self.sampling)
                                   for rid, prompt, adapter in requests))
        wall = time.perf_counter() - start
        cpu = self.clock.read() - cpu
        stats = [self.engine.stats.pop(rid) for rid, _, _ in requests]
        tokens = sum(s.tokens for s in stats)
        return {"tps": tokens / wall, "rps": count / wall, "wall_s": wall,
                "ttft_p50_ms": statistics.median((s.first - s.sent) * 1000 for s in stats),
                "cpu_ms_per_token": cpu * 1000 / tokens}


def _median_dicts(rounds: list[dict]) -> dict:
    return {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}


async def start_engine(name: str, model_dir: Path, args, max_model_len: int, on_gpu: bool):
    if name == "hf":
        engine = TimedHF(model_dir, dtype=args.dtype, device="cuda" if on_gpu else "cpu", max_model_len=max_model_len)
    else:
        engine = TimedVLLM(model_dir, VLLMOptions(
            dtype=args.dtype, max_model_len=max_model_len, max_loras=2, max_lora_rank=max(8, args.rank),
            max_cpu_loras=4, enforce_eager=not on_gpu, gpu_memory_utilization=args.gpu_memory_utilization,
            cpu_kv_cache_gb=args.cpu_kv_cache_gb))
    await engine.startup()
    return engine


async def bench_model(label: str, model_dir: Path, args, workdir: Path) -> dict:
    """Both engines on one model, rounds interleaved; what ``run_child`` writes as JSON."""
    import torch

    on_gpu = torch.cuda.is_available()
    config = json.loads((model_dir / "config.json").read_text())
    max_model_len = min(2048, int(config.get("max_position_embeddings", 2048)))
    p = workload(args, label, on_gpu)
    result: dict = {"model": label, "model_dir": str(model_dir), "dtype": args.dtype, "parameters": p,
                    "engines": {}, "errors": {}}
    log(f"{label}: making two rank-{args.rank} adapters ...")
    paths = [make_adapter(model_dir, workdir / f"{label}-adapter-{i}", args.rank, seed=i, dtype=args.dtype)
             for i in range(2)]
    adapters = (LoadedAdapter("a@v1", 1, paths[0]), LoadedAdapter("b@v1", 2, paths[1]))
    sampling = Sampling(temperature=0, max_tokens=p["max_tokens"], repetition_penalty=1.0)
    prompts = make_prompts(max(64, 4 * (p["single"] + p["batch"]) * p["rounds"]), seed=11,
                           system=persona_prompt("Mia"))
    runners: dict[str, Runner] = {}
    try:
        for name in args.engines:
            log(f"{label}: starting the {name} engine ...")
            started, engine = time.perf_counter(), None
            try:
                engine = await start_engine(name, model_dir, args, max_model_len, on_gpu)
                for adapter in adapters:
                    await engine.add_adapter(adapter)
            except Exception as exc:  # vLLM missing or failing must not cost the other engine's figures
                if engine is not None:
                    with contextlib.suppress(Exception):
                        await engine.shutdown()
                result["errors"][name] = f"{type(exc).__name__}: {exc}"[:500]
                log(f"{label}: {name} engine failed: {result['errors'][name]}")
                continue
            runners[name] = Runner(engine, CpuClock(children=name == "vllm"), adapters, prompts, sampling)
            result["engines"][name] = {"startup_s": time.perf_counter() - started}
        if "hf" in runners and "vllm" in runners:
            runners["hf"].others = CpuClock(children=True, me=False)  # vLLM's processes, idle meanwhile
        for name, runner in runners.items():  # warm-up: first requests, LoRA slots, kernels
            log(f"{label}: warming up {name} ...")
            await runner.singles(1, {})
            for variant in VARIANTS:
                await runner.batch(variant, min(p["batch"], 2))
            runner.others_cpu_s = runner.measured_s = 0.0
        singles: dict[str, dict[str, list]] = {name: {} for name in runners}
        batches: dict[tuple[str, str], list] = {}
        for r in range(p["rounds"]):
            for name, runner in runners.items():
                log(f"{label}: round {r + 1}/{p['rounds']}, {name} ...")
                await runner.singles(p["single"], singles[name])
                for variant in VARIANTS:
                    batches.setdefault((name, variant), []).append(await runner.batch(variant, p["batch"]))
        for (name, variant), rounds in batches.items():
            result["engines"][name][variant] = {"single": Runner.single_figures(singles[name][variant]),
                                                "batch": _median_dicts(rounds)}
        for name, runner in runners.items():
            if runner.others and runner.measured_s:
                result["engines"][name]["others_cpu_share"] = runner.others_cpu_s / runner.measured_s
    finally:
        for runner in runners.values():
            with contextlib.suppress(Exception):
                await runner.engine.shutdown()
    if on_gpu:
        name = torch.cuda.get_device_name(0)
        bandwidth = args.gpu_bandwidth or gpu_bandwidth_gbs(name)
        size = weights_bytes(model_dir, args.dtype)
        result["gpu"] = {"device": name, "bandwidth_gbs": bandwidth, "weights_bytes": size,
                         "bound_tps": bandwidth * 1e9 / size if bandwidth and size else None}
    return result


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- report ------------------------------------------------------------------------------------------

def _ratio(a: float | None, b: float | None) -> float:
    return a / b if a and b else float("nan")


def add_ratios(model: dict) -> None:
    engines = model["engines"]
    for results in engines.values():
        base = results.get("base")
        for variant in VARIANTS:
            if base and variant in results:
                v = results[variant]
                v["vs_base"] = {"decode_tps": _ratio(v["single"]["decode_tps"], base["single"]["decode_tps"]),
                                "batch_tps": _ratio(v["batch"]["tps"], base["batch"]["tps"])}
    if "vllm" in engines and "hf" in engines:
        model["vllm_vs_hf"] = {
            variant: {"decode_tps": _ratio(engines["vllm"][variant]["single"]["decode_tps"],
                                           engines["hf"][variant]["single"]["decode_tps"]),
                      "ttft": _ratio(engines["vllm"][variant]["single"]["ttft_ms"],
                                     engines["hf"][variant]["single"]["ttft_ms"]),
                      "batch_tps": _ratio(engines["vllm"][variant]["batch"]["tps"],
                                          engines["hf"][variant]["batch"]["tps"])}
            for variant in VARIANTS if variant in engines["vllm"] and variant in engines["hf"]}


def _table(header: tuple, rows: list[tuple]) -> list[str]:
    widths = [max(len(str(row[i])) for row in (header, *rows)) for i in range(len(header))]

    def line(row: tuple) -> str:
        pairs = enumerate(zip(row, widths, strict=True))
        cells = [str(c).ljust(w) if i < 3 else str(c).rjust(w) for i, (c, w) in pairs]
        return "  ".join(cells).rstrip()

    return [line(header), line(tuple("-" * w for w in widths)), *map(line, rows)]


def format_report(report: dict) -> str:
    rows = []
    for model in report["models"]:
        for engine, results in model["engines"].items():
            for variant in VARIANTS:
                if variant not in results:
                    continue
                s, b, x = results[variant]["single"], results[variant]["batch"], results[variant]["vs_base"]
                rows.append((model["model"], engine, variant, f"{s['ttft_ms']:.1f}", f"{s['decode_tps']:.1f}",
                             f"{x['decode_tps']:.2f}x", f"{s['cpu_ms_per_token']:.1f}", model["parameters"]["batch"],
                             f"{b['tps']:.1f}", f"{x['batch_tps']:.2f}x", f"{b['cpu_ms_per_token']:.1f}"))
    out = ["single stream: TTFT and decode tok/s of requests in sequence; batched: tok/s of N requests sent at once; "
           "x base: LoRA/base in the same engine"]
    out += _table(("model", "engine", "variant", "TTFT ms", "1-stream tok/s", "x base", "CPU ms/tok", "N",
                   "batch tok/s", "x base", "CPU ms/tok"), rows)
    ratios = [(m["model"], variant, f"{r['decode_tps']:.2f}x", f"{r['ttft']:.2f}x", f"{r['batch_tps']:.2f}x")
              for m in report["models"] for variant, r in m.get("vllm_vs_hf", {}).items()]
    if ratios:
        out += ["", "vLLM / HF (same run; TTFT: lower is better)"]
        out += _table(("model", "variant", "", "1-stream tok/s", "TTFT", "batch tok/s"),
                      [(m, v, "", a, t, b) for m, v, a, t, b in ratios])
    gpu_rows = []
    for model in report["models"]:
        gpu = model.get("gpu")
        if not gpu:
            continue
        for engine, results in model["engines"].items():
            if "base" in results:
                s = results["base"]["single"]
                bound = gpu["bound_tps"]
                gpu_rows.append((model["model"], engine, "base", f"{gpu['weights_bytes'] / 1e9:.2f}",
                                 f"{gpu['bandwidth_gbs'] or float('nan'):.0f}", f"{bound or float('nan'):.0f}",
                                 f"{s['decode_tps']:.0f}", f"{_ratio(s['decode_tps'], bound):.0%}",
                                 f"{s['ttft_ms']:.1f}"))
    if gpu_rows:
        device = next(m["gpu"]["device"] for m in report["models"] if m.get("gpu"))
        out += ["", f"GPU ({device}): single-stream decode vs the memory-bandwidth bound (bandwidth / weight bytes)"]
        out += _table(("model", "engine", "variant", "weights GB", "GB/s", "bound tok/s", "decode tok/s",
                       "of bound", "TTFT ms"), gpu_rows)
    out.append("")
    for model in report["models"]:
        starts = ", ".join(f"{e} {r['startup_s']:.0f}s" for e, r in model["engines"].items())
        p = model.get("parameters")
        if p:
            out.append(f"{model['model']}: {model['dtype']}, {p['max_tokens']} tokens per request (EOS ignored), "
                       f"greedy, prompts ~{_prompt_tokens(model)} tokens; per variant and round {p['single']} "
                       f"single-stream request(s) (variants taking turns) and a batch of {p['batch']}; "
                       f"{p['rounds']} round(s), engines taking turns; engine start-up {starts or 'none'}")
        share = model["engines"].get("hf", {}).get("others_cpu_share")
        if share is not None:
            out.append(f"{model['model']}: the idle vLLM processes used {share:.0%} of a core while HF was measured")
        for engine, error in model.get("errors", {}).items():
            out.append(f"{model['model']}: {engine} did not run: {error}")
    env = report["environment"]
    out.append(f"CPU ms/tok: CPU time of the engine's processes per generated token (vLLM: this process and its "
               f"engine core). machine: {env['cpus']} CPUs ({env['cpu_model']}), torch {env['torch']}, "
               f"vllm {env['vllm']}, transformers {env['transformers']}, peft {env['peft']}")
    return "\n".join(out)


def _prompt_tokens(model: dict) -> str:
    for results in model["engines"].values():
        if "base" in results:
            return f"{results['base']['single']['prompt_tokens']:.0f}"
    return "?"


def package_versions(*names: str) -> dict[str, str]:
    """Installed version of each package (its ``-cpu`` build counts), or "absent"."""
    from importlib.metadata import PackageNotFoundError, version

    def v(name: str) -> str:
        for dist in (name, f"{name}-cpu"):
            with contextlib.suppress(PackageNotFoundError):
                return version(dist)
        return "absent"

    return {name: v(name) for name in names}


# -- processes ---------------------------------------------------------------------------------------

def resolve_models(args) -> list[tuple[str, Path]]:
    from training.offline_models import default_cache_dir, ensure_model

    names = list(args.models if args.models is not None else ([] if args.model_dir else ["tiny"]))
    if args.smollm2 and "smollm2" not in names:
        names.append("smollm2")
    models = [(name, ensure_model(name, default_cache_dir(), progress=False)) for name in names]
    if args.model_dir:
        models.append((Path(args.model_dir).name, Path(args.model_dir)))
    return models


def run_child(args) -> int:
    """One model, both engines (``--child LABEL DIR OUT``)."""
    label, model_dir, out = args.child
    with tempfile.TemporaryDirectory(prefix="doppel-bench-") as tmp:
        result = asyncio.run(bench_model(label, Path(model_dir), args, Path(tmp)))
    Path(out).write_text(json.dumps(result))
    return 0


def child_argv(args, label: str, model_dir: Path, out: Path) -> list[str]:
    argv = [sys.executable, str(Path(__file__).resolve()), "--child", label, str(model_dir), str(out),
            "--engines", ",".join(args.engines), "--rank", str(args.rank), "--dtype", args.dtype,
            "--cpu-kv-cache-gb", str(args.cpu_kv_cache_gb),
            "--gpu-memory-utilization", str(args.gpu_memory_utilization)]
    for key in ("max_tokens", "single", "batch", "rounds"):
        if getattr(args, key) is not None:
            argv += [f"--{key.replace('_', '-')}", str(getattr(args, key))]
    if args.gpu_bandwidth:
        argv += ["--gpu-bandwidth", str(args.gpu_bandwidth)]
    return argv


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return run_child(args)
    machine = environment(**package_versions("torch", "vllm", "transformers", "peft"))
    report = {"benchmark": "inference", "environment": machine, "models": [],
              "parameters": {k: getattr(args, k) for k in ("engines", "rank", "dtype", "timeout")}}
    with tempfile.TemporaryDirectory(prefix="doppel-bench-") as tmp:
        for label, model_dir in resolve_models(args):
            out = Path(tmp) / f"{label}.json"
            env = {"VLLM_LOGGING_LEVEL": "WARNING", **os.environ, "PYTHONPATH": str(ROOT),
                   "VLLM_CPU_KVCACHE_SPACE": str(args.cpu_kv_cache_gb)}
            try:  # the child's stdout (vLLM logs there) goes to stderr: stdout is the table alone
                done = subprocess.run(child_argv(args, label, model_dir, out), env=env, cwd=ROOT, stdout=sys.stderr,
                                      timeout=args.timeout, check=False)
                failure = None if done.returncode == 0 and out.is_file() else f"exit code {done.returncode}"
            except subprocess.TimeoutExpired:
                failure = f"timed out after {args.timeout:g}s"
            if failure:
                report["models"].append({"model": label, "dtype": args.dtype, "engines": {},
                                         "errors": {"all": f"the benchmark process failed: {failure}"}})
                continue
            model = json.loads(out.read_text())
            add_ratios(model)
            report["models"].append(model)
    emit(report, format_report, args.json_path)
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argument_parser(__doc__)
    parser.add_argument("--models", type=lambda s: [m for m in s.split(",") if m], default=None,
                        help="comma-separated offline models: tiny, smollm2 (default: tiny, none with --model-dir)")
    parser.add_argument("--smollm2", action="store_true", help="also run SmolLM2-135M (slower: minutes on a CPU)")
    parser.add_argument("--model-dir", default=None,
                        help="also run this model directory (e.g. a real model on a GPU); alone unless --models")
    parser.add_argument("--engines", type=lambda s: [e for e in s.split(",") if e], default=list(ENGINES),
                        help="comma-separated: vllm, hf")
    defaults = "; ".join(f"{name}: " + ", ".join(f"{v} {k}" for k, v in w.items()) for name, w in WORKLOADS.items())
    parser.add_argument("--max-tokens", type=int, default=None, help="tokens generated per request (EOS ignored)")
    parser.add_argument("--single", type=int, default=None, help="sequential requests per single-stream measurement")
    parser.add_argument("--batch", type=int, default=None, help="concurrent requests per batched measurement")
    parser.add_argument("--rounds", type=int, default=None,
                        help=f"interleaved measurement rounds, medians reported (defaults by model: {defaults})")
    parser.add_argument("--rank", type=int, default=8, help="LoRA rank of the two adapters")
    parser.add_argument("--dtype", default=None, help="float32 on a CPU, bfloat16 on a GPU unless given")
    parser.add_argument("--cpu-kv-cache-gb", type=int, default=1, help="vLLM-cpu KV cache (VLLM_CPU_KVCACHE_SPACE)")
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.6,
                        help="vLLM's share of GPU memory (the HF engine shares the GPU in the same run)")
    parser.add_argument("--gpu-bandwidth", type=float, default=None,
                        help="GPU memory bandwidth in GB/s (default: looked up from the device name)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds each model's run may take")
    add_output_options(parser)
    parser.add_argument("--child", nargs=3, metavar=("LABEL", "DIR", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if unknown := set(args.models or ()) - {"tiny", "smollm2"}:
        parser.error(f"unknown model(s) {', '.join(sorted(unknown))}; allowed: tiny, smollm2 (or --model-dir)")
    if unknown := set(args.engines) - set(ENGINES):
        parser.error(f"unknown engine(s) {', '.join(sorted(unknown))}; allowed: {', '.join(ENGINES)}")
    given = [v for v in (args.single, args.batch, args.rounds) if v is not None]
    if min(given, default=1) < 1 or (args.max_tokens is not None and args.max_tokens < 2):
        parser.error("--max-tokens >= 2, --single, --batch and --rounds >= 1")
    if args.dtype is None:
        args.dtype = "bfloat16" if _cuda_available() else "float32"
    return args


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


if __name__ == "__main__":
    sys.exit(main())
