"""Instagram and Facebook Messenger chats from Meta's "Download your information" JSON export.

Each chat is a folder (``messages/inbox/<name>_<id>/``) of pages ``message_1.json``,
``message_2.json``...; each page is ``{participants[{name}], messages[], title, thread_path,
thread_type?}`` and its messages run newest first, ``message_1.json`` holding the newest. The first
page present in a folder reads every page of it, so a chat comes out once, oldest first, with its
pages merged by ``timestamp_ms``; the other pages yield nothing (``continuation_of`` tells a
directory walk which files those are).

Meta writes every non-ASCII string as its UTF-8 bytes, one latin-1 character per byte ("ZoÃ«" for
"Zoë"); ``repair`` undoes that where the round trip works and leaves real text alone. Kinds:
``is_unsent``, calls and group notices are SYSTEM (unsent ones ``recalled``), a sticker is a
STICKER, photos, videos, audio, GIFs, files and shared links are MEDIA (with what the sender wrote
as the caption), reactions go to ``extra["reactions"]``. The export names people only by display
name, so the owner is matched on ``sender_name`` (``--owner``), and it gives messages no ids:
``message_id`` is the message's place in its chat, oldest first.

Tested in ``tests/training/importers/test_meta.py``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from doppel.errors import InputError
from training.importers.base import Source, clean_text, from_epoch, text_kind
from training.importers.json_stream import JsonStream
from training.importers.messages import Kind, Message

_PAGE = re.compile(r"message_(\d{1,6})\.json", re.IGNORECASE)
_HEADER_KEYS = frozenset({"participants", "title", "thread_path", "thread_type"})
_MEDIA_KEYS = (("photos", "photo"), ("videos", "video"), ("audio_files", "audio"), ("gifs", "gif"),
               ("files", "file"))
_SYSTEM_TYPES = frozenset({"Call", "Subscribe", "Unsubscribe"})
_SPECIAL_KEYS = frozenset({"reactions", "share", "is_unsent", "call_duration", "type", "sticker",
                           *(key for key, _ in _MEDIA_KEYS)})
# What Meta writes in ``content`` for a message that is only an attachment: not the sender's words.
_PLACEHOLDER = re.compile(r"^(?:You|.{1,80}) sent an? (?:attachment|photo|video|voice message|GIF|sticker)\.$")
# Instagram's older exports write reactions and likes as messages of their own.
_NOTICE = re.compile(r"^(?:Reacted .{1,24} to your message|Liked a message|.{1,80} unsent a message"
                     r"|.{1,80} (?:named the group|changed the group photo|left the group|set the nickname for)"
                     r"(?: .*)?)\.?$", re.S)
_MARKERS = (re.compile(r'"participants"\s*:\s*\['), re.compile(r'"thread_path"\s*:\s*"'),
            re.compile(r'"is_still_participant"\s*:'), re.compile(r'"magic_words"\s*:'))
_SENDER = re.compile(r'"sender_name"\s*:\s*"')
_MILLIS = re.compile(r'"timestamp_ms"\s*:\s*\d')


def sniff(head: str) -> int:
    """How much ``head`` looks like a Meta chat page (0: not at all).

    ``sender_name`` with ``timestamp_ms`` is what no other JSON export has; the page header keys
    and the number of messages seen add to the score.
    """
    if not (_SENDER.search(head) and _MILLIS.search(head)):
        return 0
    return 2 + sum(1 for marker in _MARKERS if marker.search(head)) + min(len(_SENDER.findall(head)), 100)


def repair(text: str) -> str:
    """Undo Meta's mojibake: latin-1 characters that are really UTF-8 bytes, only where that decodes."""
    if text.isascii():
        return text
    try:
        return text.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return text


def _page_number(path: Path) -> int | None:
    match = _PAGE.fullmatch(path.name)
    return int(match.group(1)) if match else None


def pages(path: Path) -> list[Path]:
    """Every page of the chat ``path`` belongs to, oldest page (highest number) first."""
    if _page_number(path) is None:
        return [path]
    try:
        siblings = [p for p in path.parent.iterdir() if _page_number(p) is not None and p.is_file()]
    except OSError:
        return [path]
    return sorted(siblings, key=lambda p: -(_page_number(p) or 0))


def continuation_of(path: str | Path) -> Path | None:
    """The page that reads ``path`` with its chat, when that is another file; None otherwise.

    A directory import should leave these files out: their messages come with the first page.
    """
    path = Path(path)
    if _page_number(path) is None:
        return None
    first = pages(path)[-1]
    return first if first != path else None


def parse(src: Source) -> Iterator[Message]:
    first = continuation_of(src.path)
    if first is not None:
        # Imported with its first page; yielding it again would give the chat twice.
        src.skip(f"page of the chat in {first.name} (read with it)")
        return
    platform = "instagram" if "instagram" in str(src.path.absolute()).lower() else "messenger"
    chats: dict[str, tuple[tuple[str, str, str], list[tuple[int, int, str, dict, datetime]]]] = {}
    order = 0
    for page in pages(src.path):
        name = src.name if page == src.path else str(Path(src.name).with_name(page.name))
        header, records = _read_page(page, name)
        chat = _chat(header, page)
        rows = chats.setdefault(chat[0], (chat, []))[1]
        for where, record in reversed(records):
            src.stats.records += 1
            if not isinstance(record, dict):
                raise _error(name, where, "a message is not a JSON object")
            millis, stamp = _timestamp(record, name, where, src)
            order += 1
            rows.append((millis, order, f"{name}:{where}", record, stamp))
    for chat, rows in chats.values():
        rows.sort(key=lambda row: (row[0], row[1]))   # oldest first; ties keep the export's order
        for number, (_, _, where, record, stamp) in enumerate(rows, 1):
            message = _convert(record, where, stamp, chat, platform, str(number), src)
            if message is not None:
                yield message


