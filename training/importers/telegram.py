"""Telegram Desktop's machine-readable export (``result.json``): one chat, or the whole account.

A single-chat export is ``{name, type, id, messages}``; a full-account export has
``personal_information`` (whose ``user_id`` is the owner, so ``--owner`` is optional there) and
``chats.list`` / ``left_chats.list``. Both are streamed record by record. ``text`` is a string or a
list of strings and ``{type, text}`` entities; stickers become their emoji; service messages are
SYSTEM; ``forwarded_from`` makes a FORWARD (never the owner's own words); photos, voice messages
and files are MEDIA with their caption. Times come from ``date_unixtime`` (UTC) when present.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from training.importers.base import Owner, Source, clean_name, clean_text, from_epoch, text_kind
from training.importers.json_stream import JsonStream
from training.importers.messages import Kind, Message

_DM_TYPES = frozenset({"personal_chat", "bot_chat", "saved_messages"})


def parse(src: Source) -> Iterator[Message]:
    try:
        handle = src.path.open("rb")
    except OSError as exc:
        raise src.error(None, f"cannot read: {exc.strerror or exc}") from None
    with handle:
        stream = JsonStream(handle, src.name)
        if stream.peek_type() != "object":
            raise src.error(None, "is not a Telegram export (expected a JSON object at the top)")
        meta: dict[str, Any] = {}
        pending: list[tuple[str, Any]] = []
        found_messages = False
        for key in stream.object_items():
            if key == "personal_information":
                info = stream.value()
                if isinstance(info, dict) and info.get("user_id"):
                    src.owner = Owner([*src.owner.names, f"user{info['user_id']}"])
                    src.stats.owner_marked = True
            elif key in ("chats", "left_chats"):
                found_messages = True
                yield from _chat_list(stream, src)
            elif key == "messages":
                found_messages = True
                yield from _messages(stream, src, meta, pending)
            elif key in ("name", "type", "id"):
                meta[key] = stream.value()
            else:
                stream.skip()
        stream.finish()
        yield from _convert_pending(pending, src, meta)
    if not found_messages:
        raise src.error(None, "has no 'messages' or 'chats' list: not a Telegram Desktop JSON export")


def _chat_list(stream: JsonStream, src: Source) -> Iterator[Message]:
    if stream.peek_type() != "object":
        stream.skip()
        return
    for key in stream.object_items():
        if key != "list" or stream.peek_type() != "array":
            stream.skip()
            continue
        for _ in stream.array_items():
            if stream.peek_type() != "object":
                raise src.error(stream.where(), "a chat is not a JSON object")
            meta: dict[str, Any] = {}
            pending: list[tuple[str, Any]] = []
            for chat_key in stream.object_items():
                if chat_key == "messages":
                    yield from _messages(stream, src, meta, pending)
                elif chat_key in ("name", "type", "id"):
                    meta[chat_key] = stream.value()
                else:
                    stream.skip()
            yield from _convert_pending(pending, src, meta)


def _messages(stream: JsonStream, src: Source, meta: dict[str, Any],
              pending: list[tuple[str, Any]]) -> Iterator[Message]:
    if stream.peek_type() != "array":
        raise src.error(stream.where(), "'messages' is not a list")
    if "type" not in meta or "id" not in meta:
        # Telegram writes name/type/id before messages; a hand-edited file may not. Keep this
        # chat's raw records until the rest of its header has been read.
        pending.append((stream.where(), stream.value()))
        return
    chat = _chat(meta)
    base = stream.where()
    for index in stream.array_items():
        message = _convert(stream.value(), f"{base}[{index}]", src, chat)
        if message is not None:
            yield message


def _convert_pending(pending: list[tuple[str, Any]], src: Source, meta: dict[str, Any]) -> Iterator[Message]:
    chat = _chat(meta)
    for where, records in pending:
        if not isinstance(records, list):
            raise src.error(where, "'messages' is not a list")
        for index, record in enumerate(records):
            message = _convert(record, f"{where}[{index}]", src, chat)
            if message is not None:
                yield message


def _chat(meta: dict[str, Any]) -> tuple[str, str, str]:
    """(id, name, dm|group) of a chat from its header."""
    chat_id = str(meta.get("id", ""))
    name = clean_name(str(meta.get("name") or "")) or \
        ("Saved Messages" if meta.get("type") == "saved_messages" else f"chat {chat_id}")
    return chat_id, name, "dm" if meta.get("type") in _DM_TYPES else "group"


def _flatten(text: Any) -> str:
    if isinstance(text, str):
        return text
    if isinstance(text, list):
        return "".join(part if isinstance(part, str) else str(part.get("text", "")) if isinstance(part, dict)
                       else "" for part in text)
    return ""


def _convert(record: Any, where: str, src: Source, chat: tuple[str, str, str]) -> Message | None:
    src.stats.records += 1
    if not isinstance(record, dict):
        raise src.error(where, "a message is not a JSON object")
    chat_id, chat_name, chat_type = chat
    timestamp = _timestamp(record, where, src)
    service = record.get("type") == "service"
    sender_id = str(record.get("actor_id" if service else "from_id") or "")
    sender_name = src.person(str(record.get("actor" if service else "from") or "")) or "Deleted Account"
    text = clean_text(_flatten(record.get("text", "")) or _flatten(record.get("text_entities", [])))
    extra: dict[str, Any] = {}
    if service:
        kind = Kind.SYSTEM
        text = text or str(record.get("action", "service"))
        extra["action"] = record.get("action", "")
    elif record.get("type", "message") != "message":
        src.skip(f"record type {record.get('type')!r}")
        return None
    elif record.get("forwarded_from") is not None:
        kind = Kind.FORWARD
        extra["forwarded_from"] = str(record.get("forwarded_from") or "")
    elif record.get("media_type") == "sticker":
        kind = Kind.STICKER
        text = str(record.get("sticker_emoji") or "") or text or "[sticker]"
    elif record.get("media_type") or record.get("photo") or record.get("file") or \
            record.get("poll") or record.get("location_information") or record.get("contact_information"):
        kind = Kind.MEDIA
        extra["media"] = record.get("media_type") or ("photo" if record.get("photo") else
                                                      "file" if record.get("file") else "other")
    else:
        kind = text_kind(text)
    reply_to = record.get("reply_to_message_id")
    is_owner = bool(src.owner) and src.owner.matches(sender_id, sender_name)
    return Message(platform="telegram", chat_id=chat_id, chat_name=chat_name, chat_type=chat_type,
                   sender_id=sender_id, sender_name=sender_name, is_owner=is_owner, timestamp=timestamp,
                   text=text, kind=kind, message_id=str(record.get("id", "")),
                   reply_to=str(reply_to) if reply_to is not None else "", source=src.where(where), extra=extra)


def _timestamp(record: dict, where: str, src: Source) -> datetime:
    unix = record.get("date_unixtime")
    if unix not in (None, ""):
        try:
            return from_epoch(int(unix), src.tz)
        except (TypeError, ValueError, OverflowError, OSError):
            raise src.error(where, f"date_unixtime {unix!r} is not a Unix time") from None
    date = record.get("date")
    try:
        stamp = datetime.fromisoformat(str(date))
    except ValueError:
        raise src.error(where, f"date {date!r} is not an ISO date-time") from None
    # Older exports have only "date", the exporting computer's local time.
    return stamp if stamp.tzinfo else (stamp.replace(tzinfo=src.tz) if src.tz else stamp.astimezone())
