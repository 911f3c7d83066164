"""The OpenAI-compatible endpoint: the official client against a real Redis and a real worker.

The worker runs the echo engine, or small engines that answer with what the worker sees for the
request's channel (history, route, overrides) or with question/answer JSON for a passage, so that
``doppel data articles-to-qa`` can run end to end: CLI -> HTTP -> relay -> worker -> back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import aiohttp
import pytest
from bot_helpers import eventually, running
from click.testing import CliRunner
from openai import APIStatusError, AsyncOpenAI

from bot.openai_api import OpenAIServer
from doppel import history
from doppel.prompt import Turn
from doppel.registry import Card, Registry
from doppel.relay import Request
from inference.engine import Generation

ROOT = Path(__file__).resolve().parents[2]
POST = ROOT / "tests" / "fixtures" / "exports" / "articles" / "2023-05-01-why-i-hike.md"


class Modelless:
    """An engine with nothing to start or stop."""

    async def startup(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None


class Probe(Modelless):
    """Answers with what a model engine would read for the request's channel (JSON)."""

    name = "probe"

    def __init__(self, redis, keys):
        self.redis = redis
        self.keys = keys

    async def generate(self, request: Request) -> Generation:
        turns = await history.load(self.redis, self.keys, request.channel)
        seen = {"turns": [[t.turn.speaker, t.turn.text, t.turn.is_owner] for t in turns],
                "reply_to": request.reply_to, "channel": request.channel, "author": request.author_name,
                "route": await self.redis.hget(self.keys.channel_routes, request.channel),
                "overrides": await self.redis.hgetall(self.keys.channel_settings(request.channel))}
        return Generation(parts=(json.dumps(seen),), adapter="probe@v1")


class Recorder(Modelless):
    """Records its answer in the channel's history, as the chat engine does."""

    name = "recorder"

    def __init__(self, redis, keys):
        self.redis = redis
        self.keys = keys
        self.answered = 0

    async def generate(self, request: Request) -> Generation:
        await history.record(self.redis, self.keys, request.channel, Turn("Mia", "late", is_owner=True))
        self.answered += 1
        return Generation(parts=("late",))


class Author(Modelless):
    """Writes question/answer pairs about the passage in an articles-to-qa prompt, as JSON."""

    name = "author"

    async def generate(self, request: Request) -> Generation:
        passage = request.text.split(":\n\n", 1)[1].split("\n\nWrite ", 1)[0]
        first = re.split(r"(?<=[.!?])\s", passage.strip(), maxsplit=1)[0]
        pairs = [{"question": f"What would you say about {first[:30]}?", "answer": first}]
        return Generation(parts=(json.dumps(pairs),))


@contextlib.asynccontextmanager
async def endpoint(settings, *, key=None):
    from doppel.redis_client import async_client

    redis = async_client(settings.redis.url)
    server = OpenAIServer(settings, redis, key=key)
    port = await server.start(port=0)
    url = f"http://127.0.0.1:{port}/v1"
    api = client(url, key or "unused")
    try:
        yield SimpleNamespace(api=api, url=url)
    finally:
        await api.close()
        await server.stop()
        await redis.aclose()


@pytest.fixture
def settings(make_settings):
    return make_settings(openai={"timeout_s": 10.0}, data={"owner_name": "Mia"})


def client(base_url: str, key: str = "unused") -> AsyncOpenAI:
    return AsyncOpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=20)


async def leftovers(aredis, keys) -> list[str]:
    """Keys and routes of ephemeral endpoint channels still in Redis."""
    found = [key async for key in aredis.scan_iter(match=f"{keys.prefix}:*openai:*")]
    return found + list(await aredis.hkeys(keys.channel_routes))


