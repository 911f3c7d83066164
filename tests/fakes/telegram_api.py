"""A fake Telegram Bot API server on 127.0.0.1, for the real python-telegram-bot client.

Point PTB at it with ``Application.builder().base_url(fake.base_url).base_file_url(fake.file_url)``.
It serves what a polling bot uses — getMe, deleteWebhook, getUpdates (a real long poll),
sendMessage, sendChatAction, setMyCommands — checks the token in the URL (401 otherwise), and
answers floods the way Telegram does: HTTP 429 with ``{"ok": false, "error_code": 429,
"parameters": {"retry_after": N}}``, either on cue (``flood_next``) or whenever a chat gets more
than ``per_chat_limit`` messages within ``per_chat_period_s``.

Tests put updates in with ``message`` / ``edit`` and read what the bot did from ``calls``
(every API call with its parameters and arrival time) and ``sent`` (messages that were accepted).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field

from aiohttp import web

# Fields PTB sends JSON-encoded in its form posts; every other value is a plain string.
_JSON_FIELDS = {"chat_id", "message_thread_id", "offset", "limit", "timeout", "reply_parameters",
                "commands", "allowed_updates", "reply_to_message_id", "allow_sending_without_reply"}


@dataclass
class Call:
    method: str
    params: dict
    at: float = field(default_factory=time.monotonic)


def utf16_offset(text: str, index: int) -> int:
    return len(text[:index].encode("utf-16-le")) // 2


class FakeTelegram:
    def __init__(self, token: str, *, bot_id: int = 4242, username: str = "doppel_test_bot",
                 first_name: str = "Doppel"):
        self.token = token
        self.me = {"id": bot_id, "is_bot": True, "first_name": first_name, "username": username,
                   "can_join_groups": True, "can_read_all_group_messages": True, "supports_inline_queries": False}
        self.calls: list[Call] = []
        self.sent: list[Call] = []      # accepted sendMessage calls, params plus "message_id"
        self.flood_next = 0             # this many next sendMessage calls get a 429
        self.retry_after = 1
        self.per_chat_limit = 0         # > 0: more than this many messages per chat per period get a 429
        self.per_chat_period_s = 1.0
        self.unauthorized = 0           # requests with a wrong token
        self._updates: list[dict] = []
        self._update_id = 100
        self._message_id = 1000
        self._new_update = asyncio.Condition()
        self._chat_sends: dict[int, deque[float]] = defaultdict(deque)
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- server ------------------------------------------------------------------------------------
    async def start(self) -> FakeTelegram:
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        async with self._new_update:
            self._new_update.notify_all()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    @property
    def file_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/file/bot"

    @staticmethod
    def _ok(result) -> web.Response:
        return web.json_response({"ok": True, "result": result})

    @staticmethod
    def _error(status: int, description: str, **extra) -> web.Response:
        return web.json_response({"ok": False, "error_code": status, "description": description, **extra},
                                 status=status)

    async def _params(self, request: web.Request) -> dict:
        if request.content_type == "application/json":
            return await request.json()
        params = {}
        for key, value in (await request.post()).items():
            params[key] = json.loads(value) if key in _JSON_FIELDS else value
        return params

    async def _handle(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            self.unauthorized += 1
            return self._error(401, "Unauthorized")
        method = request.match_info["method"]
        params = await self._params(request)
        call = Call(method, params)
        self.calls.append(call)
        handler = getattr(self, f"_api_{method}", None)
        if handler is None:
            return self._error(404, f"Not Found: method {method} is not faked")
        return await handler(call)

    # -- methods -----------------------------------------------------------------------------------
    async def _api_getMe(self, call: Call) -> web.Response:
        return self._ok(self.me)

    async def _api_deleteWebhook(self, call: Call) -> web.Response:
        return self._ok(True)

    async def _api_setMyCommands(self, call: Call) -> web.Response:
        return self._ok(True)

    async def _api_sendChatAction(self, call: Call) -> web.Response:
        return self._ok(True)

    async def _api_getUpdates(self, call: Call) -> web.Response:
        offset = int(call.params.get("offset") or 0)
        timeout = float(call.params.get("timeout") or 0)
        self._updates = [u for u in self._updates if u["update_id"] >= offset]  # confirmed ones go
        deadline = time.monotonic() + timeout
        async with self._new_update:
            while not self._updates and time.monotonic() < deadline:
                try:
                    await asyncio.wait_for(self._new_update.wait(), deadline - time.monotonic())
                except TimeoutError:
                    break
        limit = int(call.params.get("limit") or 100)
        return self._ok(self._updates[:limit])

    async def _api_sendMessage(self, call: Call) -> web.Response:
        chat_id = int(call.params["chat_id"])
        if self.flood_next > 0 or self._over_limit(chat_id):
            self.flood_next = max(0, self.flood_next - 1)
            return self._error(429, f"Too Many Requests: retry after {self.retry_after}",
                               parameters={"retry_after": self.retry_after})
        self._chat_sends[chat_id].append(time.monotonic())
        self._message_id += 1
        call.params["message_id"] = self._message_id
        self.sent.append(call)
        message = {"message_id": self._message_id, "date": int(time.time()), "from": self.me,
                   "chat": self._chat(chat_id), "text": call.params["text"]}
        if call.params.get("message_thread_id"):
            message.update(message_thread_id=call.params["message_thread_id"], is_topic_message=True)
        return self._ok(message)

    def _over_limit(self, chat_id: int) -> bool:
        if self.per_chat_limit <= 0:
            return False
        times = self._chat_sends[chat_id]
        while times and time.monotonic() - times[0] >= self.per_chat_period_s:
            times.popleft()
        return len(times) >= self.per_chat_limit

    # -- test helpers ------------------------------------------------------------------------------
    @staticmethod
    def user(user_id: int, first_name: str, *, is_bot: bool = False, last_name: str = "") -> dict:
        user = {"id": user_id, "is_bot": is_bot, "first_name": first_name}
        if last_name:
            user["last_name"] = last_name
        return user

    @staticmethod
    def _chat(chat_id: int) -> dict:
        if chat_id > 0:
            return {"id": chat_id, "type": "private", "first_name": "someone"}
        return {"id": chat_id, "type": "supergroup", "title": f"group {chat_id}", "is_forum": True}

    async def message(self, chat_id: int, user: dict, text: str, *, reply_to: dict | None = None,
                      topic: int | None = None, date: float | None = None, edited: bool = False) -> dict:
        """Queue an update with a text message (mentions of ``@username`` get their entities)."""
        self._message_id += 1
        message = {"message_id": self._message_id, "date": int(date if date is not None else time.time()),
                   "chat": self._chat(chat_id), "from": user, "text": text}
        entities = []
        start = 0
        while (index := text.find("@", start)) >= 0:
            end = index + 1
            while end < len(text) and (text[end].isalnum() or text[end] == "_"):
                end += 1
            if end - index > 1:
                entities.append({"type": "mention", "offset": utf16_offset(text, index),
                                 "length": utf16_offset(text, end) - utf16_offset(text, index)})
            start = end
        if entities:
            message["entities"] = entities
        if reply_to is not None:
            message["reply_to_message"] = reply_to
        if topic is not None:
            message.update(message_thread_id=topic, is_topic_message=True)
        if edited:
            message["edit_date"] = int(time.time())
        await self._push({"edited_message" if edited else "message": message})
        return message

    def bot_message(self, chat_id: int, message_id: int, text: str = "earlier") -> dict:
        """A message the bot sent earlier, to reply to."""
        return {"message_id": message_id, "date": int(time.time()) - 10, "chat": self._chat(chat_id),
                "from": self.me, "text": text}

    async def _push(self, update_body: dict) -> None:
        self._update_id += 1
        async with self._new_update:
            self._updates.append({"update_id": self._update_id, **update_body})
            self._new_update.notify_all()

    def methods(self, *names: str) -> list[Call]:
        return [c for c in self.calls if c.method in names]

    def texts(self, chat_id: int | None = None) -> list[str]:
        return [c.params["text"] for c in self.sent if chat_id is None or int(c.params["chat_id"]) == chat_id]
