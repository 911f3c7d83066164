"""``doppel adapters publish``: check an adapter, then hand it to the registry (and so to the workers).

``validate_adapter`` refuses, with one line that says why, an adapter that the workers could not
serve or should not: no or corrupt ``adapter_config.json``, not LoRA, missing or unreadable
weights, NaN/inf in them, a rank above the serving ``max_lora_rank`` (vLLM refuses those), trained
on another base model than the one served, or tensors that do not fit that base's layers. The
last check loads the adapter with peft onto the served base's architecture instantiated on
PyTorch's meta device: every module and shape is checked without reading (or needing the memory
for) the base model's weights, so it costs the same for a 7B base as for the tiny one.

``publish`` then requires a held-out evaluation whose perplexity ratio is below ``max_ppl_ratio``
(it runs the perplexity part itself when ``eval.json`` is missing and the training data is
known), writes the card (base model, rank, data summary, scores, the ``doppel eval privacy``
summary when the adapter has a ``privacy.json``, blend parents) and calls
``Registry.publish``. Nothing is routed to the new version unless asked (``use``), except the very
first adapter, which becomes the default: the active adapter stays active.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

from doppel.errors import InputError
from doppel.registry import AdapterRef, Card, Registry, validate_name
from training.likeness.privacy import card_summary, load_report
from training.sft.modeling import adapter_config, resolve_base, same_base

WEIGHTS = "adapter_model.safetensors"
# What a registry version keeps of an adapter directory (checkpoints also hold optimizer state).
KEEP_FILES = ("adapter_config.json", WEIGHTS, "doppel_train.json", "eval.json", "eval.png", "privacy.json", "README.md")


@dataclass(frozen=True)
class ServeSpec:
    """What the workers serve: the base model and the largest LoRA rank they accept."""

    base_model: str
    max_lora_rank: int
    max_ppl_ratio: float = 1.0


def _weights(adapter_dir: Path) -> dict:
    from safetensors.torch import load_file

    path = adapter_dir / WEIGHTS
    if not path.is_file():
        raise InputError(f"{adapter_dir}: no {WEIGHTS} (the adapter's weights)")
    try:
        tensors = load_file(str(path))
    except Exception as exc:  # safetensors raises its own SafetensorError for truncated/garbage files
        raise InputError(f"{path}: corrupt weights ({str(exc).splitlines()[0][:120]})") from None
    if not tensors:
        raise InputError(f"{path}: holds no tensors")
    for key, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(tensor.isfinite().all()):
            raise InputError(f"{path}: {key} contains NaN or infinite values")
    return tensors


def adapter_rank(config: dict) -> int:
    """The largest LoRA rank in the adapter (per-module ``rank_pattern`` overrides included)."""
    return max([int(config.get("r", 0)), *(int(v) for v in (config.get("rank_pattern") or {}).values())])


def validate_adapter(adapter_dir: Path, serve: ServeSpec, cache_dir: Path | None = None) -> dict:
    """Check ``adapter_dir`` against what the workers serve; its adapter_config on success."""
    adapter_dir = Path(adapter_dir)
    config = adapter_config(adapter_dir)
    tensors = _weights(adapter_dir)
    rank = adapter_rank(config)
    if rank > serve.max_lora_rank:
        raise InputError(f"{adapter_dir}: LoRA rank {rank} is above the serving max_lora_rank {serve.max_lora_rank} "
                         "([train] max_lora_rank; vLLM refuses larger adapters)")
    trained_on = config.get("base_model_name_or_path") or ""
    from training.sft.trainer import train_meta

    spec = train_meta(adapter_dir).get("base_model") or ""
    matches = [same_base(claim, serve.base_model, cache_dir) for claim in (trained_on, spec) if claim]
    if not any(matches):
        raise InputError(f"{adapter_dir}: trained on base model {spec or trained_on!r}, but the workers serve "
                         f"{serve.base_model!r}")
    _check_fits(adapter_dir, config, tensors, resolve_base(serve.base_model, cache_dir))
    return config


def _check_fits(adapter_dir: Path, config: dict, tensors: dict, base: str) -> None:
    from accelerate import init_empty_weights
    from peft import LoraConfig, get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        base_config = AutoConfig.from_pretrained(base)
    except Exception as exc:
        first = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise InputError(f"cannot read the served base model's config ({base}): {first}") from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # peft/torch warn that loading into meta tensors copies nothing
        with init_empty_weights():
            skeleton = AutoModelForCausalLM.from_config(base_config)
        try:
            model = get_peft_model(skeleton, LoraConfig.from_pretrained(str(adapter_dir)))
        except Exception as exc:
            raise InputError(f"{adapter_dir}: does not fit {base}: {str(exc).splitlines()[0][:160]}") from None
        expected = {k: tuple(v.shape) for k, v in get_peft_model_state_dict(model).items()}
        missing = sorted(set(expected) - set(tensors))
        unexpected = sorted(set(tensors) - set(expected))
        wrong = [k for k in expected if k in tensors and tuple(tensors[k].shape) != expected[k]]
        if wrong:
            key = wrong[0]
            raise InputError(f"{adapter_dir}: {key} has shape {tuple(tensors[key].shape)}, the served base needs "
                             f"{expected[key]} ({len(wrong)} tensor(s) do not fit {base})")
        if missing or unexpected:
            key = (missing or unexpected)[0]
            raise InputError(f"{adapter_dir}: {'missing' if missing else 'unexpected'} tensor {key} "
                             f"({len(missing)} missing, {len(unexpected)} unexpected for {base})")
        try:
            set_peft_model_state_dict(model, tensors)
        except Exception as exc:
            raise InputError(f"{adapter_dir}: peft cannot load it: {str(exc).splitlines()[0][:160]}") from None


def load_eval(adapter_dir: Path) -> dict | None:
    path = Path(adapter_dir) / "eval.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise InputError(f"{path}: corrupt; run `doppel eval` again") from None


def _card(name: str, config: dict, meta: dict, report: dict | None, serve: ServeSpec,
          privacy: dict | None = None) -> Card:
    from training.likeness.report import summary

    data = {k: v for k, v in (meta.get("data") or {}).items() if k not in ("train_sessions", "encode")}
    targets = config.get("target_modules") or []
    # peft saves "all-linear" as every module's full path; the card shows the kinds of layers.
    targets = sorted({str(t).rsplit(".", 1)[-1] for t in targets}) if isinstance(targets, list) else [str(targets)]
    return Card(name=name, version=0, base_model=meta.get("base_model") or serve.base_model,
                rank=adapter_rank(config), alpha=float(config.get("lora_alpha") or 0.0),
                target_modules=targets,
                data=data, eval=summary(report) if report else {}, parents=meta.get("parents", []),
                privacy=card_summary(privacy) if privacy else {},
                combination=meta.get("combination", ""),
                notes=f"preset {meta['preset']}, {meta.get('steps')} steps" if meta.get("preset") else "")


def publish(registry: Registry, adapter_dir: Path, name: str, serve: ServeSpec, *, data: Path | None = None,
            force: bool = False, use: bool = False, cache_dir: Path | None = None) -> AdapterRef:
    """Validate ``adapter_dir`` and publish it as the next version of ``name``; see the module docstring."""
    from training.sft.trainer import train_meta

    validate_name(name)
    adapter_dir = Path(adapter_dir)
    config = validate_adapter(adapter_dir, serve, cache_dir)
    meta = train_meta(adapter_dir)
    report = load_eval(adapter_dir)
    if report is None and (data or meta.get("data", {}).get("path")) and not force:
        from training.likeness.evaluate import EvalOptions, evaluate_adapter

        report = evaluate_adapter(adapter_dir, data, EvalOptions(generate=False, max_ppl_ratio=serve.max_ppl_ratio),
                                  cache_dir=cache_dir)
    if not force:
        if report is None:
            raise InputError(f"{adapter_dir} has not been evaluated and its training data is unknown: run "
                             "`doppel eval` on it (or pass --data), or --force to publish it unevaluated")
        ratio = float(report.get("perplexity", {}).get("ratio", math.inf))
        if not ratio < serve.max_ppl_ratio:
            raise InputError(f"{adapter_dir}: held-out perplexity ratio adapter/base is {ratio:.3f}, not below "
                             f"{serve.max_ppl_ratio:g}: it predicts your replies no better than the base model "
                             "([train] max_ppl_ratio; --force publishes anyway)")
    card = _card(name, config, meta, report, serve, load_report(adapter_dir))
    with tempfile.TemporaryDirectory(prefix=".publish-", dir=registry.root.parent if registry.root.parent.is_dir()
                                     else None) as staging:
        for file in KEEP_FILES:
            if (adapter_dir / file).is_file():
                shutil.copy2(adapter_dir / file, Path(staging) / file)
        if meta:  # a checkpoint's lineage lives in its run's run.json: keep it with the copy
            (Path(staging) / "doppel_train.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False))
        if report is not None and not (Path(staging) / "eval.json").is_file():
            (Path(staging) / "eval.json").write_text(json.dumps(report, indent=2, ensure_ascii=False))
        ref = registry.publish(Path(staging), card)
    if use:
        registry.use(str(ref))
    return ref


def serve_spec(settings) -> ServeSpec:
    """What the workers serve ([model] base and max_lora_rank) and the publishing bar ([train])."""
    return ServeSpec(settings.model.base, settings.model.max_lora_rank, settings.train.max_ppl_ratio)
