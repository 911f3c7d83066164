"""Blending: weights really interpolate between the parents, ranks are checked against the serving
limit, the blend carries its lineage, and a sweep ranks weightings."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from train_helpers import trained_run

from doppel.errors import InputError
from training.adapters.blend import Blender, Parent, blend_rank, parse_weighted, sweep_grid

torch = pytest.importorskip("torch")
PROMPTS = [("how was work?", "long. the printer broke twice"), ("did you eat yet?", "not yet, i'm starving"),
           ("good night", "night! sleep well")]


@pytest.fixture(scope="module")
def parents(tmp_path_factory) -> list[Parent]:
    cap = trained_run(tmp_path_factory)  # replies end with "no cap"
    spicy = trained_run(tmp_path_factory, name="spicy", phrase="stay spicy", steps=30)
    return [Parent("cap", cap / "adapter", 0.5), Parent("spicy", spicy / "adapter", 0.5)]


def _reply_logprob(model, tokenizer, prompt: str, reply: str) -> float:
    messages = [{"role": "system", "content": "You are Mia. Reply like Mia does."}, {"role": "user", "content": prompt}]
    head = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    ids = tokenizer(head + reply + "<|im_end|>", add_special_tokens=False, return_tensors="pt")["input_ids"]
    start = len(tokenizer(head, add_special_tokens=False)["input_ids"])
    with torch.no_grad():
        logp = model(input_ids=ids).logits[0, :-1].log_softmax(-1)
    return logp[torch.arange(start - 1, ids.shape[1] - 1), ids[0, start:]].sum().item()


def _preference(model, tokenizer) -> float:
    """How much more the model expects "... no cap" than "... stay spicy" after the same replies."""
    return sum(_reply_logprob(model, tokenizer, q, f"{r} no cap")
               - _reply_logprob(model, tokenizer, q, f"{r} stay spicy") for q, r in PROMPTS)


@pytest.mark.parametrize("combination", ["linear", "svd", "cat"])
def test_blend_weights_interpolate_between_the_parents(parents, combination):
    blender = Blender(parents, combination, max_rank=64)
    model, tokenizer = blender.model, blender.tokenizer
    model.set_adapter("parent0")
    cap_alone = _preference(model, tokenizer)
    model.set_adapter("parent1")
    spicy_alone = _preference(model, tokenizer)
    assert cap_alone > 0 > spicy_alone, "each parent prefers its own catchphrase"
    curve = []
    for w in (0.0, 0.25, 0.5, 0.75, 1.0):
        model.set_adapter(blender.add([w, 1 - w]))
        curve.append(_preference(model, tokenizer))
    assert all(a < b for a, b in itertools.pairwise(curve)), curve
    # The ends are the parents themselves.
    assert curve[0] == pytest.approx(spicy_alone, abs=0.05) and curve[-1] == pytest.approx(cap_alone, abs=0.05)


def test_the_blend_is_an_adapter_with_its_lineage(parents, tmp_path):
    from peft import PeftModel

    from training.sft.modeling import load_model, pick_device

    blender = Blender(parents, "cat", max_rank=64)
    blender.add([0.7, 0.2])
    path = blender.save("blend", tmp_path / "me-v3", [0.7, 0.2])
    config = json.loads((path / "adapter_config.json").read_text())
    assert config["r"] == 16  # cat: 8 + 8
    meta = json.loads((path / "doppel_train.json").read_text())
    assert meta["parents"] == [{"adapter": "cap", "weight": 0.7}, {"adapter": "spicy", "weight": 0.2}]
    assert meta["combination"] == "cat" and meta["base_model"] == "tiny" and meta["data"]["path"]
    base = json.loads((parents[0].path / "doppel_train.json").read_text())["base_path"]
    reloaded = PeftModel.from_pretrained(load_model(base, pick_device()), str(path))
    blender.model.set_adapter("blend")
    ids = torch.tensor([[5, 17, 99, 3]])
    with torch.no_grad():
        assert torch.allclose(reloaded(input_ids=ids).logits, blender.model(input_ids=ids).logits, atol=1e-5)


def test_ranks_are_checked_against_the_serving_limit(parents, tmp_path):
    assert blend_rank(parents, "linear", 8) == 8 and blend_rank(parents, "svd", 8) == 8
    assert blend_rank(parents, "svd", 8, svd_rank=4) == 4
    with pytest.raises(InputError, match=r"a cat blend of cap r=8, spicy r=8 has rank 16, above the serving "
                                         r"max_lora_rank 8: vLLM could not load it; use --combination linear or svd"):
        blend_rank(parents, "cat", 8)
    # Different ranks: linear cannot, svd can.
    odd = tmp_path / "r4"
    odd.mkdir()
    config = json.loads((parents[1].path / "adapter_config.json").read_text())
    (odd / "adapter_config.json").write_text(json.dumps({**config, "r": 4}))
    mixed = [parents[0], Parent("r4", odd, 0.5)]
    with pytest.raises(InputError, match=r"linear blending needs equal ranks \(cap r=8, r4 r=4\); use "
                                         r"--combination svd"):
        blend_rank(mixed, "linear", 64)
    assert blend_rank(mixed, "svd", 64) == 8


def test_weighted_specs_are_parsed_strictly():
    assert parse_weighted(["chat:0.7", "articles@v2:0.2"]) == [("chat", 0.7), ("articles@v2", 0.2)]
    for bad, message in ((["chat"], "expected ADAPTER:WEIGHT"), (["chat:x", "b:1"], "expected ADAPTER:WEIGHT"),
                         (["chat:1"], "at least two"), (["a:1", "a:2"], "only once")):
        with pytest.raises(InputError, match=message):
            parse_weighted(bad)


def test_sweep_ranks_weightings_on_heldout_data(parents):
    from training.likeness.evaluate import EvalOptions, Evaluator, load_heldout

    blender = Blender(parents, "linear", max_rank=64)
    meta = blender.meta[0]
    evaluator = Evaluator(blender.model, blender.tokenizer, load_heldout(Path(meta["data"]["path"]), meta),
                          EvalOptions(generate=False))
    grid = sweep_grid([0.7, 0.2], step=0.5)
    assert grid == [[0.0, 1.0], [0.5, 0.5], [1.0, 0.0], [0.7, 0.2]]
    ranked = blender.sweep(evaluator, grid)
    scores = [r["report"]["likeness"] for r in ranked]
    assert scores == sorted(scores) and len(ranked) == 4
    # Held out from the "no cap" owner's data: the blend made mostly of that parent wins.
    assert ranked[0]["weights"][0] > ranked[0]["weights"][1]
    assert ranked[-1]["weights"] == [0.0, 1.0]
