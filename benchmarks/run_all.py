"""Benchmark report: runs every benchmark script that writes JSON and writes ``docs/benchmarks.md``.

What it does, in one run on one machine:

1. finds the scripts in ``benchmarks/`` (this one aside) whose ``--help`` offers ``--json``;
   ``--only`` / ``--skip`` choose among them, ``--list`` shows them;
2. runs each as ``python SCRIPT --json FILE [--args NAME=...]`` in its own process group with a
   time limit (``--timeout``, or ``--timeout-for NAME=SECONDS``): past it the group gets SIGINT
   (so a benchmark's ``finally`` stops the Redis and workers it started), then SIGKILL;
3. reads the figures from each JSON file. A benchmark's figures are ratios to a baseline that
   the same benchmark measured in the same run (relay vs a bare stream round trip, 3 workers vs
   1, packed vs padded batches...). Scripts state them in a ``figures`` list (the convention,
   below); for the scripts written before it, an adapter here reads their own JSON. Where a
   script has no baseline of its own, this runner measures one (the data pipeline against a
   bare ``json.load`` of the same export). Anything else is listed as "no baseline";
4. writes the report: machine (CPU model, cores, memory), date, commit, each benchmark's figures
   with value, baseline and ratio, targets, what failed or timed out, and a GPU section: the
   GPUs found (``nvidia-smi``), or "no GPU was available"; decode rates next to their
   memory-bandwidth bound.

The ``figures`` convention (what ``benchmarks/scale.py`` writes)::

    {"figures": [{"name": "throughput, 3 workers", "value": 884.0, "unit": "req/s",
                  "baseline": "1 worker", "baseline_value": 288.0, "ratio": 3.07,
                  "higher_is_better": true, "target": ">= 2.5x", "pass": true,
                  "decode": {"weights_bytes": ..., "batch": 1, "kv_bytes_per_seq": 0,
                             "bandwidth_bytes_per_s": ...}}]}   # "decode": decode rates only

Run from the repository root::

    .venv/bin/python benchmarks/run_all.py                  # everything, default sizes
    .venv/bin/python benchmarks/run_all.py --quick          # smaller sizes (a few minutes on 2 cores)
    .venv/bin/python benchmarks/run_all.py --only relay scale --timeout 300
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import math
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from doppel.machine import cpu_model, memory_gib

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_OUT = ROOT / "docs" / "benchmarks.md"

# Smaller sizes for --quick: the same measurements, shorter runs (the ratios hold; absolute
# figures get noisier).
QUICK_ARGS = {
    "relay": ["--requests", "2000", "--warmup", "100"],
    "data_pipeline": ["--messages", "30000"],
    "train": ["--steps", "10", "--samples", "200"],
    "scale": ["--requests", "1500"],
    "history": ["--iterations", "100", "--large", "20000"],
    "hotswap": ["--duration", "10", "--baseline", "5"],
    "inference": ["--rounds", "1"],
}

# Peak memory bandwidth (bytes/s) from the vendors' datasheets, for the decode bound when a
# benchmark does not state it. Longest names first: "H100 NVL" before "H100".
GPU_BANDWIDTH = [
    ("GH200", 4.0e12), ("H200", 4.8e12), ("H100 NVL", 3.9e12), ("H100 PCIe", 2.0e12), ("H100", 3.35e12),
    ("A100-SXM4-80GB", 2.039e12), ("A100 80GB PCIe", 1.935e12), ("A100", 1.555e12), ("L40S", 0.864e12),
    ("L40", 0.864e12), ("L4", 0.3e12), ("A10G", 0.6e12), ("A10", 0.6e12), ("T4", 0.32e12),
    ("RTX 4090", 1.008e12), ("RTX 3090", 0.936e12),
]


@dataclass
class Figure:
    name: str
    value: float
    unit: str = ""
    baseline: str = ""
    baseline_value: float | None = None
    ratio: float | None = None
    higher_is_better: bool = True
    target: str = ""
    passed: bool | None = None
    decode: dict | None = None


@dataclass
class Result:
    name: str
    script: Path
    status: str = "ok"            # ok, failed, timed out, no JSON
    seconds: float = 0.0
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    output_tail: str = ""


# -- discovery and running -----------------------------------------------------------------------

def discover(bench_dir: Path, timeout_s: float = 60.0) -> tuple[list[Path], list[Path]]:
    """(scripts whose --help offers --json, scripts that do not)."""
    with_json, without = [], []
    for script in sorted(bench_dir.glob("*.py")):
        if script.name == Path(__file__).name or script.name.startswith("_"):
            continue
        try:
            help_text = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True,
                                       timeout=timeout_s, cwd=ROOT).stdout
        except subprocess.TimeoutExpired:
            help_text = ""
        (with_json if re.search(r"--json\b", help_text) else without).append(script)
    return with_json, without


def run_script(script: Path, json_path: Path, extra: list[str], timeout_s: float) -> tuple[str, float, str]:
    """Run one benchmark; returns (status, seconds, output tail). Bounded by ``timeout_s``."""
    started = time.monotonic()
    with tempfile.TemporaryFile(mode="w+") as output:
        process = subprocess.Popen([sys.executable, str(script), "--json", str(json_path), *extra], cwd=ROOT,
                                   stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            code = process.wait(timeout_s)
            status = "ok" if code == 0 else f"failed (exit {code})"
        except subprocess.TimeoutExpired:
            status = f"timed out after {timeout_s:.0f} s"
            _stop_group(process)
        output.seek(0)
        tail = output.read()[-4000:]
    if status == "ok" and not json_path.exists():
        status = "no JSON written"
    # A benchmark that misses its own target exits non-zero (data_pipeline does) but still
    # wrote its figures: report them, with the status.
    if status.startswith("failed") and json_path.exists():
        status += ", figures written"
    return status, time.monotonic() - started, tail


def _stop_group(process: subprocess.Popen) -> None:
    """SIGINT first (Python runs ``finally`` blocks: child servers get stopped), then SIGKILL."""
    for signum, wait_s in ((signal.SIGINT, 20), (signal.SIGKILL, 5)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signum)
        try:
            process.wait(wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


# -- reading figures -------------------------------------------------------------------------------

def _ratio(value: float | None, baseline: float | None) -> float | None:
    if value is None or not baseline:
        return None
    return value / baseline


def figures_from_convention(data: dict) -> list[Figure]:
    out = []
    for item in data.get("figures", []):
        value, base = item.get("value"), item.get("baseline_value")
        out.append(Figure(name=item["name"], value=value, unit=item.get("unit", ""), baseline=item.get("baseline", ""),
                          baseline_value=base, ratio=item.get("ratio", _ratio(value, base)),
                          higher_is_better=item.get("higher_is_better", True), target=item.get("target", ""),
                          passed=item.get("pass"), decode=item.get("decode")))
    return out


def figures_relay(data: dict) -> list[Figure]:
    relay, bare, targets = data["relay"], data["bare"], data.get("targets", {})
    out = []
    for key, label in (("p50_ms", "latency p50"), ("p99_ms", "latency p99"), ("max_ms", "latency max")):
        value, base = relay["latency"][key], bare["latency"][key]
        figure = Figure(f"{label}, relay", value, "ms", "bare stream round trip", base, _ratio(value, base),
                        higher_is_better=False)
        if key == "p99_ms" and "p99_ratio_max" in targets:
            figure.target, figure.passed = f"<= {targets['p99_ratio_max']:g}x", targets.get("p99_ratio_pass")
        out.append(figure)
    value, base = relay["throughput"]["rps"], bare["throughput"]["rps"]
    figure = Figure("throughput, relay through one worker", value, "req/s", "bare stream round trip", base,
                    _ratio(value, base))
    if "rps_min" in targets:
        figure.target, figure.passed = f">= {targets['rps_min']:,.0f} req/s", targets.get("rps_pass")
    out.append(figure)
    return out


def figures_train(data: dict) -> list[Figure]:
    padded, packed = data["results"]["padded"], data["results"]["packed"]
    device = packed.get("device", "")
    target = data.get("target", 1.3)
    speedup = data.get("speedup") or _ratio(packed["tokens_per_s"], padded["tokens_per_s"]) or 0
    out = [Figure(f"effective tokens/s, packed{f' ({device})' if device else ''}", packed["tokens_per_s"],
                  "tokens/s", "padded batches", padded["tokens_per_s"],
                  _ratio(packed["tokens_per_s"], padded["tokens_per_s"]), target=f">= {target:g}x",
                  passed=speedup >= target)]
    step = "median_step_ms" if "median_step_ms" in packed else "step_ms"
    if step in packed and step in padded:
        out.append(Figure("step time, packed", packed[step], "ms", "padded batches", padded[step],
                          _ratio(packed[step], padded[step]), higher_is_better=False))
    if "peak_memory_mb" in packed and "peak_memory_mb" in padded:
        out.append(Figure("peak memory, packed", packed["peak_memory_mb"], "MB", "padded batches",
                          padded["peak_memory_mb"], _ratio(packed["peak_memory_mb"], padded["peak_memory_mb"]),
                          higher_is_better=False))
    return out


def figures_data_pipeline(data: dict) -> list[Figure]:
    """The pipeline's time and memory against ``json.load`` of the same export (measured by
    ``baseline_data_pipeline``, stored under ``_baseline``), with the issue's absolute targets."""
    base = data.get("_baseline", {})
    scale = data["messages"] / 100_000
    out = [Figure(f"import + build, {data['messages']:,} messages", data["total_s"], "s",
                  "json.load of the same export", base.get("parse_s"), _ratio(data["total_s"], base.get("parse_s")),
                  higher_is_better=False, target=f"<= {10 * scale:.1f} s", passed=data["total_s"] <= 10 * scale),
           Figure("peak memory (RSS)", data["peak_rss_mb"], "MB", "json.load of the same export",
                  base.get("peak_rss_mb"), _ratio(data["peak_rss_mb"], base.get("peak_rss_mb")),
                  higher_is_better=False, target="<= 1024 MB", passed=data["peak_rss_mb"] <= 1024)]
    return out


