"""The Telegram bot end to end: the real python-telegram-bot client, polling a fake Bot API on
127.0.0.1, through the real core and relay client, a real Redis and an in-process echo worker.

fake Bot API -> PTB polling -> BotCore -> Redis -> Worker -> Redis -> BotCore -> PTB -> fake Bot API
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time

import pytest

pytest.importorskip("telegram")
from bot_helpers import FAST_BOT, eventually, running
from fakes.telegram_api import FakeTelegram

from bot.platform import RateLimit
from bot.runtime import run_bot
from bot.telegram_bot import TelegramBot
from doppel.history import load
from inference.engine import EchoEngine

TOKEN = "123456:TEST-telegram-token-AbCdEf"
OWNER = 1
GROUP = -1001
ANN = FakeTelegram.user(11, "Ann")
ZOE = FakeTelegram.user(12, "Zoë", last_name="قمر")
# Telegram allows about one message a second per chat; most tests do not need to wait for that.
FAST_LIMITS = {"channel_limits": (RateLimit(20, 1.0),)}


@pytest.fixture
async def fake():
    server = await FakeTelegram(TOKEN).start()
    yield server
    await server.stop()


@pytest.fixture
async def run_telegram(fake, make_settings, redis_url):
    """Start the bot against the fake; returns its core. Stopped at teardown (or by ``stop()``)."""
    bots = []

    @contextlib.asynccontextmanager
    async def start(*, bot=None, telegram=None, limits=FAST_LIMITS, **core_options):
        settings = make_settings(bot={**FAST_BOT, **(bot or {})},
                                 telegram={"owner_ids": [str(OWNER)], **(telegram or {})})
        platform = TelegramBot(TOKEN, base_url=fake.base_url, base_file_url=fake.file_url, poll_timeout_s=1,
                               limits=limits)
        stop, started = asyncio.Event(), asyncio.Future()
        task = asyncio.create_task(run_bot(settings, redis_url, platform, stop=stop, drain_s=5,
                                           on_started=started.set_result, **core_options))
        bots.append((stop, task))
        done, _ = await asyncio.wait({started, task}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        assert started in done, task.exception() if task.done() else "the bot did not start in 10 s"
        try:
            yield started.result()
        finally:
            stop.set()
            await asyncio.wait_for(task, 15)

    yield start
    for stop, task in bots:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 15)


def typing_and_messages(fake: FakeTelegram, chat_id: int) -> list[str]:
    """The bot's calls to one chat, as "typing" or the message text, in arrival order."""
    accepted = {id(call) for call in fake.sent}
    out = []
    for call in fake.methods("sendChatAction", "sendMessage"):
        if int(call.params["chat_id"]) != chat_id:
            continue
        if call.method == "sendChatAction":
            out.append("typing")
        elif id(call) in accepted:
            out.append(call.params["text"])
    return out


async def test_dm_end_to_end_typing_then_parts_in_order(fake, run_telegram, make_worker, redis_url, aredis, keys):
    async with run_telegram(limits=None), running(make_worker(redis_url, engine=EchoEngine(delay_ms=200))):
        await fake.message(ANN["id"], ANN, "hey!\n\nhow are you\n\nsee you")
        await eventually(lambda: len(fake.sent) == 3, what="three reply parts")
    times = [call.at for call in fake.sent]
    assert all(b - a >= 0.95 for a, b in itertools.pairwise(times)), "Telegram's 1 message/s per chat"
    flow = typing_and_messages(fake, ANN["id"])
    assert flow[0] == "typing"
    assert [step for step in flow if step != "typing"] == ["echo: hey!", "echo: how are you", "echo: see you"]
    assert "typing" in flow[flow.index("echo: hey!"):], "typing shows again before the later parts"
    assert all("reply_parameters" not in c.params for c in fake.sent), "no quoting in a DM"
    commands = fake.methods("setMyCommands")[0].params["commands"]
    assert [c["command"] for c in commands] == ["clone", "about"]
    [turn] = await load(aredis, keys, f"telegram:{ANN['id']}")
    assert (turn.turn.speaker, turn.turn.text) == ("Ann", "hey!\n\nhow are you\n\nsee you")


