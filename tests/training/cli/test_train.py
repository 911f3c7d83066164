"""``doppel train``, ``doppel eval`` and ``doppel adapters`` end to end on the tiny model, through the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from train_helpers import model_cache, planted_samples, trained_run, write_jsonl

from doppel.cli import cli
from doppel.errors import InputError

pytest.importorskip("torch")


@pytest.fixture
def config(tmp_path, redis_url, monkeypatch, tmp_path_factory) -> Path:
    monkeypatch.setenv("DOPPEL_MODEL_CACHE", str(model_cache(tmp_path_factory)))
    path = tmp_path / "doppel.toml"
    path.write_text(f'data_dir = "{tmp_path / "data"}"\n[redis]\nurl = "{redis_url}"\n'
                    '[model]\nbase = "tiny"\nmax_lora_rank = 16\n[train]\npreset = "tiny"\neval_samples = 6\n')
    return path


def doppel(config: Path, *args: str, ok: bool = True):
    result = CliRunner().invoke(cli, ["--config", str(config), *map(str, args)], catch_exceptions=True)
    if ok:
        assert result.exit_code == 0, (result.output, result.exception)
    return result


def test_help_lists_the_training_commands():
    result = CliRunner().invoke(cli, ["--help"])
    for name in ("train", "eval", "adapters"):
        assert f"  {name} " in result.output
    result = CliRunner().invoke(cli, ["adapters", "--help"])
    for name in ("blend", "list", "publish", "remove", "rollback", "use"):
        assert f"  {name} " in result.output


def test_presets_are_listed(config):
    result = doppel(config, "train", "presets")
    assert "tiny (default)" in result.output and "qwen2.5-7b-qlora" in result.output


def test_train_eval_publish_use_rollback(config, tmp_path, tmp_path_factory):
    data = write_jsonl(tmp_path / "samples.jsonl", planted_samples(20))
    out = tmp_path / "run"
    doppel(config, "train", "run", "--data", data, "--out", out, "--max-steps", "4", "--save-steps", "2",
           "--batch-size", "4", "--rank", "4", "--set", "log_steps=1")
    assert json.loads((out / "adapter" / "adapter_config.json").read_text())["r"] == 4
    assert json.loads((out / "train_log.json").read_text())["entries"][-1]["step"] == 4

    result = doppel(config, "eval", out, "--checkpoints", "--no-generate")
    assert "best: step" in result.output
    best = json.loads((out / "checkpoints_eval.json").read_text())["best"]
    result = doppel(config, "eval", out, "--json")
    report = json.loads(result.stdout)
    assert report["perplexity"]["ratio"] > 0 and "style" in report
    assert report["data"]["prompts"] == min(6, report["data"]["heldout_samples"])

    # A trained adapter and the shared, better-trained one; the second becomes v2 but not the default.
    result = doppel(config, "adapters", "publish", out, "--name", "me", "--force")
    assert "published me@v1; default route: me@v1" in result.output
    shared = tmp_path / "shared"
    shutil.copytree(trained_run(tmp_path_factory) / "adapter", shared)
    result = doppel(config, "adapters", "publish", shared, "--name", "me")
    assert "published me@v2; default route: me@v1" in result.output
    doppel(config, "adapters", "publish", best["adapter"], "--name", "best", "--force")
    # A checkpoint's lineage (from its run) travels with it into the registry.
    lineage = json.loads((tmp_path / "data" / "adapters" / "best" / "v1" / "doppel_train.json").read_text())
    assert lineage["steps"] == best["step"] and lineage["data"]["path"] == str(data.resolve())

    assert "default -> me@v2" in doppel(config, "adapters", "use", "me").output
    assert "discord:1 -> best@v1" in doppel(config, "adapters", "use", "best", "--channel", "discord:1").output
    listing = json.loads(doppel(config, "adapters", "list", "--json").stdout)
    assert listing["default"] == "me@v2" and listing["channels"] == {"discord:1": "best@v1"}
    assert [a["name"] for a in listing["adapters"]] == ["best", "me", "me"]
    table = doppel(config, "adapters", "list").output
    assert "me@v2" in table and "default" in table
    assert "default -> me@v1" in doppel(config, "adapters", "rollback").output

    refused = doppel(config, "adapters", "remove", "me@v1", ok=False)
    assert isinstance(refused.exception, InputError) and "in use by a route" in str(refused.exception)
    assert "removed me@v2" in doppel(config, "adapters", "remove", "me@v2").output

    # A published adapter can be evaluated by name; its report lands under data_dir/evals.
    doppel(config, "eval", "me@v1", "--no-generate")
    assert (tmp_path / "data" / "evals" / "me@v1" / "eval.json").is_file()


def test_blend_from_the_registry_with_a_sweep(config, tmp_path, tmp_path_factory):
    cap = trained_run(tmp_path_factory) / "adapter"
    spicy = trained_run(tmp_path_factory, name="spicy", phrase="stay spicy", steps=30) / "adapter"
    doppel(config, "adapters", "publish", cap, "--name", "chat")
    doppel(config, "adapters", "publish", spicy, "--name", "articles", "--force")
    result = doppel(config, "adapters", "blend", "chat:0.7", "articles:0.2", "--name", "me-v3", "--sweep",
                    "--step", "0.5", "--no-generate")
    assert "sweep (linear)" in result.output and "published me-v3@v1" in result.output
    listing = json.loads(doppel(config, "adapters", "list", "--json").stdout)
    card = next(a for a in listing["adapters"] if a["name"] == "me-v3")
    assert [p["adapter"] for p in card["parents"]] == ["chat@v1", "articles@v1"]
    weights = [p["weight"] for p in card["parents"]]
    assert weights in ([0.0, 1.0], [0.5, 0.5], [1.0, 0.0], [0.7, 0.2])
    assert weights[0] > weights[1], "held out from chat's data: mostly chat wins"
    assert card["combination"] == "linear" and card["eval"]["perplexity"]["ratio"] < 1

    config.write_text(config.read_text().replace("max_lora_rank = 16", "max_lora_rank = 8"))
    refused = doppel(config, "adapters", "blend", "chat:0.5", "articles:0.5", "--name", "big", "--combination",
                     "cat", ok=False)
    assert isinstance(refused.exception, InputError)
    assert "has rank 16, above the serving max_lora_rank 8" in str(refused.exception)
    assert "big" not in {a["name"] for a in json.loads(doppel(config, "adapters", "list", "--json").stdout)["adapters"]}


def test_empty_data_is_one_clear_error(config, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    result = doppel(config, "train", "run", "--data", empty, ok=False)
    assert isinstance(result.exception, InputError) and "has no samples" in str(result.exception)
    missing = doppel(config, "train", "run", "--data", tmp_path / "nope.jsonl", ok=False)
    assert "no such samples file" in str(missing.exception)
    conflict = doppel(config, "train", "run", "--data", empty, "--resume", "--overwrite", ok=False)
    assert conflict.exit_code == 2 and "contradict" in conflict.output
