"""Owner jobs from a chat (/clone blend): run by `doppel adapters jobs`, answered in that chat."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from train_helpers import model_cache, trained_run

from doppel.cli import cli
from doppel.jobs import Job
from doppel.relay import Reply

pytest.importorskip("torch")


@pytest.fixture
def config(tmp_path, redis_url, monkeypatch, tmp_path_factory) -> Path:
    monkeypatch.setenv("DOPPEL_MODEL_CACHE", str(model_cache(tmp_path_factory)))
    path = tmp_path / "doppel.toml"
    path.write_text(f'data_dir = "{tmp_path / "data"}"\n[redis]\nurl = "{redis_url}"\n'
                    '[model]\nbase = "tiny"\nmax_lora_rank = 16\n[train]\npreset = "tiny"\n')
    return path


def doppel(config: Path, *args):
    result = CliRunner().invoke(cli, ["--config", str(config), *map(str, args)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def job(name, sources):
    return Job(kind="blend", args={"name": name, "sources": sources, "combination": "linear"},
               platform="telegram", bot="main-telegram", channel="telegram:42", requested_by="7")


def test_a_queued_blend_is_published_and_answered_in_the_chat(config, tmp_path_factory, sync_redis, keys):
    doppel(config, "adapters", "publish", trained_run(tmp_path_factory) / "adapter", "--name", "chat")
    spicy = trained_run(tmp_path_factory, name="spicy", phrase="stay spicy", steps=30) / "adapter"
    doppel(config, "adapters", "publish", spicy, "--name", "articles", "--force")
    good = job("mix", [{"adapter": "chat", "weight": 0.8}, {"adapter": "articles", "weight": 0.2}])
    bad = job("solo", [{"adapter": "chat", "weight": 1.0}])
    ghost = job("ghosts", [{"adapter": "chat", "weight": 0.5}, {"adapter": "nope", "weight": 0.5}])
    for queued in (good, bad, ghost):
        sync_redis.xadd(keys.jobs, queued.to_fields())
    result = doppel(config, "adapters", "jobs", "--burst")
    assert "3 job(s) run" in result.output
    entries = sync_redis.xrange(keys.replies("main-telegram"))
    replies = {r.request_id: r for r in (Reply.from_fields(f) for _, f in entries)}
    assert replies[good.id].status == "ok" and "as mix@v1" in replies[good.id].parts[0]
    assert replies[good.id].channel == "telegram:42"
    assert replies[bad.id].status == "error" and "at least two adapters" in replies[bad.id].reason
    assert replies[ghost.id].status == "error" and "nope" in replies[ghost.id].reason
    assert sync_redis.xlen(keys.jobs) == 0
    listing = doppel(config, "adapters", "list").output
    assert "mix@v1" in listing
