"""A terminal chat with the clone, through the same relay the Discord and Telegram bots use.

Each line typed is a DM to the clone; its reply parts are printed as separate lines. When stdin is
not a terminal (``echo hi | doppel chat``), every line is sent, the replies are awaited, and the
command exits: handy for scripts and tests.
"""

from __future__ import annotations

import asyncio
import getpass
import sys
import time

from bot.relay_client import RelayClient
from doppel.relay import Reply, Request

BOT_NAME = "terminal"


async def _read_line(prompt: str, interactive: bool) -> str | None:
    if interactive:
        try:
            return await asyncio.to_thread(input, prompt)
        except EOFError:
            return None
    line = await asyncio.to_thread(sys.stdin.readline)
    return line.rstrip("\n") if line else None


async def chat(settings, redis, console, *, reply_timeout_s: float = 120.0, user: str | None = None) -> int:
    """Run the chat until EOF or Ctrl-D; returns how many replies were not received in time."""
    user = user or getpass.getuser()
    interactive = sys.stdin.isatty()
    client = RelayClient.from_settings(redis, settings, bot=BOT_NAME, order_wait_s=reply_timeout_s)

    async def post(reply: Reply) -> None:
        for part in reply.parts:
            console.print(f"[bold cyan]clone>[/] {part}", highlight=False)

    async def failed(reply: Reply) -> None:
        console.print(f"[yellow](no reply: {reply.reason})[/]", highlight=False)

    sent = 0
    async with client.delivering(post, on_failed=failed):
        while True:
            line = await _read_line("you> ", interactive)
            if line is None:
                break
            if not line.strip():
                continue
            await client.submit(Request(
                platform="terminal", bot=BOT_NAME, channel=f"terminal:{user}", chat_type="dm",
                author_id=user, author_name=user, text=line, trigger="chat", sent_at=time.time(),
            ))
            sent += 1
            if interactive:
                await _wait_for(client, sent, reply_timeout_s)
        await _wait_for(client, sent, reply_timeout_s)
    return sent - client.finished


async def _wait_for(client: RelayClient, replies: int, timeout_s: float) -> None:
    """Until ``replies`` replies have been handled (or the timeout)."""
    deadline = time.monotonic() + timeout_s
    while client.finished < replies and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