def _error(name: str, where: str, why: str) -> InputError:
    return InputError(f"{name}: {where}: {' '.join(why.split())}")


def _read_page(page: Path, name: str) -> tuple[dict[str, Any], list[tuple[str, Any]]]:
    """(header, [(where, record)]) of one page, streamed so errors name the line and record."""
    try:
        handle = page.open("rb")
    except OSError as exc:
        raise InputError(f"{name}: cannot read: {exc.strerror or exc}") from None
    header: dict[str, Any] = {}
    records: list[tuple[str, Any]] = []
    found = False
    with handle:
        stream = JsonStream(handle, name)
        if stream.peek_type() != "object":
            raise InputError(f"{name}: is not an Instagram/Messenger export (expected a JSON object at the top)")
        for key in stream.object_items():
            if key == "messages":
                found = True
                if stream.peek_type() != "array":
                    raise InputError(f"{name}: 'messages' is not a list")
                records += [(f"messages[{index}]", stream.value()) for index in stream.array_items()]
            elif key in _HEADER_KEYS:
                header[key] = stream.value()
            else:
                stream.skip()
        stream.finish()
    if not found:
        raise InputError(f"{name}: has no 'messages' list: not an Instagram/Messenger JSON export")
    return header, records


def _string(value: Any) -> str:
    return repair(value) if isinstance(value, str) else ""


def _chat(header: dict[str, Any], page: Path) -> tuple[str, str, str]:
    """(id, name, dm|group): the id is ``thread_path`` (``inbox/annlee_1015...``), as every page has it."""
    people = header.get("participants")
    names = [_string(p.get("name")) for p in people if isinstance(p, dict)] if isinstance(people, list) else []
    chat_id = _string(header.get("thread_path")) or page.parent.name or page.stem
    title = clean_text(_string(header.get("title"))) or ", ".join(n for n in names if n) or chat_id
    thread_type = _string(header.get("thread_type"))
    group = thread_type == "RegularGroup" or (thread_type != "Regular" and len(names) > 2)
    return chat_id, title, "group" if group else "dm"


def _timestamp(record: dict, name: str, where: str, src: Source) -> tuple[int, datetime]:
    value = record.get("timestamp_ms")
    seconds = record.get("timestamp")
    if value is None and isinstance(seconds, int) and not isinstance(seconds, bool):
        value = seconds * 1000                       # the oldest exports: seconds
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _error(name, where, f"timestamp_ms {value!r} is not a time in milliseconds")
    try:
        return int(value), from_epoch(value / 1000, src.tz)
    except (OverflowError, OSError, ValueError):
        raise _error(name, where, f"timestamp_ms {value!r} is not a time in milliseconds") from None


def _notice(text: str) -> bool:
    # Substring tests first: the regex, with its leading name, is the slow part on ordinary text.
    return bool(text) and (text.startswith(("Reacted ", "Liked a message")) or " unsent a message" in text
                           or " the group" in text or " set the nickname for " in text) and bool(_NOTICE.match(text))


def _placeholder(text: str) -> bool:
    return text.endswith(".") and " sent a" in text and bool(_PLACEHOLDER.match(text))


def _convert(record: dict, where: str, stamp: datetime, chat: tuple[str, str, str], platform: str,
             number: str, src: Source) -> Message | None:
    sender = src.person(_string(record.get("sender_name"))) or "Unknown"
    text = clean_text(_string(record.get("content")))
    extra: dict[str, Any] = {}
    keys = record.keys() & _SPECIAL_KEYS       # most messages are plain text: one set operation says so
    if "reactions" in keys and isinstance(record["reactions"], list) and record["reactions"]:
        extra["reactions"] = [{"reaction": _string(r.get("reaction")), "actor": src.person(_string(r.get("actor")))}
                              for r in record["reactions"] if isinstance(r, dict)]
    media = [label for key, label in _MEDIA_KEYS if key in keys and record[key]]
    share = record["share"] if "share" in keys and isinstance(record["share"], dict) else None
    if "is_unsent" in keys and record["is_unsent"] is True:
        kind = Kind.SYSTEM
        extra["recalled"] = True
    elif "call_duration" in keys or ("type" in keys and record["type"] in _SYSTEM_TYPES) or _notice(text):
        kind = Kind.SYSTEM
        if isinstance(record.get("call_duration"), int):
            extra["call_duration"] = record["call_duration"]
    elif "sticker" in keys and record["sticker"]:
        kind, text = Kind.STICKER, "[sticker]"
    elif media or share is not None or _placeholder(text):
        kind = Kind.MEDIA
        if media:
            extra["media"] = media[0] if len(media) == 1 else media
        if share is not None:
            link = _string(share.get("link"))
            extra["link"] = link
            if _string(share.get("share_text")):
                extra["share_text"] = _string(share["share_text"])
            # Messenger repeats the shared link as the content: the link is not the sender's words.
            text = clean_text(text.replace(link, "")) if link else text
        if _placeholder(text):
            text = ""
    elif text:
        kind = text_kind(text)
    else:
        src.skip("message with no content")
        return None
    chat_id, chat_name, chat_type = chat
    return Message(platform=platform, chat_id=chat_id, chat_name=chat_name, chat_type=chat_type, sender_id=sender,
                   sender_name=sender, is_owner=bool(src.owner) and src.owner.matches(sender), timestamp=stamp,
                   text=text, kind=kind, message_id=number, source=where, extra=extra)
