"""Training data: ShareGPT samples in, held-out split, token ids with loss on the owner's turns only.

* ``load_samples`` reads the JSONL that ``doppel data build`` writes (``training/dataset/samples.py``);
  OpenAI-style ``{"messages": [...]}`` records are accepted too.
* ``split_holdout`` is *the* split: the latest ``HOLDOUT_FRACTION`` of sessions by
  ``meta.session_start`` are held out. Training and evaluation both call it, so the held-out
  replies are never trained on; a reply's earlier turns are in the same session, so nothing of a
  held-out conversation leaks into training through context either.
* ``encode`` renders a record with the tokenizer's chat template -- the same messages and system
  persona that ``doppel.prompt.build_messages`` gives the worker -- and labels only the
  tokens of the owner's (assistant) replies; everything else is -100.
* ``packed_collator`` concatenates a batch into one row without padding (position ids restart
  per sample, and transformers masks attention per sample from them); ``padded_collator`` is
  the classic padded batch, kept for the benchmark's comparison.

Imports transformers only inside the collator factories.

Tested in ``tests/training/sft/test_trainer.py`` (records, the held-out split, loss masking,
trimming, packing).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from doppel.errors import InputError

HOLDOUT_FRACTION = 0.1
IGNORE = -100
ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}

# Reasons a sample is not used, as counted in ``EncodeStats.dropped``.
TOO_LONG = "too_long"
NO_REPLY = "no_reply"


def record_messages(record: dict) -> list[dict[str, str]]:
    """Chat messages of a ShareGPT (``conversations`` + ``system``) or OpenAI (``messages``) record."""
    messages: list[dict[str, str]] = []
    if record.get("system"):
        messages.append({"role": "system", "content": str(record["system"])})
    turns = record.get("conversations")
    if turns is None:
        turns = [{"from": m.get("role"), "value": m.get("content")} for m in record.get("messages") or []]
    for turn in turns:
        role = ROLES.get(str(turn.get("from", "")).lower())
        if role is None or not isinstance(turn.get("value"), str):
            raise ValueError(f"turn {turn!r} has no known 'from' (human/gpt) or no text 'value'")
        if role == "system" and messages and messages[0]["role"] == "system":
            continue
        messages.append({"role": role, "content": turn["value"]})
    return messages


def load_samples(path: str | Path) -> list[dict]:
    """The records of a samples JSONL file; a broken line is an ``InputError`` naming its number."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such samples file (build one with `doppel data build`)")
    records = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise ValueError("not a JSON object")
                record_messages(record)
            except (ValueError, AttributeError, TypeError) as exc:
                raise InputError(f"{path}:{number}: not a ShareGPT sample ({str(exc)[:120]})") from None
            records.append(record)
    return records


def session_of(record: dict, index: int) -> tuple[str, float]:
    """(session key, start time) of a record. Records without ``meta.session_start`` are their own
    session, ordered by their place in the file."""
    meta = record.get("meta") or {}
    start = meta.get("session_start")
    if not isinstance(start, int | float):
        return f"#{index}", float(index)
    chat = meta.get("chat_id") or meta.get("chat") or ""
    return f"{meta.get('platform', '')}:{chat}:{start}", float(start)


@dataclass
class Split:
    train: list[dict]
    heldout: list[dict]
    heldout_sessions: list[str]
    train_sessions: list[str]
    fraction: float


def split_holdout(records: Sequence[dict], fraction: float = HOLDOUT_FRACTION) -> Split:
    """Hold out the latest ``fraction`` of sessions (by start time; at least one when there are two
    or more), never trained on."""
    starts: dict[str, float] = {}
    keys = []
    for index, record in enumerate(records):
        key, start = session_of(record, index)
        keys.append(key)
        starts[key] = min(start, starts.get(key, math.inf))
    ordered = sorted(starts, key=lambda key: (starts[key], key))
    count = 0 if len(ordered) < 2 else max(1, round(len(ordered) * fraction))
    held = set(ordered[len(ordered) - count:])
    train = [r for r, k in zip(records, keys, strict=True) if k not in held]
    heldout = [r for r, k in zip(records, keys, strict=True) if k in held]
    return Split(train, heldout, sorted(held, key=starts.__getitem__),
                 [k for k in ordered if k not in held], fraction)


