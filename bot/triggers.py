"""When the clone answers: trigger rules, the per-channel cooldown and the per-user rate limit.

DMs are always answered. In groups, in this order: a mention of the bot, a reply to one of its
messages, the owner's name or a nickname in the text, and otherwise a coin toss with the
channel's probability, so it lurks and chimes in the way people do. The coin is an injectable
``random.Random`` (seeded in tests) and is only tossed when the earlier rules did not fire and the
channel is not cooling down, so a seed gives the same decisions for the same messages.

The cooldown only holds back the unsolicited triggers (name, random): someone who mentions the
clone or replies to it is talking to it and gets an answer, subject to the per-user rate limit,
which bounds how much any one person can make the worker do.

Someone who is not an owner and types ``/clone ...`` is told no at most once per
``refusal_every_s`` (an hour): ``refusal_due`` / ``refused``, so refusals cannot spend a group's
send window (Telegram allows 20 messages a minute) that real replies need.

Bots (this one included), edits and commands never get here: ``BotCore.handle`` filters them.

Tested in ``tests/bot/test_core.py`` (rule order, the seeded coin, cooldown, per-user rate limit) and
``tests/bot/test_owner_commands.py`` (one refusal an hour).
"""

from __future__ import annotations

import random
import re
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from bot.platform import Incoming

UNSOLICITED = ("name", "random")


@dataclass(frozen=True)
class TriggerOptions:
    names: tuple[str, ...] = ()       # the owner's name and nicknames
    probability: float = 0.03         # chance to answer a group message no rule picked
    cooldown_s: float = 60.0          # after answering in a group, no name/random trigger for this long
    user_limit: int = 5               # requests one person may cause...
    user_window_s: float = 60.0       # ...per this many seconds
    refusal_every_s: float = 3600.0   # a non-owner's /clone is answered at most once per this, per user

    @classmethod
    def from_settings(cls, settings) -> TriggerOptions:
        bot = settings.bot
        names = tuple(n for n in (owner_name(settings), *bot.nicknames) if n.strip())
        return cls(names=names, probability=bot.trigger_probability, cooldown_s=bot.cooldown_s,
                   user_limit=bot.user_rate_limit, user_window_s=bot.user_rate_window_s)


def owner_name(settings) -> str:
    """The owner's name: ``[bot] owner_name``, else the persona's ``[data] owner_name``."""
    data = getattr(settings, "data", None)
    return settings.bot.owner_name or (data.owner_name if data is not None else "")


def name_pattern(names: Iterable[str]) -> re.Pattern | None:
    """A case-insensitive pattern for any of ``names`` as a word.

    Word boundaries only make sense at ASCII letters and digits: "Mia" must not fire on
    "Miami", but "小明" has to fire inside "小明你好", where no space separates words.
    """
    alternatives = []
    for name in sorted({n.strip() for n in names if n.strip()}, key=len, reverse=True):
        before = r"(?<![A-Za-z0-9_])" if name[0].isascii() and name[0].isalnum() else ""
        after = r"(?![A-Za-z0-9_])" if name[-1].isascii() and name[-1].isalnum() else ""
        alternatives.append(f"{before}{re.escape(name)}{after}")
    return re.compile("|".join(alternatives), re.IGNORECASE) if alternatives else None


class Triggers:
    """Decides per message; keeps the cooldowns and rate windows in memory (one bot process)."""

    def __init__(self, options: TriggerOptions, *, rng: random.Random | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.options = options
        self.rng = rng or random.Random()
        self.clock = clock
        self._names = name_pattern(options.names)
        self._answered_at: dict[str, float] = {}        # channel -> when a group request last went out
        self._user_requests: dict[str, deque[float]] = {}  # "platform:user" -> recent request times
        self._refused_at: dict[str, float] = {}          # "platform:user" -> when they were last told no

    def decide(self, event: Incoming, *, is_owner: bool, probability: float | None = None,
               cooldown_s: float | None = None) -> str | None:
        """The trigger (``doppel.relay.TRIGGERS``) this message fires, or None.

        ``probability`` and ``cooldown_s`` are the channel's overrides, when it has any.
        """
        if event.chat_type == "dm":
            return "dm"
        if event.mentions_me:
            return "mention"
        if event.replies_to_me:
            return "reply"
        if is_owner:
            # The owner chatting in a group is not a cue for their clone to chime in.
            return None
        cooldown = self.options.cooldown_s if cooldown_s is None else cooldown_s
        last = self._answered_at.get(event.channel)
        if last is not None and self.clock() - last < cooldown:
            return None
        if self._names is not None and self._names.search(event.text):
            return "name"
        chance = self.options.probability if probability is None else probability
        if chance > 0 and self.rng.random() < chance:
            return "random"
        return None

    def answered(self, channel: str) -> None:
        """A request went out for ``channel``: start its cooldown."""
        self._answered_at[channel] = self.clock()

    def allow_user(self, user: str) -> bool:
        """Take one of ``user``'s request slots; False when the window is full (nothing taken)."""
        now = self.clock()
        times = self._user_requests.setdefault(user, deque())
        while times and now - times[0] >= self.options.user_window_s:
            times.popleft()
        if len(times) >= self.options.user_limit:
            return False
        times.append(now)
        if len(self._user_requests) > 10_000:  # forget idle users rather than grow without bound
            window = self.options.user_window_s
            for key in [k for k, v in self._user_requests.items() if not v or now - v[-1] >= window]:
                del self._user_requests[key]
        return True

    def refusal_due(self, user: str) -> bool:
        """True when ``user`` was not refused a command within ``refusal_every_s`` (nothing taken)."""
        last = self._refused_at.get(user)
        return last is None or self.clock() - last >= self.options.refusal_every_s

    def refused(self, user: str) -> None:
        """``user`` was told no: the next refusal is due in ``refusal_every_s``."""
        now = self.clock()
        self._refused_at[user] = now
        if len(self._refused_at) > 10_000:  # forget refusals that are due again rather than grow
            every = self.options.refusal_every_s
            for key in [k for k, at in self._refused_at.items() if now - at >= every]:
                del self._refused_at[key]
