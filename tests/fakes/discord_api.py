"""A fake Discord REST API and gateway on 127.0.0.1, for the real discord.py client.

Point discord.py at it with ``fake.patch(monkeypatch)`` (sets ``discord.http.Route.BASE`` and
``DiscordWebSocket.DEFAULT_GATEWAY``). The gateway speaks the JSON protocol uncompressed: HELLO,
IDENTIFY -> READY + GUILD_CREATE (one guild with a text channel and a thread), heartbeat ACK, and
whatever dispatches the test pushes (MESSAGE_CREATE, INTERACTION_CREATE). REST answers carry the
exact ``Content-Type: application/json`` discord.py insists on, and floods get a 429 *with* a
``Via`` header (without one discord.py takes the 429 for a Cloudflare ban and gives up).

Ids are real snowflakes, so discord.py derives message times from them as it does for Discord's.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiohttp import WSMsgType, web

DISCORD_EPOCH_MS = 1_420_070_400_000
_counter = itertools.count(1)


def snowflake(at: float | None = None) -> int:
    ms = int((time.time() if at is None else at) * 1000)
    return ((ms - DISCORD_EPOCH_MS) << 22) | (next(_counter) % 4096)


def _iso(at: float | None = None) -> str:
    return datetime.fromtimestamp(time.time() if at is None else at, UTC).isoformat()


def _json(data, status: int = 200, headers: dict | None = None) -> web.Response:
    return web.Response(body=json.dumps(data).encode(), status=status,
                        headers={"Content-Type": "application/json", **(headers or {})})


@dataclass
class Call:
    method: str
    path: str
    body: dict | list | None
    at: float = field(default_factory=time.monotonic)


class FakeDiscord:
    def __init__(self, token: str):
        self.token = token
        self.app_id = snowflake()
        self.bot = {"id": str(snowflake()), "username": "doppel", "global_name": "Doppel", "discriminator": "0",
                    "avatar": None, "bot": True}
        self.guild_id = str(snowflake())
        self.channel_id = str(snowflake())
        self.thread_id = str(snowflake())
        self.calls: list[Call] = []
        self.sent: list[Call] = []             # accepted messages, body plus "id"
        self.interaction_responses: list[Call] = []
        self.flood_next = 0                    # this many next message posts get a 429
        self.retry_after = 0.3
        self.identified = asyncio.Event()
        self.identify_payload: dict = {}
        self.unauthorized = 0
        self._sockets: list[web.WebSocketResponse] = []
        self._seq = 0
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- server ------------------------------------------------------------------------------------
    async def start(self) -> FakeDiscord:
        app = web.Application()
        app.router.add_get("/gateway", self._gateway)
        app.router.add_route("*", "/api/v10/{path:.*}", self._rest)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        for socket in self._sockets:
            await socket.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def patch(self, monkeypatch) -> None:
        import discord.http
        import yarl
        from discord.gateway import DiscordWebSocket

        monkeypatch.setattr(discord.http.Route, "BASE", f"http://127.0.0.1:{self.port}/api/v10")
        monkeypatch.setattr(DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(f"ws://127.0.0.1:{self.port}/gateway"))

    # -- REST --------------------------------------------------------------------------------------
    async def _rest(self, request: web.Request) -> web.Response:
        path = "/" + request.match_info["path"]
        body = await request.json() if request.can_read_body and request.content_type == "application/json" else None
        call = Call(request.method, path, body)
        self.calls.append(call)
        if path.startswith("/interactions/"):  # authenticated by the interaction token instead
            self.interaction_responses.append(call)
            interaction_id = path.split("/")[2]
            return _json({"interaction": {"id": interaction_id, "type": 2}})
        if request.headers.get("Authorization") != f"Bot {self.token}":
            self.unauthorized += 1
            return _json({"message": "401: Unauthorized", "code": 0}, 401)
        if path == "/users/@me" and request.method == "GET":
            return _json(self.bot)
        if path == "/oauth2/applications/@me":
            return _json({"id": str(self.app_id), "name": "Doppel", "icon": None, "description": "",
                          "bot_public": False, "bot_require_code_grant": False, "verify_key": "0" * 64,
                          "owner": {"id": "1", "username": "owner", "discriminator": "0", "avatar": None},
                          "flags": 0})
        if path == f"/applications/{self.app_id}/commands" and request.method == "PUT":
            return _json([{**command, "id": str(snowflake()), "application_id": str(self.app_id), "version": "1",
                           "type": command.get("type", 1)} for command in body or []])
        if path == "/users/@me/channels" and request.method == "POST":
            return _json({"id": str(snowflake()), "type": 1, "recipients": [self.user(int(body["recipient_id"]), "o")]})
        parts = path.strip("/").split("/")
        if len(parts) == 3 and parts[0] == "channels" and parts[2] == "typing":
            return web.Response(status=204)
        if len(parts) == 3 and parts[0] == "channels" and parts[2] == "messages" and request.method == "POST":
            return self._create_message(parts[1], call)
        return _json({"message": f"404: {request.method} {path} is not faked", "code": 0}, 404)

    def _create_message(self, channel_id: str, call: Call) -> web.Response:
        if self.flood_next > 0:
            self.flood_next -= 1
            return _json({"message": "You are being rate limited.", "retry_after": self.retry_after, "global": False},
                         429, headers={"Via": "1.1 google", "Retry-After": str(self.retry_after)})
        message_id = str(snowflake())
        call.body = {**(call.body or {}), "id": message_id, "channel_id": channel_id}
        self.sent.append(call)
        return _json(self._message(channel_id, self.bot, call.body.get("content", ""), message_id=message_id,
                                   guild=channel_id in (self.channel_id, self.thread_id)))

    # -- gateway -----------------------------------------------------------------------------------
    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        self._sockets.append(socket)
        await socket.send_json({"op": 10, "d": {"heartbeat_interval": 45_000}})
        async for frame in socket:
            if frame.type != WSMsgType.TEXT:
                break
            payload = json.loads(frame.data)
            if payload["op"] == 1:
                await socket.send_json({"op": 11})
            elif payload["op"] == 2:
                if payload["d"]["token"] != self.token:
                    self.unauthorized += 1
                    await socket.close(code=4004, message=b"Authentication failed.")
                    break
                self.identify_payload = payload["d"]
                await self._dispatch_to(socket, "READY", {
                    "v": 10, "user": self.bot, "guilds": [{"id": self.guild_id, "unavailable": True}],
                    "session_id": "fake-session", "resume_gateway_url": f"ws://127.0.0.1:{self.port}/gateway",
                    "application": {"id": str(self.app_id), "flags": 0}, "private_channels": [],
                })
                await self._dispatch_to(socket, "GUILD_CREATE", self._guild())
                self.identified.set()
            elif payload["op"] == 6:  # resume: start over
                await socket.send_json({"op": 9, "d": False})
        return socket

    async def _dispatch_to(self, socket: web.WebSocketResponse, event: str, data: dict) -> None:
        self._seq += 1
        await socket.send_json({"op": 0, "t": event, "s": self._seq, "d": data})

    async def dispatch(self, event: str, data: dict) -> None:
        for socket in list(self._sockets):
            if not socket.closed:
                await self._dispatch_to(socket, event, data)

    def _guild(self) -> dict:
        everyone = {"id": self.guild_id, "name": "@everyone", "permissions": "3148800", "position": 0,
                    "color": 0, "hoist": False, "managed": False, "mentionable": False, "flags": 0}
        return {
            "id": self.guild_id, "name": "Test Guild", "icon": None, "owner_id": "1", "roles": [everyone],
            "emojis": [], "stickers": [], "features": [], "member_count": 3, "large": False, "unavailable": False,
            "joined_at": _iso(), "verification_level": 0, "default_message_notifications": 0,
            "explicit_content_filter": 0, "mfa_level": 0, "nsfw_level": 0, "premium_tier": 0,
            "system_channel_flags": 0, "preferred_locale": "en-US", "voice_states": [], "presences": [],
            "members": [{"user": self.bot, "roles": [], "joined_at": _iso(), "deaf": False, "mute": False, "flags": 0}],
            "channels": [{"id": self.channel_id, "type": 0, "name": "general", "position": 0,
                          "permission_overwrites": [], "guild_id": self.guild_id, "nsfw": False, "topic": None}],
            "threads": [{"id": self.thread_id, "type": 11, "name": "a thread", "parent_id": self.channel_id,
                         "guild_id": self.guild_id, "owner_id": "1", "message_count": 0, "member_count": 1,
                         "rate_limit_per_user": 0,
                         "thread_metadata": {"archived": False, "auto_archive_duration": 1440,
                                             "archive_timestamp": _iso(), "locked": False}}],
            "stage_instances": [], "guild_scheduled_events": [],
        }

    # -- test helpers ------------------------------------------------------------------------------
    @staticmethod
    def user(user_id: int, name: str, *, bot: bool = False) -> dict:
        return {"id": str(user_id), "username": name.lower(), "global_name": name, "discriminator": "0",
                "avatar": None, "bot": bot}

    def _message(self, channel_id: str, author: dict, content: str, *, message_id: str | None = None,
                 guild: bool = True, mentions: list[dict] | None = None, reply_to: dict | None = None,
                 at: float | None = None) -> dict:
        message = {"id": message_id or str(snowflake(at)), "channel_id": channel_id, "author": author,
                   "content": content, "timestamp": _iso(at), "edited_timestamp": None, "tts": False,
                   "mention_everyone": False, "mentions": mentions or [], "mention_roles": [], "attachments": [],
                   "embeds": [], "pinned": False, "type": 0, "flags": 0}
        if guild:
            message["guild_id"] = self.guild_id
            message["member"] = {"roles": [], "joined_at": _iso(), "deaf": False, "mute": False, "flags": 0}
        if reply_to is not None:
            message.update(type=19, referenced_message=reply_to,
                           message_reference={"message_id": reply_to["id"], "channel_id": channel_id})
        return message

    async def message(self, channel_id: str, author: dict, content: str, *, mention_bot: bool = False,
                      reply_to: dict | None = None, at: float | None = None) -> dict:
        """Dispatch a MESSAGE_CREATE (a DM when ``channel_id`` is not the guild's channel or thread)."""
        guild = channel_id in (self.channel_id, self.thread_id)
        if mention_bot:
            content = f"<@{self.bot['id']}> {content}"
        message = self._message(channel_id, author, content, guild=guild,
                                 mentions=[self.bot] if mention_bot else None, reply_to=reply_to, at=at)
        await self.dispatch("MESSAGE_CREATE", message)
        return message

    def bot_message(self, channel_id: str, content: str = "earlier") -> dict:
        return self._message(channel_id, self.bot, content, guild=channel_id in (self.channel_id, self.thread_id))

    async def slash(self, channel_id: str, author: dict, subcommand: str, args: str = "") -> str:
        """Dispatch an INTERACTION_CREATE for ``/clone <subcommand> [args]``; returns its id."""
        interaction_id = str(snowflake())
        options = [{"type": 3, "name": "args", "value": args}] if args else []
        data = {
            "id": interaction_id, "application_id": str(self.app_id), "type": 2, "token": f"itoken-{interaction_id}",
            "version": 1, "channel_id": channel_id, "guild_id": self.guild_id, "locale": "en-US",
            "guild_locale": "en-US", "app_permissions": "0", "entitlements": [], "attachment_size_limit": 8_388_608,
            "authorizing_integration_owners": {"0": self.guild_id}, "context": 0,
            "channel": {"id": channel_id, "type": 0, "guild_id": self.guild_id, "name": "general", "position": 0,
                        "permission_overwrites": []},
            "member": {"user": author, "roles": [], "joined_at": _iso(), "deaf": False, "mute": False, "flags": 0,
                       "permissions": "0"},
            "data": {"id": str(snowflake()), "name": "clone", "type": 1,
                     "options": [{"type": 1, "name": subcommand, "options": options}]},
        }
        await self.dispatch("INTERACTION_CREATE", data)
        return interaction_id

    def texts(self, channel_id: str | None = None) -> list[str]:
        return [c.body["content"] for c in self.sent if channel_id is None or c.body["channel_id"] == channel_id]

    def posts(self, kind: str) -> list[Call]:
        """REST calls by kind: "typing" or "messages" (attempts, 429s included)."""
        return [c for c in self.calls if c.method == "POST" and c.path.endswith(f"/{kind}")]
