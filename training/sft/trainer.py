"""``doppel train run``: LoRA SFT of a base model on the owner's samples with transformers' Trainer + peft.

The run directory (``--out``) holds::

    run.json              what this run is (preset values, data file and hash): checked on --resume
    checkpoints/          checkpoint-<step>/ every save_steps (adapter weights; optimizer state in the
                          newest two), and one at the step a Ctrl-C/SIGTERM stopped the run
    train_log.jsonl       one line per logging step, written as training goes
    adapter/              the final adapter (peft files + doppel_train.json, which says how it was made)
    train_log.json        the whole log with a summary; loss.png, the loss and tokens/s curves

Loss is on the owner's replies only (``training.sft.dataset.encode``); batches are packed without
padding. The held-out sessions (``training.sft.dataset.split_holdout``) are left out here and are
what ``doppel eval`` scores. CPU (float32) and GPU (bf16) take the same command.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from doppel.errors import DoppelError, InputError
from training.sft.dataset import EncodeStats, encode_all, load_samples, packed_collator, padded_collator, split_holdout
from training.sft.presets import TrainConfig

RUN_FILE = "run.json"
TRAIN_META = "doppel_train.json"
ADAPTER = "adapter"
CHECKPOINTS = "checkpoints"
# Changing these between a run and its --resume would silently mix two different trainings.
RESUME_MUST_MATCH = ("base_model", "quantization", "rank", "alpha", "dropout", "target_modules", "train_on",
                     "max_length", "batch_size", "grad_accum", "packing", "seed")
FEW_SAMPLES = 50


class TrainingInterrupted(DoppelError):
    """Stopped by Ctrl-C or SIGTERM after saving a checkpoint; ``--resume`` continues."""

    exit_code = 130


@dataclass
class TrainResult:
    out_dir: Path
    adapter_dir: Path
    steps: int
    final_loss: float | None
    seconds: float
    log: list[dict] = field(repr=False, default_factory=list)
    resumed_from: int = 0
    chart_note: str | None = None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def session_hash(key: str) -> str:
    """Short stable id of a session key: lets eval check "never trained on" without storing chat names."""
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def _check_out_dir(out: Path, config: TrainConfig, data_sha: str, resume: bool, overwrite: bool) -> None:
    from training.sft.callbacks import checkpoints

    run_file = out / RUN_FILE
    started = run_file.is_file() or checkpoints(out / CHECKPOINTS) or (out / ADAPTER).exists()
    if overwrite:
        for name in (RUN_FILE, CHECKPOINTS, ADAPTER, "train_log.jsonl", "train_log.json", "loss.png"):
            target = out / name
            shutil.rmtree(target, ignore_errors=True) if target.is_dir() else target.unlink(missing_ok=True)
        return
    if started and not resume:
        raise InputError(f"{out} already holds a training run; pass --resume to continue it or --overwrite "
                         "to start over")
    if resume and run_file.is_file():
        before = json.loads(run_file.read_text())
        if before.get("data_sha256") != data_sha:
            raise InputError(f"--resume: the samples file differs from the one {out} was trained on")
        changed = [k for k in RESUME_MUST_MATCH if before.get("config", {}).get(k) != config.model_dump().get(k)]
        if changed:
            raise InputError(f"--resume: {', '.join(changed)} differ from the run in {out}; "
                             "use the same preset and options, or --overwrite")


def _training_args(config: TrainConfig, out: Path, device, max_steps: int, cpu_autocast: bool = False):
    from transformers import TrainingArguments

    cpu = device.name == "cpu"
    return TrainingArguments(
        output_dir=str(out / CHECKPOINTS),
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        learning_rate=config.learning_rate,
        lr_scheduler_type=config.scheduler,
        warmup_steps=config.warmup,
        weight_decay=config.weight_decay,
        max_steps=max_steps,
        max_grad_norm=1.0,
        logging_steps=config.log_steps,
        logging_first_step=True,
        save_strategy="steps",
        save_steps=config.save_steps,
        bf16=device.dtype == "bfloat16" or cpu_autocast,
        fp16=device.dtype == "float16",
        use_cpu=cpu,
        gradient_checkpointing=config.gradient_checkpointing,
        seed=config.seed,
        data_seed=config.seed,
        report_to="none",
        disable_tqdm=True,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        dataloader_pin_memory=not cpu,
        # Packed rows have no padding (and no attention mask to count by); padded batches count by their mask.
        include_num_input_tokens_seen="all" if config.packing else "non_padding",
        # The plain AdamW: fused kernels differ by device, and a CPU run must resume a GPU run's state.
        optim="adamw_torch",
    )


def _load_split(data: Path):
    """The samples and their held-out split, or a clear error when there is too little to train on."""
    records = load_samples(data)
    if not records:
        raise InputError(f"{data} has no samples: build them with `doppel data build`")
    split = split_holdout(records)
    if not split.train or not split.heldout:
        sessions = len(split.heldout_sessions) + len(split.train_sessions)
        raise InputError(f"{data} has {len(records)} sample(s) in {sessions} session(s): too few to train. The "
                         "latest 10% of sessions (at least one) are held out for evaluation, so at least 2 sessions "
                         "are needed; a clone that sounds like you needs a few hundred replies")
    return records, split


def train(config: TrainConfig, data: Path, out: Path, *, resume: bool = False, overwrite: bool = False,
          cache_dir: Path | None = None, console: Console | None = None) -> TrainResult:
    """Train a LoRA adapter on ``data`` (ShareGPT JSONL) into ``out``; see the module docstring."""
    console = console or Console(stderr=True, highlight=False, soft_wrap=True)
    data, out = Path(data), Path(out)
    records, split = _load_split(data)
    data_sha = file_sha256(data)
    out.mkdir(parents=True, exist_ok=True)
    _check_out_dir(out, config, data_sha, resume, overwrite)

    from training.sft.callbacks import remove_partial_checkpoints, resumable_checkpoint

    remove_partial_checkpoints(out / CHECKPOINTS)
    checkpoint = resumable_checkpoint(out / CHECKPOINTS) if resume else None
    if resume and checkpoint is None:
        console.print(f"no checkpoint in {out / CHECKPOINTS} yet: starting from step 0")

    from training.sft.modeling import load_model, load_tokenizer, lora_config, pick_device, resolve_base

    base_path = resolve_base(config.base_model, cache_dir)
    tokenizer = load_tokenizer(base_path)
    stats = EncodeStats()
    rows = encode_all(tokenizer, split.train, config.max_length, config.train_on, stats)
    if not rows:
        reasons = ", ".join(f"{n} {why}" for why, n in stats.dropped.items()) or "none usable"
        raise InputError(f"{data}: none of the {len(split.train)} training samples can be used ({reasons}; "
                         f"max_length {config.max_length})")
    if len(rows) < FEW_SAMPLES:
        console.print(f"[yellow]only {len(rows)} training samples: the adapter will mostly memorize them[/]")
    steps_per_epoch = max(1, math.ceil(len(rows) / config.batch_size / config.grad_accum))
    max_steps = config.max_steps or max(1, math.ceil(steps_per_epoch * config.epochs))

    data_info = {"path": str(data.resolve()), "sha256": data_sha, "samples": len(records),
                 "train_samples": len(split.train), "heldout_samples": len(split.heldout),
                 "sessions": len(split.train_sessions) + len(split.heldout_sessions),
                 "heldout_fraction": split.fraction, "encode": stats.to_dict(),
                 "train_sessions": sorted(session_hash(k) for k in split.train_sessions)}
    (out / RUN_FILE).write_text(json.dumps({
        "config": config.model_dump(), "data_sha256": data_sha, "base_path": base_path, "max_steps": max_steps,
        "data": data_info}, indent=2, ensure_ascii=False))

    import torch
    from peft import get_peft_model
    from transformers import Trainer, set_seed
    from transformers.trainer_callback import PrinterCallback

    from training.sft.callbacks import JsonlLog, ProgressDisplay, PruneOptimizerStates, StopOnSignal

    device = pick_device()
    set_seed(config.seed)
    model = load_model(base_path, device, quantization=config.quantization, for_training=True,
                       packed=config.packing)
    model = get_peft_model(model, lora_config(config))
    if config.gradient_checkpointing:
        model.enable_input_require_grads()
    from training.sft.modeling import cpu_bf16_supported

    # float32 weights, bf16 matmuls: about 1.5x faster on CPUs with native bf16 (AVX512-BF16, AMX).
    cpu_autocast = device.name == "cpu" and config.cpu_bf16 and cpu_bf16_supported()
    precision = f"{device.dtype}, bf16 autocast" if cpu_autocast else device.dtype
    args = _training_args(config, out, device, max_steps, cpu_autocast)
    log = JsonlLog(out / "train_log.jsonl")
    stop = StopOnSignal()
    display = ProgressDisplay(console, log, description=f"training {config.name}")
    trainer = Trainer(model=model, args=args, train_dataset=rows, processing_class=tokenizer,
                      data_collator=packed_collator() if config.packing else padded_collator(tokenizer),
                      callbacks=[log, display, stop, PruneOptimizerStates()])
    trainer.remove_callback(PrinterCallback)  # it prints raw log dicts; ProgressDisplay replaces it

    trainable, total = model.get_nb_trainable_parameters()
    console.print(f"{config.summary()}\n{len(rows)} training samples ({stats.target_tokens} reply tokens of "
                  f"{stats.tokens}), {len(split.heldout)} held out; {max_steps} steps on {device.name} "
                  f"({precision}); LoRA {trainable:,} trainable of {total:,} parameters")
    if checkpoint is not None:
        console.print(f"resuming from {checkpoint.name}")
    started = time.monotonic()
    try:
        with stop.installed():
            trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    finally:
        display.close()
    if stop.stopped_at is not None:
        raise TrainingInterrupted(f"stopped at step {stop.stopped_at}/{max_steps}; checkpoint saved in "
                                  f"{out / CHECKPOINTS}; continue with --resume")

    from training.sft.callbacks import read_jsonl

    entries = read_jsonl(out / "train_log.jsonl")
    final_loss = entries[-1]["loss"] if entries else None
    meta = {
        "preset": config.name, "config": config.model_dump(), "base_model": config.base_model,
        "base_path": base_path, "device": f"{device.name}/{precision}", "steps": trainer.state.global_step,
        "final_loss": final_loss, "created_at": time.time(), "torch": torch.__version__, "data": data_info,
    }
    adapter_dir = _save_adapter(model, out, meta)
    chart_note = write_log(out, meta, entries)
    console.print(f"adapter saved to {adapter_dir} (step {trainer.state.global_step}, loss {final_loss})")
    return TrainResult(out, adapter_dir, trainer.state.global_step, final_loss, time.monotonic() - started,
                       entries, int(checkpoint.name.rsplit("-", 1)[1]) if checkpoint else 0, chart_note)


def _save_adapter(model, out: Path, meta: dict) -> Path:
    """Write the final adapter with its doppel_train.json; a reader sees the whole directory or none."""
    adapter_dir = out / ADAPTER
    staging = out / f".{ADAPTER}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging)
    (staging / TRAIN_META).write_text(json.dumps(meta, indent=2, ensure_ascii=False))
    shutil.rmtree(adapter_dir, ignore_errors=True)
    os.replace(staging, adapter_dir)
    return adapter_dir


def write_log(out: Path, meta: dict, entries: list[dict]) -> str | None:
    """train_log.json (summary + every logged step) and loss.png next to the adapter."""
    from training.sft.charts import line_chart

    summary = {k: meta[k] for k in ("preset", "base_model", "device", "steps", "final_loss")}
    (out / "train_log.json").write_text(json.dumps({"summary": summary, "config": meta["config"],
                                                    "entries": entries}, indent=2))
    return line_chart(out / "loss.png", f"training {meta['preset']} on {Path(meta['data']['path']).name}", [
        ("training loss", {"loss": [(e["step"], e["loss"]) for e in entries]}),
        ("tokens/s", {"tokens/s": [(e["step"], e["tokens_per_s"]) for e in entries if e["tokens_per_s"]]}),
    ])


def train_meta(adapter_dir: Path) -> dict:
    """How an adapter was made: its doppel_train.json; for a checkpoint, its run's run.json; else {}."""
    from training.sft.callbacks import checkpoint_step

    adapter_dir = Path(adapter_dir)
    for path in (adapter_dir / TRAIN_META, adapter_dir.parent.parent / RUN_FILE):
        if path == adapter_dir.parent.parent / RUN_FILE and checkpoint_step(adapter_dir) is None:
            continue
        if path.is_file():
            try:
                meta = json.loads(path.read_text(encoding="utf-8"))
            except (ValueError, UnicodeDecodeError):
                raise InputError(f"{path}: corrupt") from None
            if path.name == RUN_FILE:
                config = meta.get("config", {})
                meta = {"preset": config.get("name"), "config": config, "base_model": config.get("base_model"),
                        "base_path": meta.get("base_path"), "steps": checkpoint_step(adapter_dir),
                        "data": meta.get("data", {})}
            return meta
    return {}
