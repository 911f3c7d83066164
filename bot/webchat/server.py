"""HTTP side of the web chat (aiohttp): the page, its WebSocket, and the adapter panel's API.

Routes::

    GET /                           the page (bot/webchat/static/index.html; app.js and style.css under /static/)
    GET /ws                         the chat socket (below)
    GET /api/adapter?channel=KEY    the panel: active adapter, card, eval scores (bot/webchat/panel.py)
    GET /api/adapter/chart?ref=R    the likeness chart (eval.png) of adapter version R

The socket speaks JSON objects with a ``type``. The page sends ``join`` first
(``{"key": ...}`` with the owner link's key, or ``{"name": ..., "guest": <browser token>}``) and
gets ``welcome`` (who it is, its channels, the recent messages, the commands it may use); then
``send`` (``channel``, ``text``, optional ``reply_to`` and a ``nonce`` of its choosing) is
answered by ``sent`` once the core took the message, or by ``error`` with one line saying what
was wrong (the page keeps the text); ``typing`` (``channel``) shows the user typing to the
others. The server pushes ``message``, ``typing``, ``adapter`` (the registry changed), ``queue``
(the guest's place in line for the clone, ``bot/webchat/line.py``) and ``bye`` (the guest was let
go after ``[web] guest_idle_s``; the socket closes after it) events.

Pages are only served to this machine's own origin: a request whose ``Origin`` is another site,
or (without ``[web] allow_remote`` or ``public``) whose ``Host`` is not a loopback name (DNS
rebinding), is refused (``bot/http_guard.py``, shared with the OpenAI endpoint). Static files carry
a Content-Security-Policy that allows nothing from elsewhere.

One socket may send ``_FRAMES_PER_WINDOW`` frames per ``_FRAME_WINDOW_S`` (past that it is
closed), and its typing frames reach the others at most once per ``_TYPING_EVERY_S``: a client
cannot make the server do more than a person typing would. A public page's client address is
its proxy's ``X-Forwarded-For`` when the peer is one of ``[web] trusted_proxies``
(``bot/webchat/guests.client_ip``).

Tested in ``tests/bot/webchat/test_platform.py`` (the socket protocol, the panel API, refused origins
and hosts) and ``tests/bot/webchat/test_browser.py`` (the page in a real browser).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from pathlib import Path

from aiohttp import WSMsgType, web

from bot.http_guard import refusal
from bot.webchat import panel
from bot.webchat.guests import client_ip
from doppel.errors import InputError

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
PLATFORM = web.AppKey("platform", object)
_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; script-src 'self'; style-src 'self'; "
                               "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "Referrer-Policy": "no-referrer",  # the owner key is in the page's URL until the script removes it
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
_FRAMES_PER_WINDOW = 120
_FRAME_WINDOW_S = 10.0
_TYPING_EVERY_S = 2.0


def make_app(platform) -> web.Application:
    app = web.Application(middlewares=[_guard], client_max_size=64 * 1024)
    app[PLATFORM] = platform
    app.router.add_get("/", _index)
    app.router.add_get("/ws", _socket)
    app.router.add_get("/api/adapter", _adapter)
    app.router.add_get("/api/adapter/chart", _chart)
    app.router.add_static("/static/", STATIC_DIR, follow_symlinks=False)
    return app


@web.middleware
async def _guard(request: web.Request, handler):
    platform = request.app[PLATFORM]
    # Behind a reverse proxy the Host is the page's public name: any is served; Origin still must match it.
    refused = refusal(request.host, request.headers.get("Origin"),
                      allow_remote=platform.web.allow_remote or platform.web.public, what="this chat")
    if refused is not None:
        return web.Response(status=403, text=refused.message + "\n")
    response = await handler(request)
    for name, value in _HEADERS.items():
        response.headers.setdefault(name, value)
    return response


async def _index(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC_DIR / "index.html")


async def _adapter(request: web.Request) -> web.Response:
    platform = request.app[PLATFORM]
    if platform.core is None:
        return web.json_response({"adapter": None, "message": "starting…"})
    channel = request.query.get("channel", "")
    if channel and not (channel.startswith("web:dm:") or channel in platform.groups):
        return web.json_response({"error": f"unknown channel {channel[:80]!r}"}, status=400)
    shown = await panel.read_panel(platform.core.redis, platform.core.keys, platform.registry_root, channel)
    return web.json_response(shown)


async def _chart(request: web.Request) -> web.StreamResponse:
    platform = request.app[PLATFORM]
    try:
        path = panel.chart_path(platform.registry_root, request.query.get("ref", ""))
    except InputError as exc:
        return web.json_response({"error": str(exc)}, status=400)
    if path is None:
        return web.json_response({"error": "this adapter version has no likeness chart (run doppel eval)"},
                                 status=404)
    return web.FileResponse(path, headers={"Content-Type": "image/png"})


async def _socket(request: web.Request) -> web.WebSocketResponse:
    platform = request.app[PLATFORM]
    ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=platform.web.max_text_chars * 4 + 4096)
    await ws.prepare(request)
    peer = request.remote or ""
    settings = platform.web
    ip = client_ip(peer, request.headers.get("X-Forwarded-For", ""), settings.trusted_proxies) \
        if settings.public else peer
    session = _Session(platform, ws, ip)
    try:
        async for frame in ws:
            if not session.allow_frame():  # 1008: policy violation
                await ws.close(code=1008, message=b"too many frames")
                break
            if frame.type == WSMsgType.TEXT:
                await session.on_text(frame.data)
            elif frame.type == WSMsgType.BINARY:
                await session.error("send JSON text frames")
    finally:
        await session.end()
    if not ws.closed:
        await ws.close()
    return ws


class _Session:
    """One page's socket: who it is, and the writer that sends its events in order."""

    def __init__(self, platform, ws: web.WebSocketResponse, ip: str):
        self.platform = platform
        self.ws = ws
        self.ip = ip
        self.user = None
        self.page = None
        self.queue: asyncio.Queue | None = None
        self.writer: asyncio.Task | None = None
        self._frames: deque[float] = deque()
        self._typed_at = -_TYPING_EVERY_S

    def allow_frame(self) -> bool:
        now = time.monotonic()
        while self._frames and now - self._frames[0] >= _FRAME_WINDOW_S:
            self._frames.popleft()
        self._frames.append(now)
        return len(self._frames) <= _FRAMES_PER_WINDOW

    async def error(self, message: str, nonce=None) -> None:
        event = {"type": "error", "message": message, "nonce": nonce}
        if self.queue is not None:
            self.platform.push(self.page, self.queue, event)  # behind the events already queued
        else:
            await self.ws.send_json(event)

    async def on_text(self, data: str) -> None:
        try:
            frame = json.loads(data)
        except (ValueError, RecursionError):
            return await self.error("not JSON")
        if not isinstance(frame, dict):
            return await self.error("send a JSON object with a 'type'")
        kind, nonce = frame.get("type"), frame.get("nonce")
        nonce = nonce if isinstance(nonce, str | int) and len(str(nonce)) <= 64 else None
        if self.user is None:
            if kind != "join":
                return await self.error("join first", nonce)
            try:
                user = self.platform.join(key=str(frame.get("key") or ""), name=frame.get("name") or "",
                                          guest=frame.get("guest") or "", ip=self.ip)
            except InputError as exc:
                return await self.error(str(exc), nonce)
            self.user = user
            self.page, self.queue = self.platform.attach(user, self.platform.welcome(user), self.ip)
            self.writer = asyncio.create_task(self._write(), name=f"web:page:{user.id}")
            log.info("web: %s %r joined", user.kind, user.name)
            return None
        if kind == "send":
            try:
                message = await self.platform.receive(self.user, frame.get("channel"), frame.get("text"),
                                                      reply_to=frame.get("reply_to") or "", ip=self.ip)
            except InputError as exc:
                return await self.error(str(exc), nonce)
            except Exception:  # boundary: Redis down or a bug; the page keeps the text to retry
                log.exception("web: a message from %s could not be handled", self.user.id)
                return await self.error("the message could not be delivered; try again", nonce)
            self.platform.push(self.page, self.queue, {"type": "sent", "nonce": nonce, "id": message["id"]})
        elif kind == "typing":
            channel, now = frame.get("channel"), time.monotonic()
            if isinstance(channel, str) and self.platform.can_see(self.user, channel) and \
                    now - self._typed_at >= _TYPING_EVERY_S:
                self._typed_at = now
                self.platform.show_typing(self.user, channel)
        elif kind != "join":
            await self.error(f"unknown type {str(kind)[:30]!r}", nonce)

    async def _write(self) -> None:
        while True:
            event = await self.queue.get()
            if event is None:  # the platform closes or dropped this page
                await self.ws.close()
                return
            try:
                await self.ws.send_json(event)
            except (ConnectionError, RuntimeError):
                return

    async def end(self) -> None:
        if self.page is not None:
            self.platform.detach(self.page)
        if self.writer is not None:
            self.writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.writer