def figures_history(data: dict) -> list[Figure]:
    cost, prefix, targets = data["cost"], data["prefix"], data.get("targets", {})
    out = []
    for key, label in (("equal_windows", "same window"), ("default_window", "default window")):
        small, large = cost[key]["small"], cost[key]["large"]
        figure = Figure(f"prompt assembly, {large['stored_turns']:,} turns stored ({label})", large["assemble_us"],
                        "us", f"{small['stored_turns']:,} turns stored", small["assemble_us"], cost[key]["ratio"],
                        higher_is_better=False)
        if key == "equal_windows":
            figure.target = f"<= {targets.get('cost_ratio_max', 1.5):g}x"
            figure.passed = targets.get("cost_ratio_pass")
        out.append(figure)
    chunked, sliding = prefix["chunked"], prefix.get("sliding")
    out.append(Figure("prompt prefix shared with the previous prompt, median (chunked window)", chunked["median"],
                      "", "sliding window", sliding["median"] if sliding else None,
                      _ratio(chunked["median"], sliding["median"] if sliding else None),
                      target=f"median >= {targets.get('median_share_min', 0.8):g}",
                      passed=targets.get("median_share_pass")))
    return out


def figures_hotswap(data: dict) -> list[Figure]:
    base, swap = data["baseline"], data["swapping"]
    out = [Figure("requests/s while swapping every interval", swap["rps"], "req/s", "no swaps", base["rps"],
                  _ratio(swap["rps"], base["rps"])),
           Figure("latency p50 while swapping", swap["latency_p50_ms"], "ms", "no swaps", base["latency_p50_ms"],
                  _ratio(swap["latency_p50_ms"], base["latency_p50_ms"]), higher_is_better=False),
           Figure("latency p99 while swapping", swap["latency_p99_ms"], "ms", "no swaps", base["latency_p99_ms"],
                  _ratio(swap["latency_p99_ms"], base["latency_p99_ms"]), higher_is_better=False)]
    for key, label in (("failed", "failed requests"), ("wrong_text", "replies by the wrong version"),
                       ("stale", "stale replies after a swap")):
        # Counts whose target is zero: the baseline phase's count is shown, a ratio of counts is not.
        out.append(Figure(f"{label} while swapping", swap[key], "", "no swaps", base[key], None,
                          higher_is_better=False, target="0", passed=swap[key] == 0))
    return out


