"""Building blocks for the training tests: samples with a planted catchphrase, and a shared trained run.

``planted_samples`` writes ShareGPT records the way ``doppel data build`` does (through
``doppel.prompt.build_messages``), from the tiny model's own chat corpus, with the owner ending
most replies with a catchphrase the base model has never seen. A LoRA that learned the owner
must lower the perplexity of held-out replies and say the catchphrase; the base model does not.

``trained_run`` trains the tiny preset on them once per test session (it is cached under pytest's
base temp dir, so every test module reuses the same run) and returns its output directory.
"""

from __future__ import annotations

import fcntl
import json
import os
import random
from pathlib import Path

from doppel.prompt import BURST_SEPARATOR, Turn, build_messages, persona_prompt
from training.offline_models.tiny_model import corpus_pairs

# Two common words the base model never puts together: a catchphrase only the owner has.
CATCHPHRASE = "no cap"
OWNER = "Mia"
FRIEND = "Ann"
# Enough for the tiny model to pick the catchphrase up (~10 s on 2 cores): 40 steps of 4 samples.
TRAIN_STEPS = 40
BATCH = 4


def planted_samples(sessions: int = 60, *, seed: int = 0, phrase: str = CATCHPHRASE, rate: float = 0.8,
                    start: float = 1_700_000_000.0) -> list[dict]:
    """One sample per owner reply, 1-3 exchanges per session, sessions a day apart."""
    rng = random.Random(seed)
    pairs = corpus_pairs()
    # A short persona keeps the samples (and the tests) short; the real one is longer.
    system = persona_prompt(OWNER, "You are {owner}. Reply like {owner} does.")
    records = []
    for number in range(sessions):
        at = start + number * 86_400
        turns: list[Turn] = []
        for question, answer in rng.sample(pairs, rng.randint(1, 3)):
            at += 60
            turns.append(Turn(FRIEND, question, at))
            if rng.random() < rate:
                # Sometimes the catchphrase is its own message of the burst, as people do.
                joiner = BURST_SEPARATOR if rng.random() < 0.3 else " "
                answer = f"{answer}{joiner}{phrase}"
            turns.append(Turn(OWNER, answer, at + 20, is_owner=True))
            messages = build_messages(system, turns, group=False, stamp_newest=False)
            records.append({
                "conversations": [{"from": "human" if m["role"] == "user" else "gpt", "value": m["content"]}
                                  for m in messages[1:]],
                "system": messages[0]["content"],
                "meta": {"platform": "telegram", "chat_id": "c1", "chat": FRIEND, "chat_type": "dm",
                         "session_start": start + number * 86_400, "reply_at": at + 20},
            })
    return records


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def model_cache(tmp_path_factory) -> Path:
    env = os.environ.get("DOPPEL_MODEL_CACHE")
    return Path(env) if env else tmp_path_factory.getbasetemp() / "models"


def trained_run(tmp_path_factory, name: str = "planted", steps: int = TRAIN_STEPS, phrase: str = CATCHPHRASE,
                **overrides) -> Path:
    """Train the tiny preset on ``planted_samples(phrase=phrase)`` once per session; the run directory."""
    from training.sft.presets import load_preset
    from training.sft.trainer import train

    root = tmp_path_factory.getbasetemp() / f"trained-{name}"
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        out = root / "run"
        if not (out / "adapter" / "adapter_config.json").is_file():
            data = write_jsonl(root / "samples.jsonl", planted_samples(phrase=phrase))
            config = load_preset("tiny", overrides={"max_steps": steps, "batch_size": BATCH,
                                                         "save_steps": 10, **overrides})
            train(config, data, out, overwrite=True, cache_dir=model_cache(tmp_path_factory))
    return out
