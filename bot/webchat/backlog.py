"""What a newly opened web chat page is shown: the recent messages of each channel, kept in memory.

Each channel keeps its last ``[web] backlog`` messages. Guest DMs are kept for at most ``[web]
guest_dms`` guests, least recently used dropped first, so a flood of new guest tokens cannot
grow memory; a guest who is let go (``bot/webchat/upkeep.py``) loses theirs at once. The clone's
own memory is the channel history in Redis, not this.

Tested in ``tests/bot/webchat/test_platform.py`` (bounded guest DMs, least recently used first)
and ``tests/bot/webchat/test_guests.py`` (gone with the guest).
"""

from __future__ import annotations

from collections import OrderedDict, deque

GUEST_DMS_PREFIX = "web:dm:guest-"


class Backlogs:
    def __init__(self, size: int, guest_dms: int):
        self.size = size
        self.max_guest_dms = guest_dms
        self.channels: dict[str, deque] = {}                  # groups and the owner's DM
        self.guest_dms: OrderedDict[str, deque] = OrderedDict()  # least recently used first

    def kept(self, channel: str, *, create: bool = False) -> deque | None:
        """The backlog of ``channel``; using a guest DM's makes it the most recently used."""
        if not channel.startswith(GUEST_DMS_PREFIX):
            if create:
                return self.channels.setdefault(channel, deque(maxlen=self.size))
            return self.channels.get(channel)
        kept = self.guest_dms.get(channel)
        if kept is None and create:
            kept = self.guest_dms[channel] = deque(maxlen=self.size)
            while len(self.guest_dms) > self.max_guest_dms:
                self.guest_dms.popitem(last=False)
        if kept is not None:
            self.guest_dms.move_to_end(channel)
        return kept

    def forget(self, channel: str) -> None:
        self.guest_dms.pop(channel, None)
