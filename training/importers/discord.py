"""DiscordChatExporter JSON: one channel (server channel, DM or group DM) per file, streamed.

The file is ``{guild, channel{id, type, name}, dateRange, messages[], messageCount}``. Messages of
type Default and Reply are what people said; every other type (joins, pins, calls, renames,
thread notices) is SYSTEM. A message with only stickers is a STICKER (its name), attachments make
MEDIA with the text as caption, and ``reference.messageId`` is the reply target. The owner is
matched on the author's id, user name or server nickname.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from training.importers.base import Source, clean_name, clean_text, text_kind
from training.importers.json_stream import JsonStream
from training.importers.messages import Kind, Message

_SPOKEN = frozenset({"Default", "Reply"})
_DM_CHANNELS = frozenset({"DirectTextChat"})


def parse(src: Source) -> Iterator[Message]:
    try:
        handle = src.path.open("rb")
    except OSError as exc:
        raise src.error(None, f"cannot read: {exc.strerror or exc}") from None
    with handle:
        stream = JsonStream(handle, src.name)
        if stream.peek_type() != "object":
            raise src.error(None, "is not a DiscordChatExporter export (expected a JSON object at the top)")
        guild: dict[str, Any] = {}
        channel: dict[str, Any] = {}
        found = False
        for key in stream.object_items():
            if key in ("guild", "channel"):
                value = stream.value()
                if not isinstance(value, dict):
                    raise src.error(key, "is not a JSON object")
                (guild if key == "guild" else channel).update(value)
            elif key == "messages":
                found = True
                if not channel:
                    raise src.error("messages", "comes before 'channel': not a DiscordChatExporter file")
                chat = _chat(guild, channel)
                if stream.peek_type() != "array":
                    raise src.error("messages", "is not a list")
                for index in stream.array_items():
                    message = _convert(stream.value(), f"messages[{index}]", src, chat)
                    if message is not None:
                        yield message
            else:
                stream.skip()
        stream.finish()
    if not found:
        raise src.error(None, "has no 'messages' list: not a DiscordChatExporter JSON export")


def _chat(guild: dict[str, Any], channel: dict[str, Any]) -> tuple[str, str, str]:
    kind = str(channel.get("type") or "")
    name = clean_name(str(channel.get("name") or "")) or f"channel {channel.get('id', '')}"
    if kind.startswith("Direct"):
        chat_name = name
    else:
        guild_name = clean_name(str(guild.get("name") or ""))
        chat_name = f"{guild_name} #{name}" if guild_name else f"#{name}"
    return str(channel.get("id", "")), chat_name, "dm" if kind in _DM_CHANNELS else "group"


def _convert(record: Any, where: str, src: Source, chat: tuple[str, str, str]) -> Message | None:
    src.stats.records += 1
    if not isinstance(record, dict):
        raise src.error(where, "a message is not a JSON object")
    author = record.get("author")
    if not isinstance(author, dict):
        raise src.error(where, "has no 'author' object")
    stamp = record.get("timestamp")
    try:
        timestamp = datetime.fromisoformat(str(stamp))
    except ValueError:
        raise src.error(where, f"timestamp {stamp!r} is not an ISO date-time") from None
    if timestamp.tzinfo is None:
        timestamp = timestamp.replace(tzinfo=src.tz) if src.tz else timestamp.astimezone()
    sender_id = str(author.get("id") or "")
    user_name = src.person(str(author.get("name") or ""))
    nickname = src.person(str(author.get("nickname") or ""))
    text = clean_text(str(record.get("content") or ""))
    extra: dict[str, Any] = {}
    if author.get("isBot"):
        extra["bot"] = True
    kind_name = str(record.get("type") or "Default")
    stickers = record.get("stickers") or []
    attachments = record.get("attachments") or []
    if kind_name not in _SPOKEN:
        kind = Kind.SYSTEM
        text = text or kind_name
        extra["type"] = kind_name
    elif stickers and not text:
        kind = Kind.STICKER
        text = ", ".join(str(s.get("name", "")) for s in stickers if isinstance(s, dict)) or "[sticker]"
    elif attachments:
        kind = Kind.MEDIA
        extra["media"] = [str(a.get("fileName", "")) for a in attachments if isinstance(a, dict)]
    elif not text and record.get("embeds"):
        kind = Kind.MEDIA
        extra["media"] = "embed"
    else:
        kind = text_kind(text)
    reference = record.get("reference")
    reply_to = str(reference.get("messageId") or "") if isinstance(reference, dict) else ""
    chat_id, chat_name, chat_type = chat
    return Message(platform="discord", chat_id=chat_id, chat_name=chat_name, chat_type=chat_type,
                   sender_id=sender_id, sender_name=nickname or user_name or sender_id,
                   is_owner=bool(src.owner) and src.owner.matches(sender_id, user_name, nickname),
                   timestamp=timestamp, text=text, kind=kind, message_id=str(record.get("id", "")),
                   reply_to=reply_to, source=src.where(where), extra=extra)
