"""Evaluation: the planted catchphrase is learned (held-out perplexity drops, the adapter says it and
the base model does not), style measures, reports, and picking the best checkpoint."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from train_helpers import CATCHPHRASE, trained_run

from doppel.errors import InputError
from doppel.prompt import BURST_SEPARATOR
from training.likeness.style import AI_ISMS, compare, profile, top_phrases, wasserstein

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return trained_run(tmp_path_factory)


@pytest.fixture(scope="module")
def report(run):
    from training.likeness.evaluate import EvalOptions, evaluate_adapter

    return evaluate_adapter(run / "adapter", options=EvalOptions(samples=12))


def test_the_adapter_learned_the_planted_catchphrase(report, run):
    ppl = report["perplexity"]
    # The owner's held-out replies -- sessions never trained on -- are much more predictable.
    assert ppl["ratio"] < 0.5 and ppl["adapter"] < ppl["base"], ppl
    assert report["publishable"] and report["data"]["trained_on_heldout_sessions"] == 0
    assert report["data"]["heldout_sessions"] == 6 and report["data"]["prompts"] == 12
    style = report["style"]
    assert report["phrases"][0] == CATCHPHRASE
    rates = {who: style[who]["phrases"][CATCHPHRASE] for who in ("owner", "adapter", "base")}
    assert rates["owner"] > 0.5 and rates["base"] == 0.0 and rates["adapter"] >= 0.25, rates
    assert style["adapter"]["ai_ism_rate"] == 0.0
    # Overall, the adapter's replies are closer to the owner's than the base model's are.
    distance = style["distance"]
    assert distance["adapter"]["phrases"] < distance["base"]["phrases"]
    assert report["likeness"] == pytest.approx(ppl["ratio"] + distance["adapter"]["style_distance"], abs=1e-3)
    written = json.loads((run / "adapter" / "eval.json").read_text())
    assert written["perplexity"] == ppl
    assert (run / "adapter" / "eval.png").read_bytes()[:4] == b"\x89PNG"


def test_the_report_renders_as_a_table(report):
    from rich.console import Console

    from training.likeness.report import render

    console = Console(record=True, width=120)
    render(report, console)
    text = console.export_text()
    assert "perplexity of owner's replies" in text and "owner's top phrases" in text and "publishable" in text


def test_checkpoints_are_scored_and_the_best_step_picked(run):
    from training.likeness.evaluate import EvalOptions, evaluate_run

    result = evaluate_run(run, options=EvalOptions(samples=6, generate=False))
    steps = [c["step"] for c in result["checkpoints"]]
    assert steps == [10, 20, 30, 40]
    ratios = [c["perplexity"]["ratio"] for c in result["checkpoints"]]
    best = min(result["checkpoints"], key=lambda c: c["likeness"])
    assert result["best"]["step"] == best["step"] and result["best"]["likeness"] == best["likeness"]
    assert ratios[-1] < ratios[0], "later checkpoints know the owner better on this run"
    assert json.loads((run / "checkpoints_eval.json").read_text())["best"] == result["best"]
    assert (run / "checkpoints" / f"checkpoint-{best['step']}" / "eval.json").is_file()
    assert (run / "checkpoints.png").is_file()


def test_no_heldout_data_is_a_clear_error(tmp_path, run):
    from train_helpers import planted_samples, write_jsonl

    from training.likeness.evaluate import evaluate_adapter

    one_session = write_jsonl(tmp_path / "one.jsonl", planted_samples(1))
    with pytest.raises(InputError, match="no held-out sessions"):
        evaluate_adapter(run / "adapter", one_session)


# -- style measures (no model) ----------------------------------------------------------------------

def test_style_profile_measures_the_habits():
    replies = ["lol ok 😂", f"sure thing{BURST_SEPARATOR}see ya!!", "Fine.", "[捂脸] 哈哈哈", "wait... what?"]
    p = profile(replies, ["see ya"])
    assert p.replies == 5 and p.messages == 6 and p.messages_per_burst == 1.2
    assert p.emoji_rate == pytest.approx(2 / 6, abs=1e-3)
    assert p.punctuation["!!"] == pytest.approx(1 / 6, abs=1e-3) and p.punctuation["..."] > 0
    assert p.punctuation["haha"] == pytest.approx(2 / 6, abs=1e-3)
    assert p.ends_with_period == pytest.approx(1 / 6, abs=1e-3)
    assert p.lowercase_start == pytest.approx(4 / 5)
    assert p.phrase_rate == 0.2 and p.phrases == {"see ya": 0.2}


@pytest.mark.parametrize("text", [
    "As an AI, I don't have feelings", "I'm just a language model", "i am an AI assistant? no, i'm a chatbot",
    "作为一个人工智能，我无法回答", "作为语言模型", "我是一个AI助手", "I don't have personal opinions",
])
def test_ai_isms_are_caught(text):
    assert AI_ISMS.search(text)


@pytest.mark.parametrize("text", ["i'm just tired", "as an aside, lol", "我是小明", "that AI movie was good"])
def test_ordinary_chat_is_not_an_ai_ism(text):
    assert not AI_ISMS.search(text)


def test_top_phrases_are_the_owners_own():
    owner = ["sounds good no cap", "no cap that was wild", "ok no cap", "no cap fr", "lol sure", "the bus is late",
             "yes lol", "lol", "好的呀", "好的呀", "好的呀", "好的"]
    others = ["the bus is late", "the weather", "lol", "what's the plan", "the game"] * 3
    phrases = top_phrases(owner, others, k=5)
    assert phrases[0] == "no cap"
    assert "no" not in phrases and "cap" not in phrases, "the longer form of one habit wins"
    assert "the" not in phrases and "the bus" not in phrases and "lol" not in phrases, "everyone says these"
    assert "好的呀" in phrases and "好的" not in phrases, "CJK phrases are character n-grams, longest habit wins"


def test_distances_are_zero_for_the_same_style_and_grow_with_difference():
    owner = profile(["lol ok", "sure!!", "see ya"] * 5, ["see ya"])
    same = profile(["lol ok", "sure!!", "see ya"] * 5, ["see ya"])
    assistant = profile(["Certainly! As an AI, I would be happy to help you with that request today."] * 15, ["see ya"])
    assert compare(owner, same)["style_distance"] == 0.0
    far = compare(owner, assistant)
    assert far["ai_isms"] == 1.0 and far["length"] > 1.0 and 0.5 < far["style_distance"] <= 1.0
    assert wasserstein([1, 2, 3], [1, 2, 3]) == 0.0 and wasserstein([1, 1], [3, 3]) == pytest.approx(2.0)


@pytest.mark.parametrize("matplotlib", [True, False])
def test_charts_are_drawn_with_or_without_matplotlib(tmp_path, monkeypatch, matplotlib):
    import sys

    from training.sft.charts import bar_chart, line_chart

    if not matplotlib:
        monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails: the Pillow fallback draws
    elif importlib.util.find_spec("matplotlib") is None:
        pytest.skip("matplotlib is not installed")
    assert line_chart(tmp_path / "l.png", "t", [("loss", {"loss": [(1, 3.0), (5, 1.0)]})]) is None
    assert bar_chart(tmp_path / "b.png", "t", ["a", "b"], {"owner": [1, 0.5], "base": [0.2, 0.9]}) is None
    for name in ("l.png", "b.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    assert line_chart(tmp_path / "e.png", "t", [("loss", {"loss": []})]) == "no chart: nothing to plot"


def test_progress_counts_every_reply_scored_and_prompt_answered(run):
    from training.likeness.evaluate import EvalOptions, Evaluator, load_heldout
    from training.sft.modeling import load_adapter_model, pick_device
    from training.sft.trainer import train_meta

    adapter = run / "adapter"
    meta = train_meta(adapter)
    model, tokenizer = load_adapter_model({"adapter": adapter}, pick_device(), meta["base_path"])
    evaluator = Evaluator(model, tokenizer, load_heldout(Path(meta["data"]["path"]), meta),
                          EvalOptions(samples=4, batch_size=2))
    seen: list[tuple[str, int]] = []

    def stage(description: str):
        return lambda count=1: seen.append((description, count))

    evaluator.progress = stage
    total = evaluator.work()
    evaluator.score("adapter")
    assert sum(count for _, count in seen) == total
    stages = list(dict.fromkeys(description for description, _ in seen))
    assert stages == ["evaluating: base model, perplexity", "evaluating: base model, replies",
                      "evaluating: adapter, perplexity", "evaluating: adapter, replies"]
    assert evaluator.work() == total // 2, "the base model's side is done once"