def figures_inference(data: dict) -> list[Figure]:
    out = []
    for model in data["models"]:
        label, engines, gpu = model["model"], model["engines"], model.get("gpu")
        for engine, results in engines.items():
            base = results.get("base")
            for variant in ("base", "lora", "mix"):
                if variant not in results or not base:
                    continue
                single, batch = results[variant]["single"], results[variant]["batch"]
                decode = None
                if gpu and gpu.get("weights_bytes"):
                    decode = {"weights_bytes": gpu["weights_bytes"], "batch": 1, "kv_bytes_per_seq": 0,
                              "bandwidth_bytes_per_s": (gpu.get("bandwidth_gbs") or 0) * 1e9 or None}
                out.append(Figure(f"{label} {engine} {variant}: decode, single stream", single["decode_tps"],
                                  "tokens/s", f"{engine} base", base["single"]["decode_tps"],
                                  _ratio(single["decode_tps"], base["single"]["decode_tps"]), decode=decode))
                out.append(Figure(f"{label} {engine} {variant}: batched", batch["tps"], "tokens/s", f"{engine} base",
                                  base["batch"]["tps"], _ratio(batch["tps"], base["batch"]["tps"])))
        if "vllm" in engines and "hf" in engines:
            for variant in ("base", "lora", "mix"):
                if variant in engines["vllm"] and variant in engines["hf"]:
                    value, hf = engines["vllm"][variant]["batch"]["tps"], engines["hf"][variant]["batch"]["tps"]
                    out.append(Figure(f"{label} vllm {variant}: batched, against transformers+peft", value,
                                      "tokens/s", f"hf {variant}", hf, _ratio(value, hf)))
        for engine, error in model.get("errors", {}).items():
            out.append(Figure(f"{label} {engine}: failed ({error[:80]})", float("nan")))
    return out


