"""``doppel adapters blend chat:0.7 articles:0.2 --name me-v3``: weighted merges of adapters with peft.

``peft``'s ``add_weighted_adapter`` does the arithmetic:

* ``linear`` (default) mixes the parents' A and B matrices with the square roots of the weights;
  the result keeps the parents' rank, which must be equal. Cheap, and what LoRA-merging tools do.
* ``svd`` mixes the parents' full weight deltas exactly, then truncates to ``rank`` (default: the
  largest parent rank) by SVD: parents of different ranks can be blended.
* ``cat`` stacks the parents' matrices: the exact weighted sum of the deltas, with rank = the sum
  of the parents' ranks. Refused when that exceeds the serving ``max_lora_rank`` (vLLM would not
  load the adapter).

The blend is written as an ordinary adapter directory whose ``doppel_train.json`` names the
parents and weights (they go into the card when it is published) and whose data is the first
parent's, so ``doppel eval`` works on it like on any adapter. ``Blender.sweep`` evaluates a grid
of weightings on the held-out set and returns them ranked.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from doppel.errors import InputError
from training.adapters.publish import adapter_rank
from training.sft.modeling import adapter_config, same_base

COMBINATIONS = ("linear", "svd", "cat")


@dataclass(frozen=True)
class Parent:
    label: str          # what the card shows: "chat@v2", or the directory
    path: Path
    weight: float


def parse_weighted(specs: list[str] | tuple[str, ...]) -> list[tuple[str, float]]:
    """``["chat:0.7", "articles@v2:0.2"]`` -> ``[("chat", 0.7), ("articles@v2", 0.2)]``."""
    out = []
    for spec in specs:
        name, sep, weight = spec.rpartition(":")
        try:
            value = float(weight)
        except ValueError:
            value = None
        if not sep or not name or value is None:
            raise InputError(f"{spec!r}: expected ADAPTER:WEIGHT, e.g. chat:0.7")
        out.append((name, value))
    if len(out) < 2:
        raise InputError("a blend needs at least two adapters, e.g. chat:0.7 articles:0.3")
    if len({name for name, _ in out}) != len(out):
        raise InputError("each adapter may appear only once in a blend")
    return out


def blend_rank(parents: list[Parent], combination: str, max_rank: int, svd_rank: int | None = None) -> int:
    """The blend's rank, or an ``InputError`` when the parents cannot be blended this way."""
    if combination not in COMBINATIONS:
        raise InputError(f"unknown combination {combination!r}; use one of {', '.join(COMBINATIONS)}")
    configs = [adapter_config(p.path) for p in parents]
    bases = {c.get("base_model_name_or_path") or "" for c in configs}
    first = configs[0].get("base_model_name_or_path") or ""
    if any(not same_base(first, b) for b in bases):
        raise InputError(f"the adapters were trained on different base models ({', '.join(sorted(bases))})")
    ranks = [adapter_rank(c) for c in configs]
    shown = ", ".join(f"{p.label} r={r}" for p, r in zip(parents, ranks, strict=True))
    if combination == "linear":
        if len(set(ranks)) != 1:
            raise InputError(f"linear blending needs equal ranks ({shown}); use --combination svd")
        rank = ranks[0]
    elif combination == "cat":
        rank = sum(ranks)
    else:
        rank = svd_rank or max(ranks)
    if rank > max_rank:
        hint = "use --combination linear or svd, or raise" if combination == "cat" else "lower --rank or raise"
        raise InputError(f"a {combination} blend of {shown} has rank {rank}, above the serving max_lora_rank "
                         f"{max_rank}: vLLM could not load it; {hint} [train] max_lora_rank")
    return rank


