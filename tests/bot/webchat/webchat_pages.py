"""Pages for the web chat tests: one open page (its socket and every event pushed to it) and a
context manager that joins one, shared by ``test_platform.py``, ``test_guests.py`` and ``test_names.py``."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json

import aiohttp
from bot_helpers import eventually

_guests = itertools.count(10_000_000)


class Page:
    """One open page: its socket, and every event the server pushed to it, in order."""

    def __init__(self, session: aiohttp.ClientSession, ws):
        self.session = session
        self.ws = ws
        self.events: list[dict] = []
        self._nonces = itertools.count(1)
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for frame in self.ws:
            self.events.append(json.loads(frame.data))

    async def join(self, **hello) -> dict:
        count = len(self.events)
        await self.ws.send_json({"type": "join", **hello})
        await eventually(lambda: len(self.events) > count, what="an answer to join")
        return self.events[count]

    @property
    def welcome(self) -> dict:
        return next(e for e in self.events if e["type"] == "welcome")

    @property
    def me(self) -> dict:
        return self.welcome["user"]

    def channel(self, kind: str = "dm") -> str:
        return next(c["key"] for c in self.welcome["channels"] if c["type"] == kind)

    async def send(self, channel: str, text: str, **extra) -> str:
        nonce = f"n{next(self._nonces)}"
        await self.ws.send_json({"type": "send", "channel": channel, "text": text, "nonce": nonce, **extra})
        return nonce

    async def answer(self, nonce: str) -> dict:
        """The ``sent`` or ``error`` event for ``nonce``."""
        await eventually(lambda: any(e.get("nonce") == nonce for e in self.events), what=f"an answer to {nonce}")
        return next(e for e in self.events if e.get("nonce") == nonce)

    def messages(self, channel: str, kind: str | None = None) -> list[dict]:
        found = [e["message"] for e in self.events if e["type"] == "message" and e["channel"] == channel]
        return [m for m in found if kind is None or m["author"]["kind"] == kind]

    def texts(self, channel: str, kind: str | None = None) -> list[str]:
        return [m["text"] for m in self.messages(channel, kind)]

    def flow(self, channel: str) -> list[str]:
        """Messages and typing events of ``channel`` as "<kind>: <text>" / "typing: <name>"."""
        out = []
        for event in self.events:
            if event.get("channel") != channel:
                continue
            if event["type"] == "message":
                out.append(f"{event['message']['author']['kind']}: {event['message']['text']}")
            elif event["type"] == "typing":
                out.append(f"typing: {event['user']['name']}")
        return out

    def errors(self) -> list[str]:
        return [e["message"] for e in self.events if e["type"] == "error"]


@contextlib.asynccontextmanager
async def page(platform, headers: dict | None = None, **hello):
    """A page joined as ``hello`` (``name=`` for a guest, ``key=`` for the owner); closed after the block.

    ``headers`` go with the socket's upgrade request (a proxy's ``X-Forwarded-For``, a ``Host``)."""
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(platform.url + "ws", headers=headers or {})
        opened = Page(session, ws)
        if hello:
            if "name" in hello:
                hello.setdefault("guest", f"guest{next(_guests)}")
            answer = await opened.join(**hello)
            assert answer["type"] == "welcome", answer
        try:
            yield opened
        finally:
            await ws.close()
            await opened._reader