_PARSE_ONLY = """
import json, resource, sys, time
started = time.perf_counter()
with open(sys.argv[1], encoding="utf-8") as handle:
    json.load(handle)
print(json.dumps({"parse_s": time.perf_counter() - started,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def baseline_data_pipeline(keep_dir: Path, timeout_s: float) -> dict:
    """Parse the benchmark's own export with ``json.load`` in a fresh process: the floor for any importer."""
    export = keep_dir / "result.json"
    if not export.exists():
        return {}
    done = subprocess.run([sys.executable, "-c", _PARSE_ONLY, str(export)], capture_output=True, text=True,
                          timeout=timeout_s)
    return json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else {}


def figures_generic(data: dict, prefix: str = "") -> list[Figure]:
    """Every number in a JSON without a known shape, with no ratio (flagged in the report)."""
    out = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, bool):
            continue
        if isinstance(value, int | float):
            out.append(Figure(name, value))
        elif isinstance(value, dict) and len(out) < 40:
            out += figures_generic(value, name + ".")
    return out[:40]


ADAPTERS: dict[str, Callable[[dict], list[Figure]]] = {
    "relay": figures_relay, "train": figures_train, "data_pipeline": figures_data_pipeline,
    "history": figures_history, "hotswap": figures_hotswap, "inference": figures_inference,
}


def read_figures(name: str, data: dict) -> tuple[list[Figure], list[str]]:
    if data.get("figures"):
        return figures_from_convention(data), []
    if name in ADAPTERS:
        try:
            return ADAPTERS[name](data), []
        except (KeyError, TypeError, ValueError, AttributeError, ZeroDivisionError) as exc:
            note = (f"its JSON no longer has the shape run_all.py reads ({type(exc).__name__}: {exc}), so its "
                    "numbers are listed as they are")
            return figures_generic(data), [note]
    return figures_generic(data), ["no baseline in its JSON: numbers listed without ratios"]


