"""Owner commands: parsing, owner vs everyone else, and what each command changes in Redis.

Commands run through ``BotCore.handle`` (as typed text) on the test Redis with an in-memory
platform; routes go through the real ``doppel.registry.Registry`` under the settings' data dir.
"""

from __future__ import annotations

import json
import time

import pytest
from bot_helpers import FAST_BOT, MemoryPlatform, eventually, incoming, running

from bot.core import BotCore
from bot.owner_commands import REFUSAL, parse_command
from bot.pacing import PacingOptions
from doppel.history import load
from doppel.jobs import Job
from doppel.registry import Card, Registry
from doppel.relay import Reply

OWNER = "1"
GROUP = "telegram:-100"


@pytest.mark.parametrize("text, expected", [
    ("/clone status", ("status", "")),
    ("  /clone   use mia-v2 here ", ("use", "mia-v2 here")),
    ("/clone@doppel_test_bot pause everywhere", ("pause", "everywhere")),
    ("/clone@Doppel_Test_Bot help", ("help", "")),
    ("/clone", ("help", "")),
    ("/CLONE Temp 0.5", ("temp", "0.5")),
    ("/about", ("about", "")),
    ("/clone say hello\n\nworld", ("say", "hello\n\nworld")),
    ("/clone@some_other_bot pause", None),
    ("hey /clone pause everywhere", None),
    ("@doppel_test_bot /clone pause", None),
    ("/clones status", None),
    ("> /clone forget", None),
])
def test_only_a_message_that_starts_with_the_command_is_one(text, expected):
    assert parse_command(text, "doppel_test_bot") == expected


@pytest.fixture
async def owner_setup(make_settings, make_client, redis_url, tmp_path):
    settings = make_settings(bot={**FAST_BOT, "owner_name": "Mia"}, telegram={"owner_ids": [OWNER]})
    platform = MemoryPlatform()
    platform.max_message_chars = 4096
    core = BotCore(platform, make_client(redis_url, bot="main"), settings, redis_url=redis_url,
                   pacing=PacingOptions.from_settings(settings))
    await core.start()
    yield core, platform, settings
    await core.stop(drain_s=2)


async def command(core, platform, text, *, author_id=OWNER, channel=GROUP, **flags) -> str:
    """Run ``text`` as a message and return what the bot answered (or "" after a short wait)."""
    before = len(platform.sent)
    await core.handle(incoming(text, author_id=author_id, channel=channel, **flags))
    try:
        await eventually(lambda: len(platform.sent) > before and core.idle, timeout=3, what=f"an answer to {text!r}")
    except AssertionError:
        return ""
    return "\n".join(platform.texts()[before:])


async def test_non_owners_are_refused_and_logged_by_id_not_name(owner_setup, aredis, keys, caplog):
    core, platform, _ = owner_setup
    answer = await command(core, platform, "/clone pause everywhere", author_id="666", author_name="Mia")
    assert answer == REFUSAL
    assert not await aredis.exists(keys.global_settings)
    assert "user 666" in caplog.text and "not an owner" in caplog.text
    assert (await command(core, platform, "/clone pause everywhere")).startswith("Paused everywhere")
    assert await aredis.hget(keys.global_settings, "paused") == "1"


async def test_a_non_owner_is_refused_once_an_hour_and_then_only_logged(owner_setup, caplog):
    core, platform, _ = owner_setup
    now = [1000.0]
    core.triggers.clock = lambda: now[0]
    assert await command(core, platform, "/clone pause", author_id="666") == REFUSAL
    for text in ("/clone status", "/clone use evil", "/clone"):
        assert await command(core, platform, text, author_id="666") == "", "no second refusal within the hour"
    assert await command(core, platform, "/clone status", author_id="667") == REFUSAL, "per user"
    assert caplog.text.count("user 666") >= 4, "every attempt is logged"
    now[0] += 3601
    assert await command(core, platform, "/clone status", author_id="666") == REFUSAL
    assert platform.texts().count(REFUSAL) == 3


