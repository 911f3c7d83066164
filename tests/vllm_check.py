"""Run by tests/inference/backends/test_vllm.py in its own process (vLLM spawns its engine core, which needs
a ``__main__`` guard that pytest's process does not have). Prints one JSON line of results."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path


async def run(model_dir: Path, adapter_one: Path, adapter_two: Path) -> dict:
    from inference.backends.base import LoadedAdapter, Sampling
    from inference.backends.hf import HFBackend
    from inference.backends.vllm import VLLMBackend, VLLMOptions

    greedy = Sampling(temperature=0, max_tokens=16, repetition_penalty=1.0)
    prompts = [[{"role": "user", "content": "how was work?"}], [{"role": "user", "content": "did you eat yet?"}]]
    one = LoadedAdapter("one@v1", 1, adapter_one)
    two = LoadedAdapter("one@v2", 2, adapter_two)
    results: dict = {}
    hf = HFBackend(model_dir, max_model_len=512)
    await hf.startup()
    await hf.add_adapter(one)
    await hf.add_adapter(two)
    results["hf"] = {name: [await hf.complete("x", p, a, greedy) for p in prompts]
                     for name, a in (("base", None), ("one", one), ("two", two))}
    vllm = VLLMBackend(model_dir, VLLMOptions(max_model_len=512, max_lora_rank=8, max_loras=2))
    await vllm.startup()
    try:
        await vllm.add_adapter(one)
        results["vllm"] = {}
        for name, adapter in (("base", None), ("one", one)):
            # Both prompts at once: continuous batching must not change greedy output.
            results["vllm"][name] = list(await asyncio.gather(
                *(vllm.complete(f"{name}-{i}", p, adapter, greedy) for i, p in enumerate(prompts))))
        await vllm.add_adapter(two)  # a new version under a new id, while the old one is loaded
        results["vllm"]["two"] = [await vllm.complete(f"two-{i}", p, two, greedy) for i, p in enumerate(prompts)]
        await vllm.remove_adapter(one)
        results["vllm"]["loras_after_remove"] = sorted(await vllm.engine.list_loras())
    finally:
        await vllm.shutdown()
    return results


if __name__ == "__main__":
    model, first, second = map(Path, sys.argv[1:4])
    print("RESULT " + json.dumps(asyncio.run(run(model, first, second))), flush=True)
