"""Loading base models and adapters for training, evaluation, blending and publishing.

One place decides the device and dtype (bf16 on a GPU that has it, float32 on a CPU: the same
command runs on both), resolves offline model names (``tiny``, ``smollm2``) to their built
directories, and turns a preset into a peft ``LoraConfig``. Base models load with
``use_cache=False`` while training: with a cache, transformers ignores the per-sample position
ids of a packed batch and lets samples attend to each other.

Tested in ``tests/training/sft/test_trainer.py`` (tokenizer and model loading, packed attention, QLoRA
refused without a GPU) and ``tests/training/likeness/test_evaluate.py`` (loading an adapter).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from doppel.errors import ConfigError, InputError
from training.offline_models import MODEL_NAMES, ensure_model


@dataclass(frozen=True)
class Device:
    name: str          # "cuda" or "cpu"
    dtype: str         # "bfloat16" / "float16" / "float32"

    @property
    def torch_dtype(self):
        import torch

        return getattr(torch, self.dtype)


def pick_device() -> Device:
    import torch

    if torch.cuda.is_available():
        return Device("cuda", "bfloat16" if torch.cuda.is_bf16_supported() else "float16")
    # bf16 matmuls are slow on most CPUs and change the numbers tests compare: float32 there.
    return Device("cpu", "float32")


def cpu_bf16_supported() -> bool:
    """Whether this CPU multiplies bf16 natively (AVX512-BF16 or AMX); elsewhere bf16 is emulated and slow."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:  # not Linux: keep float32
        return False
    return any(flag in flags.split() for flag in ("avx512_bf16", "amx_bf16"))


def resolve_base(spec: str, cache_dir: Path | None = None) -> str:
    """A loadable path or hub id for ``spec``; offline model names are built on first use."""
    if spec in MODEL_NAMES:
        return str(ensure_model(spec, cache_dir, progress=True))
    return spec


def same_base(a: str, b: str, cache_dir: Path | None = None, *, resolve: bool = True) -> bool:
    """Whether two base-model specs (offline names, hub ids or directories) name the same model.

    ``resolve=False`` never builds an offline model: a name then matches a directory of that
    model's build (``tiny-<fingerprint>``), which is enough for a warning.
    """
    def norm(spec: str) -> str:
        if spec in MODEL_NAMES and resolve:
            spec = resolve_base(spec, cache_dir)
        path = Path(spec).expanduser()
        return str(path.resolve()) if spec and path.is_dir() else spec.rstrip("/")

    x, y = norm(a), norm(b)
    if x == y:
        return True
    if not resolve:
        for name, other in ((a, y), (b, x)):
            if name in MODEL_NAMES and Path(other).name.startswith(f"{name}-"):
                return True
    return False


def load_tokenizer(path: str):
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except Exception as exc:  # transformers raises OSError, ValueError, HF hub errors...
        raise InputError(f"cannot load the tokenizer of {path}: {_first_line(exc)}") from None
    if not getattr(tokenizer, "chat_template", None):
        raise InputError(f"{path} has no chat template: Doppel trains and serves through it")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(path: str, device: Device, *, quantization: str = "none", for_training: bool = False,
               packed: bool = False):
    """The base model on ``device``; ``packed``: with the padding-free attention (training.sft.attention)."""
    from transformers import AutoModelForCausalLM

    kwargs: dict = {"dtype": device.torch_dtype}
    if quantization == "4bit":
        kwargs.update(quantization_config=_four_bit(device), device_map={"": 0})
    try:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except Exception as exc:
        raise InputError(f"cannot load the base model {path}: {_first_line(exc)}") from None
    if quantization != "4bit":
        model.to(device.name)
    if packed:
        from training.sft.attention import packed_attention

        model.set_attn_implementation(packed_attention(device.name))
    if for_training:
        model.config.use_cache = False
        if quantization == "4bit":
            from peft import prepare_model_for_kbit_training

            model = prepare_model_for_kbit_training(model)
    else:
        model.eval()
    return model


def _four_bit(device: Device):
    import importlib.util

    if device.name != "cuda":
        raise ConfigError("quantization = \"4bit\" (QLoRA) needs a CUDA GPU; use a preset without it on a CPU")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ConfigError("quantization = \"4bit\" (QLoRA) needs bitsandbytes: pip install bitsandbytes")
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=torch.bfloat16)


def lora_config(config):
    """peft ``LoraConfig`` for a ``TrainConfig``."""
    from peft import LoraConfig

    return LoraConfig(r=config.rank, lora_alpha=config.alpha, lora_dropout=config.dropout,
                      target_modules=config.target_modules, bias="none", task_type="CAUSAL_LM")


def adapter_config(adapter_dir: Path) -> dict:
    """adapter_config.json of a peft adapter directory, or an ``InputError`` saying what is wrong."""
    path = Path(adapter_dir) / "adapter_config.json"
    if not Path(adapter_dir).is_dir():
        raise InputError(f"{adapter_dir}: no such adapter directory")
    if not path.is_file():
        raise InputError(f"{adapter_dir}: not a peft adapter (no adapter_config.json)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: corrupt ({str(exc)[:100]})") from None
    if not isinstance(data, dict) or data.get("peft_type") != "LORA":
        kind = data.get("peft_type") if isinstance(data, dict) else None
        raise InputError(f"{path}: not a LoRA adapter (peft_type {kind!r})")
    return data


def load_adapter_model(adapter_dirs: dict[str, Path], device: Device, base: str | None = None):
    """The base model with each adapter of ``adapter_dirs`` (name -> dir) loaded under its name.

    The base is ``base`` or the first adapter's ``base_model_name_or_path``. Returns (model, tokenizer).
    """
    from peft import PeftModel

    names = list(adapter_dirs)
    first = adapter_config(adapter_dirs[names[0]])
    base = base or first.get("base_model_name_or_path")
    if not base:
        raise InputError(f"{adapter_dirs[names[0]]}: adapter_config.json names no base model")
    tokenizer = load_tokenizer(base)
    model = load_model(base, device)
    try:
        model = PeftModel.from_pretrained(model, str(adapter_dirs[names[0]]), adapter_name=names[0])
        for name in names[1:]:
            model.load_adapter(str(adapter_dirs[name]), adapter_name=name)
    except Exception as exc:
        raise InputError(f"cannot load adapter on {base}: {_first_line(exc)}") from None
    model.eval()
    return model, tokenizer


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]