@dataclass
class EncodeStats:
    samples: int = 0
    encoded: int = 0
    trimmed: int = 0            # lost earlier turns to fit max_length
    tokens: int = 0
    target_tokens: int = 0      # tokens the loss is computed on
    dropped: Counter = field(default_factory=Counter)

    def to_dict(self) -> dict:
        return {**self.__dict__, "dropped": dict(self.dropped)}


def _render(tokenizer, messages: list[dict[str, str]], **kwargs) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, **kwargs)


def reply_spans(tokenizer, messages: list[dict[str, str]], train_on: str = "last") -> tuple[str, list[tuple[int, int]]]:
    """The rendered text and the character spans of the replies to learn (reply text + end token)."""
    text = _render(tokenizer, messages)
    replies = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    if train_on == "last":
        replies = replies[-1:]
    spans = []
    for i in replies:
        before = _render(tokenizer, messages[:i], add_generation_prompt=True)
        upto = _render(tokenizer, messages[: i + 1])
        if not (text.startswith(before) and text.startswith(upto)):
            raise InputError("the base model's chat template renders a conversation differently from its prefixes, "
                             "so the owner's replies cannot be located; use a model with a ChatML-like template")
        spans.append((len(before), len(upto)))
    return text, spans


def encode(tokenizer, messages: list[dict[str, str]], max_length: int, train_on: str = "last",
           stats: EncodeStats | None = None) -> dict | None:
    """``{"input_ids", "labels"}`` for one conversation, or ``None`` when it has no reply or cannot
    fit. Too long: earlier turns are dropped, whole, until it fits (never a cut inside a turn)."""
    stats = stats if stats is not None else EncodeStats()
    stats.samples += 1
    if not messages or messages[-1]["role"] != "assistant" or not messages[-1]["content"].strip():
        stats.dropped[NO_REPLY] += 1
        return None
    system = [m for m in messages[:1] if m["role"] == "system"]
    body = list(messages[len(system):])
    trimmed = False
    while True:
        text, spans = reply_spans(tokenizer, system + body, train_on)
        encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids = encoded["input_ids"]
        if len(ids) <= max_length:
            break
        # Drop the oldest exchange; the conversation must still open with someone else's turn.
        drop = 1
        while drop < len(body) and body[drop]["role"] != "user":
            drop += 1
        if drop >= len(body) - 1:
            stats.dropped[TOO_LONG] += 1
            return None
        body = body[drop:]
        trimmed = True
    labels = [token if any(start <= begin < end for start, end in spans) else IGNORE
              for token, (begin, _) in zip(ids, encoded["offset_mapping"], strict=True)]
    stats.encoded += 1
    stats.trimmed += trimmed
    stats.tokens += len(ids)
    stats.target_tokens += sum(label != IGNORE for label in labels)
    return {"input_ids": ids, "labels": labels}


def encode_all(tokenizer, records: Iterable[dict], max_length: int, train_on: str = "last",
               stats: EncodeStats | None = None) -> list[dict]:
    stats = stats if stats is not None else EncodeStats()
    out = []
    for record in records:
        row = encode(tokenizer, record_messages(record), max_length, train_on, stats)
        if row is not None:
            out.append(row)
    return out


def packed_collator():
    """Padding-free batches: the samples of a batch side by side in one row, positions restarting
    per sample, and the boundaries as FlashAttention's ``cu_seq_lens`` (training.sft.attention)."""
    from transformers import DataCollatorWithFlattening

    return DataCollatorWithFlattening(return_position_ids=True, separator_id=IGNORE, return_flash_attn_kwargs=True)


def padded_collator(tokenizer):
    """Classic batches padded to their longest sample (labels padded with -100)."""
    from transformers import DataCollatorForSeq2Seq

    return DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=IGNORE, return_tensors="pt")
