"""Publishing: a good adapter goes into the registry with its card; a corrupt or incompatible one is
refused with one clear line, and the registry, routes and events stay as they were."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from train_helpers import model_cache, trained_run

from doppel.errors import InputError
from doppel.registry import AdapterRef, Registry

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    return trained_run(tmp_path_factory)


@pytest.fixture
def serve(tmp_path_factory):
    from training.adapters.publish import ServeSpec

    return ServeSpec(base_model="tiny", max_lora_rank=16)


@pytest.fixture
def registry(tmp_path, sync_redis, keys) -> Registry:
    return Registry(tmp_path / "adapters", sync_redis, keys)


@pytest.fixture
def adapter(run, tmp_path) -> Path:
    """A private copy of the trained adapter (with an eval.json), for a test to damage."""
    copy = tmp_path / "adapter"
    shutil.copytree(run / "adapter", copy)
    if not (copy / "eval.json").is_file():
        (copy / "eval.json").write_text(json.dumps(_report(0.2)))
    return copy


def _report(ratio: float) -> dict:
    return {"perplexity": {"base": 10.0, "adapter": 10.0 * ratio, "ratio": ratio, "reply_tokens": 100},
            "likeness": ratio, "publishable": ratio < 1, "data": {"heldout_samples": 12}, "evaluated_at": 1.0}


def _publish(registry, path, serve, tmp_path_factory, **kwargs):
    from training.adapters.publish import publish

    return publish(registry, path, "me", serve, cache_dir=model_cache(tmp_path_factory), **kwargs)


def _state(registry, sync_redis, keys):
    return (sorted(str(p.relative_to(registry.root)) for p in registry.root.rglob("*")) if registry.root.exists()
            else [], registry.routes(), sync_redis.xlen(keys.registry_events))


def test_a_good_adapter_is_published_with_its_card(registry, adapter, serve, tmp_path_factory, sync_redis, keys):
    ref = _publish(registry, adapter, serve, tmp_path_factory)
    assert ref == AdapterRef("me", 1) and registry.route() == ref
    card = registry.card(ref)
    assert (card.base_model, card.rank, card.alpha) == ("tiny", 8, 16.0)
    assert "q_proj" in card.target_modules and "down_proj" in card.target_modules
    assert card.eval["perplexity"]["ratio"] < 1 and card.eval["publishable"] is True
    assert card.data["heldout_samples"] > 0 and "train_sessions" not in card.data
    assert card.notes.startswith("preset tiny, 40 steps")
    files = sorted(p.name for p in registry.path(ref).iterdir())
    assert "adapter_model.safetensors" in files and "optimizer.pt" not in files and "card.json" in files
    assert [f["kind"] for _, f in sync_redis.xrange(keys.registry_events)] == ["publish", "use"]


def _garbage_config(path: Path) -> None:
    (path / "adapter_config.json").write_text("{not json")


def _truncated_weights(path: Path) -> None:
    weights = path / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:300])


def _nan_weights(path: Path) -> None:
    from safetensors.torch import load_file, save_file

    tensors = load_file(path / "adapter_model.safetensors")
    first = sorted(tensors)[0]
    tensors[first][0, 0] = float("nan")
    save_file(tensors, path / "adapter_model.safetensors")


def _missing_tensor(path: Path) -> None:
    from safetensors.torch import load_file, save_file

    tensors = load_file(path / "adapter_model.safetensors")
    del tensors[sorted(tensors)[-1]]
    save_file(tensors, path / "adapter_model.safetensors")


def _no_weights(path: Path) -> None:
    (path / "adapter_model.safetensors").unlink()


def _not_lora(path: Path) -> None:
    config = json.loads((path / "adapter_config.json").read_text())
    (path / "adapter_config.json").write_text(json.dumps({**config, "peft_type": "PREFIX_TUNING"}))


def _worse_than_base(path: Path) -> None:
    (path / "eval.json").write_text(json.dumps(_report(1.08)))


def _never_evaluated(path: Path) -> None:
    (path / "eval.json").unlink()
    meta = json.loads((path / "doppel_train.json").read_text())
    meta["data"]["path"] = ""
    (path / "doppel_train.json").write_text(json.dumps(meta))


@pytest.mark.parametrize("damage, message", [
    (_garbage_config, r"adapter_config\.json: corrupt"),
    (_not_lora, "not a LoRA adapter"),
    (_no_weights, r"no adapter_model\.safetensors"),
    (_truncated_weights, "corrupt weights"),
    (_nan_weights, "contains NaN or infinite values"),
    (_missing_tensor, "missing tensor base_model.model"),
    (_worse_than_base, r"held-out perplexity ratio adapter/base is 1\.080, not below 1"),
    (_never_evaluated, "has not been evaluated"),
])
def test_a_bad_adapter_is_refused_and_the_active_one_stays(registry, run, adapter, serve, tmp_path_factory,
                                                          sync_redis, keys, damage, message):
    good = _publish(registry, adapter, serve, tmp_path_factory)
    before = _state(registry, sync_redis, keys)
    damage(adapter)
    with pytest.raises(InputError, match=message) as info:
        _publish(registry, adapter, serve, tmp_path_factory)
    assert "\n" not in str(info.value)
    assert _state(registry, sync_redis, keys) == before
    assert registry.route() == good and registry.versions("me") == [1]


def test_incompatible_adapters_are_refused(registry, adapter, tmp_path, tmp_path_factory, sync_redis, keys):
    from training.adapters.publish import ServeSpec

    before = _state(registry, sync_redis, keys)
    with pytest.raises(InputError, match="LoRA rank 8 is above the serving max_lora_rank 4"):
        _publish(registry, adapter, ServeSpec("tiny", 4), tmp_path_factory)
    # Another base model (only its config is needed: the check runs on an empty skeleton of it).
    other = tmp_path / "other-base"
    other.mkdir()
    tiny_config = json.loads((Path(json.loads((adapter / "doppel_train.json").read_text())["base_path"])
                              / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**tiny_config, "hidden_size": 128, "intermediate_size": 256}))
    with pytest.raises(InputError, match=r"trained on base model 'tiny', but the workers serve '.*other-base'"):
        _publish(registry, adapter, ServeSpec(str(other), 16), tmp_path_factory)
    # Claiming that base does not make the tensors fit it.
    config = json.loads((adapter / "adapter_config.json").read_text())
    (adapter / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": str(other)}))
    with pytest.raises(InputError, match=r"has shape \(8, 256\), the served base needs \(8, 128\)"):
        _publish(registry, adapter, ServeSpec(str(other), 16), tmp_path_factory)
    assert _state(registry, sync_redis, keys) == before


def test_force_publishes_an_adapter_that_failed_the_check(registry, adapter, serve, tmp_path_factory):
    _worse_than_base(adapter)
    ref = _publish(registry, adapter, serve, tmp_path_factory, force=True)
    assert registry.card(ref).eval["perplexity"]["ratio"] == 1.08


def test_publish_evaluates_when_there_is_no_eval_yet(registry, adapter, serve, tmp_path_factory):
    (adapter / "eval.json").unlink()
    ref = _publish(registry, adapter, serve, tmp_path_factory, use=True)
    card = registry.card(ref)
    assert 0 < card.eval["perplexity"]["ratio"] < 1 and "style_distance" not in card.eval


@pytest.mark.parametrize("name", ["../evil", "my adapter", "Me", ""])
def test_bad_names_are_refused(registry, adapter, serve, tmp_path_factory, name):
    from training.adapters.publish import publish

    with pytest.raises(InputError, match="is not allowed"):
        publish(registry, adapter, name, serve)
    assert not registry.root.exists() or not any(registry.root.iterdir())