async def test_a_completion_is_the_workers_reply_and_leaves_nothing_behind(settings, make_worker, redis_url,
                                                                          aredis, keys):
    async with running(make_worker(redis_url)), endpoint(settings) as ep:
        raw = await ep.api.chat.completions.with_raw_response.create(
            model="default", messages=[{"role": "user", "content": "hi\n\nhow are you?"}])
        answer = raw.parse()
        assert answer.choices[0].message.content == "echo: hi\n\necho: how are you?"  # a burst: one part a line
        assert (answer.model, answer.choices[0].finish_reason, answer.choices[0].message.role) == (
            "default", "stop", "assistant")
        assert answer.usage.prompt_tokens > 0 and answer.usage.completion_tokens > 0
        assert raw.headers["X-Doppel-Adapter"] == "echo" and "X-Doppel-Ignored" not in raw.headers
        await eventually(lambda: _empty(aredis, keys), what="the channel cleaned up")


async def queued(aredis, keys) -> int:
    """Requests waiting in any request stream (the shared one or a shard)."""
    return sum([await aredis.xlen(key) async for key in aredis.scan_iter(match=f"{keys.requests}*")])


async def _empty(aredis, keys) -> bool:
    return not await leftovers(aredis, keys)


async def test_streaming_sends_the_answer_as_chunks(settings, make_worker, redis_url):
    async with running(make_worker(redis_url)), endpoint(settings) as ep:
        stream = await ep.api.chat.completions.create(
            model="default", messages=[{"role": "user", "content": "one\n\ntwo"}], stream=True,
            stream_options={"include_usage": True})
        chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: one\n\necho: two"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0


async def test_earlier_messages_become_the_channels_history_and_model_and_sampling_reach_the_worker(
        settings, make_worker, redis_url, aredis, keys, tmp_path, sync_redis):
    registry = Registry(settings.adapters_root(), sync_redis, keys)
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    for _ in range(2):
        registry.publish(adapter, Card(name="mia", version=0, base_model="tiny", rank=8))
    messages = [{"role": "system", "content": "You are a pirate."},
                {"role": "user", "content": "hey", "name": "Ann"},
                {"role": "assistant", "content": "yo"},
                {"role": "user", "content": [{"type": "text", "text": "lunch "}, {"type": "text", "text": "later?"}],
                 "name": "Ann"}]
    async with running(make_worker(redis_url, engine=Probe(aredis, keys))), endpoint(settings) as ep:
        raw = await ep.api.chat.completions.with_raw_response.create(
            model="mia@v1", messages=messages, temperature=0.2, max_tokens=33, seed=7)
        seen = json.loads(raw.parse().choices[0].message.content)
        latest = json.loads((await ep.api.chat.completions.create(
            model="mia", messages=messages[-1:])).choices[0].message.content)
        default = json.loads((await ep.api.chat.completions.create(
            model="default", messages=messages[-1:])).choices[0].message.content)
    # The clone's earlier answer is its own turn (the assistant role), the friend's are theirs.
    assert seen["turns"] == [["Ann", "hey", False], ["Mia", "yo", True], ["Ann", "lunch later?", False]]
    assert seen["reply_to"] == "m2" and seen["author"] == "Ann" and seen["channel"].startswith("openai:main-openai:")
    assert (seen["route"], latest["route"], default["route"]) == ("mia@v1", "mia@v2", None)
    assert seen["overrides"] == {"temperature": "0.2", "max_tokens": "33"} and default["overrides"] == {}
    assert raw.headers["X-Doppel-Adapter"] == "probe@v1"
    assert raw.headers["X-Doppel-Ignored"] == "seed, system message"
    assert await leftovers(aredis, keys) == []


async def test_models_are_default_and_the_published_adapters(settings, redis_url, sync_redis, keys, tmp_path):
    registry = Registry(settings.adapters_root(), sync_redis, keys)
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    for name in ("mia", "mia", "bob"):
        registry.publish(adapter, Card(name=name, version=0, base_model="tiny", rank=8, created_at=1_700_000_000))
    async with endpoint(settings) as ep:
        models = await ep.api.models.list()
        one = await ep.api.models.retrieve("mia@v2")
        with pytest.raises(APIStatusError) as missing:
            await ep.api.models.retrieve("zed")
    assert [m.id for m in models.data] == ["default", "bob", "bob@v1", "mia", "mia@v1", "mia@v2"]
    assert one.created == 1_700_000_000 and one.owned_by == "doppel"
    assert missing.value.status_code == 404


