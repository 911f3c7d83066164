"""The one place Doppel builds Redis clients: async ones for the event-loop processes, sync ones for the CLI.

Every client decodes replies to ``str`` (the relay's fields are text) and checks its connection
before use after an idle spell, so a restarted Redis is noticed on the next command instead of as
a hang. ``redis`` is imported when a client is made: ``doppel --help`` never loads it.
"""

from __future__ import annotations

# Seconds idle before a client pings before its next command.
HEALTH_CHECK_INTERVAL_S = 10


def async_client(url: str, **options):
    """A ``redis.asyncio.Redis`` for ``url`` (the worker, the bots, the web chat, tests)."""
    import redis.asyncio as aioredis

    options = {"decode_responses": True, "health_check_interval": HEALTH_CHECK_INTERVAL_S, **options}
    return aioredis.Redis.from_url(url, **options)


def sync_client(url: str, **options):
    """A blocking ``redis.Redis`` for ``url`` (CLI commands, the registry, the job runner)."""
    import redis

    options = {"decode_responses": True, "health_check_interval": HEALTH_CHECK_INTERVAL_S, **options}
    return redis.Redis.from_url(url, **options)
