"""The web chat's guests as a public page needs them kept: bounded, rate limited, located.

* ``Guests``: the live guests (a page open, or active within ``[web] guest_idle_s``), least
  recently active first, at most ``[web] max_guests``. A newcomer beyond that takes the place of
  the guest who left longest ago (no page open, no reply on its way), or is told the chat is full.
  ``idle`` names the guests to let go; ``bot/webchat/upkeep.py`` drops what they held.
* ``Windows``: sliding-window counters by key (a guest, an address), taken all or none, so a
  refused message costs no budget anywhere.
* ``client_ip``: the client's address; behind a trusted reverse proxy, from ``X-Forwarded-For``.

Tested in ``tests/bot/webchat/test_guests.py``.
"""

from __future__ import annotations

import functools
import ipaddress
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from bot.webchat.names import taken
from doppel.errors import InputError

DM_PREFIX = "web:dm:"
GUEST_PREFIX = "guest-"


@dataclass
class Guest:
    id: str
    name: str = ""
    shape: str = ""                                  # the name's skeleton (bot/webchat/names.py)
    pages: set[int] = field(default_factory=set)     # open pages (the platform's page ids)
    active_at: float = 0.0                           # monotonic: last join, message or closed page


class Guests:
    """The live guests, least recently active first."""

    def __init__(self, max_guests: int, idle_s: float, *, clock: Callable[[], float] = time.monotonic):
        self.max_guests = max_guests
        self.idle_s = idle_s
        self.clock = clock
        self._live: OrderedDict[str, Guest] = OrderedDict()
        self._pages: dict[int, tuple[str, str]] = {}  # open page -> (guest id, client address)
        self._per_ip: dict[str, int] = {}             # client address -> guest pages open

    def __len__(self) -> int:
        return len(self._live)

    def __contains__(self, guest_id: object) -> bool:
        return guest_id in self._live

    def __iter__(self):
        return iter(list(self._live.values()))

    def get(self, guest_id: str) -> Guest | None:
        return self._live.get(guest_id)

    def lookalike(self, shape: str, guest_id: str) -> Guest | None:
        """Another guest with a page open whose name has the skeleton ``shape``."""
        return next((g for g in self._live.values() if g.pages and g.shape == shape and g.id != guest_id), None)

    def admit(self, guest_id: str, name: str, shape: str, *, ip: str = "", ip_max_pages: int | None = None,
              busy: Callable[[str], bool]) -> list[Guest]:
        """Let ``guest_id`` in under ``name`` (skeleton ``shape``); returns the guests dropped to make room.

        Raises ``InputError`` when the name passes for a guest who is here, when address ``ip``
        has ``ip_max_pages`` pages open, or when every place is held by someone here or waiting
        for the clone (``busy(id)``: a reply is on its way to them).
        """
        other = self.lookalike(shape, guest_id)
        if other is not None:
            raise InputError(taken(name, other.name))
        if ip_max_pages is not None and self.pages_from(ip) >= ip_max_pages:
            raise InputError("too many pages are open from your address; close one and reload")
        dropped = []
        guest = self._live.get(guest_id)
        if guest is None:
            if len(self._live) >= self.max_guests:
                leaver = next((g for g in self._live.values() if not g.pages and not busy(g.id)), None)
                if leaver is None:
                    raise InputError(f"the chat is full right now ({self.max_guests} guests); "
                                     "try again in a few minutes")
                dropped.append(self._live.pop(leaver.id))
            guest = self._live[guest_id] = Guest(guest_id)
        guest.name, guest.shape = name, shape
        self.touch(guest_id)
        return dropped

    def touch(self, guest_id: str) -> None:
        guest = self._live.get(guest_id)
        if guest is not None:
            guest.active_at = self.clock()
            self._live.move_to_end(guest_id)

    def pages_from(self, ip: str) -> int:
        return self._per_ip.get(ip, 0)

    def attach(self, guest_id: str, page: int, ip: str) -> None:
        guest = self._live.get(guest_id)
        if guest is not None:
            guest.pages.add(page)
            self._pages[page] = (guest_id, ip)
            self._per_ip[ip] = self._per_ip.get(ip, 0) + 1

    def detach(self, page: int) -> None:
        """A page closed: its guest's idle time counts from now (they may be reconnecting)."""
        guest_id, ip = self._pages.pop(page, ("", ""))
        if not guest_id:
            return
        if self._per_ip.get(ip, 0) <= 1:
            self._per_ip.pop(ip, None)
        else:
            self._per_ip[ip] -= 1
        guest = self._live.get(guest_id)
        if guest is not None:
            guest.pages.discard(page)
            self.touch(guest_id)

    def idle(self) -> list[Guest]:
        """The guests silent for ``idle_s`` or more, pages open or not (least recently active first)."""
        cutoff = self.clock() - self.idle_s
        out = []
        for guest in self._live.values():  # in activity order: stop at the first recent one
            if guest.active_at > cutoff:
                break
            out.append(guest)
        return out

    def remove(self, guest_id: str) -> Guest | None:
        """Forget ``guest_id``; their pages stay counted until they are detached (closed)."""
        return self._live.pop(guest_id, None)


