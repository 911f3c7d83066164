"""The Telegram adapter (python-telegram-bot): private chats, groups, supergroups, forum topics.

Thin by design: updates become ``Incoming`` events for ``BotCore.handle``; ``send_text`` and
``send_typing`` call the Bot API. Channel keys are ``telegram:<chat id>`` and, for a message in
a forum topic, ``telegram:<chat id>:<topic id>``, so each topic is its own conversation and the
reply goes back into the same topic.

Works with privacy mode on (the bot then only sees commands, mentions and replies to it, so only
those are recorded) and off (it sees and records everything). PTB's ``AIORateLimiter`` is on and
retries floods (429 with ``retry_after``); typing actions bypass it, because they do not count
against Telegram's message limits and would otherwise eat a group's 20 messages a minute.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from telegram import BotCommand, MessageEntity, ReplyParameters, Update
from telegram.constants import ChatAction, ChatType
from telegram.error import BadRequest, Forbidden, InvalidToken
from telegram.ext import AIORateLimiter, Application, ContextTypes, MessageHandler, filters

from bot.platform import CommandSpec, Incoming, Platform, RateLimit, SendFailed
from doppel.errors import ConfigError
from doppel.logs import guard_secret

log = logging.getLogger(__name__)

API_URL = "https://api.telegram.org/bot"
FILE_URL = "https://api.telegram.org/file/bot"


class _RateLimiter(AIORateLimiter):
    """PTB's limiter, except for typing actions (not messages, and cheap to lose)."""

    async def process_request(self, callback, args, kwargs, endpoint, data, rate_limit_args):
        if endpoint == "sendChatAction":
            return await callback(*args, **kwargs)
        return await super().process_request(callback, args, kwargs, endpoint, data, rate_limit_args)


def _utf16_len(text: str) -> int:
    """Telegram counts message length in UTF-16 code units (an emoji outside the BMP is two)."""
    return len(text.encode("utf-16-le")) // 2


class TelegramBot(Platform):
    name = "telegram"
    max_message_chars = 4096
    typing_lifetime_s = 5.0
    channel_limits = (RateLimit(1, 1.0),)        # about one message a second per chat
    group_limits = (RateLimit(20, 60.0),)        # and 20 a minute in a group
    global_limits = (RateLimit(30, 1.0),)        # 30 a second across all chats

    def __init__(self, token: str, *, base_url: str = API_URL, base_file_url: str = FILE_URL,
                 poll_timeout_s: float = 10.0, max_retries: int = 5, limits: dict | None = None):
        guard_secret(token)
        self.poll_timeout_s = poll_timeout_s
        for attribute, value in (limits or {}).items():  # tests scale the platform limits down
            setattr(self, attribute, value)
        limiter = _RateLimiter(max_retries=max_retries)
        self.app = (Application.builder().token(token).base_url(base_url).base_file_url(base_file_url)
                    .rate_limiter(limiter).get_updates_read_timeout(poll_timeout_s + 5).build())
        self.bot_id = 0
        self._core = None

    def measure(self, text: str) -> int:
        return _utf16_len(text)

    def chat_type_of(self, channel: str) -> str:
        # Private chats have the user's (positive) id; groups and supergroups negative ones.
        return "group" if self._parse(channel)[0] < 0 else "dm"

    # -- lifecycle ---------------------------------------------------------------------------------
    async def connect(self) -> None:
        try:
            await self.app.initialize()  # getMe
        except InvalidToken:
            raise ConfigError("Telegram refused the bot token (DOPPEL_TELEGRAM_TOKEN)") from None
        me = self.app.bot.bot
        self.bot_id, self.username = me.id, me.username or ""
        self.display_name = me.first_name

    async def listen(self, core) -> None:
        self._core = core
        self.app.add_handler(MessageHandler(filters.TEXT, self._on_update))
        await self.app.start()
        await self.app.updater.start_polling(
            timeout=int(self.poll_timeout_s), allowed_updates=["message", "edited_message"],
            error_callback=lambda exc: log.warning("telegram: polling failed (%s); retrying", exc),
        )

    async def close(self) -> None:
        if self.app.updater is not None and self.app.updater.running:
            await self.app.updater.stop()
        if self.app.running:
            await self.app.stop()
        await self.app.shutdown()

    # -- incoming ----------------------------------------------------------------------------------
    async def _on_update(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        event = self.incoming(update)
        if event is not None and self._core is not None:
            await self._core.handle(event)

    def incoming(self, update: Update) -> Incoming | None:
        message = update.effective_message
        chat, user = update.effective_chat, getattr(message, "from_user", None)
        if message is None or chat is None or user is None or not message.text or chat.type == ChatType.CHANNEL:
            return None
        group = chat.type != ChatType.PRIVATE
        # Replies in a plain supergroup carry a thread id too; only forum topics are conversations.
        topic = str(message.message_thread_id) if message.is_topic_message and message.message_thread_id else ""
        mentioned = any(
            (entity.type == MessageEntity.MENTION and text.lower() == f"@{self.username}".lower())
            or (entity.type == MessageEntity.TEXT_MENTION and entity.user and entity.user.id == self.bot_id)
            for entity, text in message.parse_entities([MessageEntity.MENTION, MessageEntity.TEXT_MENTION]).items()
        )
        replied = message.reply_to_message
        # In a topic, a message "replies" to the topic's creation message: that is not a reply to us.
        replies_to_me = bool(replied and replied.from_user and replied.from_user.id == self.bot_id
                             and not replied.forum_topic_created)
        return Incoming(
            platform=self.name, channel=f"telegram:{chat.id}" + (f":{topic}" if topic else ""),
            chat_type="group" if group else "dm", author_id=str(user.id), author_name=user.full_name,
            text=message.text, message_id=str(message.message_id), at=message.date.timestamp(),
            is_bot=user.is_bot, is_self=user.id == self.bot_id, mentions_me=mentioned,
            replies_to_me=replies_to_me, edited=update.edited_message is not None, thread=topic,
            chat_ids=(str(chat.id),) if group else (),
        )

    # -- outgoing ----------------------------------------------------------------------------------
    @staticmethod
    def _parse(channel: str) -> tuple[int, int | None]:
        _, chat, *topic = channel.split(":")
        return int(chat), (int(topic[0]) if topic else None)

    async def send_text(self, channel: str, text: str, *, reply_to: str = "") -> str:
        chat, topic = self._parse(channel)
        reply = ReplyParameters(message_id=int(reply_to), allow_sending_without_reply=True) if reply_to else None
        try:
            message = await self.app.bot.send_message(chat, text, message_thread_id=topic, reply_parameters=reply)
        except (Forbidden, BadRequest) as exc:  # kicked, blocked, chat or topic gone: retrying cannot help
            raise SendFailed(str(exc)) from exc
        return str(message.message_id)

    async def send_typing(self, channel: str) -> None:
        chat, topic = self._parse(channel)
        await self.app.bot.send_chat_action(chat, ChatAction.TYPING, message_thread_id=topic)

    async def register_commands(self, commands: Sequence[CommandSpec]) -> None:
        owner = ", ".join(spec.name for spec in commands if spec.owner_only)
        await self.app.bot.set_my_commands([
            BotCommand("clone", f"Owner controls: {owner}"[:256]),
            BotCommand("about", "What this bot is"),
        ])

    async def owner_channel(self, user_id: str) -> str | None:
        # A private chat's id is the user's id (the owner must have started the bot once).
        return f"telegram:{user_id}"
