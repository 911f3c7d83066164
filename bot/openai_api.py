"""An OpenAI-compatible HTTP endpoint for the clone: ``GET /v1/models``, ``POST /v1/chat/completions``.

A thin front end on the relay, like the platform adapters: no model in this process. Each
completion becomes a one-off conversation on its own channel (``openai:<instance>:<uuid>``):

1. the earlier messages are written to that channel's history (``doppel.history.record``, as
   ``bot/core.py`` records a chat): ``user`` messages as a friend's turns, ``assistant`` messages
   as the clone's own, so the worker builds the prompt exactly as for a chat;
2. ``model`` picks the adapter through the channel's route (the registry's ``channel_routes``;
   ``default`` leaves the default route), and temperature, top_p, max_tokens and
   presence_penalty go into the channel's overrides (``Keys.channel_settings``), which the worker
   applies per channel;
3. the last user message goes out as a ``Request`` through this process's ``RelayClient``
   (instance ``<bot.name>-openai``), and the reply's parts, joined by a blank line, are the answer;
4. the channel's history, route, overrides and posted guard are deleted once the reply is in (a reply that comes
   after the client gave up, 504, is cleaned up when it arrives). History and overrides expire on
   their own too; routes left by a crash are swept at the next start.

System messages are ignored (the persona is the clone's: its adapter and ``[data] persona``),
as are parameters the worker cannot apply per request; the ``X-Doppel-Ignored`` header names
them. ``X-Doppel-Adapter`` names the adapter version that answered.

Any web page the owner opens can make the browser call this endpoint, so (``bot/http_guard.py``,
the web chat's guard):

- a request whose ``Origin`` is another site is refused (403), and without a key so is one whose
  ``Host`` is not a loopback name (a DNS-rebinding page sends its own name);
- a POST must say ``Content-Type: application/json`` (415 otherwise): a page can send a
  ``text/plain`` or form POST across sites without asking first, never a JSON one;
- if ``$DOPPEL_OPENAI_KEY`` is set, requests need ``Authorization: Bearer <key>``; without it the
  endpoint refuses to listen on anything but a loopback address (``check_exposure``, at start).

Tested in ``tests/bot/test_openai_api.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from bot.http_guard import refusal
from bot.openai_schema import ApiError, Ask, Completion, parse_request
from bot.relay_client import RelayClient
from bot.triggers import owner_name
from doppel import history
from doppel.errors import ConfigError
from doppel.history import HistoryOptions
from doppel.prompt import Turn
from doppel.redis_client import async_client
from doppel.relay import Reply, Request
from doppel.settings_sections import is_loopback

log = logging.getLogger(__name__)

KEY_ENV = "DOPPEL_OPENAI_KEY"
DEFAULT_MODEL = "default"
PLATFORM = "openai"


def instance_name(settings) -> str:
    """This endpoint's relay name: ``[bot] name`` plus "-openai" (its own reply stream)."""
    return f"{settings.bot.name}-{PLATFORM}"


def check_exposure(host: str, key: str | None) -> None:
    """Refuse to serve a non-loopback address without a key: the clone speaks for its owner."""
    if key:
        return
    if not is_loopback(host):  # a host name too: what it resolves to is not ours to trust
        raise ConfigError(f"openai.host = {host!r} is not a loopback address: set ${KEY_ENV} so that only "
                          "clients with the key can use the endpoint, or listen on 127.0.0.1")