@dataclass(frozen=True)
class Limit:
    key: str          # what is counted: "guest:<id>", "ip:<address>"...
    count: int        # at most this many...
    window_s: float   # ...per this many seconds
    refusal: str      # the line for the page, "{wait}" replaced by when to try again


class Windows:
    """Sliding windows by key: each ``Limit`` allows ``count`` events per ``window_s``."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self._times: dict[str, tuple[float, deque[float]]] = {}  # key -> (window_s, event times)

    def __len__(self) -> int:
        return len(self._times)

    def take(self, limits: Iterable[Limit]) -> str | None:
        """One event in every window, or in none: None when taken, else the first full one's refusal."""
        now = self.clock()
        limits = list(limits)
        for limit in limits:
            _window, times = self._times.get(limit.key, (limit.window_s, deque()))
            while times and now - times[0] >= limit.window_s:
                times.popleft()
            if len(times) >= limit.count:
                return limit.refusal.replace("{wait}", _wait(times[0] + limit.window_s - now))
        for limit in limits:
            self._times.setdefault(limit.key, (limit.window_s, deque()))[1].append(now)
        return None

    def forget(self, *keys: str) -> None:
        for key in keys:
            self._times.pop(key, None)

    def sweep(self) -> None:
        """Drop the windows with nothing left in them (a flood of addresses cannot grow memory)."""
        now = self.clock()
        for key in [k for k, (window_s, times) in self._times.items() if not times or now - times[-1] >= window_s]:
            del self._times[key]


# The core counts a request a moment after the page's message came in: the web chat's copy of
# the core's window is this much longer, so it never lets through a message the core would refuse.
_CORE_WINDOW_MARGIN_S = 1.0


def limit_keys(guest_id: str) -> tuple[str, ...]:
    """The windows kept for one guest: theirs, and the copy of the core's."""
    return f"guest:{guest_id}", f"core:{guest_id}"


def message_limits(settings, guest_id: str, ip: str) -> list[Limit]:
    """The windows a guest's message must fit: ``[web] rate_limit``, ``[bot] user_rate_limit`` (what
    the core would answer: a message past it would be recorded and never answered), and when
    public ``[web] ip_rate_limit`` for their address."""
    web, bot = settings.web, settings.bot
    mine, core = limit_keys(guest_id)
    refusal = "slow down: at most {count} messages {per}; try again in {{wait}}"
    limits = [Limit(mine, web.rate_limit, web.rate_window_s,
                    refusal.format(count=web.rate_limit, per=per(web.rate_window_s))),
              Limit(core, bot.user_rate_limit, bot.user_rate_window_s + _CORE_WINDOW_MARGIN_S,
                    refusal.format(count=bot.user_rate_limit, per=per(bot.user_rate_window_s)))]
    if web.public:
        limits.append(Limit(f"ip:{ip}", web.ip_rate_limit, web.rate_window_s,
                            "slow down: too many messages from your address; try again in {wait}"))
    return limits


def _wait(seconds: float) -> str:
    if seconds <= 10:
        return "a few seconds"
    if seconds <= 90:  # a window of a minute, and the margin the web chat adds to the bot's
        return "a minute"
    return f"{math.ceil(seconds / 60)} minutes"


def per(window_s: float) -> str:
    """``window_s`` as the page says it: "a minute", "per 30 s"."""
    return "a minute" if window_s == 60 else "an hour" if window_s == 3600 else f"per {window_s:g} s"


@functools.lru_cache(maxsize=8)
def _networks(trusted: tuple[str, ...]) -> tuple:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in trusted)


def _address(text: str):
    try:
        return ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None


def client_ip(peer: str, forwarded_for: str, trusted: Sequence[str]) -> str:
    """The client's address: ``peer``, or when ``peer`` is a trusted proxy, the right-most address of
    ``X-Forwarded-For`` that no trusted proxy added (what a client writes there itself comes first,
    so only the proxies' own additions are believed). A malformed header is not believed at all."""
    networks = _networks(tuple(trusted))
    peer_address = _address(peer)
    if peer_address is None or not forwarded_for or not any(peer_address in net for net in networks):
        return peer
    chain = [_address(part) for part in forwarded_for.split(",")]
    if not chain or any(address is None for address in chain):
        return peer
    for address in reversed(chain):
        if not any(address in net for net in networks):
            return str(address)
    return str(chain[0])  # every hop is a proxy of ours: the first one is the client
