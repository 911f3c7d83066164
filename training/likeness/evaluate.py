"""``doppel eval``: does the adapter sound like its owner? Measured on replies it never trained on.

The held-out set is ``training.sft.dataset.split_holdout`` of the samples file -- the latest 10% of
sessions by time, the same split the trainer left out (the trainer records which sessions it
trained on, and the report says if any held-out session was among them). On it:

* **perplexity** of the owner's real replies (the same tokens the trainer computes loss on) under
  the base model and under the adapter; ``ppl_ratio`` = adapter / base must be below 1 (by
  default) for ``doppel adapters publish`` to accept the adapter;
* **style**: the adapter and the base model each answer up to ``samples`` held-out prompts; their
  replies and the owner's real ones are profiled (``training.likeness.style``) and compared.

Output: a table on the terminal, ``eval.json`` (also what ``publish`` puts in the card) and
``eval.png`` in the adapter directory (``training.likeness.report``). ``evaluate_run`` does the
same for every checkpoint of a training run, with the base model's side computed once, and picks
the best step by ``likeness`` = ``ppl_ratio`` + ``style_distance`` (both lower-is-better and about
unit scale).
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from rich.console import Console

from doppel.errors import InputError
from training.likeness.report import render, render_checkpoints, summary, write_report
from training.likeness.style import compare, profile, top_phrases
from training.sft.dataset import Split, encode, load_samples, record_messages, split_holdout


@dataclass(frozen=True)
class EvalOptions:
    samples: int = 64            # held-out prompts answered by each model for the style profile
    max_new_tokens: int = 128
    temperature: float = 0.7     # sampled, as served; seeded so a re-run gives the same replies
    top_p: float = 0.9
    seed: int = 0
    batch_size: int = 8
    generate: bool = True        # False: perplexity only (fast)
    max_ppl_ratio: float = 1.0   # publishable when adapter/base perplexity is below this


@dataclass
class HeldOut:
    data: Path
    split: Split
    trained_overlap: int         # held-out sessions the adapter was trained on (should be 0)
    max_length: int
    train_on: str


def load_heldout(data: Path, meta: dict) -> HeldOut:
    from training.sft.trainer import session_hash

    split = split_holdout(load_samples(data))
    if not split.heldout:
        raise InputError(f"{data}: no held-out sessions to evaluate on (it has {len(split.train_sessions)} "
                         "session(s); at least 2 are needed, the latest 10% are held out)")
    trained = set(meta.get("data", {}).get("train_sessions", ()))
    overlap = sum(session_hash(key) in trained for key in split.heldout_sessions)
    config = meta.get("config", {})
    return HeldOut(Path(data), split, overlap, int(config.get("max_length", 2048)), config.get("train_on", "last"))


def _no_tick(done: int = 1) -> None:
    """The default progress callback: nobody is watching."""


def reply_perplexity(model, tokenizer, held: HeldOut, tick=_no_tick) -> dict:
    """Perplexity of the owner's held-out replies: exp(mean NLL over the reply tokens)."""
    import torch

    total, count = 0.0, 0
    device = next(model.parameters()).device
    with torch.no_grad():
        for record in held.split.heldout:
            tick()
            row = encode(tokenizer, record_messages(record), held.max_length, held.train_on)
            if row is None:
                continue
            ids = torch.tensor([row["input_ids"]], device=device)
            labels = torch.tensor([row["labels"]], device=device)
            logits = model(input_ids=ids).logits[:, :-1].float()
            total += torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
                                                       ignore_index=-100, reduction="sum").item()
            count += int((labels[:, 1:] != -100).sum())
    if not count:
        raise InputError(f"{held.data}: none of the held-out replies fits max_length {held.max_length}")
    return {"ppl": round(math.exp(total / count), 4), "nll": round(total / count, 5), "tokens": count}


def _pick(records: list[dict], n: int) -> list[dict]:
    """``n`` records spread evenly over the held-out set (deterministic)."""
    if len(records) <= n:
        return list(records)
    return [records[int(i * len(records) / n)] for i in range(n)]


def generate_replies(model, tokenizer, prompts: list[list[dict]], options: EvalOptions,
                     max_new_tokens: int, tick=_no_tick) -> list[str]:
    import torch

    device = next(model.parameters()).device
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # generation continues from the right edge of every row
    replies = []
    try:
        for start in range(0, len(prompts), options.batch_size):
            texts = [tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True)
                     for p in prompts[start:start + options.batch_size]]
            batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            torch.manual_seed(options.seed + start)
            sample = options.temperature > 0
            with torch.no_grad():
                out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=sample,
                                     temperature=options.temperature if sample else None,
                                     top_p=options.top_p if sample else None, pad_token_id=tokenizer.pad_token_id)
            replies += [t.strip() for t in tokenizer.batch_decode(out[:, batch["input_ids"].shape[1]:],
                                                                  skip_special_tokens=True)]
            tick(len(texts))
    finally:
        tokenizer.padding_side = side
    return replies