async def post(url: str, body, *, headers=None) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with aiohttp.ClientSession() as session, session.post(
            f"{url}/chat/completions", data=data, headers={"Content-Type": "application/json", **(headers or {})}
    ) as response:
        return response.status, await response.json()


USER = {"role": "user", "content": "hi"}


@pytest.mark.parametrize("body, status, code, words", [
    (b"{not json", 400, "invalid_json", "not valid JSON"),
    ([USER], 400, None, "JSON object"),
    ({"model": "default"}, 400, "missing_required_parameter", "'messages' is required"),
    ({"messages": [USER]}, 400, "missing_required_parameter", "'model' is required"),
    ({"model": "default", "messages": []}, 400, "invalid_value", "messages"),
    ({"model": "default", "messages": [USER, {"role": "assistant", "content": "yo"}]}, 400, "invalid_value",
     "must be from the user"),
    ({"model": "default", "messages": [{"role": "system", "content": "be nice"}]}, 400, "invalid_value",
     "must be from the user"),
    ({"model": "default", "messages": [{"role": "tool", "content": "42"}, USER]}, 400, "unsupported_value", "tools"),
    ({"model": "default", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
     400, "invalid_value", "messages.0.content"),
    ({"model": "default", "messages": [{"role": "user", "content": "x" * 16_001}]}, 400, "context_length_exceeded",
     "the limit is 16000"),
    ({"model": "default", "messages": [USER], "n": 2}, 400, "invalid_value", "n:"),
    ({"model": "default", "messages": [USER], "temperature": 5}, 400, "invalid_value", "temperature"),
    ({"model": "gpt-4o", "messages": [USER]}, 404, "model_not_found", "'gpt-4o' does not exist"),
    ({"model": "mia@v9", "messages": [USER]}, 404, "model_not_found", "mia@v9"),
])
async def test_bad_requests_get_openai_errors(settings, body, status, code, words, aredis, keys):
    async with endpoint(settings) as ep:
        got_status, got = await post(ep.url, body)
    assert got_status == status
    assert got["error"]["code"] == code and words in got["error"]["message"]
    assert got["error"]["type"] == "invalid_request_error"
    assert await queued(aredis, keys) == 0, "nothing reaches the worker"


async def test_an_oversize_body_and_unknown_paths_are_json_errors(make_settings):
    settings = make_settings(openai={"max_body_bytes": 1000})
    async with endpoint(settings) as ep:
        status, body = await post(ep.url, {"model": "default", "messages": [{"role": "user", "content": "x" * 2000}]})
        assert (status, body["error"]["code"]) == (413, "request_too_large")
        async with aiohttp.ClientSession() as session, session.get(f"{ep.url}/embeddings") as response:
            assert response.status == 404 and "error" in await response.json()


async def test_the_key_is_required_when_set(settings, make_worker, redis_url):
    secret = "sk-doppel-test-1234"
    async with running(make_worker(redis_url)), endpoint(settings, key=secret) as ep:
        for wrong in ("unused", secret + "x"):
            with pytest.raises(APIStatusError) as refused:
                await ep.api.with_options(api_key=wrong).chat.completions.create(model="default", messages=[USER])
            assert refused.value.status_code == 401 and secret not in refused.value.response.text
        status, _ = await post(ep.url, {"model": "default", "messages": [USER]})
        assert status == 401
        answer = await ep.api.chat.completions.create(model="default", messages=[USER])
    assert answer.choices[0].message.content == "echo: hi"


async def test_other_hosts_and_sites_are_refused_without_reaching_the_worker(settings, aredis, keys):
    """DNS rebinding: a page on evil.example that resolves its name to 127.0.0.1 sends its own Host;
    a page on any other site sends its Origin. Neither may query the clone."""
    body = json.dumps({"model": "default", "messages": [USER]}).encode()
    async with endpoint(settings) as ep, aiohttp.ClientSession() as http:
        own = ep.url.removesuffix("/v1")
        for headers, code in (({"Host": "evil.example"}, "host_not_allowed"),
                              ({"Host": "evil.example:80"}, "host_not_allowed"),
                              ({"Origin": "http://evil.example"}, "origin_not_allowed"),
                              ({"Origin": "null"}, "origin_not_allowed")):
            for method, path in (("GET", "/models"), ("POST", "/chat/completions")):
                async with http.request(method, ep.url + path, data=body if method == "POST" else None,
                                        headers={"Content-Type": "application/json", **headers}) as response:
                    assert response.status == 403, (method, path, headers)
                    error = (await response.json())["error"]
                    assert error["code"] == code and error["type"] == "invalid_request_error"
        for headers in ({"Host": ep.url.split("//")[1].split("/")[0].replace("127.0.0.1", "localhost")},
                        {"Origin": own}):
            async with http.get(ep.url + "/models", headers=headers) as response:
                assert response.status == 200, headers
    assert await queued(aredis, keys) == 0, "nothing reaches the worker"


async def test_with_a_key_any_host_may_ask_but_other_sites_still_may_not(settings):
    # Behind a reverse proxy the Host is the public name; the key is what a rebinding page lacks.
    secret = "sk-doppel-test-5678"
    auth = {"Authorization": f"Bearer {secret}"}
    async with endpoint(settings, key=secret) as ep, aiohttp.ClientSession() as http:
        async with http.get(ep.url + "/models", headers={"Host": "clone.example.org", **auth}) as response:
            assert response.status == 200
        async with http.get(ep.url + "/models", headers={"Origin": "http://evil.example", **auth}) as response:
            assert response.status == 403 and (await response.json())["error"]["code"] == "origin_not_allowed"


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
                                          None])