async def test_a_refusal_never_goes_out_ahead_of_a_pending_reply(owner_setup, make_worker, redis_url):
    core, platform, _ = owner_setup
    await core.handle(incoming("hey @doppel", author_id="12", mentions_me=True))
    assert core.submitted == 1  # no worker yet: its reply is pending
    assert await command(core, platform, "/clone status", author_id="666") == ""
    async with running(make_worker(redis_url)):
        await eventually(lambda: platform.sent and core.idle, what="the reply")
    assert platform.texts() == ["echo: hey @doppel"], "the group's rate window went to the reply"
    # Held back, not spent: the next attempt, with nothing pending, gets the one refusal.
    assert await command(core, platform, "/clone status", author_id="666") == REFUSAL


async def test_commands_never_reach_the_model_or_the_history(owner_setup, aredis, keys):
    core, platform, _ = owner_setup
    await command(core, platform, "/clone help")
    await command(core, platform, "/clone status", author_id="666")
    await command(core, platform, "/clone temp 0.3", chat_type="dm", channel="telegram:1")
    assert await aredis.xlen(keys.requests) == 0
    assert await load(aredis, keys, GROUP) == [] and await load(aredis, keys, "telegram:1") == []


async def test_a_command_inside_a_message_or_from_a_bot_does_nothing(owner_setup, aredis, keys):
    core, _, _ = owner_setup
    await core.handle(incoming("lol /clone pause everywhere", author_id=OWNER, mentions_me=True))
    await core.handle(incoming("/clone pause everywhere", author_id=OWNER, is_bot=True))
    await core.handle(incoming("/clone pause", author_id=OWNER, edited=True))
    assert not await aredis.exists(keys.global_settings, keys.channel_settings(GROUP))
    assert core.submitted == 1, "the first one is chat: a mention, sent to the model as text"


async def test_about_is_for_everyone_and_help_lists_the_commands(owner_setup):
    core, platform, _ = owner_setup
    about = await command(core, platform, "/about", author_id="666")
    assert "AI" in about and "Mia" in about
    help_text = await command(core, platform, "/clone help")
    for name in ("status", "adapters", "use", "rollback", "blend", "temp", "pause", "resume", "forget", "say"):
        assert f"/clone {name}" in help_text


async def test_pause_resume_here_and_everywhere(owner_setup, aredis, keys):
    core, platform, _ = owner_setup
    assert "Paused in this chat" in await command(core, platform, "/clone pause")
    assert await aredis.hget(keys.channel_settings(GROUP), "paused") == "1"
    await core.handle(incoming("hello", mentions_me=True))
    assert core.submitted == 0 and core.recorded == 0
    await command(core, platform, "/clone pause everywhere")
    assert "still paused everywhere" in await command(core, platform, "/clone resume")
    assert await aredis.hget(keys.channel_settings(GROUP), "paused") is None
    assert await command(core, platform, "/clone resume everywhere") == "Resumed everywhere."
    await core.handle(incoming("hello again", mentions_me=True))
    assert core.submitted == 1


async def test_temperature_and_chance_with_scope_and_bounds(owner_setup, aredis, keys):
    core, platform, _ = owner_setup
    assert await command(core, platform, "/clone temp 0.8") == "temperature = 0.8 everywhere."
    assert await command(core, platform, "/clone temp 1.1 here") == "temperature = 1.1 in this chat."
    assert "between 0 and 2" in await command(core, platform, "/clone temp 7")
    assert "Usage" in await command(core, platform, "/clone temp warm")
    assert await aredis.hget(keys.global_settings, "temperature") == "0.8"
    assert await aredis.hget(keys.channel_settings(GROUP), "temperature") == "1.1"
    status = await command(core, platform, "/clone status")
    assert "temperature: 1.1 (this chat)" in status and "paused: no" in status
    await command(core, platform, "/clone temp reset here")
    assert await aredis.hget(keys.channel_settings(GROUP), "temperature") is None
    await command(core, platform, "/clone chance 1 here")
    await core.handle(incoming("anyone around?"))
    assert core.submitted == 1, "a chance of 1 in this chat answers unprompted messages"


