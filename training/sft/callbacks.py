"""Trainer callbacks: progress with loss and tokens/s, the JSON-lines log, graceful stop, checkpoint pruning.

* ``StopOnSignal`` turns the first Ctrl-C (or SIGTERM) into "finish this step, save a checkpoint,
  stop": no finished step is lost and ``--resume`` continues from exactly there. A second Ctrl-C
  interrupts at once (the periodic checkpoints are still there).
* ``ProgressDisplay`` draws a rich progress bar on a terminal and prints one line per logging
  step elsewhere (logs, CI, a test's pipe).
* ``JsonlLog`` appends each logging step to ``train_log.jsonl`` as it happens, so a killed run's
  log survives; on resume the lines past the checkpoint's step are dropped (those steps are
  trained again).
* ``PruneOptimizerStates`` keeps the optimizer state (3x the adapter's size) only in the two newest
  checkpoints, which are the ones ``--resume`` may need; older checkpoints keep their adapter
  weights, small, for ``doppel eval --checkpoints``.

Tested in ``tests/training/sft/test_trainer.py`` (Ctrl-C stop and resume, ``train_log.jsonl``,
optimizer state pruned to the two newest checkpoints).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from transformers import TrainerCallback

CHECKPOINT_PREFIX = "checkpoint-"
OPTIMIZER_FILES = ("optimizer.pt", "scheduler.pt", "scaler.pt", "rng_state.pth")


class StopOnSignal(TrainerCallback):
    """Stops training at the end of the current step, with a checkpoint, once ``requested``."""

    def __init__(self) -> None:
        self.requested = False
        self.stopped_at: int | None = None

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """SIGINT/SIGTERM request a stop while inside; outside, the previous handlers are back."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handle(signum, frame) -> None:
            if self.requested and signum == signal.SIGINT:
                raise KeyboardInterrupt
            self.requested = True

        previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def on_step_end(self, args, state, control, **kwargs):
        if self.requested and self.stopped_at is None:
            self.stopped_at = state.global_step
            control.should_save = True
            control.should_training_stop = True
        return control


class _Meter:
    """Tokens per second over the last logging window (the whole run's average hides slowdowns)."""

    def __init__(self) -> None:
        self.mark_time = time.monotonic()
        self.mark_tokens = 0

    def rate(self, tokens: int) -> float:
        now = time.monotonic()
        elapsed = now - self.mark_time
        rate = (tokens - self.mark_tokens) / elapsed if elapsed > 0 else 0.0
        self.mark_time, self.mark_tokens = now, tokens
        return rate


