"""A terminal chat with the clone: a platform adapter like Discord and Telegram, on stdin/stdout.

Each line typed is a DM to the clone and goes through the shared core (``bot/core.py``): it is
recorded in the channel history, the clone's reply parts come back through the relay and are
printed as separate lines with the core's pacing, and ``/clone ...`` lines are owner commands.
The local user steers the clone (runs the commands) but chats with it as a friend, so their lines
are not recorded as the owner's own turns.

When stdin is not a terminal (``echo hi | doppel chat``), every line is sent, the replies are
awaited, and the command exits: handy for scripts and tests.
"""

from __future__ import annotations

import asyncio
import getpass
import queue
import sys
import threading
import time
from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape

from bot.platform import CommandSpec, Incoming, Platform

CHANNEL_PREFIX = "terminal:"


class TerminalPlatform(Platform):
    """Prints what the core sends; the REPL in ``chat`` feeds it what the user types."""

    name = "terminal"
    max_message_chars = 4000
    typing_lifetime_s = 5.0

    def __init__(self, console: Console, *, interactive: bool, user: str):
        self.console = console
        self.interactive = interactive
        self.user = user
        self.sent = 0
        self._typing = None

    def chat_type_of(self, channel: str) -> str:
        return "dm"

    async def connect(self) -> None:
        self.display_name = "clone"

    async def listen(self, core) -> None:
        """Nothing to subscribe to: ``chat`` hands each typed line to ``core.handle``."""

    async def close(self) -> None:
        self._stop_typing()

    async def owner_channel(self, user_id: str) -> str | None:
        return CHANNEL_PREFIX + self.user

    async def send_text(self, channel: str, text: str, *, reply_to: str = "") -> str:
        self._stop_typing()
        self.sent += 1
        # The clone's words are text, never markup: "[laughs]" or "[/]" must print as typed.
        self.console.print(f"[bold cyan]clone>[/] {escape(text)}", highlight=False, soft_wrap=True)
        return str(self.sent)

    async def send_typing(self, channel: str) -> None:
        # Only a person watching needs the indicator; piped output stays one line per message.
        if self.interactive and self._typing is None:
            self._typing = self.console.status("[dim]clone is typing…[/]", spinner="dots")
            self._typing.start()

    async def register_commands(self, commands: Sequence[CommandSpec]) -> None:
        """A terminal has no command menu; ``/clone help`` lists them."""

    def _stop_typing(self) -> None:
        if self._typing is not None:
            self._typing.stop()
            self._typing = None


class LineReader:
    """Reads stdin one line per ``read`` on a daemon thread.

    Not ``asyncio.to_thread``: a thread blocked in ``input()`` would keep ``asyncio.run`` from
    returning after Ctrl-C until the user pressed Enter.
    """

    def __init__(self, interactive: bool):
        self.interactive = interactive
        self._requests: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    async def read(self, prompt: str) -> str | None:
        """The next line without its newline, or None at the end of input."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name="terminal-stdin", daemon=True)
            self._thread.start()
        future = asyncio.get_running_loop().create_future()
        self._requests.put((prompt, future))
        return await future

    def _serve(self) -> None:
        while True:
            prompt, future = self._requests.get()
            try:
                if self.interactive:
                    line = input(prompt)
                else:
                    raw = sys.stdin.readline()
                    line = raw.rstrip("\n") if raw else None
            except EOFError:
                line = None
            except Exception as exc:  # boundary: a broken stdin ends the chat with its error
                future.get_loop().call_soon_threadsafe(_settle_future, future, None, exc)
                continue
            future.get_loop().call_soon_threadsafe(_settle_future, future, line, None)


def _settle_future(future: asyncio.Future, line: str | None, error: BaseException | None) -> None:
    if future.done():  # the chat stopped waiting (cancelled)
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(line)


async def chat(settings, url: str, console: Console, *, reply_timeout_s: float = 120.0,
               user: str | None = None) -> int:
    """Run the chat until EOF (Ctrl-D); returns how many messages got no reply in time."""
    from bot.runtime import run_bot

    user = user or getpass.getuser()
    interactive = sys.stdin.isatty()
    platform = TerminalPlatform(console, interactive=interactive, user=user)
    stop = asyncio.Event()
    started: asyncio.Future = asyncio.get_running_loop().create_future()
    bot = asyncio.create_task(run_bot(settings, url, platform, stop=stop, drain_s=reply_timeout_s,
                                      on_started=started.set_result, commander_ids={user}))
    await asyncio.wait([bot, started], return_when=asyncio.FIRST_COMPLETED)
    if not started.done():
        await bot  # it failed before listening: its exception is the answer
    core = started.result()
    reader = LineReader(interactive)
    sent = 0
    try:
        while True:
            line = await reader.read("you> ")
            if line is None:
                break
            if not line.strip():
                continue
            sent += 1
            await core.handle(Incoming(
                platform="terminal", channel=CHANNEL_PREFIX + user, chat_type="dm", author_id=user,
                author_name=user, text=line, message_id=f"t{sent}", at=time.time()))
            if interactive:
                await _settle(core, reply_timeout_s)
        await _settle(core, reply_timeout_s)
    finally:
        missing = core.submitted - core.client.finished
        stop.set()
        await bot
    return missing


async def _settle(core, timeout_s: float) -> None:
    """Until every request has its reply and every queued message is printed (or the timeout)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if core.client.finished >= core.submitted and core.idle:
            return
        await asyncio.sleep(0.02)
