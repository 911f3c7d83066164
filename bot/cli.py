"""``doppel bot``: run the Discord or the Telegram bot, or check the bot settings.

A bot process is light: Redis (the configured one, or the embedded one under ``data_dir``), the
relay client, the shared core and one platform adapter; no model. Tokens come only from the
environment (``Settings.token``) and are masked in every log record from the moment they are read.
Each platform runs in its own process under its own relay name (``[bot] name`` plus the platform,
e.g. ``main-telegram``), so both can run from one config. SIGINT/SIGTERM stop it cleanly:
replies already queued are posted (up to ``drain_s``), and replies the worker writes meanwhile
wait in the bot's reply stream for the next start.

Tested through real processes: ``tests/bot/webchat/test_platform.py`` (``bot web``),
``tests/bot/test_openai_api.py`` (``bot openai``), ``tests/deploy/test_deploy.py`` (``bot check``).
"""

from __future__ import annotations

import click

from doppel.errors import DoppelError
from doppel.runtime import run_until_signal

PLATFORMS = ("discord", "telegram")


@click.group()
def bot() -> None:
    """Chat-platform bots (Discord, Telegram): relay messages to the worker, post replies."""


@bot.command("check")
@click.pass_obj
def bot_check(app) -> None:
    """Validate the bot settings and that each enabled platform's token is in the environment."""
    settings = app.settings
    enabled = [p for p in PLATFORMS if getattr(settings, p).enabled]
    if not enabled:
        raise DoppelError(f"{settings.source}: no platform is enabled (set discord.enabled or telegram.enabled = true)")
    for platform in enabled:
        settings.token(platform)
    click.echo(f"bot '{settings.bot.name}': {', '.join(enabled)} configured; tokens present")


@bot.command("discord")
@click.pass_obj
def bot_discord(app) -> None:
    """Run the Discord bot until Ctrl-C (needs $DOPPEL_DISCORD_TOKEN and a running worker)."""
    _run(app.settings, "discord")


@bot.command("telegram")
@click.pass_obj
def bot_telegram(app) -> None:
    """Run the Telegram bot until Ctrl-C (needs $DOPPEL_TELEGRAM_TOKEN and a running worker)."""
    _run(app.settings, "telegram")


@bot.command("web")
@click.option("--port", type=click.IntRange(0, 65535), help="Port (default: [web] port; 0: any free one).")
@click.option("--no-friends", is_flag=True, help="No scripted friends talking in the group.")
@click.pass_obj
def bot_web(app, port: int | None, no_friends: bool) -> None:
    """Run the local web chat until Ctrl-C: a chat page on 127.0.0.1 with a DM with the clone and
    group channels (needs a running worker). Prints the owner's link (its key changes every start)."""
    from bot.webchat.platform import serve_web, web_settings
    from doppel.redis_server import redis_url

    settings = web_settings(app.settings, port=port, friends=False if no_friends else None)

    def started(platform) -> None:
        click.echo(f"web chat of bot '{settings.bot.name}': open {platform.owner_url}", err=True)
        click.echo(f"  that link makes you the owner (/clone commands); others join at {platform.url} as guests. "
                   "Ctrl-C stops it", err=True)

    with redis_url(settings) as url:
        run_until_signal(lambda stop: serve_web(settings, url, stop=stop, on_started=started))


def _run(settings, name: str) -> None:
    from bot.runtime import make_platform, run_bot
    from doppel.logs import guard_secret
    from doppel.redis_server import redis_url

    token = settings.token(name).get_secret_value()
    guard_secret(token)
    if not getattr(settings, name).owner_ids:
        click.echo(f"note: [{name}] owner_ids is empty, so nobody can use the /clone commands", err=True)
    platform = make_platform(name, token)

    def started(core) -> None:
        who = f"@{platform.username}" if platform.username else platform.display_name
        click.echo(f"{platform.name} bot '{settings.bot.name}' is running as {who}; Ctrl-C stops it", err=True)

    with redis_url(settings) as url:
        run_until_signal(lambda stop: run_bot(settings, url, platform, stop=stop, on_started=started))


@bot.command("openai")
@click.option("--host", help="Address to listen on (default: [openai] host, 127.0.0.1).")
@click.option("--port", type=click.IntRange(0, 65535), help="Port (default: [openai] port; 0: any free one).")
@click.pass_obj
def bot_openai(app, host: str | None, port: int | None) -> None:
    """Serve an OpenAI-compatible endpoint (/v1/models, /v1/chat/completions) until Ctrl-C.

    Each completion goes to the worker through the relay as a one-off chat: earlier messages
    become its history, `model` picks the adapter ("default" or a published one). The persona is
    the clone's own; system messages are ignored. With $DOPPEL_OPENAI_KEY set, clients must send
    it as a bearer token (needed to listen beyond 127.0.0.1). Needs a running worker.
    """
    import os

    from bot.openai_api import KEY_ENV, check_exposure, serve
    from doppel.logs import guard_secret
    from doppel.redis_server import redis_url

    settings = app.settings
    key = os.environ.get(KEY_ENV, "").strip()
    if key:
        guard_secret(key)
    check_exposure(host or settings.openai.host, key or None)

    def started(server) -> None:
        shown = host or settings.openai.host
        shown = f"[{shown}]" if ":" in shown else shown
        auth = f"; clients send ${KEY_ENV} as a bearer token" if key else ""
        click.echo(f"OpenAI-compatible endpoint of bot '{settings.bot.name}' on http://{shown}:{server.port}/v1"
                   f"{auth}; Ctrl-C stops it", err=True)

    with redis_url(settings) as url:
        run_until_signal(lambda stop: serve(settings, url, host=host, port=port, stop=stop, on_started=started))
