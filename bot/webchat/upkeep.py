"""Letting the web chat's guests go, so a page shared with thousands keeps a bounded state.

A guest holds, while here: their pages (a queue and a writer task each, plus aiohttp's socket
task), their DM's backlog on the platform, their place in the line (``bot/webchat/line.py``),
their rate windows (``bot/webchat/guests.py``), and in the core, for their DM: a
``ChannelSender`` (its send task and typing task), a lock, the chat type and their per-user
rate window and refusal time in ``Triggers``; in Redis, the DM's history and its sequence
counter, its reply order list and its settings hash. ``let_go`` drops all of it: pages closed
with a ``bye`` event, the rest deleted. ``BotCore`` has no public way to forget a channel (on
Discord or Telegram its channels are a bounded set), so ``drop_core_state`` reaches into it,
here and nowhere else.

``sweep`` lets go, every ``idle_s / 4`` (at most 30 s), each guest silent for ``[web]
guest_idle_s``, unless a reply is still on its way to them (then at the latest ``order_wait_s``
later), and stops any channel sender the core made for a guest who is gone (a reply that came
late). ``log_stats`` writes the ``web: stats`` line for load tests (``[web] stats_every_s``).

Tested in ``tests/bot/webchat/test_guests.py`` (every structure counted before and after).
"""

from __future__ import annotations

import asyncio
import logging

from bot.webchat.guests import DM_PREFIX, GUEST_PREFIX, limit_keys
from doppel.history import seq_key

log = logging.getLogger(__name__)

BYE = {"type": "bye", "message": "You were away for a while, so the chat let you go. Join again to come back."}


def user_key(platform, guest_id: str) -> str:
    """The core's name for a user in its rate windows (``BotCore.handle``: "platform:author")."""
    return f"{platform.name}:{guest_id}"


def gone(platform, channel: str) -> bool:
    """``channel`` is the DM of a guest who was let go."""
    return channel.startswith(DM_PREFIX + GUEST_PREFIX) and channel.removeprefix(DM_PREFIX) not in platform.guests


def awaits_reply(platform, guest_id: str) -> bool:
    """Whether a reply is still on its way to ``guest_id``: queued to post, or awaited from the worker."""
    channel = DM_PREFIX + guest_id
    return (platform.core is not None and held(platform.core, channel)) or \
        (platform.line is not None and channel in platform.line.watched)


def held(core, channel: str) -> bool:
    """Whether the core still has something for ``channel``: a reply queued to post or awaited."""
    sender = core._senders.get(channel)
    return sender is not None and (not sender.idle or bool(sender._waiting))


async def drop_core_state(core, channel: str, user: str) -> None:
    """Forget ``channel`` (and ``user``'s windows) in the core: its sender's tasks end."""
    sender = core._senders.pop(channel, None)
    if sender is not None:
        await sender.close()
    lock = core._locks.get(channel)
    if lock is not None and not lock.locked():
        del core._locks[channel]
    core._chat_types.pop(channel, None)
    core.triggers._user_requests.pop(user, None)
    core.triggers._refused_at.pop(user, None)


async def let_go(platform, guest_id: str, reason: str = "idle", *, dropped: bool = False) -> None:
    """Drop every structure ``guest_id`` holds (module docstring), their pages told why.

    ``dropped``: ``Guests.admit`` already gave their place to a newcomer; should they have come
    back since, what they hold is theirs again and stays."""
    if dropped and guest_id in platform.guests:
        return
    guest = platform.guests.remove(guest_id)
    channel = DM_PREFIX + guest_id
    for page in list(guest.pages if guest is not None else ()):
        platform.close_page(page, BYE)
    platform.backlogs.forget(channel)
    platform.limits.forget(*limit_keys(guest_id))
    if platform.line is not None:
        platform.line.forget(channel)
    core = platform.core
    if core is None:
        return
    await drop_core_state(core, channel, user_key(platform, guest_id))
    keys, bot = core.keys, core.client.bot
    await core.redis.delete(keys.history(channel), seq_key(keys, channel), keys.channel_order(bot, channel),
                            keys.channel_settings(channel))
    log.info("web: let guest %s go (%s)", guest_id, reason)


async def let_go_idle(platform) -> int:
    """One sweep (module docstring); returns how many guests were let go."""
    core = platform.core
    overdue_s = platform.guests.idle_s + platform.settings.bot.order_wait_s
    count = 0
    for guest in platform.guests.idle():
        silent_s = platform.guests.clock() - guest.active_at
        if guest.id not in platform.guests or silent_s < platform.guests.idle_s:
            continue  # left, or spoke again, while the guests before them were let go
        if awaits_reply(platform, guest.id) and silent_s < overdue_s:
            continue
        await let_go(platform, guest.id)
        count += 1
    if core is not None:
        for channel in [c for c in core._senders if c.startswith(DM_PREFIX + GUEST_PREFIX)]:
            if channel.removeprefix(DM_PREFIX) not in platform.guests and not held(core, channel):
                await drop_core_state(core, channel, user_key(platform, channel.removeprefix(DM_PREFIX)))
    platform.limits.sweep()
    return count


async def sweep(platform) -> None:
    every_s = min(max(platform.guests.idle_s / 4, 0.05), 30.0)
    while True:
        await asyncio.sleep(every_s)
        try:
            await let_go_idle(platform)
        except asyncio.CancelledError:
            raise
        except Exception:  # boundary: Redis restarting; the next sweep tries again
            log.exception("web: letting idle guests go failed")


async def log_stats(platform, every_s: float) -> None:
    """A ``web: stats`` line every ``every_s``: what a load test reads to see the state stay flat."""
    while True:
        await asyncio.sleep(every_s)
        core = platform.core
        log.info("web: stats: tasks=%d pages=%d guests=%d senders=%d windows=%d", len(asyncio.all_tasks()),
                 len(platform._pages), len(platform.guests), len(core._senders) if core else 0,
                 len(platform.limits))