class OpenAIServer:
    """The HTTP app and its relay client; ``start`` binds, ``stop`` drains and leaves."""

    def __init__(self, settings, redis, *, key: str | None = None, client: RelayClient | None = None):
        self.settings = settings
        self.options = settings.openai
        self.redis = redis  # redis.asyncio.Redis with decode_responses=True
        self.client = client or RelayClient.from_settings(redis, settings, bot=instance_name(settings))
        self.keys = self.client.keys
        self.key = key or None
        self.owner = owner_name(settings) or "me"
        # Ephemeral channels outlive a request only by accident (a crash): let them expire soon.
        self.history_options = HistoryOptions.from_settings(settings, ttl_s=int(self.options.timeout_s) + 3600)
        self.channel_prefix = f"{PLATFORM}:{self.client.bot}:"
        self._waiting: dict[str, asyncio.Future[Reply]] = {}
        self._cleanups: set[asyncio.Task] = set()
        self._exit = contextlib.AsyncExitStack()
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.app = web.Application(client_max_size=self.options.max_body_bytes, middlewares=[self._errors])
        self.app.router.add_get("/v1/models", self.models)
        self.app.router.add_get("/v1/models/{model}", self.model)
        self.app.router.add_post("/v1/chat/completions", self.chat_completions)

    # -- lifecycle ---------------------------------------------------------------------------------
    async def start(self, host: str | None = None, port: int | None = None) -> int:
        """Join the relay, sweep routes a crashed run left, listen; returns the bound port."""
        host = host or self.options.host
        check_exposure(host, self.key)  # every way of starting the server, not only the CLI's
        await self._sweep_routes()
        await self._exit.enter_async_context(self.client.delivering(self._delivered, on_failed=self._delivered))
        self._runner = web.AppRunner(self.app, access_log=log)
        await self._runner.setup()
        port = self.options.port if port is None else port
        try:
            await web.TCPSite(self._runner, host, port, reuse_address=True).start()
        except OSError as exc:
            await self.stop()
            raise ConfigError(f"openai: cannot listen on {host}:{port} ({exc.strerror or exc})") from None
        self.port = self._runner.addresses[0][1]
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self._exit.aclose()
        if self._cleanups:
            await asyncio.gather(*self._cleanups, return_exceptions=True)

    # -- HTTP --------------------------------------------------------------------------------------
    @web.middleware
    async def _errors(self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
        try:
            refused = refusal(request.host, request.headers.get("Origin"), allow_remote=self.key is not None,
                              what="this endpoint")
            if refused is not None:  # a remote Host is fine with a key: a rebinding page cannot know it
                raise ApiError(403, refused.message, code=refused.code)
            self._authorize(request)
            if request.method == "POST" and request.content_type != "application/json":
                raise ApiError(415, f"send the body as JSON with 'Content-Type: application/json' (got "
                                    f"{request.headers.get('Content-Type', 'none')[:80]!r})",
                               code="unsupported_media_type")
            return await handler(request)
        except ApiError as exc:
            return web.json_response(exc.body(), status=exc.status)
        except web.HTTPRequestEntityTooLarge:
            return web.json_response(ApiError(413, f"the request body is over {self.options.max_body_bytes} bytes "
                                                   "([openai] max_body_bytes)", code="request_too_large").body(),
                                     status=413)
        except web.HTTPException as exc:  # no such path or method: OpenAI's shape, not aiohttp's text
            if exc.status < 400:
                raise
            error = ApiError(exc.status, f"{request.method} {request.path}: {exc.reason}", code=None)
            return web.json_response(error.body(), status=exc.status)

    def _authorize(self, request: web.Request) -> None:
        if self.key is None:
            return
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), self.key.encode()):
            raise ApiError(401, f"missing or wrong API key: send 'Authorization: Bearer <the ${KEY_ENV} value>'",
                           code="invalid_api_key")

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [self._model_card(name, created)
                                                              for name, created in await self._models()]})

    async def model(self, request: web.Request) -> web.Response:
        name = request.match_info["model"]
        for known, created in await self._models():
            if known == name:
                return web.json_response(self._model_card(known, created))
        raise self._unknown_model(name)

    def _model_card(self, name: str, created: int) -> dict:
        return {"id": name, "object": "model", "created": created, "owned_by": "doppel"}

    async def _models(self) -> list[tuple[str, int]]:
        """``default``, then every published adapter by name (its latest version) and by version."""
        index = await self.redis.hgetall(self.keys.adapters)
        out = [(DEFAULT_MODEL, 0)]
        root = self.settings.adapters_root()
        for name in sorted(index):
            versions = _versions(index[name])
            if not versions:
                continue
            created = await asyncio.to_thread(_created, root, name, versions)
            out.append((name, created[versions[-1]]))
            out += [(f"{name}@v{v}", created[v]) for v in versions]
        return out

    async def _route_for(self, model: str) -> str | None:
        """The ``name@vN`` the model name routes to (None: the default route); ApiError 404 if unknown."""
        if model == DEFAULT_MODEL:
            return None
        name, _, version = model.partition("@v")
        versions = _versions(await self.redis.hget(self.keys.adapters, name) or "[]")
        if version:
            if version.isdigit() and int(version) in versions:
                return f"{name}@v{int(version)}"
        elif versions:
            return f"{name}@v{versions[-1]}"
        raise self._unknown_model(model)

    def _unknown_model(self, model: str) -> ApiError:
        return ApiError(404, f"the model {model!r} does not exist: use '{DEFAULT_MODEL}' or a published adapter "
                             "(GET /v1/models lists them)", param="model", code="model_not_found")

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except ValueError:
            raise ApiError(400, "the request body is not valid JSON", code="invalid_json") from None
        ask = parse_request(body, max_text_chars=self.client.max_text_chars,
                            max_messages=self.settings.history.max_stored)
        route = await self._route_for(ask.model)
        reply = await self.ask(ask, route)
        if reply.status != "ok":
            raise ApiError(500 if reply.status == "error" else 400, f"the worker could not answer: {reply.reason}",
                           type="server_error" if reply.status == "error" else "invalid_request_error")
        completion = Completion.from_parts(ask.model, reply.parts, ask.prompt_chars)
        headers = {"X-Doppel-Adapter": reply.adapter or "base"}
        if ask.ignored:
            headers["X-Doppel-Ignored"] = ", ".join(ask.ignored)
        if reply.reason:  # e.g. the adapter failed to load and another one answered
            headers["X-Doppel-Notice"] = reply.reason.replace("\n", " ")[:500]
        if not ask.stream:
            return web.json_response(completion.body(), headers=headers)
        response = web.StreamResponse(headers={**headers, "Content-Type": "text/event-stream",
                                               "Cache-Control": "no-cache"})
        await response.prepare(request)
        for chunk in completion.chunks(ask.include_usage):
            await response.write(f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    # -- the relay ---------------------------------------------------------------------------------
    async def ask(self, ask: Ask, route: str | None) -> Reply:
        """Write the conversation to a fresh channel, ask the worker, wait for its reply (504 after
        ``timeout_s``), clean the channel up."""
        channel = f"{self.channel_prefix}{uuid.uuid4().hex}"
        now = time.time()
        request = Request(platform=PLATFORM, bot=self.client.bot, channel=channel, chat_type="dm",
                          author_id=ask.author[:128], author_name=ask.author, text=ask.question, trigger="chat",
                          sent_at=now, reply_to=f"m{len(ask.history)}")
        waiter = asyncio.get_running_loop().create_future()
        self._waiting[request.id] = waiter
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                for index, turn in enumerate(ask.history):
                    speaker = self.owner if turn.is_owner else (turn.speaker or ask.author)
                    history.record_commands(pipe, self.keys, channel, Turn(speaker, turn.text, now, turn.is_owner),
                                            message_id=f"m{index}", options=self.history_options)
                history.record_commands(pipe, self.keys, channel, Turn(ask.author, ask.question, now),
                                        message_id=request.reply_to, options=self.history_options)
                if route:
                    pipe.hset(self.keys.channel_routes, channel, route)
                if ask.sampling:
                    pipe.hset(self.keys.channel_settings(channel), mapping=ask.sampling)
                    pipe.expire(self.keys.channel_settings(channel), self.history_options.ttl_s)
                await pipe.execute()
            await self.client.submit(request)
            try:
                reply = await asyncio.wait_for(asyncio.shield(waiter), self.options.timeout_s)
            except TimeoutError:
                # The reply may still come: its arrival cleans the channel (``_delivered``).
                raise ApiError(504, f"no reply from a worker within {self.options.timeout_s:g}s ([openai] timeout_s); "
                                    "is `doppel worker run` running?", type="timeout", code="timeout") from None
        except BaseException:
            self._waiting.pop(request.id, None)
            self._clean_later(channel, request.id)
            raise
        self._waiting.pop(request.id, None)
        await self._clean(channel, request.id)
        return reply

    async def _delivered(self, reply: Reply) -> None:
        waiter = self._waiting.get(reply.request_id)
        if waiter is not None and not waiter.done():
            waiter.set_result(reply)
        elif reply.channel.startswith(self.channel_prefix):
            # A reply after its client gave up: the worker recorded it in the channel's history.
            self._clean_later(reply.channel, reply.request_id)

    def _clean_later(self, channel: str, request_id: str) -> None:
        task = asyncio.get_running_loop().create_task(self._clean(channel, request_id))
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)

    async def _clean(self, channel: str, request_id: str) -> None:
        """Delete the channel's history, overrides and route, and the request's posted guard (a
        second answer to a one-off request has no one waiting for it: it is cleaned up again)."""
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.delete(self.keys.history(channel), history.seq_key(self.keys, channel),
                            self.keys.channel_settings(channel), self.keys.posted(self.client.bot, request_id))
                pipe.hdel(self.keys.channel_routes, channel)
                await pipe.execute()
        except Exception as exc:  # boundary: history and overrides expire; the route is swept at the next start
            log.warning("openai: cannot clean up channel %s (%s)", channel, exc)

    async def _sweep_routes(self) -> None:
        stale = [channel async for channel, _ in self.redis.hscan_iter(self.keys.channel_routes,
                                                                        match=f"{self.channel_prefix}*")]
        if stale:
            await self.redis.hdel(self.keys.channel_routes, *stale)
            log.info("openai: removed %d route(s) left by an earlier run", len(stale))