async def test_status_reports_workers_queue_route_and_pause(owner_setup, make_worker, redis_url, aredis, keys):
    core, platform, _ = owner_setup
    await aredis.set(keys.default_route, "mia@v2")
    async with running(make_worker(redis_url, name="gpu-1")):
        await eventually(lambda: aredis.exists(keys.heartbeat("worker", "gpu-1")), what="worker heartbeat")
        status = await command(core, platform, "/clone status")
    assert "workers: 1 (gpu-1)" in status and "queued 0" in status
    assert "adapter here: mia@v2" in status and "paused: no" in status


async def test_forget_wipes_this_channels_history_only(owner_setup, aredis, keys):
    core, platform, _ = owner_setup
    for i in range(3):
        await core.handle(incoming(f"m{i}"))
    await core.handle(incoming("elsewhere", channel="telegram:-200"))
    assert await command(core, platform, "/clone forget") == "Forgot this chat's history (3 messages)."
    assert await load(aredis, keys, GROUP) == []
    assert len(await load(aredis, keys, "telegram:-200")) == 1


async def test_forget_reaches_dead_letters_and_unsent_replies_of_this_chat(make_settings, make_client, redis_url,
                                                                            aredis, keys):
    # A core that is not delivering, so the replies below stay in the stream as a stopped bot's would.
    settings = make_settings(bot=FAST_BOT, telegram={"owner_ids": [OWNER]})
    core = BotCore(MemoryPlatform(), make_client(redis_url, bot="main"), settings, redis_url=redis_url)
    try:
        await core.handle(incoming("my number is 13812345678"))
        await aredis.xadd(keys.dead_letter, {"channel": GROUP, "text": "my id is 110101199003074518"})
        await aredis.xadd(keys.dead_letter, {"channel": "telegram:-200", "text": "other chat"})
        await aredis.xadd(keys.dead_letter, {"reason": "garbage without a channel"})
        await aredis.xgroup_create(keys.replies("main"), keys.bot_group("main"), id="0", mkstream=True)
        for request_id, channel in (("r1", GROUP), ("r2", "telegram:-200"), ("r3", GROUP)):
            await aredis.xadd(keys.replies("main"), Reply(request_id, channel, "ok", ("number: 138…",)).to_fields())
        # r1 read, not posted: pending, as for a bot that stopped before posting it
        await aredis.xreadgroup(keys.bot_group("main"), "main", {keys.replies("main"): ">"}, count=1)
        await aredis.rpush(keys.channel_order("main", GROUP), "r1", "r3")
        await aredis.xadd(keys.replies("other-bot"), Reply("r9", GROUP, "ok", ("not ours",)).to_fields())
        answer = await core.commands.run(incoming("/clone forget", author_id=OWNER), "forget", "")
        assert answer == "Forgot this chat's history (1 message), 1 dead letter and 2 unsent replies."
        assert await load(aredis, keys, GROUP) == []
        left = [fields.get("text", fields.get("reason")) for _, fields in await aredis.xrange(keys.dead_letter)]
        assert left == ["other chat", "garbage without a channel"]
        replies = [Reply.from_fields(f).request_id for _, f in await aredis.xrange(keys.replies("main"))]
        assert replies == ["r2"]
        assert (await aredis.xpending(keys.replies("main"), keys.bot_group("main")))["pending"] == 0
        assert not await aredis.exists(keys.channel_order("main", GROUP)), "later replies do not wait for r1, r3"
        assert await aredis.xlen(keys.replies("other-bot")) == 1, "only this bot's stream"
    finally:
        for sender in core._senders.values():
            await sender.close()
        core.commands.close()
        await core.client.redis.aclose()