class Blender:
    """The base model with the parents loaded once; blends are added (and evaluated) on top."""

    def __init__(self, parents: list[Parent], combination: str = "linear", max_rank: int = 64,
                 svd_rank: int | None = None, base: str | None = None):
        from training.sft.modeling import load_adapter_model, pick_device

        self.parents, self.combination, self.svd_rank = parents, combination, svd_rank
        self.rank = blend_rank(parents, combination, max_rank, svd_rank)
        self.names = [f"parent{i}" for i in range(len(parents))]
        self.model, self.tokenizer = load_adapter_model(dict(zip(self.names, (p.path for p in parents), strict=True)),
                                                        pick_device(), base)
        from training.sft.trainer import train_meta

        self.meta = [train_meta(p.path) for p in parents]

    def add(self, weights: list[float], name: str = "blend") -> str:
        """Add the blend with ``weights`` (one per parent) as adapter ``name``; returns ``name``."""
        if name in self.model.peft_config:
            self._drop(name)
        self.model.add_weighted_adapter(self.names, list(weights), adapter_name=name,
                                        combination_type=self.combination, svd_rank=self.svd_rank)
        return name

    def _drop(self, name: str) -> None:
        # Deleting the active adapter makes peft warn and pick one; pick one first.
        self.model.set_adapter(self.names[0])
        self.model.delete_adapter(name)

    def save(self, name: str, out_dir: Path, weights: list[float]) -> Path:
        """Write adapter ``name`` to ``out_dir`` as a standalone adapter directory with its lineage."""
        out_dir = Path(out_dir)
        staging = out_dir.with_name(f".{out_dir.name}.tmp")
        shutil.rmtree(staging, ignore_errors=True)
        self.model.save_pretrained(str(staging), selected_adapters=[name])
        # peft saves a non-default adapter into a subfolder named after it.
        saved = staging / name if (staging / name / "adapter_config.json").is_file() else staging
        first = self.meta[0]
        meta = {
            "preset": "blend", "base_model": first.get("base_model") or "", "base_path": first.get("base_path"),
            "config": first.get("config", {}), "combination": self.combination, "rank": self.rank,
            "parents": [{"adapter": p.label, "weight": w} for p, w in zip(self.parents, weights, strict=True)],
            "created_at": time.time(),
            # Evaluated on the first parent's data unless told otherwise.
            "data": {k: v for k, v in first.get("data", {}).items() if k in ("path", "sha256", "samples",
                                                                               "train_sessions")},
        }
        (saved / "doppel_train.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False))
        shutil.rmtree(out_dir, ignore_errors=True)
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        os.replace(saved, out_dir)
        shutil.rmtree(staging, ignore_errors=True)
        return out_dir

    def sweep(self, evaluator, weightings: list[list[float]]) -> list[dict]:
        """Score each weighting with ``evaluator`` (``training.likeness.evaluate.Evaluator`` on this model);
        best (lowest likeness) first."""
        rows = []
        for weights in weightings:
            name = self.add(weights, "sweep")
            report = evaluator.score(name)
            rows.append({"weights": list(weights), "report": report})
            self._drop(name)
        return sorted(rows, key=lambda r: r["report"]["likeness"])


def sweep_grid(given: list[float], step: float = 0.25) -> list[list[float]]:
    """Weightings on the simplex (summing to 1) every ``step``, plus the ``given`` one."""
    parts = round(1 / step)
    grid = [[c / parts for c in combo] for combo in itertools.product(range(parts + 1), repeat=len(given))
            if sum(combo) == parts]
    if list(given) not in grid:
        grid.append(list(given))
    return grid


def parents_from_specs(specs, settings, registry) -> list[Parent]:
    """``a@v2:0.7``-style specs as parents: a registry reference, or an adapter directory."""
    parents = []
    for label, weight in parse_weighted(specs):
        path = Path(label).expanduser()
        if path.is_dir():
            parents.append(Parent(str(path), path, weight))
        else:
            ref = registry.resolve_ref(label)
            registry.card(ref)
            parents.append(Parent(str(ref), registry.path(ref), weight))
    return parents