async def test_a_post_that_is_not_declared_json_is_a_415(settings, content_type, aredis, keys):
    """A page may send a 'simple' cross-site POST (text/plain, a form) without a preflight: refused."""
    body = json.dumps({"model": "default", "messages": [USER]}).encode()
    headers = {"Content-Type": content_type} if content_type else {}
    async with endpoint(settings) as ep, aiohttp.ClientSession(skip_auto_headers=["Content-Type"]) as http:
        async with http.post(ep.url + "/chat/completions", data=body, headers=headers) as response:
            assert response.status == 415, content_type
            error = (await response.json())["error"]
        async with http.post(ep.url + "/chat/completions", data=json.dumps({"model": "gpt-4o", "messages": [USER]}),
                             headers={"Content-Type": "application/json; charset=utf-8"}) as response:
            assert response.status == 404, "JSON with a charset is JSON"
    assert error["code"] == "unsupported_media_type" and "application/json" in error["message"]
    assert set(error) == {"message", "type", "param", "code"}
    assert await queued(aredis, keys) == 0


async def test_the_server_itself_refuses_a_network_address_without_a_key(settings):
    from doppel.errors import ConfigError
    from doppel.redis_client import async_client

    redis = async_client(settings.redis.url)
    try:
        for host in ("0.0.0.0", "::", "192.0.2.1", "example.org"):
            server = OpenAIServer(settings, redis)
            with pytest.raises(ConfigError, match="DOPPEL_OPENAI_KEY"):
                await server.start(host=host, port=0)
            await server.stop()
    finally:
        await redis.aclose()


async def test_no_worker_is_a_504_and_the_late_reply_is_cleaned_up(make_settings, make_worker, redis_url,
                                                                  aredis, keys):
    settings = make_settings(openai={"timeout_s": 0.3})
    async with endpoint(settings) as ep:
        with pytest.raises(APIStatusError) as late:
            await ep.api.chat.completions.create(
                model="default", messages=[USER, {"role": "assistant", "content": "yo"}, USER])
        assert late.value.status_code == 504 and "doppel worker run" in late.value.message
        recorder = Recorder(aredis, keys)
        async with running(make_worker(redis_url, engine=recorder)):
            # The worker answers the queued request and records its reply in the channel's history
            # (as the chat engine does); that reply's arrival cleans the channel again.
            await eventually(lambda: recorder.answered, what="the late reply")
            await eventually(lambda: _empty(aredis, keys), what="the late channel cleaned up")


