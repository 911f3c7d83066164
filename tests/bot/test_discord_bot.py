"""The Discord bot end to end: the real ``discord.Client`` against a fake REST API and gateway on
127.0.0.1, through the real core and relay client, a real Redis and an in-process echo worker.

fake gateway -> discord.py -> BotCore -> Redis -> Worker -> Redis -> BotCore -> discord.py -> fake REST
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import pytest

pytest.importorskip("discord")
from bot_helpers import FAST_BOT, eventually, running
from fakes.discord_api import FakeDiscord

from bot.discord_bot import DiscordBot
from bot.platform import RateLimit
from bot.runtime import run_bot
from doppel.history import load
from inference.engine import EchoEngine

TOKEN = "MTIzNDU2Nzg5.fake-discord.TOKEN-xyz"
OWNER = 1
ANN = FakeDiscord.user(11, "Ann")


@pytest.fixture
async def fake(monkeypatch):
    server = await FakeDiscord(TOKEN).start()
    server.patch(monkeypatch)
    yield server
    await server.stop()


@pytest.fixture
async def run_discord(fake, make_settings, redis_url):
    @contextlib.asynccontextmanager
    async def start(*, bot=None, discord=None, limits=None, **core_options):
        settings = make_settings(bot={**FAST_BOT, **(bot or {})},
                                 discord={"owner_ids": [str(OWNER)], **(discord or {})})
        # discord.py waits guild_ready_timeout after the last GUILD_CREATE before "ready": shorten it.
        platform = DiscordBot(TOKEN, ready_timeout_s=10, limits=limits, guild_ready_timeout=0.05)
        stop, started = asyncio.Event(), asyncio.Future()
        task = asyncio.create_task(run_bot(settings, redis_url, platform, stop=stop, drain_s=5,
                                           on_started=started.set_result, **core_options))
        done, _ = await asyncio.wait({started, task}, timeout=15, return_when=asyncio.FIRST_COMPLETED)
        assert started in done, task.exception() if task.done() else "the bot did not start in 15 s"
        try:
            yield started.result()
        finally:
            stop.set()
            await asyncio.wait_for(task, 15)

    return start


async def test_guild_mention_end_to_end_as_a_reply_with_typing_first(fake, run_discord, make_worker, redis_url,
                                                                     aredis, keys):
    async with run_discord(), running(make_worker(redis_url, engine=EchoEngine(delay_ms=200))):
        assert fake.identify_payload["intents"] & (1 << 15), "the message content intent is requested"
        await fake.message(fake.channel_id, ANN, "chatting before")
        asked = await fake.message(fake.channel_id, ANN, "one\n\ntwo @everyone", mention_bot=True)
        await eventually(lambda: len(fake.sent) == 2, what="two reply parts")
    assert fake.texts() == ["echo: @Doppel one", "echo: two @\u200beveryone"]
    first, second = fake.sent
    assert str(first.body["message_reference"]["message_id"]) == asked["id"], "the first part quotes the message"
    assert "message_reference" not in second.body
    assert first.body["allowed_mentions"] == {"parse": [], "replied_user": True}, "the clone never pings anyone"
    typing = fake.posts("typing")
    assert typing and typing[0].at < first.at, "typing shows before the first part"
    turns = await load(aredis, keys, f"discord:{fake.channel_id}")
    assert [t.turn.text for t in turns] == ["chatting before", "@Doppel one\n\ntwo @\u200beveryone"]


async def test_threads_dms_replies_and_bots(fake, run_discord, make_worker, redis_url, aredis, keys):
    other_bot = FakeDiscord.user(77, "OtherBot", bot=True)
    dm_channel = "900001"
    async with run_discord(), running(make_worker(redis_url)):
        await fake.message(fake.thread_id, ANN, "in the thread", mention_bot=True)
        await fake.message(dm_channel, ANN, "a direct message")
        await fake.message(fake.channel_id, ANN, "your turn", reply_to=fake.bot_message(fake.channel_id))
        await fake.message(fake.channel_id, other_bot, "bots talk too", mention_bot=True)
        await fake.message(fake.channel_id, ANN, "from long ago", mention_bot=True, at=1_600_000_000.0)
        await eventually(lambda: len(fake.sent) == 3, what="three answers")
        await asyncio.sleep(0.3)
    assert len(fake.sent) == 3
    by_channel = {c.body["channel_id"]: c.body for c in fake.sent}
    assert by_channel[fake.thread_id]["content"] == "echo: @Doppel in the thread"
    assert by_channel[dm_channel]["content"] == "echo: a direct message"
    assert "message_reference" not in by_channel[dm_channel], "no quoting in a DM"
    assert by_channel[fake.channel_id]["content"] == "echo: your turn"
    channel = [t.turn.text for t in await load(aredis, keys, f"discord:{fake.channel_id}")]
    assert channel == ["your turn", "@Doppel bots talk too"], "bots are recorded, not answered; old messages skipped"


async def test_long_replies_split_at_2000_queued_under_the_limit_and_a_429_waited_out(fake, run_discord, make_worker,
                                                                                      redis_url):
    fake.flood_next = 1
    text = " ".join(f"Sentence number {i} is here." for i in range(400))  # about 11,000 characters
    # Discord's 5 messages per 5 s per channel, scaled down to 5 per second.
    async with run_discord(limits={"channel_limits": (RateLimit(5, 1.0),)}), running(make_worker(redis_url)):
        await fake.message("900002", ANN, text[:9_990])
        await eventually(lambda: len(fake.sent) >= 5 and fake.texts()[-1].endswith(text[:9_990][-20:]),
                         timeout=15, what="every part")
    parts = fake.texts()
    assert all(len(p) <= 2000 for p in parts) and len(parts) == 6
    assert " ".join(parts).split() == f"echo: {text[:9_990]}".split()
    assert len(fake.posts("messages")) == len(parts) + 1, "the 429 was retried (with its Via header), once"
    assert fake.sent[5].at - fake.sent[0].at >= 0.95, "the sixth message waited for the rate window"


async def test_slash_commands_are_registered_and_answered_by_owner_id(fake, run_discord, aredis, keys):
    async with run_discord():
        [put] = [c for c in fake.calls if c.method == "PUT" and c.path.endswith("/commands")]
        commands = {c["name"]: c for c in put.body}
        assert set(commands) == {"clone", "about"}
        subcommands = {o["name"] for o in commands["clone"]["options"]}
        assert {"status", "use", "rollback", "blend", "temp", "pause", "resume", "forget", "say", "help"} <= subcommands
        await fake.slash(fake.channel_id, FakeDiscord.user(666, "Mallory"), "pause", "everywhere")
        await fake.slash(fake.channel_id, FakeDiscord.user(OWNER, "Mia"), "temp", "0.6 here")
        await eventually(lambda: len(fake.interaction_responses) == 2, what="two interaction responses")
        await fake.message(fake.channel_id, FakeDiscord.user(OWNER, "Mia"), "/clone pause")
        await eventually(lambda: fake.sent, what="the text command's answer")
    refusal, done = (r.body["data"] for r in fake.interaction_responses)
    assert refusal["content"] == "Sorry, only the owner can use /clone commands." and refusal["flags"] == 64
    assert done["content"] == "temperature = 0.6 in this chat." and done["flags"] == 64, "ephemeral"
    assert await aredis.hget(keys.global_settings, "paused") is None
    assert await aredis.hget(keys.channel_settings(f"discord:{fake.channel_id}"), "temperature") == "0.6"
    assert fake.texts() == ["Paused in this chat: not answering or listening until /clone resume."]


async def test_the_token_never_reaches_the_logs(fake, run_discord, make_worker, redis_url, caplog):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="discord")  # the CLI tests quiet it
    async with run_discord(), running(make_worker(redis_url)):
        await fake.message("900003", ANN, "hi")
        await eventually(lambda: fake.sent, what="a reply")
    assert fake.unauthorized == 0 and fake.identify_payload["token"] == TOKEN, "the token was used"
    assert any(r.name.startswith("discord.") for r in caplog.records), "discord.py's debug log was captured"
    assert TOKEN not in caplog.text


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_a_dm_answered_by_the_tiny_model_through_its_adapter_with_history(
        fake, run_discord, make_worker, redis_url, aredis, sync_redis, keys, tiny_model, tmp_path):
    """fake gateway -> bot -> Redis -> worker (transformers+peft, tiny model, published adapter) -> bot -> fake REST."""
    from lora_helpers import FIRST, SECOND, all_parts_sent, check_two_exchanges, publish_first_answer, tiny_clone

    from doppel.registry import Registry

    registry = Registry(tmp_path / "adapters", sync_redis, keys)
    clone = tiny_clone(aredis, keys, tiny_model, registry.root)
    dm = "900004"
    async with run_discord():
        at = time.time()  # after the bot started: it skips older messages
        await asyncio.to_thread(publish_first_answer, clone, registry, tiny_model, tmp_path / "trained",
                                speaker="Ann", at=at)
        async with running(make_worker(redis_url, engine=clone)):
            await fake.message(dm, ANN, FIRST, at=at)
            await eventually(lambda: all_parts_sent(clone, 1, len(fake.sent)), timeout=30, what="the first reply")
            first = await load(aredis, keys, f"discord:{dm}")
            await fake.message(dm, ANN, SECOND)
            await eventually(lambda: all_parts_sent(clone, 2, len(fake.sent)), timeout=30, what="the second reply")
            await asyncio.sleep(0.3)
    parts = check_two_exchanges(clone, first)
    flow = ["typing" if call.path.endswith("/typing") else call.body["content"]
            for call in fake.calls if call.method == "POST" and f"/channels/{dm}/" in call.path]
    assert flow[0] == "typing", "typing shows before the first part"
    assert [step for step in flow if step != "typing"] == parts, "each part its own message, in order"
    assert fake.texts(dm) == parts, "none refused or sent twice"
