"""The transformers+peft engine on the offline tiny model: greedy, adapters in and out."""

from __future__ import annotations

import pytest

from doppel.errors import EngineError
from inference.backends.base import LoadedAdapter, Sampling
from inference.backends.hf import HFBackend

GREEDY = Sampling(temperature=0, max_tokens=24, repetition_penalty=1.0)
QUESTION = [{"role": "user", "content": "how was work?"}]
ANSWER = "awful, my boss yelled at the printer again"


@pytest.fixture
async def engine(tiny_model):
    engine = HFBackend(tiny_model, max_model_len=512)
    await engine.startup()
    yield engine
    await engine.shutdown()


async def test_an_adapter_changes_the_reply_and_removing_it_restores_the_base(engine, make_tiny_adapter):
    base = await engine.complete("r1", QUESTION, None, GREEDY)
    assert base == await engine.complete("r2", QUESTION, None, GREEDY), "greedy must be deterministic"
    adapter = LoadedAdapter("work@v1", 1, make_tiny_adapter("how was work?", ANSWER))
    await engine.add_adapter(adapter)
    assert (await engine.complete("r3", QUESTION, adapter, GREEDY)).startswith(ANSWER)
    assert await engine.complete("r4", QUESTION, None, GREEDY) == base, "unrouted requests get the base model"
    await engine.remove_adapter(adapter)
    with pytest.raises(EngineError, match="not loaded"):
        await engine.complete("r5", QUESTION, adapter, GREEDY)


async def test_two_adapters_side_by_side(engine, make_tiny_adapter):
    one = LoadedAdapter("one@v1", 1, make_tiny_adapter("how was work?", ANSWER))
    two = LoadedAdapter("two@v1", 2, make_tiny_adapter("how was work?", "great, we shipped the bakery app"))
    await engine.add_adapter(one)
    await engine.add_adapter(two)
    assert (await engine.complete("a", QUESTION, one, GREEDY)).startswith(ANSWER)
    assert (await engine.complete("b", QUESTION, two, GREEDY)).startswith("great, we shipped")


async def test_a_broken_adapter_is_a_clear_engine_error(engine, tmp_path):
    (tmp_path / "adapter_config.json").write_text("{not json")
    with pytest.raises(EngineError, match="does not load"):
        await engine.add_adapter(LoadedAdapter("bad@v1", 9, tmp_path))


async def test_replies_never_run_past_the_context(engine):
    long = [{"role": "user", "content": "word " * 480}]
    text = await engine.complete("r", long, None, Sampling(temperature=0, max_tokens=200))
    assert isinstance(text, str)