class Evaluator:
    """Scores adapters loaded into one peft model against the same held-out data; the base model's
    side (perplexity, replies, profile) is computed once."""

    def __init__(self, model, tokenizer, held: HeldOut, options: EvalOptions, progress=None):
        self.model, self.tokenizer, self.held, self.options = model, tokenizer, held, options
        # progress(description) -> tick(n): a display of the work done (doppel.progress.LazyProgress).
        self.progress = progress
        chosen = _pick(held.split.heldout, options.samples)
        self.prompts = [record_messages(r)[:-1] for r in chosen]
        self.owner_replies = [record_messages(r)[-1]["content"] for r in chosen]
        train = [record_messages(r) for r in held.split.train]
        self.phrases = top_phrases([m[-1]["content"] for m in train],
                                   [t["content"] for m in train for t in m if t["role"] == "user"])
        lengths = sorted(len(tokenizer(r, add_special_tokens=False)["input_ids"]) for r in self.owner_replies)
        p90 = lengths[int(0.9 * (len(lengths) - 1))] if lengths else 32
        self.max_new_tokens = max(16, min(options.max_new_tokens, 2 * p90 + 8))
        self.owner = profile(self.owner_replies, self.phrases)
        self._base: dict | None = None
        self._who = "adapter"

    def work(self, adapters: int = 1) -> int:
        """Units of work (held-out replies scored, prompts answered) for the base and ``adapters``."""
        per_model = len(self.held.split.heldout) + (len(self.prompts) if self.options.generate else 0)
        return per_model * ((self._base is None) + adapters)

    def _tick(self, stage: str):
        if self.progress is None:
            return _no_tick
        return self.progress(f"evaluating: {self._who}, {stage}")

    def _style(self) -> tuple[dict, list[str]]:
        if not self.options.generate:
            return {}, []
        replies = generate_replies(self.model, self.tokenizer, self.prompts, self.options, self.max_new_tokens,
                                   self._tick("replies"))
        mine = profile(replies, self.phrases)
        return {"profile": mine.to_dict(), "distance": compare(self.owner, mine)}, replies

    def base(self) -> dict:
        if self._base is None:
            with self.model.disable_adapter():
                self._who = "base model"
                ppl = reply_perplexity(self.model, self.tokenizer, self.held, self._tick("perplexity"))
                style, replies = self._style()
            self._base = {"perplexity": ppl, "style": style, "replies": replies}
        return self._base

    def score(self, adapter: str) -> dict:
        """The report for adapter ``adapter`` (a name loaded into the model)."""
        base = self.base()
        self.model.set_adapter(adapter)
        self._who = adapter
        ppl = reply_perplexity(self.model, self.tokenizer, self.held, self._tick("perplexity"))
        style, replies = self._style()
        ratio = round(ppl["ppl"] / base["perplexity"]["ppl"], 4)
        report = {
            "evaluated_at": time.time(), "options": asdict(self.options),
            "data": {"path": str(self.held.data), "heldout_samples": len(self.held.split.heldout),
                     "heldout_sessions": len(self.held.split.heldout_sessions),
                     "trained_on_heldout_sessions": self.held.trained_overlap, "prompts": len(self.prompts)},
            "perplexity": {"base": base["perplexity"]["ppl"], "adapter": ppl["ppl"], "ratio": ratio,
                           "reply_tokens": ppl["tokens"]},
            "phrases": self.phrases,
            "publishable": ratio < self.options.max_ppl_ratio,
        }
        if self.options.generate:
            report["style"] = {"owner": self.owner.to_dict(), "adapter": style["profile"],
                               "base": base["style"]["profile"],
                               "distance": {"adapter": style["distance"], "base": base["style"]["distance"]}}
            report["likeness"] = round(ratio + style["distance"]["style_distance"], 4)
            report["examples"] = [
                {"prompt": p[-1]["content"][-200:], "owner": o, "adapter": a, "base": b}
                for p, o, a, b in list(zip(self.prompts, self.owner_replies, replies, base["replies"],
                                           strict=True))[:5]]
        else:
            report["likeness"] = ratio
        return report


def _base_for(adapter_dir: Path, meta: dict, cache_dir: Path | None) -> str | None:
    from training.sft.modeling import resolve_base

    path = meta.get("base_path")
    if path and Path(path).is_dir():
        return path
    return resolve_base(meta["base_model"], cache_dir) if meta.get("base_model") else None


@contextlib.contextmanager
def shown_progress(evaluator: Evaluator, console: Console | None, adapters: int = 1):
    """Show ``evaluator``'s progress on ``console`` (when given and the work takes over a second)."""
    if console is None:
        yield
        return
    from doppel.progress import LazyProgress

    done = 0
    with LazyProgress(console, "evaluating", total=evaluator.work(adapters)) as shown:
        def stage(description: str):
            def tick(count: int = 1) -> None:
                nonlocal done
                done += count
                shown.update(done, description)
            return tick

        evaluator.progress = stage
        try:
            yield
        finally:
            evaluator.progress = None