async def test_say_speaks_through_the_clone_and_is_recorded_as_the_owner(owner_setup, aredis, keys):
    core, platform, _ = owner_setup
    await core.handle(incoming("/clone say sorry I'm late 🙈", author_id=OWNER))
    await eventually(lambda: platform.sent and core.idle, what="the said text")
    await eventually(lambda: load(aredis, keys, GROUP), what="the history entry")
    assert platform.texts() == ["sorry I'm late 🙈"]
    [turn] = await load(aredis, keys, GROUP)
    assert (turn.turn.speaker, turn.turn.text, turn.turn.is_owner, turn.message_id) == (
        "Mia", "sorry I'm late 🙈", True, platform.sent[0].message_id)


@pytest.fixture
def registry(owner_setup, sync_redis, keys, tmp_path):
    _, _, settings = owner_setup
    registry = Registry(settings.data_dir / "adapters", sync_redis, keys)

    def publish(name: str, **scores):
        folder = tmp_path / f"src-{name}-{time.monotonic_ns()}"
        folder.mkdir()
        (folder / "adapter_config.json").write_text(json.dumps({"r": 8}))
        return registry.publish(folder, Card(name=name, version=0, base_model="tiny", rank=8, eval=scores))

    return registry, publish


async def test_adapters_use_and_rollback_go_through_the_registry(owner_setup, registry, sync_redis, keys):
    core, platform, _ = owner_setup
    _, publish = registry
    publish("mia", likeness=0.61)
    publish("work", likeness=0.72)
    listing = await command(core, platform, "/clone adapters")
    assert "mia@v1: likeness=0.61 [default]" in listing and "work@v1: likeness=0.72" in listing
    assert await command(core, platform, "/clone use work") == "Using work@v1 everywhere."
    assert sync_redis.get(keys.default_route) == "work@v1"
    assert await command(core, platform, "/clone use mia here") == "Using mia@v1 in this chat."
    assert sync_redis.hget(keys.channel_routes, GROUP) == "mia@v1"
    assert "no adapter named 'nope'" in await command(core, platform, "/clone use nope")
    assert await command(core, platform, "/clone rollback") == "Rolled back: the default is mia@v1 again."
    assert "follows the default again" in await command(core, platform, "/clone rollback here")
    assert sync_redis.hget(keys.channel_routes, GROUP) is None
    kinds = [fields["kind"] for _, fields in sync_redis.xrange(keys.registry_events)]
    assert kinds.count("use") >= 4 and "rollback" in kinds


async def test_blend_is_queued_as_a_job_and_its_result_is_reported_back(owner_setup, registry, aredis, keys):
    core, platform, _ = owner_setup
    _, publish = registry
    publish("mia")
    publish("work")
    assert "Usage" in await command(core, platform, "/clone blend mia:0.7 as mix")
    assert "nope" in await command(core, platform, "/clone blend mia:0.7 nope:0.3 as mix")
    answer = await command(core, platform, "/clone blend mia:0.7 work:0.3 as mix")
    assert answer.startswith("Queued: blend mia×0.7 + work×0.3 as mix")
    [(_, fields)] = await aredis.xrange(keys.jobs)
    job = Job.from_fields(fields)
    assert (job.kind, job.channel, job.requested_by, job.bot) == ("blend", GROUP, OWNER, "main")
    assert job.args == {"name": "mix", "combination": "linear",
                        "sources": [{"adapter": "mia", "weight": 0.7}, {"adapter": "work", "weight": 0.3}]}
    assert await aredis.xinfo_groups(keys.jobs), "the jobs group exists before any runner starts"
    # The job runner (another component) reports back through the bot's reply stream.
    await aredis.xadd(keys.replies("main"), Reply(job.id, GROUP, "ok", ("Blend mix@v1 is ready.",)).to_fields())
    await eventually(lambda: "Blend mix@v1 is ready." in platform.texts(), what="the job report")
    await aredis.xadd(keys.replies("main"), Reply("job-x", GROUP, "error", reason="rank mismatch").to_fields())
    await eventually(lambda: "Job failed: rank mismatch" in platform.texts(), what="the failure report")
