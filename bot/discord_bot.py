"""The Discord adapter (discord.py): guild text channels, threads and DMs, plus slash commands.

Thin by design: gateway messages become ``Incoming`` events for ``BotCore.handle``;
``send_text`` and ``send_typing`` go through discord.py's HTTP client, which queues on Discord's
rate limits (429s included). A thread is a channel of its own in Discord, so the channel key is
``discord:<channel id>`` for channels, threads and DMs alike; a thread's parent and the server
are kept as ``chat_ids`` for the allowlist.

Needs the privileged *Message Content* intent (Developer Portal → Bot), or every message's text
arrives empty. The clone never pings anyone: ``@everyone``, roles and users in its replies stay
inert; only the person it replies to is notified, as with a human reply.

``/clone`` is registered as an application command group (one subcommand per owner command,
each with a free-text ``args``), answered ephemerally, so the owner's commands are not shown to
the chat; ``/about`` is public. Typed ``/clone ...`` text works as well.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

import discord
from discord import app_commands

from bot.pacing import split_message
from bot.platform import CommandSpec, Incoming, Platform, RateLimit, SendFailed
from doppel.errors import ConfigError
from doppel.logs import guard_secret

log = logging.getLogger(__name__)

_ANSWERED_TYPES = (discord.MessageType.default, discord.MessageType.reply)


class _Client(discord.Client):
    """A discord.Client that hands messages to the adapter."""

    def __init__(self, adapter: DiscordBot, **options):
        super().__init__(**options)
        self.adapter = adapter

    async def on_message(self, message: discord.Message) -> None:
        await self.adapter._on_message(message)


class DiscordBot(Platform):
    name = "discord"
    max_message_chars = 2000
    typing_lifetime_s = 10.0
    channel_limits = (RateLimit(5, 5.0),)   # 5 messages per 5 s per channel
    global_limits = (RateLimit(50, 1.0),)   # 50 requests a second per bot

    def __init__(self, token: str, *, ready_timeout_s: float = 60.0, limits: dict | None = None, **client_options):
        guard_secret(token)
        self._token = token
        self.ready_timeout_s = ready_timeout_s
        for attribute, value in (limits or {}).items():  # tests scale the platform limits down
            setattr(self, attribute, value)
        # Text only: discord.py's warnings about missing voice libraries are noise here.
        discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False
        intents = discord.Intents.default()  # guilds, guild and DM messages
        intents.message_content = True
        self.client = _Client(self, intents=intents, allowed_mentions=discord.AllowedMentions(
            everyone=False, users=False, roles=False, replied_user=True), **client_options)
        self.tree = app_commands.CommandTree(self.client)
        self._core = None
        self._runner: asyncio.Task | None = None

    # -- lifecycle ---------------------------------------------------------------------------------
    async def connect(self) -> None:
        try:
            await self.client.login(self._token)  # /users/@me and the application's id
        except discord.LoginFailure:
            raise ConfigError("Discord refused the bot token (DOPPEL_DISCORD_TOKEN)") from None
        user = self.client.user
        self.username, self.display_name = user.name, user.global_name or user.name

    async def listen(self, core) -> None:
        self._core = core
        self._runner = asyncio.create_task(self.client.connect(reconnect=True), name="discord:gateway")
        ready = asyncio.create_task(self.client.wait_until_ready())
        done, _ = await asyncio.wait({ready, self._runner}, timeout=self.ready_timeout_s,
                                     return_when=asyncio.FIRST_COMPLETED)
        if ready not in done:
            ready.cancel()
            if self._runner in done:
                try:
                    self._runner.result()  # raise what stopped the gateway
                except discord.PrivilegedIntentsRequired:
                    raise ConfigError("Discord refused the Message Content intent: turn it on in the Developer "
                                      "Portal (your application → Bot → Privileged Gateway Intents)") from None
            raise TimeoutError(f"Discord gateway not ready after {self.ready_timeout_s:.0f}s")

    async def close(self) -> None:
        await self.client.close()
        if self._runner is not None:
            await asyncio.gather(self._runner, return_exceptions=True)

    # -- incoming ----------------------------------------------------------------------------------
    async def _on_message(self, message: discord.Message) -> None:
        event = self.incoming(message)
        if event is not None and self._core is not None:
            await self._core.handle(event)

    def incoming(self, message: discord.Message) -> Incoming | None:
        if message.type not in _ANSWERED_TYPES or not message.content:
            return None
        me = self.client.user
        channel = message.channel
        group = message.guild is not None
        chat_ids: tuple[str, ...] = ()
        if group:
            chat_ids = (str(channel.id), str(message.guild.id))
            if isinstance(channel, discord.Thread) and channel.parent_id:
                chat_ids += (str(channel.parent_id),)
        reference = message.reference.resolved if message.reference else None
        return Incoming(
            platform=self.name, channel=f"discord:{channel.id}", chat_type="group" if group else "dm",
            author_id=str(message.author.id), author_name=message.author.display_name,
            # "<@123>" reads as "@Name" in the history and in prompts.
            text=message.clean_content, message_id=str(message.id), at=message.created_at.timestamp(),
            is_bot=message.author.bot, is_self=me is not None and message.author.id == me.id,
            mentions_me=me is not None and any(user.id == me.id for user in message.mentions),
            replies_to_me=isinstance(reference, discord.Message) and me is not None and reference.author.id == me.id,
            thread=str(channel.id) if isinstance(channel, discord.Thread) else "", chat_ids=chat_ids,
        )

    async def _on_app_command(self, interaction: discord.Interaction, name: str, args: str) -> None:
        user = interaction.user
        event = Incoming(
            platform=self.name, channel=f"discord:{interaction.channel_id}",
            chat_type="group" if interaction.guild_id else "dm", author_id=str(user.id),
            author_name=user.display_name, text=f"/clone {name} {args}".strip(), message_id="", at=time.time(),
        )
        answer = await self._core.commands.run(event, name, args) if self._core else "The bot is starting."
        pieces = split_message(answer or "Done.", self.max_message_chars)
        await interaction.response.send_message(pieces[0], ephemeral=name != "about")

    # -- outgoing ----------------------------------------------------------------------------------
    def _channel(self, channel: str):
        channel_id = int(channel.rsplit(":", 1)[1])
        return self.client.get_channel(channel_id) or self.client.get_partial_messageable(channel_id)

    def chat_type_of(self, channel: str) -> str:
        target = self.client.get_channel(int(channel.rsplit(":", 1)[1]))
        return "dm" if isinstance(target, discord.DMChannel) else "group"

    async def send_text(self, channel: str, text: str, *, reply_to: str = "") -> str:
        target = self._channel(channel)
        reference = None
        if reply_to:
            reference = discord.MessageReference(message_id=int(reply_to), channel_id=target.id,
                                                 fail_if_not_exists=False)
        try:
            message = await target.send(text, reference=reference)
        except (discord.Forbidden, discord.NotFound) as exc:  # no access, channel gone: retrying cannot help
            raise SendFailed(str(exc)) from exc
        except discord.HTTPException as exc:
            if 400 <= exc.status < 500:  # 429s were already waited out by discord.py
                raise SendFailed(str(exc)) from exc
            raise
        return str(message.id)

    async def send_typing(self, channel: str) -> None:
        await self._channel(channel).typing()

    async def owner_channel(self, user_id: str) -> str | None:
        user = self.client.get_user(int(user_id)) or await self.client.fetch_user(int(user_id))
        dm = user.dm_channel or await user.create_dm()
        return f"discord:{dm.id}"

    async def register_commands(self, commands: Sequence[CommandSpec]) -> None:
        self.tree.clear_commands(guild=None)
        group = app_commands.Group(name="clone", description="Control the clone (owner only)")
        for spec in commands:
            group.add_command(self._app_command(spec, parent=group))
        self.tree.add_command(group)
        for spec in commands:
            if not spec.owner_only:
                self.tree.add_command(self._app_command(spec, parent=None))
        await self.tree.sync()

    def _app_command(self, spec: CommandSpec, parent: app_commands.Group | None) -> app_commands.Command:
        async def callback(interaction: discord.Interaction, args: str = "") -> None:
            await self._on_app_command(interaction, spec.name, args)

        callback = app_commands.describe(args=(spec.usage or "(nothing needed)")[:100])(callback)
        return app_commands.Command(name=spec.name, description=spec.description[:100], callback=callback,
                                    parent=parent)