async def test_group_triggers_through_the_real_client(fake, run_telegram, make_worker, redis_url, aredis, keys):
    other_bot = FakeTelegram.user(77, "OtherBot", is_bot=True)
    async with run_telegram(bot={"owner_name": "Mia"}), running(make_worker(redis_url)):
        await fake.message(GROUP, ANN, "just chatting")
        await fake.message(GROUP, other_bot, "@doppel_test_bot beep boop")
        await fake.message(GROUP, ANN, "from before", date=time.time() - 3600)
        mention = await fake.message(GROUP, ANN, "hi @doppel_test_bot")
        await fake.message(GROUP, ANN, "hi @doppel_test_bot (edited)", edited=True)
        reply = await fake.message(GROUP, ZOE, "you again", reply_to=fake.bot_message(GROUP, 5))
        named = await fake.message(GROUP, ANN, "what would mia say")
        topic = await fake.message(GROUP, ANN, "@doppel_test_bot in a topic", topic=9)
        await eventually(lambda: len(fake.sent) == 4, what="four answers")
        await asyncio.sleep(0.3)
    assert len(fake.sent) == 4
    by_text = {c.params["text"]: c.params for c in fake.sent}
    assert by_text["echo: hi @doppel_test_bot"]["reply_parameters"]["message_id"] == mention["message_id"]
    assert by_text["echo: you again"]["reply_parameters"]["message_id"] == reply["message_id"]
    assert by_text["echo: what would mia say"]["reply_parameters"]["message_id"] == named["message_id"]
    in_topic = by_text["echo: @doppel_test_bot in a topic"]
    assert in_topic["message_thread_id"] == 9 and in_topic["reply_parameters"]["message_id"] == topic["message_id"]
    group = [t.turn.text for t in await load(aredis, keys, f"telegram:{GROUP}")]
    assert group == ["just chatting", "@doppel_test_bot beep boop", "hi @doppel_test_bot", "you again",
                     "what would mia say"], "everything in the chat is recorded except edits and old messages"
    assert [t.turn.text for t in await load(aredis, keys, f"telegram:{GROUP}:9")] == ["@doppel_test_bot in a topic"]


async def test_owner_and_non_owner_commands(fake, run_telegram, aredis, keys):
    async with run_telegram():
        await fake.message(GROUP, ANN, "/clone@doppel_test_bot pause everywhere")
        await fake.message(GROUP, FakeTelegram.user(OWNER, "Mia"), "/clone temp 0.7 here")
        await eventually(lambda: len(fake.sent) == 2, what="two answers")
    assert fake.texts() == ["Sorry, only the owner can use /clone commands.", "temperature = 0.7 in this chat."]
    assert await aredis.hget(keys.global_settings, "paused") is None
    assert await aredis.hget(keys.channel_settings(f"telegram:{GROUP}"), "temperature") == "0.7"


async def test_a_flood_answer_is_retried_without_loss(fake, run_telegram, make_worker, redis_url):
    fake.flood_next = 2
    async with run_telegram(), running(make_worker(redis_url)):
        for text in ("one", "two"):
            await fake.message(ANN["id"], ANN, text)
        await eventually(lambda: len(fake.sent) == 2, timeout=15, what="both replies after the 429s")
    assert fake.texts() == ["echo: one", "echo: two"]
    assert len(fake.methods("sendMessage")) == 4, "two refused with 429, then each sent once"


async def test_restart_posts_pending_replies_once(fake, run_telegram, make_worker, redis_url, aredis, keys):
    async with run_telegram() as core:
        for i in range(3):
            await fake.message(ANN["id"], ANN, f"while you were out {i}")
        # Queued on the chat's shard ([relay] shards): the stream its worker will read.
        queue = keys.request_stream(f"telegram:{ANN['id']}", core.client.shards)
        await eventually(lambda: _length(aredis, queue, 3), what="three requests")
    assert fake.sent == [], "no worker yet, so no replies"
    worker = make_worker(redis_url)
    assert await worker.run(burst=True) == 3
    async with run_telegram():
        await eventually(lambda: len(fake.sent) == 3, what="the pending replies")
    async with run_telegram():
        await asyncio.sleep(0.5)
    assert fake.texts() == [f"echo: while you were out {i}" for i in range(3)], "each posted once, in order"


async def _length(aredis, key, n):
    return await aredis.xlen(key) == n