def _versions(raw: str) -> list[int]:
    try:
        versions = json.loads(raw)
    except ValueError:
        return []
    return sorted(v for v in versions if isinstance(v, int)) if isinstance(versions, list) else []


def _created(root: Path, name: str, versions: list[int]) -> dict[int, int]:
    """Each version's card time, where the cards are on this host (else 0)."""
    from doppel.registry import CARD_FILE, AdapterRef, version_dir

    out = {}
    for version in versions:
        try:
            card = json.loads((version_dir(root, AdapterRef(name, version)) / CARD_FILE).read_text())
            out[version] = int(card.get("created_at") or 0)
        except (OSError, ValueError, TypeError, AttributeError):
            out[version] = 0
    return out


async def serve(settings, url: str, *, host: str | None = None, port: int | None = None,
                stop: asyncio.Event, on_started: Callable[[OpenAIServer], None] | None = None) -> None:
    """Run the endpoint until ``stop`` is set (``doppel bot openai``; tests use it too)."""
    key = os.environ.get(KEY_ENV, "").strip() or None
    check_exposure(host or settings.openai.host, key)
    redis = async_client(url)
    server = OpenAIServer(settings, redis, key=key)
    try:
        await server.start(host, port)
        if on_started is not None:
            on_started(server)
        await stop.wait()
    finally:
        await server.stop()
        await redis.aclose()