# -- machine ---------------------------------------------------------------------------------------

def machine() -> dict:
    info = {"cpu_model": cpu_model(), "cores": os.cpu_count(), "memory_gib": memory_gib(),
            "os": platform.platform(), "python": platform.python_version()}
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=ROOT, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True, cwd=ROOT,
                               timeout=10).stdout.strip()
        info["commit"] = commit + (" (with uncommitted changes)" if dirty else "") if commit else ""
    return info


def gpus(nvidia_smi: str | None = None) -> list[dict]:
    """The GPUs ``nvidia-smi`` lists (name, memory, driver), or [] when there is none."""
    nvidia_smi = nvidia_smi or shutil.which("nvidia-smi")
    if not nvidia_smi:
        return []
    try:
        done = subprocess.run([nvidia_smi, "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return []
    found = []
    for line in done.stdout.splitlines() if done.returncode == 0 else []:
        parts = [part.strip() for part in line.split(",")]
        if len(parts) == 3:
            found.append({"name": parts[0], "memory": parts[1], "driver": parts[2],
                          "bandwidth_bytes_per_s": bandwidth_of(parts[0])})
    return found


def bandwidth_of(gpu_name: str) -> float | None:
    for key, bandwidth in GPU_BANDWIDTH:
        if key.lower() in gpu_name.lower():
            return bandwidth
    return None


def decode_bound(decode: dict, gpu_list: list[dict]) -> tuple[float | None, str]:
    """Tokens/s that memory bandwidth allows for a decode step, and the formula with its numbers.

    Each step streams every weight once (shared by the batch) plus each sequence's KV cache, so
    ``tokens/s <= batch * bandwidth / (weights + batch * kv_per_seq)``; at batch 1 with a short
    context this is ``bandwidth / weights``.
    """
    bandwidth = decode.get("bandwidth_bytes_per_s") or next(
        (gpu["bandwidth_bytes_per_s"] for gpu in gpu_list if gpu["bandwidth_bytes_per_s"]), None)
    weights, batch, kv = decode.get("weights_bytes"), decode.get("batch", 1), decode.get("kv_bytes_per_seq", 0)
    if not bandwidth or not weights:
        return None, "bound unknown (needs weights_bytes and the GPU's bandwidth)"
    bound = batch * bandwidth / (weights + batch * kv)
    return bound, (f"{batch} x {bandwidth / 1e12:.2f} TB/s / ({weights / 1e9:.2f} GB weights + {batch} x "
                   f"{kv / 1e9:.3f} GB KV) = {bound:,.0f} tokens/s")


# -- the report ------------------------------------------------------------------------------------

def _number(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, int):  # counts
        return f"{value:,}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:,.2f}"
    return f"{value:.3g}"


def _ratio_cell(figure: Figure) -> str:
    if figure.ratio is None or (isinstance(figure.ratio, float) and math.isnan(figure.ratio)):
        return "no baseline" if figure.baseline_value is None else "-"
    better = "higher is better" if figure.higher_is_better else "lower is better"
    return f"**{figure.ratio:.2f}x** ({better})"


def render(results: list[Result], skipped: dict[str, str], info: dict, gpu_list: list[dict], when: dt.datetime,
           command: str) -> str:
    """The Markdown report; ``skipped`` maps benchmarks not run to the reason."""
    lines = ["# Benchmarks", "",
             f"Generated by `{command}` on {when.strftime('%Y-%m-%d %H:%M UTC')}. Do not edit by hand: run it again.",
             "Every figure is a ratio to a baseline measured in the same run, on the same machine, so the ratios",
             "compare across machines better than the absolute numbers do.", "",
             "## Machine", "",
             f"- CPU: {info['cpu_model']}, {info['cores']} cores (as the OS counts them)",
             f"- memory: {info['memory_gib']} GiB" if info.get("memory_gib") else "- memory: unknown",
             f"- OS: {info['os']}; Python {info['python']}"]
    if info.get("commit"):
        lines.append(f"- commit: {info['commit']}")
    lines.append(f"- GPU: {', '.join(gpu['name'] for gpu in gpu_list) if gpu_list else 'none'}")
    lines += ["", "## Summary", "", "| benchmark | status | seconds | figures | targets met |", "|---|---|---|---|---|"]
    for result in results:
        targeted = [f for f in result.figures if f.target]
        met = f"{sum(bool(f.passed) for f in targeted)}/{len(targeted)}" if targeted else "-"
        lines.append(f"| [{result.name}](#{result.name.replace('_', '-')}) | {result.status} | "
                     f"{result.seconds:.0f} | {len(result.figures)} | {met} |")
    for name, reason in sorted(skipped.items()):
        lines.append(f"| {name} | not run ({reason}) | - | - | - |")
    for result in results:
        lines += ["", f"## {result.name.replace('_', '-')}", "",
                  f"`benchmarks/{result.script.name}`: {first_line(result.script)}", ""]
        if result.figures:
            lines += ["| figure | value | baseline (same run) | baseline value | ratio | target | result |",
                      "|---|---|---|---|---|---|---|"]
            for figure in result.figures:
                verdict = "" if figure.passed is None else ("PASS" if figure.passed else "MISS")
                unit = f" {figure.unit}" if figure.unit else ""
                base_unit = unit if figure.baseline_value is not None else ""
                lines.append(f"| {figure.name} | {_number(figure.value)}{unit} | {figure.baseline or '-'} | "
                             f"{_number(figure.baseline_value)}{base_unit} | {_ratio_cell(figure)} | "
                             f"{figure.target or '-'} | {verdict} |")
        for note in result.notes:
            lines += ["", f"Note: {note}."]
        if result.status != "ok":
            lines += ["", f"Status: {result.status}. Last lines of its output:", "", "```",
                      *result.output_tail.strip().splitlines()[-15:], "```"]
    lines += ["", "## GPU", ""]
    decode = [(result, figure) for result in results for figure in result.figures if figure.decode]
    if not gpu_list:
        lines += ["No GPU was available on this machine for this run, so there are no GPU figures: no decode",
                  "rates and no memory-bandwidth bound. Run `benchmarks/run_all.py` on a GPU machine to fill this",
                  "section (it lists the GPUs from `nvidia-smi`)."]
    else:
        lines += ["| GPU | memory | driver | peak memory bandwidth |", "|---|---|---|---|"]
        for gpu in gpu_list:
            bandwidth = f"{gpu['bandwidth_bytes_per_s'] / 1e12:.2f} TB/s" if gpu["bandwidth_bytes_per_s"] else "unknown"
            lines.append(f"| {gpu['name']} | {gpu['memory']} | {gpu['driver']} | {bandwidth} |")
    if decode:
        lines += ["", "Decode rates beside their memory-bandwidth bound: each decode step reads every weight once",
                  "(shared by the batch) and each sequence's KV cache, so tokens/s <= batch x bandwidth /",
                  "(weights + batch x KV per sequence).", "",
                  "| benchmark | figure | measured | bound | share of bound |", "|---|---|---|---|---|"]
        for result, figure in decode:
            bound, formula = decode_bound(figure.decode, gpu_list)
            share = f"{figure.value / bound:.0%}" if bound else "-"
            lines.append(f"| {result.name} | {figure.name} | {_number(figure.value)} {figure.unit} | {formula} | "
                         f"{share} |")
    elif gpu_list:
        lines += ["", "No benchmark in this run reported a decode rate, so there is no bound to set beside one."]
    return "\n".join(lines) + "\n"


def first_line(script: Path) -> str:
    """The first paragraph of the script's docstring, on one line."""
    match = re.search(r'"""(.+?)(?:\n\s*\n|""")', script.read_text(errors="replace"), re.DOTALL)
    return " ".join(match.group(1).split()) if match else ""


# -- main --------------------------------------------------------------------------------------------

def _pairs(items: list[str], flag: str, parser: argparse.ArgumentParser) -> dict[str, str]:
    pairs = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            parser.error(f"{flag} takes NAME=VALUE, got {item!r}")
        pairs[name] = value
    return pairs


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these benchmarks (script names, no .py)")
    parser.add_argument("--skip", nargs="+", metavar="NAME", default=[], help="do not run these")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds each benchmark may take")
    parser.add_argument("--timeout-for", action="append", default=[], metavar="NAME=SECONDS",
                        help="a different limit for one benchmark (repeatable)")
    parser.add_argument("--args", action="append", default=[], metavar="NAME=ARGS",
                        help='extra arguments for one benchmark, e.g. --args "relay=--requests 2000" (repeatable)')
    parser.add_argument("--quick", action="store_true", help="smaller sizes for the known benchmarks")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the Markdown report to write")
    parser.add_argument("--keep-json", type=Path, help="also keep each benchmark's JSON in this folder")
    parser.add_argument("--bench-dir", type=Path, default=BENCH_DIR, help=argparse.SUPPRESS)  # tests
    parser.add_argument("--list", action="store_true", help="list the benchmarks that would run, and exit")
    args = parser.parse_args(argv)
    args.timeout_for = {k: float(v) for k, v in _pairs(args.timeout_for, "--timeout-for", parser).items()}
    args.args = {k: shlex.split(v) for k, v in _pairs(args.args, "--args", parser).items()}
    if args.timeout <= 0 or any(v <= 0 for v in args.timeout_for.values()):
        parser.error("timeouts must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with_json, without = discover(args.bench_dir)
    names = {script.stem: script for script in with_json}
    skipped = {script.stem: "its --help offers no --json" for script in without}
    unknown = [name for name in [*(args.only or []), *args.skip] if name not in names and name not in skipped]
    if unknown:
        print(f"run_all: no benchmark named {', '.join(unknown)} (have: {', '.join(sorted(names))})", file=sys.stderr)
        return 2
    chosen = [name for name in names if (not args.only or name in args.only) and name not in args.skip]
    skipped.update({name: "left out by --only/--skip" for name in names if name not in chosen})
    if args.list:
        for name in chosen:
            print(f"{name}: {first_line(names[name])}")
        for name, reason in sorted(skipped.items()):
            print(f"{name}: not run ({reason})")
        return 0

    when = dt.datetime.now(dt.UTC)
    results = []
    with tempfile.TemporaryDirectory(prefix="doppel-run-all-") as tmp:
        for name in chosen:
            timeout_s = args.timeout_for.get(name, args.timeout)
            extra = [*(QUICK_ARGS.get(name, []) if args.quick else []), *args.args.get(name, [])]
            keep_dir = Path(tmp) / f"{name}-keep"
            if name == "data_pipeline" and "--keep" not in extra:
                extra += ["--keep", str(keep_dir)]  # its export is the input of the baseline below
            json_path = Path(tmp) / f"{name}.json"
            print(f"[run_all] {name} (limit {timeout_s:.0f} s) ...", file=sys.stderr, flush=True)
            status, seconds, tail = run_script(names[name], json_path, extra, timeout_s)
            result = Result(name, names[name], status=status, seconds=seconds, output_tail=tail)
            if json_path.exists():
                try:
                    data = json.loads(json_path.read_text())
                except ValueError as exc:
                    result.status, data = f"unreadable JSON ({exc})", None
                if data is not None:
                    if name == "data_pipeline":
                        data["_baseline"] = baseline_data_pipeline(keep_dir, timeout_s)
                    result.figures, result.notes = read_figures(name, data)
                    if args.keep_json:  # as read, with any baseline measured here
                        args.keep_json.mkdir(parents=True, exist_ok=True)
                        (args.keep_json / json_path.name).write_text(json.dumps(data, indent=2) + "\n")
            print(f"[run_all] {name}: {result.status} in {seconds:.0f} s", file=sys.stderr, flush=True)
            results.append(result)
            shutil.rmtree(keep_dir, ignore_errors=True)
    command = " ".join(["benchmarks/run_all.py", *(sys.argv[1:] if argv is None else argv)])
    report = render(results, skipped, machine(), gpus(), when, command)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    print(f"[run_all] wrote {args.out}", file=sys.stderr)
    print(report)
    return 0 if all(result.status == "ok" for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
