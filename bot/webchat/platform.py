"""The web chat adapter: a chat page on this machine, fed through the same core as Discord and Telegram.

``doppel bot web`` serves a page (``bot/webchat/static/``, served by ``bot/webchat/server.py``) on
``[web] host``:``port`` (loopback by default). Everyone who opens it joins under a name and sees
their own DM with the clone (channel ``web:dm:<user id>``) and the group channels
(``web:group:<name>``), where scripted friends talk too (``bot/webchat/friends.py``). Each message
typed on the page becomes an ``Incoming`` for ``BotCore.handle`` — recorded, triggered, answered
through the relay and paced like anywhere else — and what the core posts (``send_text``,
``send_typing``) is pushed to the pages over a WebSocket as ``message`` and ``typing`` events.

Identity: each start makes a random owner key, printed once in the start-up URL
(``http://127.0.0.1:8765/?key=...``, like Jupyter) and masked in every log record. Whoever opens
that link may run the ``/clone`` commands (a *commander* of the core: they chat with the clone as
a friend would, so their lines are not recorded as the owner's own turns); everyone else is a
guest. A guest's browser token is a bearer secret: it never leaves the server again. Their public
user id (in their DM's channel key and in every message, typing event and backlog other pages see)
is ``guest-`` + an HMAC of the token under a secret made at each start, so a token cannot be read
back from another guest's traffic, and copying a public id gets nobody into a DM.

A page opens with the recent messages of its channels (``bot/webchat/backlog.py``, bounded).
Shared with the public (``[web] public``, behind a reverse proxy), it holds up: at most ``[web]
max_guests`` guests at once, one silent for ``guest_idle_s`` let go with all they held
(``guests.py``, ``upkeep.py``); a guest's message over ``[web] rate_limit``, ``[bot]
user_rate_limit`` or (public) their address's ``ip_rate_limit`` refused before it is shown or
recorded; a message waiting behind others for the clone told its place in line (``line.py``);
names normalized and refused when they pass for someone here (``names.py``).

In-process use (``doppel demo`` runs it beside a worker): ``serve_web(settings, url, stop=...)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import hashlib
import hmac
import itertools
import logging
import re
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bot.platform import CommandSpec, Incoming, Platform, SendFailed
from bot.triggers import owner_name
from bot.webchat import upkeep
from bot.webchat.backlog import Backlogs
from bot.webchat.guests import DM_PREFIX, Guests, Windows, message_limits
from bot.webchat.names import MAX_NAME_CHARS, display_name, skeleton, taken
from doppel.errors import ConfigError, InputError
from doppel.logs import guard_secret

log = logging.getLogger(__name__)

OWNER_ID = "owner"
CLONE_ID = "clone"
GROUP_PREFIX = "web:group:"
_GUEST_TOKEN = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
_QUEUE_EVENTS = 2000  # a page this far behind is disconnected; it reconnects and gets the backlog
# Messages handed to the core at once (at most half the Redis pool); the rest wait their turn.
# Each holds a connection while the core records it, and the pool refuses (MaxConnectionsError)
# past its size: hundreds of guests sending in the same instant must queue here, not fail there.
_HANDLING_AT_ONCE = 32


@dataclass(frozen=True)
class WebUser:
    id: str
    name: str
    kind: str  # "owner" (holds the owner link), "guest", "friend" or "clone"

    def public(self) -> dict:
        return {"id": self.id, "name": self.name, "kind": self.kind}


class WebPlatform(Platform):
    name = "web"
    max_message_chars = 4000  # a longer reply part is split like on any platform (bubbles stay readable)
    typing_lifetime_s = 5.0

    def __init__(self, settings, *, registry_root: Path | None = None):
        self.settings = settings
        self.web = settings.web
        self.owner_key = secrets.token_urlsafe(24)
        guard_secret(self.owner_key)  # request lines, tracebacks: never in a log
        self.display_name = self.web.clone_name or owner_name(settings) or "Doppel"
        self.username = re.sub(r"[^a-z0-9_]", "", self.display_name.lower()) or "clone"
        self.clone = WebUser(CLONE_ID, self.display_name, "clone")
        self.owner = WebUser(OWNER_ID, (self.web.owner_name or _login() or "owner")[:MAX_NAME_CHARS], "owner")
        self.groups = [GROUP_PREFIX + group for group in self.web.groups]
        self.registry_root = Path(registry_root) if registry_root else settings.adapters_root()
        self.core = None
        self.url = ""          # http://host:port/ once connected
        self.commands: list[dict] = []
        self.friends = None    # bot.webchat.friends.Friends while they talk
        self.backlogs = Backlogs(self.web.backlog, self.web.guest_dms)
        self._guest_dms = self.backlogs.guest_dms
        self._guest_secret = secrets.token_bytes(32)  # per start: public ids cannot be mapped back to tokens
        self._pages: dict[int, tuple[WebUser, asyncio.Queue]] = {}
        self._ids = itertools.count(time.time_ns() // 1000)
        self._runner = None
        self._tasks: list[asyncio.Task] = []
        self._script: list = []  # the friends' scenes (bot.webchat.friends), read at connect
        self.guests = Guests(self.web.max_guests, self.web.guest_idle_s)
        self.limits = Windows()
        self.line = None  # bot.webchat.line.Line once listening
        self._handling = asyncio.Semaphore(_HANDLING_AT_ONCE)  # sized to the core's pool in listen
        self._reserved: dict[str, str] = {}  # skeleton -> a name no guest may pass for
        self._reserve(self.clone.name, self.owner.name, owner_name(settings))

    @property
    def owner_url(self) -> str:
        """The URL that makes its holder the owner (print it once; never log it)."""
        return f"{self.url}?key={self.owner_key}"

    @property
    def commander_ids(self) -> frozenset[str]:
        return frozenset({OWNER_ID})

    # -- lifecycle ----------------------------------------------------------------------------------
    async def connect(self) -> None:
        from aiohttp import web as aioweb

        from bot.webchat.server import make_app

        if self.web.friends:  # a bad script is a start-up error, not a failed background task
            from bot.webchat.friends import load_script

            self._script = load_script(self.web.friends_script)
            self._reserve(*(line.name for scene in self._script for line in scene))
        host, port = self.web.host, self.web.port
        if self.web.allow_remote:
            log.warning("web: serving on %s:%s with allow_remote: no TLS, and anyone who reaches it may join "
                        "as a guest", host, port)
        if self.web.public:
            log.info("web: public page: any Host is served, X-Forwarded-For is read from %s",
                     ", ".join(self.web.trusted_proxies) or "no proxy")
        self._runner = aioweb.AppRunner(make_app(self), access_log=None, handle_signals=False)
        await self._runner.setup()
        try:
            await aioweb.TCPSite(self._runner, host, port, shutdown_timeout=2.0).start()
        except OSError as exc:
            await self._runner.cleanup()
            raise ConfigError(f"web.port = {port}: cannot listen on {host}:{port} ({exc.strerror or exc}); "
                              "pick another port (0: any free one)") from None
        bound = self._runner.addresses[0][1]
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else "[::1]" if host == "::" else \
            f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{bound}/"

    async def listen(self, core) -> None:
        from bot.webchat import panel as web_panel
        from bot.webchat.line import Line

        self.core = core
        pool_size = getattr(core.redis.connection_pool, "max_connections", 0) or 2 * _HANDLING_AT_ONCE
        self._handling = asyncio.Semaphore(max(1, min(_HANDLING_AT_ONCE, pool_size // 2)))
        self.line = Line(core.redis, core.keys, core.client.bot, core.client.shards, self.publish)
        self._tasks.append(asyncio.create_task(
            web_panel.watch(core.redis, core.keys, lambda event: self.broadcast({"type": "adapter"})),
            name="web:registry"))
        self._tasks.append(asyncio.create_task(self.line.run(), name="web:line"))
        self._tasks.append(asyncio.create_task(upkeep.sweep(self), name="web:sweep"))
        if self.web.stats_every_s:
            self._tasks.append(asyncio.create_task(upkeep.log_stats(self, self.web.stats_every_s), name="web:stats"))
        if self.web.friends and self.web.friends_max_messages:
            self._tasks.append(asyncio.create_task(self._run_friends(), name="web:friends"))

    async def _run_friends(self) -> None:
        from bot.webchat.friends import Friends, plan

        web = self.web
        schedule = plan(self._script, count=web.friends_max_messages, interval_s=web.friend_interval_s,
                        seed=web.friends_seed)
        group = self.groups[0]

        async def post(line) -> None:
            await self.receive(WebUser(line.author_id, line.name, "friend"), group, line.text)

        async def typing(line) -> None:
            self.show_typing(WebUser(line.author_id, line.name, "friend"), group)

        self.friends = Friends(schedule, post=post, typing=typing,
                               owner=owner_name(self.settings) or self.display_name, clone_handle=self.username)
        await self.friends.run()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for _user, queue in list(self._pages.values()):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)  # the page's writer closes its socket
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- channels and pages ---------------------------------------------------------------------------
    def chat_type_of(self, channel: str) -> str:
        return "dm" if channel.startswith(DM_PREFIX) else "group"

    def channels_for(self, user: WebUser) -> list[dict]:
        dm = {"key": DM_PREFIX + user.id, "title": self.clone.name, "type": "dm"}
        return [dm] + [{"key": key, "title": key.removeprefix(GROUP_PREFIX), "type": "group"} for key in self.groups]

    def can_see(self, user: WebUser, channel: str) -> bool:
        return channel == DM_PREFIX + user.id or channel in self.groups

    def _reserve(self, *names: str) -> None:
        for name in names:
            if name and name.strip():
                self._reserved.setdefault(skeleton(name), name)

    def join(self, *, key: str = "", name: str = "", guest: str = "", ip: str = "") -> WebUser:
        """Who a page is: the owner (with the run's key) or a guest with a name and a browser token.

        A guest is let in under a name that passes for nobody here, while there is room for them
        (``[web] max_guests``; public: ``ip_max_pages`` per address ``ip``)."""
        if key:
            if hmac.compare_digest(key.encode(), self.owner_key.encode()):
                return self.owner
            raise InputError("this owner link is not valid: the key changes every time the web chat starts; "
                             "use the link it printed, or join as a guest")
        name = display_name(name)
        shape = skeleton(name)
        if shape in self._reserved:
            raise InputError(taken(name, self._reserved[shape]))
        if not isinstance(guest, str) or not _GUEST_TOKEN.match(guest):
            raise InputError("the page sent no valid guest token; reload it")
        user_id = self.guest_id(guest)
        pages_cap = self.web.ip_max_pages if self.web.public else None
        for dropped in self.guests.admit(user_id, name, shape, ip=ip, ip_max_pages=pages_cap,
                                         busy=lambda guest_id: upkeep.awaits_reply(self, guest_id)):
            self._spawn(upkeep.let_go(self, dropped.id, "a newcomer needed the place", dropped=True))
        return WebUser(user_id, name, "guest")

    def _spawn(self, work) -> None:
        task = asyncio.create_task(work, name="web:let-go")
        self._tasks.append(task)
        task.add_done_callback(lambda done: done in self._tasks and self._tasks.remove(done))

    def guest_id(self, token: str) -> str:
        """The public id of the guest holding ``token`` (the token itself is never sent to any page)."""
        return "guest-" + hmac.new(self._guest_secret, token.encode(), hashlib.sha256).hexdigest()[:16]

    def attach(self, user: WebUser, first: dict, ip: str = "") -> tuple[int, asyncio.Queue]:
        """A page's event queue, starting with ``first`` (no event can come before it)."""
        queue: asyncio.Queue = asyncio.Queue(maxsize=_QUEUE_EVENTS)
        queue.put_nowait(first)
        page = id(queue)
        self._pages[page] = (user, queue)
        if user.kind == "guest":
            self.guests.attach(user.id, page, ip)
        return page, queue

    def detach(self, page: int) -> None:
        self._pages.pop(page, None)
        self.guests.detach(page)

    def close_page(self, page: int, event: dict | None = None) -> None:
        """Close one page (its writer sends ``event`` first, then closes the socket)."""
        entry = self._pages.get(page)
        if entry is None:
            return
        self.detach(page)
        queue = entry[1]
        while queue.qsize() > _QUEUE_EVENTS - 2:  # room for the event and the close marker
            queue.get_nowait()
        if event is not None:
            queue.put_nowait(event)
        queue.put_nowait(None)

    def welcome(self, user: WebUser) -> dict:
        channels = self.channels_for(user)
        commands = self.commands if user.kind == "owner" else [c for c in self.commands if not c["owner_only"]]
        return {"type": "welcome", "user": user.public(), "clone": {**self.clone.public(), "handle": self.username},
                "channels": channels, "commands": commands, "max_text_chars": self.web.max_text_chars,
                "backlog": {c["key"]: list(self.backlogs.kept(c["key"]) or ()) for c in channels}}

    def publish(self, channel: str, event: dict) -> None:
        """``event`` to every page that can see ``channel``."""
        for page, (user, queue) in list(self._pages.items()):
            if self.can_see(user, channel):
                self.push(page, queue, event)

    def broadcast(self, event: dict) -> None:
        for page, (_user, queue) in list(self._pages.items()):
            self.push(page, queue, event)

    def push(self, page: int, queue: asyncio.Queue, event: dict) -> None:
        """Queue ``event`` for one page; a page too far behind is dropped (it reconnects)."""
        try:
            queue.put_nowait(event)
        except asyncio.QueueFull:
            log.warning("web: a page fell %d events behind; disconnecting it", _QUEUE_EVENTS)
            self.detach(page)
            while not queue.empty():  # room for the close marker: the page reconnects for the backlog
                queue.get_nowait()
            queue.put_nowait(None)

    def show_typing(self, user: WebUser, channel: str) -> None:
        self.publish(channel, {"type": "typing", "channel": channel, "user": user.public(),
                               "for_s": self.typing_lifetime_s})

    def _message(self, channel: str, author: WebUser, text: str, reply_to: str = "") -> dict:
        quoted = next((m for m in self.backlogs.kept(channel) or () if m["id"] == reply_to), None) if reply_to else None
        message = {"id": f"w{next(self._ids)}", "channel": channel, "author": author.public(), "text": text,
                   "at": time.time(),
                   "reply_to": {"id": quoted["id"], "author": quoted["author"], "text": quoted["text"][:160]}
                   if quoted else None}
        self.backlogs.kept(channel, create=True).append(message)
        self.publish(channel, {"type": "message", "channel": channel, "message": message})
        return message

    # -- incoming -------------------------------------------------------------------------------------
    async def receive(self, user: WebUser, channel, text, *, reply_to="", ip: str = "") -> dict:
        """A message typed on a page (or a friend's line): shown to the channel, then handed to the core.

        Raises ``InputError`` with a line for the page when the message cannot be taken; a guest's
        message over their limits is refused before it is shown or recorded.
        """
        if not isinstance(channel, str) or not self.can_see(user, channel):
            raise InputError(f"unknown channel {str(channel)[:80]!r}")
        if not isinstance(text, str) or not text.strip():
            raise InputError("the message is empty")
        if len(text) > self.web.max_text_chars:
            raise InputError(f"the message is {len(text):,} characters; the limit is {self.web.max_text_chars:,}")
        if self.core is None:
            raise InputError("the chat is still starting; send it again in a moment")
        if user.kind == "guest":
            if user.id not in self.guests:
                raise InputError("you were away for a while, so the chat let you go; reload the page")
            refused = self.limits.take(message_limits(self.settings, user.id, ip))
            if refused is not None:
                raise InputError(refused)
            self.guests.touch(user.id)
        message = self._message(channel, user, text, reply_to if isinstance(reply_to, str) else "")
        quoted = message["reply_to"]
        mention = re.search(rf"(?<![\w@])@{re.escape(self.username)}(?!\w)", text, re.IGNORECASE)
        async with self._handling:
            await self.core.handle(Incoming(
                platform=self.name, channel=channel, chat_type=self.chat_type_of(channel), author_id=user.id,
                author_name=user.name, text=text, message_id=message["id"], at=message["at"],
                mentions_me=mention is not None, replies_to_me=bool(quoted and quoted["author"]["id"] == CLONE_ID),
            ))
        if user.kind == "guest" and channel.startswith(DM_PREFIX) and self.line is not None:
            self.line.watch(channel)  # after handle: its request (if any) is on the stream now
        return message

    # -- outgoing -------------------------------------------------------------------------------------
    async def send_text(self, channel: str, text: str, *, reply_to: str = "") -> str:
        if not (channel.startswith(DM_PREFIX) or channel in self.groups):
            raise SendFailed(f"no web channel {channel!r}")
        if upkeep.gone(self, channel):  # a late reply: its guest's state is gone and stays gone
            raise SendFailed(f"the guest of {channel!r} has left")
        # A command's answer quotes the command; in a DM that is noise (BotCore quotes replies in groups only).
        quote = reply_to if self.chat_type_of(channel) == "group" else ""
        return self._message(channel, self.clone, text, quote)["id"]

    async def send_typing(self, channel: str) -> None:
        if not upkeep.gone(self, channel):
            self.show_typing(self.clone, channel)

    async def register_commands(self, commands: Sequence[CommandSpec]) -> None:
        self.commands = [{"name": c.name, "usage": c.usage, "description": c.description,
                          "owner_only": c.owner_only} for c in commands]

    async def owner_channel(self, user_id: str) -> str | None:
        return DM_PREFIX + user_id


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return ""


async def serve_web(settings, url: str, *, stop: asyncio.Event, on_started: Callable | None = None,
                    drain_s: float = 10.0, **core_options) -> None:
    """Run the web chat on Redis ``url`` until ``stop`` is set; ``on_started(platform)`` once it
    listens (``platform.url``, ``platform.owner_url``, ``platform.core``)."""
    from bot.runtime import run_bot

    platform = WebPlatform(settings)
    await run_bot(settings, url, platform, stop=stop, drain_s=drain_s, commander_ids=platform.commander_ids,
                  on_started=(lambda core: on_started(platform)) if on_started else None, **core_options)


def web_settings(settings, **changes):
    """``settings`` with ``[web]`` keys replaced (None values are left as configured), e.g. a --port."""
    changes = {k: v for k, v in changes.items() if v is not None}
    if not changes:
        return settings
    return settings.model_copy(update={"web": settings.web.model_copy(update=changes)})

