"""LoRA SFT: the held-out split, loss on the owner's replies only, padding-free batches, presets,
clear refusals for empty or tiny data, and resume after Ctrl-C and kill -9."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from train_helpers import CATCHPHRASE, model_cache, planted_samples, trained_run, write_jsonl

from doppel.errors import ConfigError, InputError
from training.sft.dataset import (
    IGNORE,
    EncodeStats,
    encode,
    load_samples,
    packed_collator,
    record_messages,
    split_holdout,
)
from training.sft.presets import available_presets, load_preset, parse_assignments

torch = pytest.importorskip("torch")
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    from training.offline_models import ensure_model

    return ensure_model("tiny", model_cache(tmp_path_factory), progress=False)


@pytest.fixture(scope="module")
def tokenizer(tiny_dir):
    from training.sft.modeling import load_tokenizer

    return load_tokenizer(str(tiny_dir))


def _record(session_start, replies=("sure",), system="You are Mia.", chat="c1"):
    turns = []
    for i, reply in enumerate(replies):
        turns += [{"from": "human", "value": f"question {i}?"}, {"from": "gpt", "value": reply}]
    return {"conversations": turns, "system": system,
            "meta": {"platform": "telegram", "chat_id": chat, "session_start": session_start}}


# -- data -----------------------------------------------------------------------------------------

def test_records_become_chat_messages():
    assert record_messages(_record(1, ["a", "b"])) == [
        {"role": "system", "content": "You are Mia."}, {"role": "user", "content": "question 0?"},
        {"role": "assistant", "content": "a"}, {"role": "user", "content": "question 1?"},
        {"role": "assistant", "content": "b"}]
    openai = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}
    assert [m["role"] for m in record_messages(openai)] == ["user", "assistant"]
    with pytest.raises(ValueError, match="from"):
        record_messages({"conversations": [{"from": "robot", "value": "x"}]})


def test_the_latest_tenth_of_sessions_is_held_out_whole():
    # 30 sessions, two samples each, in shuffled file order; one chat's sessions interleave another's.
    records = [_record(start, chat=f"c{start % 3}") for start in range(100, 130) for _ in range(2)]
    records = records[1::2] + records[::2]
    split = split_holdout(records)
    held = {r["meta"]["session_start"] for r in split.heldout}
    assert held == {127, 128, 129}
    assert len(split.heldout) == 6 and len(split.train) == 54
    assert not held & {r["meta"]["session_start"] for r in split.train}
    # Two sessions: one is held out; one session: nothing is (the trainer refuses that).
    assert len(split_holdout([_record(1), _record(2)]).heldout) == 1
    assert split_holdout([_record(1), _record(1)]).heldout == []


def test_load_samples_names_the_broken_line(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text(json.dumps(_record(1)) + "\n\n{not json\n")
    with pytest.raises(InputError, match=r"s\.jsonl:3: not a ShareGPT sample"):
        load_samples(path)
    with pytest.raises(InputError, match="no such samples file"):
        load_samples(tmp_path / "missing.jsonl")


def test_loss_is_only_on_the_owners_reply(tokenizer):
    messages = record_messages(_record(1, ["first reply", "the last reply 🎉\n\nsecond message"]))
    row = encode(tokenizer, messages, 512, "last")
    learned = [t for t, label in zip(row["input_ids"], row["labels"], strict=True) if label != IGNORE]
    assert tokenizer.decode(learned) == "the last reply 🎉\n\nsecond message<|im_end|>\n"
    assert all(label in (IGNORE, token) for token, label in zip(row["input_ids"], row["labels"], strict=True))
    both = encode(tokenizer, messages, 512, "all")
    learned = [t for t, label in zip(both["input_ids"], both["labels"], strict=True) if label != IGNORE]
    assert tokenizer.decode(learned) == "first reply<|im_end|>\nthe last reply 🎉\n\nsecond message<|im_end|>\n"
    # The rendered text is the chat template's, persona included: what the worker sends at serving time.
    assert tokenizer.decode(row["input_ids"]) == tokenizer.apply_chat_template(messages, tokenize=False)


def test_too_long_samples_lose_whole_earlier_turns_then_drop(tokenizer):
    messages = record_messages(_record(1, ["x " * 40, "y " * 40, "final"]))
    stats = EncodeStats()
    full = len(encode(tokenizer, messages, 4096)["input_ids"])
    row = encode(tokenizer, messages, full - 5, stats=stats)
    text = tokenizer.decode(row["input_ids"])
    assert stats.trimmed == 1 and "question 0?" not in text and "question 1?" in text and "final" in text
    assert text.startswith("<|im_start|>system\nYou are Mia.<|im_end|>\n<|im_start|>user\n")
    assert encode(tokenizer, messages, 20, stats=stats) is None and stats.dropped["too_long"] == 1


def test_packed_batches_equal_separate_samples(tiny_dir, tokenizer):
    """A packed row gives every sample the logits it has alone: no attention across samples."""
    from training.sft.modeling import load_model, pick_device

    rows = [encode(tokenizer, record_messages(r), 512) for r in planted_samples(3)[:4]]
    batch = packed_collator()(rows)
    assert batch["input_ids"].shape[0] == 1 and "attention_mask" not in batch
    for packed in (True, False):  # ours, and transformers' SDPA with its block-diagonal mask
        model = load_model(str(tiny_dir), pick_device(), for_training=True, packed=packed)
        with torch.no_grad():
            together = model(**{k: v for k, v in batch.items() if k != "labels"}).logits[0]
            offset = 0
            for row in rows:
                alone = model(input_ids=torch.tensor([row["input_ids"]])).logits[0]
                assert torch.allclose(together[offset:offset + len(alone)], alone, atol=1e-4)
                offset += len(alone)


# -- presets --------------------------------------------------------------------------------------

def test_presets_load_extend_and_validate():
    names = available_presets()
    assert {"qwen2.5-7b", "qwen2.5-7b-qlora", "qwen2.5-1.5b", "smollm2", "tiny"} <= set(names)
    default = load_preset("qwen2.5-7b")
    assert default.base_model == "Qwen/Qwen2.5-7B-Instruct" and default.target_modules == "all-linear"
    qlora = load_preset("qwen2.5-7b-qlora")
    assert qlora.quantization == "4bit" and qlora.base_model == default.base_model and qlora.rank == default.rank
    tiny = load_preset("tiny", overrides=parse_assignments(["rank=4", "target_modules=['q_proj', 'v_proj']",
                                                            "learning_rate=1e-3"]))
    assert (tiny.rank, tiny.target_modules, tiny.learning_rate) == (4, ["q_proj", "v_proj"], 1e-3)
    with pytest.raises(ConfigError, match=r"unknown preset 'llama'; available: .*tiny"):
        load_preset("llama")
    with pytest.raises(ConfigError, match=r"preset tiny \(with overrides\): rank = 0: .*greater than or equal to 1"):
        load_preset("tiny", overrides={"rank": 0})
    with pytest.raises(ConfigError, match="unknown key"):
        parse_assignments(["colour=red"])


def test_a_user_preset_extends_a_shipped_one(tmp_path):
    (tmp_path / "mine.toml").write_text('extends = "tiny"\nrank = 2\n')
    (tmp_path / "loop.toml").write_text('extends = "loop"\n')
    mine = load_preset("mine", tmp_path)
    assert mine.rank == 2 and mine.base_model == "tiny" and mine.name == "mine"
    with pytest.raises(ConfigError, match="loops"):
        load_preset("loop", tmp_path)


def test_qlora_without_a_gpu_is_a_clear_error():
    from training.sft.modeling import Device, _four_bit

    with pytest.raises(ConfigError, match=r"QLoRA.*needs a CUDA GPU"):
        _four_bit(Device("cpu", "float32"))


# -- empty and tiny data ----------------------------------------------------------------------------

@pytest.mark.parametrize("records, message", [
    ([], "has no samples"),
    ([_record(5), _record(5)], r"2 sample\(s\) in 1 session\(s\): too few to train"),
])
def test_empty_or_tiny_datasets_are_refused_clearly(tmp_path, records, message):
    from training.sft.trainer import train

    data = write_jsonl(tmp_path / "s.jsonl", records)
    with pytest.raises(InputError, match=message):
        train(load_preset("tiny"), data, tmp_path / "run")
    assert not (tmp_path / "run" / "adapter").exists()


def test_samples_that_cannot_fit_are_refused_clearly(tmp_path, tiny_dir):
    from training.sft.trainer import train

    data = write_jsonl(tmp_path / "s.jsonl", [_record(i, ["word " * 50]) for i in range(4)])
    with pytest.raises(InputError, match=r"none of the 3 training samples can be used \(3 too_long; max_length 16\)"):
        train(load_preset("tiny", overrides={"max_length": 16}), data, tmp_path / "run", cache_dir=tiny_dir.parent)


def test_a_small_dataset_trains_with_a_warning(tmp_path, tiny_dir):
    from rich.console import Console

    from training.sft.trainer import train

    # A terminal console: the live progress bar (step, loss, tokens/s) is drawn.
    console = Console(record=True, width=200, force_terminal=True, file=io.StringIO())
    data = write_jsonl(tmp_path / "s.jsonl", [_record(i, ["ok cool"]) for i in range(3)])
    result = train(load_preset("tiny", overrides={"max_steps": 2, "log_steps": 1}), data, tmp_path / "run",
                   console=console, cache_dir=tiny_dir.parent)
    assert result.steps == 2 and (result.adapter_dir / "adapter_model.safetensors").is_file()
    text = console.export_text()
    assert "only 2 training samples" in text
    assert "training tiny" in text and "2/2" in text and "tok/s" in text and f"loss {result.final_loss:.4f}" in text
    with pytest.raises(InputError, match="already holds a training run; pass --resume"):
        train(load_preset("tiny", overrides={"max_steps": 2}), data, tmp_path / "run", cache_dir=tiny_dir.parent)


# -- the trained run --------------------------------------------------------------------------------

def test_training_writes_adapter_log_and_curve(tmp_path_factory):
    run = trained_run(tmp_path_factory)
    meta = json.loads((run / "adapter" / "doppel_train.json").read_text())
    assert meta["steps"] == 40 and meta["base_model"] == "tiny" and meta["config"]["batch_size"] == 4
    assert meta["data"]["heldout_samples"] > 0 and len(meta["data"]["train_sessions"]) == 54
    log = json.loads((run / "train_log.json").read_text())
    losses = [e["loss"] for e in log["entries"]]
    assert [e["step"] for e in log["entries"]][:3] == [1, 5, 10] and log["entries"][-1]["step"] == 40
    assert losses[-1] < 0.5 * losses[0], losses
    assert all(e["tokens_per_s"] > 0 and e["tokens"] > 0 for e in log["entries"])
    assert (run / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Optimizer state is kept only where --resume may need it: the two newest checkpoints.
    with_state = sorted(p.parent.name for p in (run / "checkpoints").glob("*/optimizer.pt"))
    assert with_state == ["checkpoint-30", "checkpoint-40"]
    assert (run / "checkpoints" / "checkpoint-10" / "adapter_model.safetensors").is_file()
    assert not (run / "checkpoints" / "checkpoint-10" / "optimizer.pt").exists()
    assert CATCHPHRASE in Path(meta["data"]["path"]).read_text()


# -- resume -----------------------------------------------------------------------------------------

def _wait_until(condition, process: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"training exited early ({process.returncode}): {process.stderr.read()[-2000:]}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("training did not get there in time")
        time.sleep(0.01)


def _losses(run: Path) -> dict[int, float]:
    from training.sft.callbacks import read_jsonl

    return {e["step"]: e["loss"] for e in read_jsonl(run / "train_log.jsonl")} or {0: 0.0}


def test_ctrl_c_and_kill_resume_without_losing_steps(tmp_path, tiny_dir):
    """Ctrl-C saves the current step and exits 130; kill -9 loses only what followed the last
    checkpoint; --resume continues from there and ends where an uninterrupted run ends."""
    from training.sft.trainer import train

    data = write_jsonl(tmp_path / "s.jsonl", planted_samples(20))
    overrides = {"max_steps": 12, "batch_size": 4, "save_steps": 4, "log_steps": 1}
    reference = train(load_preset("tiny", overrides=overrides), data, tmp_path / "reference",
                      cache_dir=tiny_dir.parent)
    out = tmp_path / "run"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "DOPPEL_MODEL_CACHE": str(tiny_dir.parent),
           "DOPPEL_DATA_DIR": str(tmp_path / "data"), "DOPPEL_CONFIG": ""}
    command = [sys.executable, "-m", "doppel", "train", "run", "--preset", "tiny", "--data", str(data),
               "--out", str(out), "--max-steps", "12", "--batch-size", "4", "--save-steps", "4",
               "--set", "log_steps=1"]

    first = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_until(lambda: 2 in _losses(out), first)
    first.send_signal(signal.SIGINT)
    _, stderr = first.communicate(timeout=120)
    assert first.returncode == 130, stderr[-2000:]
    assert "stopped at step" in stderr and "--resume" in stderr
    stopped = max(_losses(out))
    assert (out / "checkpoints" / f"checkpoint-{stopped}" / "optimizer.pt").is_file()

    second = subprocess.Popen([*command, "--resume"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    target = (stopped // 4 + 1) * 4  # the next periodic checkpoint
    _wait_until(lambda: max(_losses(out)) > target, second)
    second.kill()  # SIGKILL: no chance to save anything
    second.communicate(timeout=60)
    killed_at = max(_losses(out))
    assert target < killed_at < 12

    result = train(load_preset("tiny", overrides=overrides), data, out, resume=True, cache_dir=tiny_dir.parent)
    assert result.resumed_from == target and result.steps == 12
    losses = _losses(out)
    assert sorted(losses) == list(range(1, 13)), "every step logged once, none lost"
    # The same losses as the run that was never interrupted: data order, RNG and optimizer resumed.
    expected = {e["step"]: e["loss"] for e in reference.log}
    assert losses == pytest.approx(expected, rel=1e-3)


@pytest.mark.slow
def test_smollm2_learns_the_catchphrase_and_publishes(tmp_path, tmp_path_factory, sync_redis, keys):
    """The real small model, offline: a short LoRA run lowers held-out perplexity and passes publish."""
    from doppel.registry import Registry
    from training.adapters.publish import ServeSpec, publish
    from training.likeness.evaluate import EvalOptions, evaluate_adapter
    from training.offline_models import ensure_model
    from training.sft.trainer import train

    cache = model_cache(tmp_path_factory)
    ensure_model("smollm2", cache, progress=False)
    data = write_jsonl(tmp_path / "s.jsonl", planted_samples(40))
    result = train(load_preset("smollm2", overrides={"max_steps": 16, "batch_size": 4}), data, tmp_path / "run",
                   cache_dir=cache)
    report = evaluate_adapter(result.adapter_dir, options=EvalOptions(samples=8), cache_dir=cache)
    assert report["perplexity"]["ratio"] < 0.9, report["perplexity"]
    assert report["style"]["adapter"]["phrases"][CATCHPHRASE] > report["style"]["base"]["phrases"][CATCHPHRASE]
    registry = Registry(tmp_path / "adapters", sync_redis, keys)
    ref = publish(registry, result.adapter_dir, "smol", ServeSpec("smollm2", 16), cache_dir=cache)
    assert registry.card(ref).base_model == "smollm2" and registry.route() == ref