async def test_stale_routes_of_a_crashed_run_are_swept_at_start(settings, aredis, keys):
    await aredis.hset(keys.channel_routes, mapping={"openai:main-openai:dead": "mia@v1", "discord:1": "mia@v1"})
    async with endpoint(settings):
        assert await aredis.hgetall(keys.channel_routes) == {"discord:1": "mia@v1"}


async def test_articles_to_qa_runs_through_the_endpoint_and_the_worker(settings, make_worker, redis_url, tmp_path):
    from training.cli.data import data
    from training.importers.detect import import_file

    out = tmp_path / "qa.jsonl"
    async with running(make_worker(redis_url, engine=Author())), endpoint(settings) as ep:
        result = await asyncio.to_thread(CliRunner().invoke, data, [
            "articles-to-qa", str(POST), "--endpoint", ep.url, "--model", "default", "--out", str(out),
            "--owner", "Mia", "--concurrency", "2"])
    assert result.exit_code == 0, result.output
    assert "skipped chunks: none" in result.output
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) >= 2  # one pair per chunk of the post
    post_text = " ".join(POST.read_text().split())
    for record in records:
        answer = record["conversations"][1]["value"]
        assert answer and " ".join(answer.split()) in post_text, "the answer is the passage's own first sentence"
    imported = import_file(out, owner="Mia")
    owner = [m.text for m in imported.messages if m.is_owner]
    assert len(owner) >= len(records) and all(" ".join(text.split()) in post_text for text in owner)


def test_the_command_serves_until_interrupted(tmp_path, redis_url, make_worker):
    config = tmp_path / "doppel.toml"
    config.write_text(f"[redis]\nurl = '{redis_url}'\n[openai]\nport = 0\n[bot]\nname = 'cli'\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOPPEL_")}
    process = subprocess.Popen([sys.executable, "-m", "doppel", "--config", str(config), "bot", "openai"],
                               stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        line = process.stderr.readline()
        url = re.search(r"http://\S+/v1", line).group(0)

        async def ask() -> str:
            async with running(make_worker(redis_url)), client(url) as api:
                answer = await api.chat.completions.create(model="default", messages=[USER])
            return answer.choices[0].message.content

        assert asyncio.run(ask()) == "echo: hi"
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_public_address_needs_a_key(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOPPEL_")}
    env["DOPPEL_DATA_DIR"] = str(tmp_path)
    result = subprocess.run([sys.executable, "-m", "doppel", "bot", "openai", "--host", "0.0.0.0"],
                            capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "DOPPEL_OPENAI_KEY" in lines[0], result.stderr


@pytest.mark.slow
async def test_the_model_name_routes_to_the_adapter_on_the_tiny_model(settings, make_worker, redis_url, aredis, keys,
                                                                      sync_redis, tiny_model, make_tiny_adapter):
    from inference.backends.base import Sampling
    from inference.backends.hf import HFBackend
    from inference.chat_engine import ChatEngine, ChatOptions

    question = "how was work?"
    registry = Registry(settings.adapters_root(), sync_redis, keys)
    registry.publish(make_tiny_adapter(question, "great, we shipped the bakery app"),
                     Card(name="mia", version=0, base_model="tiny", rank=8), route_default_if_unset=False)
    # Sampling at 0.9 by default: equal answers below show the request's temperature reached the model.
    engine = ChatEngine(aredis, keys, HFBackend(tiny_model, max_model_len=256), settings.adapters_root(),
                        ChatOptions(owner="Mia", sampling=Sampling(max_tokens=12)))
    ask = dict(messages=[{"role": "user", "content": question}], temperature=0, max_tokens=12)
    async with running(make_worker(redis_url, engine=engine)), endpoint(settings) as ep:
        answers = {}
        for model in ("default", "mia", "mia"):
            raw = await ep.api.chat.completions.with_raw_response.create(model=model, **ask)
            answer = raw.parse().choices[0].message.content
            answers.setdefault(model, []).append((raw.headers["X-Doppel-Adapter"], answer))
    (base,), (adapted, again) = answers["default"], answers["mia"]
    assert base[0] == "base" and adapted[0] == "mia@v1"
    assert adapted[1] != base[1] and adapted == again
    assert await leftovers(aredis, keys) == [], "the chat engine's recorded reply is cleaned up too"
