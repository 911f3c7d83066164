"""Running one bot process: the platform adapter for a name, and ``run_bot``, which connects it to the
relay through the shared core, serves until told to stop and shuts down in order.

The click commands (``bot/cli.py``), the terminal chat and the web chat all start bots through here;
so do the tests, against fake platforms: ``tests/bot/test_discord_bot.py`` and
``tests/bot/test_telegram_bot.py`` (start, serve, ordered shutdown).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from bot.core import BotCore
from bot.relay_client import RelayClient
from doppel.redis_client import async_client

log = logging.getLogger(__name__)


def instance_name(settings, platform: str) -> str:
    """The relay's name for this bot process: ``[bot] name`` and the platform, e.g. "main-telegram"."""
    return f"{settings.bot.name}-{platform}"


def make_platform(name: str, token: str):
    """The adapter for ``discord`` or ``telegram``; only the library of the one in use is imported.

    (The web chat and the terminal chat build their own platforms: ``bot/webchat``, ``bot/terminal.py``.)
    """
    if name == "discord":
        from bot.discord_bot import DiscordBot

        return DiscordBot(token)
    from bot.telegram_bot import TelegramBot

    return TelegramBot(token)


async def run_bot(settings, url: str, platform, *, stop: asyncio.Event, drain_s: float = 10.0,
                  on_started=None, **core_options) -> None:
    """Connect ``platform``, serve until ``stop`` is set, then shut down in order (tests use this too)."""
    redis = async_client(url)
    core = None
    try:
        await platform.connect()
        # One reply stream per platform process: "main-telegram" and "main-discord" can share a
        # config and a Redis without taking each other's replies.
        client = RelayClient.from_settings(redis, settings, bot=instance_name(settings, platform.name))
        core = BotCore(platform, client, settings, redis_url=url, **core_options)
        await core.start()
        await platform.listen(core)
        log.info("%s bot %r is listening (owner ids: %d)", platform.name, settings.bot.name, len(core.owner_ids))
        if on_started is not None:
            on_started(core)  # tests get the running core
        await stop.wait()
    finally:
        # The core first, while the platform can still post what is queued; then the platform.
        if core is not None:
            with contextlib.suppress(Exception):
                await core.stop(drain_s)
        await platform.close()
        await redis.aclose()
