"""The chat engine on the tiny model and a real Redis: history, routing, hot-swap, fallback, limits."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from doppel import history
from doppel.history import HistoryOptions
from doppel.prompt import Turn, owner_zone
from doppel.registry import Card, Registry
from inference.backends.base import Sampling
from inference.backends.hf import HFBackend
from inference.chat_engine import ChatEngine, ChatOptions
from inference.postprocess import PostProcessor

QUESTION = "how was work?"
OLD = "awful, my boss yelled at the printer again"
NEW = "great, we shipped the bakery app"
SYSTEM = "You are me."


@pytest.fixture
async def model(tiny_model):
    engine = HFBackend(tiny_model, max_model_len=256)
    await engine.startup()
    yield engine
    await engine.shutdown()


@pytest.fixture
def registry(tmp_path, sync_redis, keys):
    return Registry(tmp_path / "adapters", sync_redis, keys)


@pytest.fixture
def chat(aredis, keys, model, registry):
    options = ChatOptions(owner="me", persona=SYSTEM, sampling=Sampling(temperature=0, max_tokens=20,
                          repetition_penalty=1.0), history=HistoryOptions(max_turns=8, chunk_turns=4))
    return ChatEngine(aredis, keys, model, registry.root, options, postprocess=PostProcessor())


def prompts_of(model) -> list:
    """The messages of every prompt ``model`` completes from now on."""
    seen = []
    original = model.complete

    async def spy(request_id, messages, adapter, sampling):
        seen.append(messages)
        return await original(request_id, messages, adapter, sampling)

    model.complete = spy
    return seen


def publish(registry, path, name="me"):
    return registry.publish(path, Card(name=name, version=0, base_model="tiny", rank=8))


def dm(make_request, text=QUESTION, **fields):
    return make_request(text, channel="test:dm", chat_type="dm", trigger="dm", author_name="Ann", **fields)


async def test_reply_uses_the_routed_adapter_and_is_recorded_in_history(chat, registry, make_request,
                                                                         make_tiny_adapter, aredis, keys):
    base = await chat.generate(dm(make_request))
    assert base.adapter == ""
    publish(registry, make_tiny_adapter(QUESTION, OLD))
    generation = await chat.generate(dm(make_request))
    assert generation.adapter == "me@v1"
    assert generation.parts != base.parts
    stored = await history.load(aredis, keys, "test:dm")
    assert [t.turn.is_owner for t in stored][-1] is True
    assert stored[-1].turn.text == "\n\n".join(generation.parts)


async def test_a_new_version_takes_effect_on_the_next_request_and_the_old_one_is_removed(
        chat, registry, make_request, make_tiny_adapter):
    publish(registry, make_tiny_adapter(QUESTION, OLD))
    first = await chat.generate(dm(make_request))
    publish(registry, make_tiny_adapter(QUESTION, NEW))
    registry.use("me")
    second = await chat.generate(dm(make_request))
    assert (first.adapter, second.adapter) == ("me@v1", "me@v2")
    assert second.parts != first.parts
    assert chat.adapters.loaded == ["me@v2"], "the old version is removed once nothing uses it"
    registry.rollback()
    third = await chat.generate(dm(make_request))
    assert third.adapter == "me@v1" and third.parts == first.parts


async def test_a_channel_whose_adapter_fails_falls_back_and_says_so(chat, registry, make_request,
                                                                     make_tiny_adapter, sync_redis, keys):
    publish(registry, make_tiny_adapter(QUESTION, OLD))
    sync_redis.hset(keys.channel_routes, "test:dm", "ghost@v3")
    generation = await chat.generate(dm(make_request))
    assert generation.adapter == "me@v1"
    assert "ghost@v3" in generation.notice and "answered with me@v1" in generation.notice


async def test_owner_overrides_change_sampling(chat, make_request, sync_redis, keys):
    sync_redis.hset(keys.channel_settings("test:dm"), mapping={"max_tokens": "1", "temperature": "oops"})
    generation = await chat.generate(dm(make_request))
    assert len(" ".join(generation.parts)) <= 12, "max_tokens=1 from the owner must cap the reply"


async def test_a_message_longer_than_the_context_still_gets_an_answer(chat, make_request, aredis, keys):
    for i in range(30):
        await history.record(aredis, keys, "test:dm", Turn("Ann", f"older message number {i} " * 3, 1000.0 + i))
    request = dm(make_request, text="tell me everything " * 400, sent_at=5000.0)
    generation = await chat.generate(request)
    assert isinstance(generation.parts, tuple)


async def test_the_prompt_holds_the_window_and_the_request(chat, make_request, aredis, keys, model):
    seen = prompts_of(model)
    for i in range(10):
        await history.record(aredis, keys, "test:g", Turn(f"P{i % 3}", f"m{i}", 1000.0 + i))
    request = make_request("what now?", channel="test:g", chat_type="group", author_name="Zed", sent_at=2000.0)
    await chat.generate(request)
    [messages] = seen
    assert messages[0] == {"role": "system", "content": SYSTEM}
    user = messages[-1]["content"]
    assert "Zed: what now?" in user and "m9" in user and "m0" not in user  # window of at most 8 turns


async def test_an_adapter_that_appears_later_is_picked_up(chat, registry, make_request, make_tiny_adapter,
                                                          sync_redis, keys):
    sync_redis.set(keys.default_route, "late@v1")
    assert (await chat.generate(dm(make_request))).adapter == ""  # not there yet: base model
    publish(registry, make_tiny_adapter(QUESTION, OLD), name="late")
    chat.adapters.retry_failed_s = 0.0
    assert (await chat.generate(dm(make_request))).adapter == "late@v1"


async def test_the_prompt_is_stamped_in_the_owners_zone(aredis, keys, model, registry, make_request):
    seen = prompts_of(model)
    options = ChatOptions(owner="me", persona=SYSTEM, sampling=Sampling(temperature=0, max_tokens=4),
                          tz=owner_zone("Asia/Shanghai"))
    engine = ChatEngine(aredis, keys, model, registry.root, options, postprocess=PostProcessor())
    nine_in_shanghai = datetime(2024, 5, 1, 1, 0, tzinfo=UTC).timestamp()
    await engine.generate(dm(make_request, "早", sent_at=nine_in_shanghai))
    assert seen[0][-1]["content"] == "[2024-05-01 09:00] 早"
