"""The part of every bot that is not about one platform: listen, record, decide, ask, post.

``BotCore.handle`` takes each ``Incoming`` message from a platform adapter:

1. Edits, this bot's own messages, empty texts and messages older than the bot's start are
   dropped, and so is a DM from anyone not on the platform's ``dm_allowlist`` when it has one
   (the owners always may): only logged, never recorded or answered. A message starting with
   ``/clone`` (or ``/about``) is an owner command (``bot/owner_commands.py``): answered here,
   never recorded, never sent to the model. A non-owner's command is refused at most once an hour
   per user, and only while the chat has no reply pending or queued (``_may_refuse``).
2. In an active channel (not paused, and for groups in the platform's ``chats`` allowlist when it
   has one) every text message is recorded into the channel history, whoever wrote it, bots
   included, through ``doppel.history.record``: one JSON entry per message in the Redis list
   ``Keys.history(channel)``, oldest first, capped at ``[history] max_stored`` entries and
   expiring ``[history] ttl_s`` after the last write (the limits the worker reads it with)::

       {"seq": 41, "speaker": "Ann", "text": "lunch?", "at": 1700000000.0,
        "is_owner": false, "message_id": "123"}

   ``seq`` numbers the channel's turns; ``speaker`` is the display name; ``at`` is when it was
   sent (epoch seconds); ``is_owner`` is true when the author's platform id is one of the
   owner's (the owner typing by hand, or ``/clone say``), so the prompt gives it the clone's
   role; ``message_id`` is the platform's message id (also the request's ``reply_to``, by which
   the worker finds the triggering message in the list). The clone's generated replies are *not*
   recorded here: the worker records the turn it generated (``inference/chat_engine.py``), so
   the next prompt has it even while the bot is still pacing it out.
3. The trigger rules (``bot/triggers.py``) and the per-user rate limit decide whether to ask the
   worker; if so a ``Request`` goes out through the ``RelayClient`` and the channel shows typing.

Replies come back through ``RelayClient.deliver`` in channel order, once each; ``_post`` splits
their parts at the platform's limit and hands them to the channel's ``ChannelSender``
(``bot/pacing.py``), which paces and posts them. ``post`` returns once the parts are queued, so
one slow channel (Telegram allows 20 messages a minute in a group) never holds up the others;
``stop`` drains the queues before exiting.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time

from bot.owner_commands import COMMANDS, REFUSAL, Commands, parse_command
from bot.pacing import ChannelSender, Outgoing, PacingOptions, RateWindow, split_message
from bot.platform import Incoming, Platform
from bot.relay_client import RelayClient
from bot.triggers import TriggerOptions, Triggers, owner_name
from doppel.history import HistoryOptions, record
from doppel.jobs import is_job_id
from doppel.prompt import Turn
from doppel.relay import Reply, Request

log = logging.getLogger(__name__)

# Platforms stamp messages in whole seconds: a message sent just before the start may read as
# up to a second older than it is.
_START_SLACK_S = 1.0
_NOTICE_EVERY_S = 600.0


class BotCore:
    def __init__(self, platform: Platform, client: RelayClient, settings, *, redis_url: str = "",
                 rng: random.Random | None = None, history: HistoryOptions | None = None,
                 pacing: PacingOptions | None = None, started_at: float | None = None,
                 commander_ids: frozenset[str] | None = None):
        self.platform = platform
        self.client = client
        self.redis = client.redis
        self.keys = client.keys
        self.settings = settings
        section = getattr(settings, platform.name, None)
        self.owner_ids = frozenset(section.owner_ids if section is not None else ())
        self.allowed_chats = frozenset(section.chats if section is not None else ())
        # Who may DM the clone; empty: anyone (the web chat and terminal have no such list).
        self.dm_allowlist = frozenset(getattr(section, "dm_allowlist", None) or ())
        self.triggers = Triggers(TriggerOptions.from_settings(settings), rng=rng)
        self.pacing = pacing or PacingOptions.from_settings(settings)
        self.history = history or HistoryOptions.from_settings(settings)
        self.started_at = time.time() if started_at is None else started_at
        bot = settings.bot
        owner = owner_name(settings) or platform.display_name or "the owner"
        self.footer = bot.disclosure_footer.replace("{owner}", owner).strip()
        self.failure_text = bot.failure_text
        self.commands = Commands(
            redis=self.redis, keys=self.keys, settings=settings, platform=platform.name, bot=client.bot,
            # Who may run /clone commands: the owner's accounts, unless the adapter says otherwise
            # (the terminal and web chats let their local user steer the clone while chatting with
            # it as a friend, so their words are not recorded as the owner's own turns).
            owner_ids=self.owner_ids if commander_ids is None else frozenset(commander_ids),
            say=self.say, redis_url=redis_url,
            about=bot.about.replace("{owner}", owner).strip(),
        )
        self._shared = [RateWindow(limit) for limit in platform.global_limits]
        self._senders: dict[str, ChannelSender] = {}
        self._chat_types: dict[str, str] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._notices: dict[str, float] = {}
        self._delivery: asyncio.Task | None = None
        self.submitted = 0
        self.recorded = 0

    # -- lifecycle ---------------------------------------------------------------------------------
    async def start(self) -> None:
        """Join the reply stream, register the commands, start posting replies."""
        await self.client.startup()
        try:
            await self.platform.register_commands(COMMANDS)
        except Exception:  # boundary: commands still work as text without the menu
            log.exception("%s: could not register the commands", self.platform.name)
        self._delivery = asyncio.create_task(self.client.deliver(self._post, on_failed=self._failed),
                                             name=f"deliver:{self.client.bot}")

    async def stop(self, drain_s: float = 10.0) -> None:
        """Stop taking replies, post what is queued (up to ``drain_s``), leave the relay."""
        self.client.stop()
        if self._delivery is not None:
            await asyncio.wait_for(asyncio.gather(self._delivery, return_exceptions=True), 15)
        deadline = time.monotonic() + drain_s
        for sender in list(self._senders.values()):
            if not await sender.drain(max(0.0, deadline - time.monotonic())):
                log.warning("%s: stopped with messages still queued for %s", self.platform.name, sender.channel)
        for sender in self._senders.values():
            await sender.close()
        self.commands.close()
        await self.client.shutdown()

    def sender(self, channel: str) -> ChannelSender:
        sender = self._senders.get(channel)
        if sender is None:
            chat_type = self._chat_types.get(channel) or self.platform.chat_type_of(channel)
            sender = ChannelSender(self.platform, channel, chat_type, self.pacing, self._shared,
                                   max_wait_s=self.settings.bot.order_wait_s)
            self._senders[channel] = sender
        return sender

    @property
    def idle(self) -> bool:
        """Nothing queued to post in any channel (for tests and graceful exits)."""
        return all(s.idle for s in self._senders.values())

    # -- incoming ----------------------------------------------------------------------------------
    async def handle(self, event: Incoming) -> None:
        """One message from the platform (see the module docstring for what happens to it)."""
        if event.is_self or event.edited or not event.text.strip():
            return
        if event.at < self.started_at - _START_SLACK_S:
            log.debug("%s: skipping message %s from before the start", self.platform.name, event.message_id)
            return
        if event.chat_type == "dm" and not self.accepts_dm(event.author_id):
            # Not the text: a stranger's words are not ours to keep, not even in the log.
            log.info("%s: ignoring a DM from user %s in %s: not on [%s] dm_allowlist", self.platform.name,
                     event.author_id, event.channel, self.platform.name)
            return
        self._chat_types[event.channel] = event.chat_type
        command = parse_command(event.text, self.platform.username)
        if command is not None:
            if not event.is_bot:
                answer = await self.commands.run(event, *command)
                if answer == REFUSAL and not await self._may_refuse(event):
                    return
                if answer:
                    await self.notify(event.channel, answer, reply_to=event.message_id)
            return
        lock = self._locks.setdefault(event.channel, asyncio.Lock())
        async with lock:  # one message at a time per channel: history and requests keep its order
            here, everywhere = await self.commands.overrides(event.channel)
            if not self._active(event, here, everywhere):
                return
            is_owner = event.author_id in self.owner_ids
            text = event.text[: self.client.max_text_chars]  # what a request may carry, at most
            await record(self.redis, self.keys, event.channel, Turn(event.author_name, text, event.at, is_owner),
                         message_id=event.message_id, options=self.history)
            self.recorded += 1
            if event.is_bot:
                return
            chance = _number(here.get("probability") or everywhere.get("probability"))
            trigger = self.triggers.decide(event, is_owner=is_owner, probability=chance)
            if trigger is None:
                return
            if not is_owner and not self.triggers.allow_user(f"{event.platform}:{event.author_id}"):
                log.info("%s: user %s is over the rate limit; not answering %s", self.platform.name,
                         event.author_id, event.message_id)
                return
            await self._submit(event, trigger)

    def accepts_dm(self, author_id: str) -> bool:
        """Whether a DM from ``author_id`` is taken: no allowlist, on it, or an owner."""
        return not self.dm_allowlist or author_id in self.dm_allowlist or self.commands.is_owner(author_id)

    async def _may_refuse(self, event: Incoming) -> bool:
        """Whether to post the refusal of a non-owner's command (``Commands.run`` logged the attempt).

        At most once per user an hour, and only when the chat has no reply waiting for the worker
        (its request id is still on the channel's order list) or queued to post: a refusal must
        not take a reply's place in the chat's send window. A held-back refusal is not counted.
        """
        user = f"{event.platform}:{event.author_id}"
        if not self.triggers.refusal_due(user):
            log.info("%s: user %s was refused within the hour; not answering again", self.platform.name,
                     event.author_id)
            return False
        pending = await self.redis.llen(self.keys.channel_order(self.client.bot, event.channel))
        if pending or not self.sender(event.channel).idle:
            log.info("%s: not refusing user %s in %s while replies are pending there", self.platform.name,
                     event.author_id, event.channel)
            return False
        self.triggers.refused(user)
        return True

    def _active(self, event: Incoming, here: dict, everywhere: dict) -> bool:
        if here.get("paused") == "1" or everywhere.get("paused") == "1":
            return False
        if event.chat_type == "group" and self.allowed_chats:
            return any(chat_id in self.allowed_chats for chat_id in event.chat_ids)
        return True

    async def _submit(self, event: Incoming, trigger: str) -> None:
        text = event.text[: self.client.max_text_chars]  # a request may not exceed the relay limit
        request = Request(platform=event.platform, bot=self.client.bot, channel=event.channel,
                          chat_type=event.chat_type, author_id=event.author_id,
                          author_name=event.author_name[:200], text=text, trigger=trigger, sent_at=event.at,
                          # The worker finds the message in the history by this id; the reply quotes it in groups.
                          reply_to=event.message_id)
        await self.client.submit(request)
        self.submitted += 1
        if event.chat_type == "group":
            self.triggers.answered(event.channel)
        self.sender(event.channel).expect(request.id)

    # -- outgoing ----------------------------------------------------------------------------------
    def _split(self, parts) -> list[str]:
        limit, measure = self.platform.max_message_chars, self.platform.measure
        return [piece for part in parts for piece in split_message(part, limit, measure)]

    async def _post(self, reply: Reply) -> None:
        """A reply from the worker (or a job's report): queue its parts for its channel."""
        sender = self.sender(reply.channel)
        sender.done(reply.request_id)
        if is_job_id(reply.request_id):
            sender.put(Outgoing(self._split(reply.parts), paced=False))
            return
        if reply.reason:  # an answer with a notice for the owner (say, its adapter failed to load)
            await self._tell_owner(f"{reply.channel}: {reply.reason}")
        parts = [p for p in reply.parts if p.strip()]
        if parts and self.footer:
            parts[-1] = f"{parts[-1]}\n\n{self.footer}"
        sender.put(Outgoing(self._split(parts), reply_to=self._quote(reply)))

    def _quote(self, reply: Reply) -> str:
        """In a group an answer quotes the message it answers; in a DM that would be noise."""
        chat_type = self._chat_types.get(reply.channel) or self.platform.chat_type_of(reply.channel)
        return reply.reply_to if chat_type == "group" else ""

    async def _tell_owner(self, notice: str) -> None:
        """Send ``notice`` to the owner's DM, once per ``_NOTICE_EVERY_S`` for the same text."""
        now = time.monotonic()
        if now - self._notices.get(notice, -_NOTICE_EVERY_S) < _NOTICE_EVERY_S:
            return
        self._notices[notice] = now
        log.warning("%s: notice for the owner: %s", self.platform.name, notice)
        for owner in sorted(self.owner_ids)[:1]:
            try:
                channel = await self.platform.owner_channel(owner)
            except Exception as exc:  # boundary: the log line above is the fallback
                log.warning("%s: cannot open a DM with the owner (%s)", self.platform.name, exc)
                continue
            if channel:
                await self.notify(channel, f"Notice: {notice[:1500]}")

    async def _failed(self, reply: Reply) -> None:
        """A request the worker rejected or could not answer, or a job that failed."""
        sender = self.sender(reply.channel)
        sender.done(reply.request_id)
        if is_job_id(reply.request_id):
            sender.put(Outgoing(self._split([f"Job failed: {reply.reason[:500]}"]), paced=False))
        elif reply.status == "error" and self.failure_text:
            sender.put(Outgoing([self.failure_text], reply_to=self._quote(reply)))

    async def notify(self, channel: str, text: str, *, reply_to: str = "") -> None:
        """A notice (command answers): not paced, not recorded, in order with the channel's replies."""
        self.sender(channel).put(Outgoing(self._split([text]), reply_to=reply_to, paced=False))

    async def say(self, channel: str, text: str) -> None:
        """``/clone say``: the owner's words, posted as the clone and recorded as the owner's turn."""
        speaker = owner_name(self.settings) or self.platform.display_name or "owner"

        async def recorded(part: str, message_id: str) -> None:
            await record(self.redis, self.keys, channel, Turn(speaker, part, time.time(), True),
                         message_id=message_id, options=self.history)

        self.sender(channel).put(Outgoing(self._split([text]), on_sent=recorded))

    async def wait_idle(self, timeout_s: float) -> bool:
        """Until no channel has anything queued (or ``timeout_s``)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.idle:
                return True
            await asyncio.sleep(0.02)
        return self.idle


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