async def test_a_10000_character_message_and_unicode_round_trip(fake, run_telegram, make_worker, redis_url, aredis,
                                                                 keys):
    sentence = "Zoë said 😂 that مرحبا بالعالم and שלום עולם are fine; 你好。 "
    long_text = (sentence * (10_000 // len(sentence) + 1))[:10_000]
    unicode_text = "RTL: مرحبا 👋🏽 שלום — 👨‍👩‍👧 [捂脸] ﷽"
    async with run_telegram(), running(make_worker(redis_url)):
        await fake.message(ZOE["id"], ZOE, long_text)
        await fake.message(ZOE["id"], ZOE, unicode_text)
        await eventually(lambda: fake.texts() and fake.texts()[-1] == f"echo: {unicode_text}", timeout=10,
                         what="the unicode reply after the long one")
    parts = fake.texts()[:-1]
    assert len(parts) == 3 and all(len(p.encode("utf-16-le")) // 2 <= 4096 for p in parts)
    assert " ".join(parts).split() == f"echo: {long_text}".split(), "nothing lost or reordered in the split"
    turns = await load(aredis, keys, f"telegram:{ZOE['id']}")
    assert [t.turn.text for t in turns] == [long_text, unicode_text]
    assert turns[0].turn.speaker == "Zoë قمر"


async def test_a_flood_of_200_messages_is_recorded_and_answered_within_limits(fake, run_telegram, make_worker,
                                                                               redis_url, aredis, keys):
    # Scaled-down platform limits (3 a second per chat), and a fake that 429s above them.
    fake.per_chat_limit, fake.per_chat_period_s = 3, 1.0
    users = [FakeTelegram.user(100 + i, f"friend{i}") for i in range(20)]
    async with run_telegram(limits={"channel_limits": (RateLimit(3, 1.0),), "group_limits": ()},
                            bot={"user_rate_limit": 1}), \
            running(make_worker(redis_url)):
        for i in range(200):
            # Every 10th message mentions the bot, each time from another friend, except the last:
            # friend0 again, over the per-user limit of 1, so that one is not answered.
            mention = i % 10 == 0
            user = (users[i // 10] if i != 190 else users[0]) if mention else users[i % 20]
            text = f"@doppel_test_bot question {i}" if mention else f"chatter {i}"
            await fake.message(GROUP, user, text)
        expected = [f"echo: @doppel_test_bot question {i}" for i in range(0, 190, 10)]
        await eventually(lambda: len(fake.sent) >= len(expected) and len(fake.methods("getUpdates")) > 2,
                         timeout=20, what="all answers")
        await eventually(lambda: _history_length(aredis, keys, 200), timeout=10, what="all 200 in the history")
    assert fake.texts() == expected, "every answer once, in order; the over-limit mention is not answered"
    times = [c.at for c in fake.sent]
    assert all(b - a >= 0.95 for a, b in zip(times, times[3:], strict=False)), "at most 3 sends per second"
    assert len(fake.methods("sendMessage")) == len(expected), "queued under the limit, never refused"


async def _history_length(aredis, keys, n):
    return len(await aredis.lrange(keys.history(f"telegram:{GROUP}"), 0, -1)) == n


async def test_the_token_never_reaches_the_logs(fake, run_telegram, make_worker, redis_url, caplog):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="httpx")  # the CLI tests quiet it
    caplog.set_level(logging.DEBUG, logger="telegram")  # the CLI tests quiet it
    async with run_telegram(), running(make_worker(redis_url)):
        await fake.message(ANN["id"], ANN, "hi")
        await eventually(lambda: fake.sent, what="a reply")
    assert fake.unauthorized == 0 and len(fake.calls) > 3, "the token was used for every call"
    assert "***" in caplog.text, "the libraries did log the URLs, masked"
    assert TOKEN not in caplog.text and TOKEN.split(":")[1] not in caplog.text



@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_a_dm_answered_by_the_tiny_model_through_its_adapter_with_history(
        fake, run_telegram, make_worker, redis_url, aredis, sync_redis, keys, tiny_model, tmp_path):
    """fake Bot API -> bot -> Redis -> worker (transformers+peft, tiny model, published adapter) -> bot -> fake."""
    from lora_helpers import FIRST, SECOND, all_parts_sent, check_two_exchanges, publish_first_answer, tiny_clone

    from doppel.registry import Registry

    registry = Registry(tmp_path / "adapters", sync_redis, keys)
    clone = tiny_clone(aredis, keys, tiny_model, registry.root)
    async with run_telegram():
        at = int(time.time())  # after the bot started: it skips older messages
        await asyncio.to_thread(publish_first_answer, clone, registry, tiny_model, tmp_path / "trained",
                                speaker="Ann", at=at)
        async with running(make_worker(redis_url, engine=clone)):
            await fake.message(ANN["id"], ANN, FIRST, date=at)
            await eventually(lambda: all_parts_sent(clone, 1, len(fake.sent)), timeout=30, what="the first reply")
            first = await load(aredis, keys, f"telegram:{ANN['id']}")
            await fake.message(ANN["id"], ANN, SECOND)
            await eventually(lambda: all_parts_sent(clone, 2, len(fake.sent)), timeout=30, what="the second reply")
            await asyncio.sleep(0.3)
    parts = check_two_exchanges(clone, first)
    flow = typing_and_messages(fake, ANN["id"])
    assert flow[0] == "typing", "typing shows before the first part"
    assert [step for step in flow if step != "typing"] == parts, "each part its own message, in order"
    assert len(fake.methods("sendMessage")) == len(parts), "none refused or sent twice"