def evaluate_adapter(adapter_dir: Path, data: Path | None = None, options: EvalOptions = EvalOptions(), *,
                     out_dir: Path | None = None, cache_dir: Path | None = None,
                     console: Console | None = None) -> dict:
    """Evaluate one adapter directory; writes eval.json and eval.png into ``out_dir`` (default: the adapter's)."""
    from training.sft.modeling import load_adapter_model, pick_device
    from training.sft.trainer import train_meta

    adapter_dir = Path(adapter_dir)
    meta = train_meta(adapter_dir)
    held = load_heldout(_data_path(data, meta, adapter_dir), meta)
    model, tokenizer = load_adapter_model({"adapter": adapter_dir}, pick_device(),
                                          _base_for(adapter_dir, meta, cache_dir))
    evaluator = Evaluator(model, tokenizer, held, options)
    with shown_progress(evaluator, console):
        report = evaluator.score("adapter")
    report["adapter"] = str(adapter_dir)
    write_report(report, Path(out_dir or adapter_dir))
    if console is not None:
        render(report, console)
    return report


def _data_path(data: Path | None, meta: dict, adapter_dir: Path) -> Path:
    if data is not None:
        return Path(data)
    recorded = meta.get("data", {}).get("path")
    if not recorded:
        raise InputError(f"{adapter_dir}: no record of its training data; pass --data samples.jsonl")
    if not Path(recorded).is_file():
        raise InputError(f"{adapter_dir} was trained on {recorded}, which is gone; pass --data samples.jsonl")
    return Path(recorded)


def evaluate_run(run_dir: Path, data: Path | None = None, options: EvalOptions = EvalOptions(), *,
                 cache_dir: Path | None = None, console: Console | None = None) -> dict:
    """Evaluate every checkpoint of a training run (and its final adapter); pick the best step."""
    from peft import PeftModel

    from training.sft.callbacks import checkpoint_step, checkpoints
    from training.sft.modeling import load_model, load_tokenizer, pick_device
    from training.sft.trainer import ADAPTER, CHECKPOINTS, train_meta

    run_dir = Path(run_dir)
    candidates = [(checkpoint_step(c), c) for c in checkpoints(run_dir / CHECKPOINTS)]
    final = run_dir / ADAPTER
    if (final / "adapter_config.json").is_file():
        steps = {s for s, _ in candidates}
        final_step = train_meta(final).get("steps")
        if final_step not in steps:
            candidates.append((final_step or max(steps, default=0) + 1, final))
    if not candidates:
        raise InputError(f"{run_dir}: no checkpoints to evaluate (is it a `doppel train run --out` directory?)")
    meta = train_meta(candidates[-1][1])
    held = load_heldout(_data_path(data, meta, run_dir), meta)
    device = pick_device()
    base = _base_for(candidates[-1][1], meta, cache_dir) or meta.get("base_model")
    tokenizer = load_tokenizer(base)
    model = PeftModel.from_pretrained(load_model(base, device), str(candidates[0][1]), adapter_name="candidate")
    model.eval()
    evaluator = Evaluator(model, tokenizer, held, options)
    rows = []
    for index, (step, folder) in enumerate(candidates):
        if index:
            model.delete_adapter("candidate")
            model.load_adapter(str(folder), adapter_name="candidate")
        with shown_progress(evaluator, console):
            report = evaluator.score("candidate")
        report["adapter"], report["step"] = str(folder), step
        write_report(report, folder, chart=False)
        rows.append(report)
        if console is not None:
            console.print(f"step {step}: ppl ratio {report['perplexity']['ratio']:.3f}, "
                          f"likeness {report['likeness']:.3f}")
    best = min(rows, key=lambda r: (r["likeness"], r["step"]))
    result = {"run": str(run_dir), "best": {"step": best["step"], "adapter": best["adapter"],
                                            "likeness": best["likeness"]},
              "checkpoints": [{"step": r["step"], "adapter": r["adapter"], **summary(r)} for r in rows]}
    (run_dir / "checkpoints_eval.json").write_text(json.dumps(result, indent=2, ensure_ascii=False))
    from training.sft.charts import line_chart

    series = {"ppl ratio": [(r["step"], r["perplexity"]["ratio"]) for r in rows]}
    if options.generate:
        series["style distance"] = [(r["step"], r["style"]["distance"]["adapter"]["style_distance"]) for r in rows]
    line_chart(run_dir / "checkpoints.png", f"checkpoints of {run_dir.name} (best: step {best['step']})",
               [("adapter vs owner (lower is better)", series)])
    if console is not None:
        render_checkpoints(result, console)
    return result
