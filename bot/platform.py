"""What a chat platform adapter implements, and the one event shape every adapter produces.

The core (``bot/core.py``: history, triggers, pacing, limits; ``bot/owner_commands.py``: owner
commands) is shared by every platform. An adapter only translates: platform events in as
``Incoming``, and ``send_text`` / ``send_typing`` / ``register_commands`` out. Adding a platform
means one module with a ``Platform`` subclass that feeds ``BotCore.handle`` — nothing else.

Channel keys are platform-scoped strings the adapter builds and parses itself
(``telegram:-1001234:7`` for topic 7 of a supergroup, ``discord:1234`` for a channel, thread or
DM). The core treats them as opaque, except that each is one conversation: one history list,
one cooldown, one reply order.

Tested through its implementations: ``tests/bot/test_core.py`` (``MemoryPlatform`` in ``tests/bot_helpers.py``,
refused sends), ``tests/bot/test_telegram_bot.py`` and ``tests/bot/test_discord_bot.py`` (events, rate limits).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Incoming:
    """One text message as the core sees it, whatever the platform."""

    platform: str            # "discord", "telegram", ...
    channel: str             # platform-scoped conversation key (includes the thread/topic)
    chat_type: str           # "dm" or "group" (doppel.relay.CHAT_TYPES)
    author_id: str           # platform user id: owner checks use this, never the name
    author_name: str         # display name, as the speaker in the history
    text: str
    message_id: str
    at: float                # epoch seconds when the message was sent (platform clock)
    is_bot: bool = False     # written by a bot (never answered)
    is_self: bool = False    # written by this bot (never recorded, never answered)
    mentions_me: bool = False
    replies_to_me: bool = False
    edited: bool = False     # an edit of an earlier message (ignored)
    thread: str = ""         # thread / topic id, already part of ``channel``; "" if none
    # Ids an allowlist of group chats may name (Telegram chat id; Discord channel, parent
    # channel and server ids). Empty for DMs.
    chat_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class CommandSpec:
    """One owner command, for the platform's command menu (autocomplete) and for ``help``."""

    name: str
    usage: str               # arguments, e.g. "NAME [here|everywhere]"; "" if none
    description: str         # one line, under 100 characters (Discord's limit)
    owner_only: bool = True


@dataclass(frozen=True)
class RateLimit:
    """At most ``count`` messages per ``period_s`` seconds."""

    count: int
    period_s: float


class SendFailed(Exception):
    """A send the platform refused for good (no such chat, bot removed): retrying cannot help."""



class CommandRunner(Protocol):
    """Runs an owner command picked from a platform's command menu (``bot/owner_commands.py``)."""

    async def run(self, event: Incoming, name: str, args: str) -> str | None: ...


class Receiver(Protocol):
    """What an adapter feeds its events to: ``BotCore`` (``bot/core.py``) is the one implementation."""

    commands: CommandRunner

    async def handle(self, event: Incoming) -> None: ...


class Platform(ABC):
    """A chat platform as the core needs it. Subclasses set the class attributes and implement
    the three coroutines; everything else has a sensible default."""

    name: str = ""
    max_message_chars: int = 2000       # longest message the platform accepts, in ``measure`` units
    typing_lifetime_s: float = 10.0     # how long one typing indicator stays visible
    # Messages per channel the platform allows; the core queues sends to stay under them.
    channel_limits: tuple[RateLimit, ...] = ()
    group_limits: tuple[RateLimit, ...] = ()   # extra limits in group chats
    global_limits: tuple[RateLimit, ...] = ()  # across all channels of this bot
    username: str = ""                  # the bot's handle, for "/clone@name" in Telegram groups
    display_name: str = ""              # the bot's own name, as a speaker in the history

    def measure(self, text: str) -> int:
        """Length of ``text`` as the platform counts it against ``max_message_chars``."""
        return len(text)

    def limits_for(self, chat_type: str) -> tuple[RateLimit, ...]:
        return self.channel_limits + (self.group_limits if chat_type == "group" else ())

    def chat_type_of(self, channel: str) -> str:
        """Best guess for a channel the core has not seen a message from (after a restart)."""
        return "group"

    # -- lifecycle: connect(), then BotCore.start(), then listen(core); close() at the end --------
    @abstractmethod
    async def connect(self) -> None:
        """Log in and learn who the bot is (fills ``username`` and ``display_name``)."""

    @abstractmethod
    async def listen(self, core: Receiver) -> None:
        """Start passing messages to ``core.handle`` (and app commands to ``core.commands``);
        returns once listening."""

    @abstractmethod
    async def close(self) -> None:
        """Stop listening and log out."""

    async def owner_channel(self, user_id: str) -> str | None:
        """The channel key of a DM with ``user_id`` (for notices to the owner), if one can be had."""
        return None

    @abstractmethod
    async def send_text(self, channel: str, text: str, *, reply_to: str = "") -> str:
        """Post ``text`` (within ``max_message_chars``) to ``channel``, as a reply to the message
        ``reply_to`` when given (and it still exists). Returns the new message's id. Raises
        ``SendFailed`` when retrying cannot help; any other exception is retried."""

    @abstractmethod
    async def send_typing(self, channel: str) -> None:
        """Show the typing indicator in ``channel`` for about ``typing_lifetime_s``."""

    @abstractmethod
    async def register_commands(self, commands: Sequence[CommandSpec]) -> None:
        """Make the owner commands autocomplete in the platform's UI (once, at start)."""
