"""The web chat end to end: the real aiohttp server of ``WebPlatform``, through the real core and
relay client, a real Redis and an in-process echo worker, driven over HTTP and its WebSocket.

page (aiohttp client) -> /ws -> WebPlatform -> BotCore -> Redis -> Worker -> Redis -> BotCore -> page
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from bot_helpers import eventually, running
from webchat_pages import page

from bot.owner_commands import REFUSAL
from bot.webchat.friends import Line, load_script, parse_script, plan
from bot.webchat.platform import serve_web
from doppel.config import settings_from_dict
from doppel.errors import ConfigError
from doppel.history import load
from doppel.registry import Card, Registry
from inference.engine import EchoEngine

ROOT = Path(__file__).resolve().parents[3]
# A 1x1 PNG: the likeness chart of a published version.
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJ"
                       "RU5ErkJggg==")


async def test_dm_shows_typing_then_the_reply_parts_in_order(run_web, make_worker, redis_url, aredis, keys):
    async with run_web() as platform, running(make_worker(redis_url, engine=EchoEngine(delay_ms=300))), \
            page(platform, name="Ann") as ann:
        dm = ann.channel("dm")
        assert dm == f"web:dm:{ann.me['id']}" and ann.me["kind"] == "guest"
        nonce = await ann.send(dm, "hey!\n\nhow are you\n\nsee you")
        assert (await ann.answer(nonce))["type"] == "sent"
        await eventually(lambda: len(ann.texts(dm, "clone")) == 3, what="three reply parts")
    flow = ann.flow(dm)
    assert flow[:2] == ["guest: hey!\n\nhow are you\n\nsee you", "typing: Doppel"], "typing while the worker writes"
    parts = [step for step in flow if step.startswith("clone: ")]
    assert parts == ["clone: echo: hey!", "clone: echo: how are you", "clone: echo: see you"]
    between = flow[flow.index(parts[0]):flow.index(parts[1])]
    assert "typing: Doppel" in between, "typing shows again before each later part"
    [turn] = await load(aredis, keys, dm)
    assert (turn.turn.speaker, turn.turn.text, turn.turn.is_owner) == ("Ann", "hey!\n\nhow are you\n\nsee you", False)


async def test_a_second_page_sees_the_backlog_and_others_dms_stay_private(run_web, make_worker, redis_url):
    async with run_web() as platform, running(make_worker(redis_url)):
        async with page(platform, name="Ann") as ann:
            group, dm = ann.channel("group"), ann.channel("dm")
            await ann.send(group, "hello group")
            await ann.send(dm, "just us")
            await eventually(lambda: ann.texts(dm, "clone") == ["echo: just us"], what="the DM reply")
        async with page(platform, name="Bo") as bo:
            assert [m["text"] for m in bo.welcome["backlog"][group]] == ["hello group"]
            assert ann.me["id"] != bo.me["id"] and dm not in bo.welcome["backlog"], "Ann's DM is not Bo's"
            nonce = await bo.send(dm, "peeking")
            assert (await bo.answer(nonce))["message"] == f"unknown channel {dm!r}"


async def test_a_guest_who_copies_an_id_seen_in_a_group_cannot_read_or_post_in_that_dm(run_web, make_worker,
                                                                                       redis_url, aredis, keys):
    async with run_web() as platform, running(make_worker(redis_url)):
        async with page(platform, name="Ann", guest="ann-secret-token-1234") as ann, page(platform, name="Bo") as bo:
            group, dm = ann.channel("group"), ann.channel("dm")
            await ann.send(dm, "my secret plan")
            await eventually(lambda: ann.texts(dm, "clone") == ["echo: my secret plan"], what="the DM reply")
            await ann.send(group, "hi all")
            await eventually(lambda: bo.texts(group) == ["hi all"], what="Ann's line on Bo's page")
            seen = bo.messages(group)[0]["author"]["id"]
        for copied in (seen, seen.removeprefix("guest-")):
            async with page(platform, name="Mal", guest=copied) as mal:
                assert mal.me["id"] != seen and mal.channel("dm") != dm
                assert dm not in mal.welcome["backlog"] and "my secret plan" not in json.dumps(mal.events)
                answer = await mal.answer(await mal.send(dm, "posting as Ann"))
                assert (answer["type"], answer["message"]) == ("error", f"unknown channel {dm!r}")
        async with page(platform, name="Ann", guest="ann-secret-token-1234") as again:
            assert again.me["id"] == seen, "the token holder keeps her id while the chat runs"
            assert [m["text"] for m in again.welcome["backlog"][dm]] == ["my secret plan", "echo: my secret plan"]
    assert [t.turn.text for t in await load(aredis, keys, dm)] == ["my secret plan"], \
        "nothing was posted into Ann's DM by anyone else"


async def test_a_guest_token_and_the_owner_key_reach_no_other_page(run_web, make_worker, redis_url):
    token = "ann-secret-token-1234"
    async with run_web() as platform, running(make_worker(redis_url)), page(platform, name="Bo") as bo, \
            page(platform, key=platform.owner_key) as owner:
        async with page(platform, name="Ann", guest=token) as ann:
            group, dm = ann.channel("group"), ann.channel("dm")
            assert ann.me["id"].startswith("guest-") and token not in ann.me["id"] and token not in dm
            await ann.ws.send_json({"type": "typing", "channel": group})
            await ann.send(group, "hi all")
            await eventually(lambda: bo.texts(group) == ["hi all"], what="Ann's line on Bo's page")
            await owner.send(group, "hi from the owner")
            await eventually(lambda: len(bo.texts(group)) == 2, what="the owner's line on Bo's page")
        async with page(platform, name="Cy") as late:
            assert [m["text"] for m in late.welcome["backlog"][group]][:2] == ["hi all", "hi from the owner"]
        assert any(e["type"] == "typing" and e["user"]["id"] == ann.me["id"] for e in bo.events)
        for other in (bo, owner, late):
            traffic = json.dumps(other.events)
            assert token not in traffic and platform.owner_key not in traffic, "no secret in another page's traffic"


async def test_kept_guest_dm_backlogs_are_bounded_least_recently_used_first(run_web, make_worker, redis_url):
    async with run_web(web={"guest_dms": 2}) as platform, running(make_worker(redis_url)):
        async def say(token: str, text: str) -> None:
            async with page(platform, name="G", guest=token) as guest:
                dm = guest.channel("dm")
                await guest.send(dm, text)
                await eventually(lambda: guest.texts(dm, "clone") == [f"echo: {text}"], what=f"the reply to {text}")

        async def kept(token: str) -> list[str]:
            async with page(platform, name="G", guest=token) as guest:
                return [m["text"] for m in guest.welcome["backlog"][guest.channel("dm")]]

        await say("token-aaaa", "from a")
        await say("token-bbbb", "from b")
        assert await kept("token-aaaa") == ["from a", "echo: from a"], "opening a's page makes it recently used"
        await say("token-cccc", "from c")
        assert await kept("token-bbbb") == [], "b was the least recently used: its backlog was dropped"
        assert await kept("token-aaaa") == ["from a", "echo: from a"]
        assert await kept("token-cccc") == ["from c", "echo: from c"]
        for n in range(6):  # a flood of new tokens
            await say(f"flood-token-{n}", "x")
        assert len(platform._guest_dms) == 2
        assert await kept("token-cccc") == [] and await kept("flood-token-5") == ["x", "echo: x"]


async def test_friends_talk_in_the_group_are_recorded_and_trigger_the_clone(run_web, make_worker, redis_url, aredis,
                                                                          keys, tmp_path):
    script = tmp_path / "friends.txt"
    script.write_text("# two scenes\nSam: morning all\nPriya: has anyone seen {owner}?\n\n"
                      "Leo: {clone} are you there?\nPriya: lol\n")
    web = {"friends": True, "friends_script": str(script), "friend_interval_s": 0.1, "friends_max_messages": 6,
           "friends_seed": 7}
    async with run_web(web=web, bot={"owner_name": "Mia"}) as platform, running(make_worker(redis_url)), \
            page(platform, name="Ann") as ann:
        group = ann.channel("group")
        async with page(platform) as impostor:
            assert "'priya' is taken" in (await impostor.join(name="priya", guest="guest12345"))["message"]
        await eventually(lambda: platform.friends is not None and platform.friends.posted == 6, timeout=10,
                         what="the six scripted lines")
        await eventually(lambda: len(ann.texts(group, "clone")) == 3, timeout=10, what="the clone's answers")
        await asyncio.sleep(0.5)
        assert platform.friends.posted == 6, "the script is bounded"
    expected = [Line(line.name, line.text.replace("{owner}", "Mia").replace("{clone}", "@mia"))
                for _, line in plan(load_script(str(script)), count=6, interval_s=0.1, seed=7)]
    friends = ann.messages(group, "friend")
    assert [(m["author"]["name"], m["text"]) for m in friends] == [(x.name, x.text) for x in expected]
    turns = [(t.turn.speaker, t.turn.text) for t in await load(aredis, keys, group) if t.turn.speaker != "Mia"]
    assert turns == [(x.name, x.text) for x in expected], "every friend's line is in the history, in order"
    triggering = [m for m in friends if "Mia" in m["text"] or "@mia" in m["text"]]
    answers = ann.messages(group, "clone")
    assert [a["text"] for a in answers] == [f"echo: {m['text']}" for m in triggering], "name and mention trigger"
    assert [a["reply_to"]["id"] for a in answers] == [m["id"] for m in triggering], "answers quote the line"
    flow = ann.flow(group)
    assert flow.index(f"typing: {friends[0]['author']['name']}") < flow.index(f"friend: {friends[0]['text']}")


def test_the_friends_schedule_is_bounded_and_replays_for_a_seed():
    scenes = parse_script("A: one\nB: two\n\nC: three\n\nD: four\nE: five\n")
    first = plan(scenes, count=12, interval_s=2.0, seed=1)
    assert first == plan(scenes, count=12, interval_s=2.0, seed=1)
    assert first != plan(scenes, count=12, interval_s=2.0, seed=2)
    assert len(first) == 12 and all(1.0 <= gap <= 3.0 for gap, _ in first)
    names = "".join(line.name for _, line in first)
    for scene in ("AB", "C", "DE"):
        assert names.count(scene) >= 2, "scenes stay whole and repeat"
    assert plan(scenes, count=0, interval_s=2.0, seed=1) == []


async def test_a_bad_friends_script_stops_the_start_with_one_line_naming_it(make_settings, redis_url, tmp_path):
    path = tmp_path / "friends.txt"
    path.write_text("Sam: hi\nno colon here\n")
    settings = make_settings(web={"port": 0, "friends_script": str(path)})
    with pytest.raises(ConfigError, match=r"friends\.txt: line 2 is not 'Name: text'"):
        await serve_web(settings, redis_url, stop=asyncio.Event())
    with pytest.raises(ConfigError, match=r"web\.friends_script = .*cannot read it"):
        load_script(str(tmp_path / "missing.txt"))


async def test_owner_commands_work_for_the_key_holder_only(run_web, make_worker, redis_url, aredis, keys, caplog):
    caplog.set_level(logging.DEBUG)
    async with run_web() as platform, running(make_worker(redis_url)):
        assert platform.owner_url == f"{platform.url}?key={platform.owner_key}"
        async with aiohttp.ClientSession() as session, session.get(platform.owner_url) as response:
            assert response.status == 200 and "app.js" in await response.text()
            assert "default-src 'self'" in response.headers["Content-Security-Policy"]
        async with page(platform) as stranger:
            answer = await stranger.join(key=platform.owner_key[:-1] + "x")
            assert answer["type"] == "error" and "owner link is not valid" in answer["message"]
        async with page(platform, key=platform.owner_key) as owner, page(platform, name="Ann") as ann:
            assert owner.me["kind"] == "owner" and "pause" in {c["name"] for c in owner.welcome["commands"]}
            assert {c["name"] for c in ann.welcome["commands"]} == {"about"}, "guests see only /about"
            dm, group = owner.channel("dm"), owner.channel("group")
            await owner.send(dm, "/clone status")
            await eventually(lambda: owner.texts(dm, "clone"), what="the status answer")
            status = owner.texts(dm, "clone")[0]
            assert "workers: 1" in status and "paused: no" in status
            await ann.send(group, "/clone pause everywhere")
            await eventually(lambda: ann.texts(group, "clone"), what="the refusal")
            assert ann.texts(group, "clone") == [REFUSAL]
            assert await aredis.hget(keys.global_settings, "paused") is None
            await owner.send(group, "/clone pause")
            await eventually(lambda: len(owner.texts(group, "clone")) == 2, what="the pause answer")
            assert owner.texts(group, "clone")[1].startswith("Paused in this chat")
            assert await aredis.hget(keys.channel_settings(group), "paused") == "1"
            await owner.send(dm, "hello me")
            await eventually(lambda: "echo: hello me" in owner.texts(dm, "clone"), what="the DM reply")
        turns = await load(aredis, keys, dm)
        assert [(t.turn.speaker, t.turn.text, t.turn.is_owner) for t in turns] == \
            [(platform.owner.name, "hello me", False)], "commands are not recorded; the key holder chats as a friend"
        assert await load(aredis, keys, group) == []
    assert platform.owner_key not in caplog.text, "the key is never logged"


async def test_adapter_panel_follows_the_registry(run_web, redis_url, sync_redis, keys, tmp_path):
    async with run_web() as platform, page(platform, name="Ann") as ann, aiohttp.ClientSession() as http:
        group = ann.channel("group")

        async def panel(channel: str = "") -> dict:
            async with http.get(platform.url + "api/adapter", params={"channel": channel}) as response:
                assert response.status == 200
                return await response.json()

        empty = await panel()
        assert empty["adapter"] is None and "doppel adapters publish" in empty["message"]
        registry = Registry(platform.registry_root, sync_redis, keys)
        source = tmp_path / "adapter"
        source.mkdir()
        (source / "adapter_config.json").write_text("{}")
        (source / "eval.png").write_bytes(PNG)
        evaluation = {"perplexity": {"base": 9.5, "adapter": 6.25, "ratio": 0.6579}, "likeness": 0.91,
                      "publishable": True, "heldout_samples": 40, "style_distance": {"adapter": 0.25, "base": 0.8}}
        registry.publish(source, Card(name="mia", version=0, base_model="tiny", rank=8, eval=evaluation,
                                      data={"samples": 321}))
        await eventually(lambda: any(e["type"] == "adapter" for e in ann.events), what="the registry event")
        shown = await panel()
        assert shown["adapter"]["ref"] == "mia@v1" and shown["adapter"]["base_model"] == "tiny"
        assert shown["adapter"]["samples"] == 321 and shown["scope"] == "default"
        rows = {row["label"]: row["value"] for row in shown["scores"]}
        assert rows["Likeness (lower is closer)"] == "0.91"
        assert rows["Perplexity: clone / base"] == "6.25 / 9.5 (×0.658)"
        assert rows["Held-out replies"] == "40" and rows["Publishable"] == "yes"
        async with http.get(platform.url + shown["chart"]) as chart:
            assert chart.status == 200 and chart.content_type == "image/png" and await chart.read() == PNG
        (source / "eval.png").unlink()
        registry.publish(source, Card(name="mia", version=0, base_model="tiny", rank=8))
        registry.use("mia@v2", channel=group)
        here = await panel(group)
        assert (here["adapter"]["ref"], here["scope"], here["chart"]) == ("mia@v2", "this chat", None)
        assert here["scores"] == [], "not evaluated"
        assert (await panel())["adapter"]["ref"] == "mia@v1", "the DM follows the default"
        async with http.get(platform.url + "api/adapter/chart", params={"ref": "mia@v2"}) as missing:
            assert missing.status == 404 and "doppel eval" in (await missing.json())["error"]
        async with http.get(platform.url + "api/adapter/chart", params={"ref": "../../etc@v1"}) as bad:
            assert bad.status == 400 and "not allowed" in (await bad.json())["error"]
        async with http.get(platform.url + "api/adapter", params={"channel": "web:group:nope"}) as unknown:
            assert unknown.status == 400


async def test_bad_input_gets_one_clear_error_and_nothing_is_lost(run_web, make_worker, redis_url, aredis, keys):
    async with run_web(web={"max_text_chars": 100}) as platform, running(make_worker(redis_url)), \
            page(platform) as ann:
        for hello, error in (({"type": "send", "channel": "x", "text": "hi"}, "join first"),
                             ({"type": "join", "name": "  ", "guest": "guest12345"}, "pick a name"),
                             ({"type": "join", "name": "doppel", "guest": "guest12345"}, "'doppel' is taken"),
                             ({"type": "join", "name": "Ann", "guest": "no"}, "no valid guest token")):
            count = len(ann.events)
            await ann.ws.send_json(hello)
            await eventually(lambda c=count: len(ann.events) > c, what=error)
            assert error in ann.events[-1]["message"]
        assert (await ann.join(name="Ann", guest="guest12345"))["type"] == "welcome"
        dm = ann.channel("dm")
        cases = [(dm, "   ", "the message is empty"),
                 (dm, "x" * 101, "the message is 101 characters; the limit is 100"),
                 ("web:group:nope", "hi", "unknown channel 'web:group:nope'"),
                 ("web:dm:owner", "hi", "unknown channel 'web:dm:owner'"),
                 (None, "hi", "unknown channel 'None'")]
        for channel, text, error in cases:
            answer = await ann.answer(await ann.send(channel, text))
            assert (answer["type"], answer["message"]) == ("error", error)
        await ann.ws.send_str("{not json")
        await ann.ws.send_json({"type": "dance"})
        await eventually(lambda: len(ann.errors()) == len(cases) + 6, what="two more errors")
        assert ann.errors()[-2:] == ["not JSON", "unknown type 'dance'"]
        ok = await ann.send(dm, "x" * 100)
        assert (await ann.answer(ok))["type"] == "sent"
        await eventually(lambda: ann.texts(dm, "clone") == ["echo: " + "x" * 100], what="the reply")
    assert [t.turn.text for t in await load(aredis, keys, dm)] == ["x" * 100], "only the good message was taken"
    assert ann.texts(dm, "guest") == ["x" * 100]


async def test_other_sites_and_hosts_are_refused(run_web):
    async with run_web() as platform, aiohttp.ClientSession() as http:
        async with http.get(platform.url, headers={"Origin": "http://evil.example"}) as response:
            assert response.status == 403
        async with http.get(platform.url + "ws", headers={"Origin": "http://evil.example"}) as response:
            assert response.status == 403
        async with http.get(platform.url, headers={"Host": "evil.example"}) as response:
            assert response.status == 403, "DNS rebinding: a loopback chat answers loopback names only"
        async with http.get(platform.url + "static/app.js") as response:
            assert response.status == 200 and "WebSocket" in await response.text()


def test_web_settings_refuse_a_network_address_unless_allowed():
    refused = r"web\.host = '0\.0\.0\.0': not a loopback address.*allow_remote = true"
    with pytest.raises(ConfigError, match=refused) as info:
        settings_from_dict({"web": {"host": "0.0.0.0"}}, env={})
    assert "\n" not in str(info.value)
    assert settings_from_dict({"web": {"host": "0.0.0.0", "allow_remote": True}}, env={}).web.allow_remote
    assert settings_from_dict({"web": {"host": "::1"}}, env={}).web.host == "::1"
    with pytest.raises(ConfigError, match=r"web\.groups"):
        settings_from_dict({"web": {"groups": ["Bad Name"]}}, env={})


def test_doppel_bot_web_prints_the_owner_link_and_stops_on_ctrl_c(redis_url, tmp_path):
    config = tmp_path / "doppel.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\n[redis]\nurl = "{redis_url}"\n[web]\nport = 0\n')
    env = {**os.environ, "DOPPEL_CONFIG": str(config)}
    process = subprocess.Popen([sys.executable, "-m", "doppel", "bot", "web", "--no-friends"], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stderr.readline()
        assert "web chat of bot 'main': open http://127.0.0.1:" in line, line
        url = line.split("open ", 1)[1].strip()
        assert "?key=" in url
        import urllib.request

        with urllib.request.urlopen(url, timeout=5) as response:
            assert response.status == 200
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0
        rest = process.stderr.read()
        assert url.split("?key=")[1] not in rest, "the key is printed once"
    finally:
        if process.poll() is None:
            process.kill()


def test_the_web_chat_imports_no_model_library():
    code = ("import sys, bot.webchat.platform, bot.webchat.server, bot.webchat.panel, bot.webchat.friends; "
            "print(sorted(m for m in ('torch', 'transformers', 'vllm') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", "a bot process starts without the model stack"
