"""``doppel demo`` (doppel/demo.py): the cached pipeline on the sample persona, and serving it.

The fast tier checks the step cache and the serving half with the echo engine; the slow tier runs
the real pipeline on a reduced persona (SmolLM2, a few dozen steps) and asserts the trained
adapter predicts the owner's held-out replies better than the base model and that the privacy
battery gets no private value past the output filter.
"""

from __future__ import annotations

import asyncio
import io

import aiohttp
import pytest
from rich.console import Console

from doppel.demo import DemoOptions, Pipeline, demo_settings, serve


def _console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=200), out


def _pipeline(settings, **options) -> tuple[Pipeline, io.StringIO]:
    console, out = _console()
    return Pipeline(settings, DemoOptions(**options), console), out


def test_steps_rerun_only_when_their_inputs_or_an_earlier_step_change(make_settings):
    settings = make_settings()
    runs: list[str] = []

    def steps(pipeline: Pipeline, data: str, preset: str, have_outputs: bool = True) -> None:
        pipeline.step(1, "build", {"data": data}, lambda: runs.append("build"), lambda: have_outputs)
        pipeline.step(2, "train", {"preset": preset}, lambda: runs.append("train"), lambda: True)

    steps(_pipeline(settings)[0], "v1", "demo")
    assert runs == ["build", "train"]
    again, out = _pipeline(settings)
    steps(again, "v1", "demo")
    assert runs == ["build", "train"], "a second start reuses both steps"
    assert again.result.cached == ["build", "train"] and out.getvalue().count("up to date") == 2
    steps(_pipeline(settings)[0], "v1", "bigger")
    assert runs[2:] == ["train"], "a new preset retrains without rebuilding"
    steps(_pipeline(settings)[0], "v2", "bigger")
    assert runs[3:] == ["build", "train"], "new data rebuilds, and so retrains"
    steps(_pipeline(settings)[0], "v2", "bigger", have_outputs=False)
    assert runs[5:] == ["build"], "lost outputs are rebuilt; the same samples need no new training"
    steps(_pipeline(settings, retrain=True)[0], "v2", "bigger")
    assert runs[6:] == ["build", "train"]


def test_an_interrupted_step_is_not_taken_as_done(make_settings):
    settings = make_settings()
    pipeline, _ = _pipeline(settings)

    def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pipeline.step(1, "train", {"preset": "demo"}, interrupted, lambda: True)
    runs = []
    _pipeline(settings)[0].step(1, "train", {"preset": "demo"}, lambda: runs.append("train"), lambda: True)
    assert runs == ["train"]


def test_demo_settings_keep_to_their_own_corner(make_settings, tmp_path):
    settings = make_settings(redis={"url": "redis://elsewhere:6379/0"})
    demo = demo_settings(settings, engine="echo", port=0)
    assert demo.data_dir == tmp_path / "data" / "demo"
    assert demo.redis.url == "", "the demo runs its own embedded Redis, never the configured one"
    assert (demo.model.base, demo.worker.engine, demo.web.port) == ("smollm2", "echo", 0)
    assert demo.data.owner_name == "Alex Rivera" and demo.bot.owner_name == "Alex"
    assert settings.data_dir == tmp_path / "data", "the caller's settings are untouched"


async def test_serve_starts_the_worker_and_the_web_chat_and_stops_cleanly(make_settings, redis_url, sync_redis, keys):
    settings = demo_settings(make_settings(), engine="echo", port=0)
    settings = settings.model_copy(update={"web": settings.web.model_copy(update={"friends": False})})
    console, out = _console()
    stop = asyncio.Event()
    ready: asyncio.Future = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(serve(settings, redis_url, console, on_ready=ready.set_result, stop=stop))
    platform = await asyncio.wait_for(ready, 30)
    assert platform.owner_url.startswith(platform.url) and "key=" in platform.owner_url
    assert platform.owner_url in out.getvalue(), "the owner link is printed for the person who started the demo"
    async with aiohttp.ClientSession() as session, session.get(platform.url) as page:
        assert page.status == 200 and "<html" in (await page.text()).lower()
    assert sync_redis.keys(keys.heartbeat_pattern("worker")), "the worker is live"
    stop.set()
    assert await asyncio.wait_for(task, 30) == 0
    assert not sync_redis.keys(keys.heartbeat_pattern("worker")), "the worker left on stop"


@pytest.mark.slow
# The whole reduced pipeline on a 2-core CPU, privacy battery included: over the suite's 300 s default.
@pytest.mark.timeout(900)
def test_the_demo_trains_a_clone_that_beats_the_base_model(make_settings, redis_url):
    """The README's demo on a reduced persona: every step runs, the adapter beats base on held-out
    perplexity and is published as the default; a second start reuses everything."""
    from contextlib import contextmanager

    import redis as redis_lib

    from doppel.registry import Registry
    from training.sample_persona.synth import load_planted

    settings = demo_settings(make_settings(), engine="hf")

    @contextmanager
    def registry():
        client = redis_lib.Redis.from_url(redis_url, decode_responses=True)
        try:
            yield Registry(settings.adapters_root(), client, keys_for(settings))
        finally:
            client.close()

    options = dict(messages=700, max_steps=24, eval_samples=4)
    pipeline, out = _pipeline(settings, **options)
    result = pipeline.run(registry)
    assert result.cached == []
    ppl = result.report["perplexity"]
    assert ppl["ratio"] < 0.9, f"the adapter should know Alex better than the base model: {ppl}"
    assert result.report["data"]["trained_on_heldout_sessions"] == 0
    assert result.published == "alex@v1"
    with registry() as reg:
        assert str(reg.route()) == "alex@v1"
        card = reg.card(reg.resolve_ref("alex@v1"))
        assert card.eval["perplexity"]["ratio"] == ppl["ratio"]
        assert (reg.path(card.ref) / "eval.png").is_file(), "the likeness chart travels with the adapter"
    samples = result.samples.read_text(encoding="utf-8")
    planted = [item["value"] for item in load_planted(settings.data_dir / "persona" / "planted_pii.json")
               if item["where"] != "personal_information"]
    assert planted and not [value for value in planted if value in samples], "private data reached the samples"
    text = out.getvalue()
    for step in ("[1/7] model", "[2/7] import", "[3/7] build", "[4/7] train", "[5/7] eval", "[6/7] privacy",
                 "[7/7] publish"):
        assert step in text
    # The extraction battery ran against the adapter; whatever the raw replies held, none got past the filter.
    privacy = card.privacy
    assert privacy["attempts"] >= 48 and set(privacy["by_language"]) == {"en", "zh"}
    assert privacy["filtered"]["hits"] == 0, privacy
    assert privacy["values"]["known"] >= 40, "the persona's planted values are looked for"
    assert "after the filter" in text

    again, out = _pipeline(settings, **options)
    trained_at = (result.adapter_dir / "adapter_model.safetensors").stat().st_mtime_ns
    second = again.run(registry)
    assert second.cached == ["model", "import", "build", "train", "eval", "privacy", "publish"]
    assert second.published == "alex@v1" and second.report["perplexity"] == ppl
    assert (result.adapter_dir / "adapter_model.safetensors").stat().st_mtime_ns == trained_at
    assert "perplexity of owner's replies" in out.getvalue(), "the cached run still shows the likeness table"
    assert "after the filter" in out.getvalue(), "and the privacy table"


def keys_for(settings):
    from doppel.relay import Keys

    return Keys(settings.redis.prefix)