class JsonlLog(TrainerCallback):
    """One JSON line per logging step: step, loss, lr, grad_norm, epoch, tokens, tokens/s, elapsed."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.started = time.monotonic()
        self.meter = _Meter()
        self.last: dict = {}
        self.offset_s = 0.0  # time spent before a resume, from the kept log lines

    def on_train_begin(self, args, state, control, **kwargs):
        kept = [e for e in read_jsonl(self.path) if e.get("step", 0) <= state.global_step]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("".join(json.dumps(e) + "\n" for e in kept))
        self.meter.mark_tokens = state.num_input_tokens_seen
        self.offset_s = kept[-1].get("elapsed_s", 0.0) if kept else 0.0
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if "loss" not in logs:
            return control
        tokens = int(state.num_input_tokens_seen)
        entry = {"step": state.global_step, "loss": round(float(logs["loss"]), 5),
                 "learning_rate": float(logs.get("learning_rate", 0.0)),
                 "grad_norm": round(float(logs["grad_norm"]), 5) if logs.get("grad_norm") is not None else None,
                 "epoch": round(float(logs.get("epoch") or 0.0), 4), "tokens": tokens,
                 "tokens_per_s": round(self.meter.rate(tokens), 1),
                 "elapsed_s": round(self.offset_s + time.monotonic() - self.started, 2)}
        self.last = entry
        with self.path.open("a") as handle:
            handle.write(json.dumps(entry) + "\n")
        return control


def read_jsonl(path: Path) -> list[dict]:
    entries = []
    if Path(path).is_file():
        for line in Path(path).read_text().splitlines():
            with contextlib.suppress(ValueError):  # a line cut short by a kill
                entries.append(json.loads(line))
    return entries


class ProgressDisplay(TrainerCallback):
    """Step bar with the latest loss and tokens/s on a terminal; plain log lines otherwise."""

    def __init__(self, console: Console, log: JsonlLog, description: str = "training") -> None:
        self.console = console
        self.log = log
        self.description = description
        self.progress: Progress | None = None
        self.task = None

    def on_train_begin(self, args, state, control, **kwargs):
        if self.console.is_terminal:
            self.progress = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[speed]} tok/s"),
                TimeElapsedColumn(), TimeRemainingColumn(), console=self.console, transient=False)
            self.progress.start()
            self.task = self.progress.add_task(self.description, total=state.max_steps,
                                               completed=state.global_step, loss="-", speed="-")
        elif state.global_step:
            self.console.print(f"resuming at step {state.global_step}/{state.max_steps}")
        return control

    def on_step_end(self, args, state, control, **kwargs):
        if self.progress is not None:
            last = self.log.last
            self.progress.update(self.task, completed=state.global_step,
                                 loss=f"{last['loss']:.4f}" if last else "-",
                                 speed=f"{last['tokens_per_s']:.0f}" if last else "-")
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        last = self.log.last
        if self.progress is None and last and last["step"] == state.global_step and "loss" in (logs or {}):
            self.console.print(f"step {state.global_step}/{state.max_steps}  loss {last['loss']:.4f}  "
                               f"{last['tokens_per_s']:.0f} tok/s  lr {last['learning_rate']:.2e}", highlight=False)
        return control

    def on_train_end(self, args, state, control, **kwargs):
        self.close()
        return control

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


class PruneOptimizerStates(TrainerCallback):
    """Drop optimizer/scheduler/RNG state from all but the ``keep`` newest checkpoints."""

    def __init__(self, keep: int = 2) -> None:
        self.keep = keep

    def on_save(self, args, state, control, **kwargs):
        for folder in checkpoints(Path(args.output_dir))[: -self.keep]:
            for name in OPTIMIZER_FILES:
                with contextlib.suppress(FileNotFoundError):
                    (folder / name).unlink()
        return control


def checkpoint_step(folder: Path) -> int | None:
    name = Path(folder).name
    tail = name[len(CHECKPOINT_PREFIX):]
    return int(tail) if name.startswith(CHECKPOINT_PREFIX) and tail.isdigit() else None


def checkpoints(root: Path) -> list[Path]:
    """Complete checkpoints under ``root``, oldest first. ``trainer_state.json`` is the last file the
    Trainer writes into one, so a checkpoint without a readable one was cut short by a kill."""
    found = []
    if Path(root).is_dir():
        for folder in Path(root).iterdir():
            step = checkpoint_step(folder)
            if step is None or not (folder / "adapter_config.json").is_file():
                continue
            try:
                json.loads((folder / "trainer_state.json").read_text())
            except (OSError, ValueError):
                continue
            found.append((step, folder))
    return [folder for _, folder in sorted(found)]


def resumable_checkpoint(root: Path) -> Path | None:
    """The newest complete checkpoint that still has its optimizer state."""
    for folder in reversed(checkpoints(root)):
        if (folder / "optimizer.pt").is_file():
            return folder
    return None


def remove_partial_checkpoints(root: Path) -> list[Path]:
    """Delete checkpoint folders a kill left half-written; returns what was removed."""
    complete = set(checkpoints(root))
    removed = []
    if Path(root).is_dir():
        for folder in Path(root).iterdir():
            if checkpoint_step(folder) is not None and folder not in complete:
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
    return removed
