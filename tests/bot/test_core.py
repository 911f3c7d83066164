"""The shared bot core: splitting, pacing, rate windows, trigger rules, history, and the whole loop.

The loop tests run the real ``BotCore`` and ``RelayClient`` on the test Redis with an in-process
``Worker`` (echo engine) and an in-memory platform; the platform adapters have their own tests
against fake servers. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import random
import time

import pytest
from bot_helpers import FAST_BOT, MemoryPlatform, eventually, incoming, running

from bot.core import BotCore
from bot.pacing import PacingOptions, RateWindow, split_message
from bot.platform import RateLimit
from bot.triggers import TriggerOptions, Triggers
from doppel.history import load
from doppel.relay import Request
from inference.engine import EchoEngine

# -- splitting -------------------------------------------------------------------------------------


def _utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


@pytest.mark.parametrize("text, limit, expected", [
    ("para one is here.\n\npara two", 20, ["para one is here.", "para two"]),
    ("line one here\nline two here", 20, ["line one here", "line two here"]),
    ("First sentence. Second one here.", 20, ["First sentence.", "Second one here."]),
    ('He said "go." Then left', 16, ['He said "go."', "Then left"]),
    ("你好世界。今天天气很好。我们去吃饭吧", 12, ["你好世界。今天天气很好。", "我们去吃饭吧"]),
    ("short", 20, ["short"]),
])
def test_split_prefers_paragraph_line_sentence_word(text, limit, expected):
    assert split_message(text, limit) == expected


def test_split_never_breaks_an_emoji_sequence_or_an_accent():
    family = "👨\u200d👩\u200d👧"
    for text in ("x" * 9 + family + "y" * 5, "e\u0301" * 12, "a" * 9 + "👍🏽" + "b" * 9):
        pieces = split_message(text, 10)
        assert "".join(pieces) == text
        for piece in pieces:
            assert len(piece) <= 10
            assert not piece.startswith(("\u200d", "\u0301", "🏽")), pieces


def test_split_measures_in_the_platforms_units():
    text = "😀" * 30  # 30 code points, 60 UTF-16 units
    pieces = split_message(text, 16, _utf16)
    assert all(_utf16(p) <= 16 for p in pieces) and "".join(pieces) == text and len(pieces) == 4


def test_split_of_a_long_text_keeps_every_word_within_the_limit():
    words = [f"word{i}" + ("." if i % 7 == 0 else "") for i in range(2000)]
    text = " ".join(words)
    pieces = split_message(text, 2000)
    assert all(len(p) <= 2000 for p in pieces)
    assert " ".join(pieces).split() == words


def test_pauses_grow_with_length_within_bounds():
    pacing = PacingOptions(chars_per_s=10, pause_min_s=0.5, pause_max_s=3.0)
    assert pacing.pause_before("hi") == 0.5
    assert pacing.pause_before("x" * 20) == 2.0
    assert pacing.pause_before("x" * 500) == 3.0


async def test_rate_window_queues_instead_of_exceeding():
    window = RateWindow(RateLimit(3, 0.3))
    started = time.monotonic()
    times = []
    for _ in range(7):
        await window.acquire()
        times.append(time.monotonic() - started)
    assert times[2] < 0.1, "the first three go at once"
    for i in range(3, 7):
        assert times[i] - times[i - 3] >= 0.29, f"acquisition {i} came too early: {times}"


# -- triggers -----------------------------------------------------------------------------------------


def test_trigger_rules_in_order():
    triggers = Triggers(TriggerOptions(names=("Mia", "小明"), probability=0.0, cooldown_s=0.0))

    def decide(text: str, owner: bool = False, **flags) -> str | None:
        return triggers.decide(incoming(text, **flags), is_owner=owner)

    assert decide("hi", chat_type="dm", channel="telegram:5") == "dm"
    assert decide("yo", mentions_me=True) == "mention"
    assert decide("yo", replies_to_me=True) == "reply"
    assert decide("where is mia?") == "name"
    assert decide("小明你好") == "name"
    assert decide("off to Miami") is None, "a name inside another word is not the name"
    assert decide("nothing to see") is None
    assert decide("mia, hello", owner=True) is None, "the owner's own messages do not summon the clone"
    assert decide("hey", owner=True, mentions_me=True) == "mention"


def test_random_trigger_follows_the_seeded_rng_and_the_probability():
    def run(seed: int, probability: float) -> list[bool]:
        triggers = Triggers(TriggerOptions(probability=probability, cooldown_s=0.0), rng=random.Random(seed))
        return [triggers.decide(incoming(f"m{i}"), is_owner=False) == "random" for i in range(400)]

    first, again, other = run(7, 0.25), run(7, 0.25), run(8, 0.25)
    assert first == again, "the same seed gives the same decisions"
    assert first != other
    assert 60 <= sum(first) <= 140, sum(first)
    assert not any(run(7, 0.0)) and all(run(7, 1.0))


def test_cooldown_holds_back_unsolicited_triggers_only():
    now = [100.0]
    triggers = Triggers(TriggerOptions(names=("Mia",), probability=1.0, cooldown_s=30.0), clock=lambda: now[0])
    assert triggers.decide(incoming("hi Mia"), is_owner=False) == "name"
    triggers.answered("telegram:-100")
    now[0] += 10
    assert triggers.decide(incoming("hi Mia"), is_owner=False) is None
    assert triggers.decide(incoming("random chatter"), is_owner=False) is None
    assert triggers.decide(incoming("@bot", mentions_me=True), is_owner=False) == "mention"
    assert triggers.decide(incoming("hi Mia", channel="telegram:-200"), is_owner=False) == "name", "per channel"
    now[0] += 21
    assert triggers.decide(incoming("hi Mia"), is_owner=False) == "name"


def test_per_user_rate_limit_is_a_sliding_window():
    now = [0.0]
    triggers = Triggers(TriggerOptions(user_limit=3, user_window_s=10.0), clock=lambda: now[0])
    assert [triggers.allow_user("u") for _ in range(4)] == [True, True, True, False]
    assert triggers.allow_user("someone else")
    now[0] = 10.5
    assert triggers.allow_user("u")


# -- the loop --------------------------------------------------------------------------------------------


@pytest.fixture
async def make_core(make_settings, make_client, redis_url):
    cores: list[BotCore] = []

    async def make(platform=None, *, bot=None, telegram=None, rng=None, **options):
        settings = make_settings(bot={**FAST_BOT, **(bot or {})},
                                 telegram={"owner_ids": ["1"], **(telegram or {})})
        client = make_client(redis_url, bot="main", **options)
        core = BotCore(platform or MemoryPlatform(), client, settings, redis_url=redis_url, rng=rng,
                       pacing=PacingOptions.from_settings(settings, retry_base_s=0.05))
        await core.start()
        cores.append(core)
        return core

    yield make
    for core in cores:
        await core.stop(drain_s=2)


async def test_dm_is_answered_with_typing_first_and_parts_in_order(make_core, make_worker, redis_url, sync_redis, keys):
    platform = MemoryPlatform()
    core = await make_core(platform)
    async with running(make_worker(redis_url, engine=EchoEngine(delay_ms=300))):
        await core.handle(incoming("first\n\nsecond\n\nthird", channel="telegram:77", chat_type="dm",
                                   author_id="77", author_name="Bob"))
        await eventually(lambda: len(platform.sent) == 3, what="three parts")
    assert platform.texts() == ["echo: first", "echo: second", "echo: third"]
    assert platform.typing and platform.typing[0][1] < platform.sent[0].at, "typing shows before the first part"
    gaps = [b.at - a.at for a, b in itertools.pairwise(platform.sent)]
    assert all(gap >= 0.05 for gap in gaps), f"later parts come after a pause: {gaps}"
    assert all(s.reply_to == "" for s in platform.sent), "a DM answer does not quote"
    [request] = [json.loads(raw) for raw in sync_redis.lrange(keys.history("telegram:77"), 0, -1)]
    assert request == {"seq": 1, "speaker": "Bob", "text": "first\n\nsecond\n\nthird",
                       "at": pytest.approx(time.time(), abs=5), "is_owner": False, "message_id": request["message_id"]}


async def test_typing_is_refreshed_before_it_expires_while_the_worker_is_slow(make_core, make_worker, redis_url):
    platform = MemoryPlatform()
    platform.typing_lifetime_s = 0.5
    core = await make_core(platform)
    async with running(make_worker(redis_url, engine=EchoEngine(delay_ms=1500))):
        await core.handle(incoming("slow one", mentions_me=True))
        await eventually(lambda: platform.sent, what="the reply")
    before = [at for _, at in platform.typing if at < platform.sent[0].at]
    assert len(before) >= 3, before
    assert max(b - a for a, b in itertools.pairwise(before)) < 0.5, "refreshed before the 0.5 s lifetime"
    assert platform.sent[0].reply_to, "a group answer quotes the message it answers"


async def test_group_records_everyone_and_answers_only_on_a_trigger(make_core, make_worker, redis_url, aredis, keys):
    platform = MemoryPlatform()
    core = await make_core(platform, bot={"owner_name": "Mia", "nicknames": ["mimi"]})
    async with running(make_worker(redis_url)):
        await core.handle(incoming("just chatting"))
        await core.handle(incoming("mimi what do you think", author_id="12", author_name="Cy"))
        await core.handle(incoming("beep", author_id="99", author_name="OtherBot", is_bot=True, mentions_me=True))
        await core.handle(incoming("my own message", author_id="4242", is_self=True))
        await core.handle(incoming("edited text", mentions_me=True, edited=True))
        await core.handle(incoming("from yesterday", mentions_me=True, at=time.time() - 86400))
        await core.handle(incoming("I am the owner", author_id="1", author_name="Mia"))
        await eventually(lambda: platform.sent, what="the name-triggered reply")
        await asyncio.sleep(0.3)  # nothing else may arrive
    assert platform.texts() == ["echo: mimi what do you think"]
    turns = await load(aredis, keys, "telegram:-100")
    assert [(t.turn.speaker, t.turn.text, t.turn.is_owner) for t in turns] == [
        ("Ann", "just chatting", False), ("Cy", "mimi what do you think", False), ("OtherBot", "beep", False),
        ("Mia", "I am the owner", True),
    ], "every text is recorded (bots too), except the bot's own, edits and old messages"
    assert core.submitted == 1


async def test_paused_and_not_allowed_chats_are_neither_recorded_nor_answered(make_core, aredis, keys):
    platform = MemoryPlatform()
    core = await make_core(platform, telegram={"chats": ["-100"]})
    await aredis.hset(keys.channel_settings("telegram:-100"), "paused", "1")
    await core.handle(incoming("hello?", mentions_me=True))
    await core.handle(incoming("elsewhere", channel="telegram:-300", mentions_me=True))
    assert core.recorded == 0 and core.submitted == 0
    await aredis.hdel(keys.channel_settings("telegram:-100"), "paused")
    await aredis.hset(keys.global_settings, "paused", "1")
    await core.handle(incoming("still paused", mentions_me=True))
    assert core.submitted == 0
    await aredis.delete(keys.global_settings)
    await core.handle(incoming("now", mentions_me=True))
    assert core.recorded == 1 and core.submitted == 1


async def test_one_user_cannot_flood_the_worker(make_core, aredis, keys):
    core = await make_core(bot={"user_rate_limit": 3, "user_rate_window_s": 60.0})
    for i in range(10):
        await core.handle(incoming(f"spam {i}", chat_type="dm", channel="telegram:55", author_id="55"))
    await core.handle(incoming("me too", chat_type="dm", channel="telegram:56", author_id="56"))
    assert core.submitted == 4
    assert await aredis.xlen(keys.requests) == 4
    assert len(await load(aredis, keys, "telegram:55")) == 10, "held-back messages are still recorded"


async def test_dms_from_people_off_a_dm_allowlist_are_ignored(make_core, aredis, keys, caplog):
    caplog.set_level(logging.INFO, logger="bot.core")
    platform = MemoryPlatform()
    core = await make_core(platform, telegram={"dm_allowlist": ["77"]})
    stranger = dict(chat_type="dm", channel="telegram:88", author_id="88", author_name="Eve")
    for text in ("hi, who are you?", "/about", "/clone status"):
        await core.handle(incoming(text, **stranger))
    await asyncio.sleep(0.2)
    assert core.recorded == 0 and core.submitted == 0 and platform.sent == [], "not recorded, not asked, no reply"
    assert await load(aredis, keys, "telegram:88") == []
    assert "not on [telegram] dm_allowlist" in caplog.text and "who are you" not in caplog.text, "logged, without text"
    await core.handle(incoming("hey it's me", chat_type="dm", channel="telegram:77", author_id="77"))
    await core.handle(incoming("note to self", chat_type="dm", channel="telegram:1", author_id="1"))
    assert core.submitted == 2, "a listed friend and the owner (always allowed) are answered"
    await core.handle(incoming("hello @doppel", author_id="88", mentions_me=True))
    assert core.submitted == 3, "the DM allowlist does not touch groups"


async def test_dms_are_open_to_everyone_by_default(make_core):
    core = await make_core()
    await core.handle(incoming("hi", chat_type="dm", channel="telegram:88", author_id="88"))
    assert core.submitted == 1


async def test_failed_sends_are_retried_and_nothing_is_lost(make_core, make_worker, redis_url, caplog):
    platform = MemoryPlatform(fail_first=2)
    core = await make_core(platform)
    async with running(make_worker(redis_url)):
        for i in range(3):
            await core.handle(incoming(f"m{i}", chat_type="dm", channel="telegram:8", author_id="8"))
        await eventually(lambda: len(platform.sent) == 3, what="all three replies")
    assert platform.texts() == ["echo: m0", "echo: m1", "echo: m2"]
    assert platform.attempts == 5
    assert "retry 1" in caplog.text


async def test_a_refused_send_is_logged_and_the_channel_goes_on(make_core, make_worker, redis_url, caplog):
    platform = MemoryPlatform(refuse=True)
    core = await make_core(platform)
    async with running(make_worker(redis_url)):
        await core.handle(incoming("hi", chat_type="dm", channel="telegram:9", author_id="9"))
        await eventually(lambda: platform.attempts == 1 and core.idle, what="the refused send")
    assert "cannot post to telegram:9: chat not found" in caplog.text


async def test_long_replies_are_split_at_the_limit_and_the_footer_is_added(make_core, make_worker, redis_url):
    platform = MemoryPlatform()
    core = await make_core(platform, bot={"disclosure_footer": "(AI clone of {owner})", "owner_name": "Mia"})
    text = "This is a sentence. " * 12
    async with running(make_worker(redis_url)):
        await core.handle(incoming(text.strip(), chat_type="dm", channel="telegram:10", author_id="10"))
        await eventually(lambda: core.idle and platform.sent, what="the split reply")
    assert all(len(t) <= 50 for t in platform.texts())
    assert " ".join(platform.texts()).split() == f"echo: {text} (AI clone of Mia)".split()
    assert platform.texts()[-1].endswith("(AI clone of Mia)")


async def test_worker_errors_become_a_short_failure_message(make_core, make_worker, redis_url):
    class Failing(EchoEngine):
        async def generate(self, request):
            raise RuntimeError("CUDA out of memory: secret stack")

    platform = MemoryPlatform()
    core = await make_core(platform)
    async with running(make_worker(redis_url, engine=Failing())):
        await core.handle(incoming("hi", chat_type="dm", channel="telegram:12", author_id="12"))
        await eventually(lambda: platform.sent, what="the failure text")
    assert platform.texts() == ["…"]


async def test_an_adapter_notice_reaches_the_owner_dm_once(make_core, redis_url, aredis, keys):
    from doppel.relay import Reply

    platform = MemoryPlatform()
    core = await make_core(platform)
    for _ in range(2):
        request = Request(platform="telegram", bot="main", channel="telegram:-100", chat_type="group", author_id="3",
                          author_name="Ann", text="hi", trigger="mention", sent_at=time.time())
        await core.client.submit(request)
        await aredis.xadd(keys.replies("main"), Reply(request.id, "telegram:-100", "ok", ("answer",),
                                                      reason="adapter x@v2 failed to load").to_fields())
    await eventually(lambda: len(platform.texts("telegram:-100")) == 2, what="both answers")
    await eventually(lambda: platform.texts("telegram:1"), what="the notice")
    await asyncio.sleep(0.1)
    assert platform.texts("telegram:1") == ["Notice: telegram:-100: adapter x@v2 failed to load"]


async def test_requests_carry_the_trigger_and_the_message_id(make_core, aredis, keys):
    core = await make_core()
    event = incoming("look @doppel", mentions_me=True, author_name="Zoë 🌸")
    await core.handle(event)
    [(_, fields)] = await aredis.xrange(keys.requests)
    request = Request.from_fields(fields)
    assert (request.trigger, request.reply_to, request.author_name, request.chat_type) == (
        "mention", event.message_id, "Zoë 🌸", "group")


async def test_commands_are_registered_at_start(make_core):
    platform = MemoryPlatform()
    await make_core(platform)
    names = [spec.name for spec in platform.registered]
    assert {"status", "use", "blend", "pause", "say", "help", "about"} <= set(names)
