"""Cleaning: decide which normalized messages may become training text, and count why the rest
did not.

Dropped, each with its reason (the build report shows the counts): system and service messages;
recalled or deleted messages and their notices; media with no caption; empty messages; the
owner's forwards (someone else's words, never the clone's); chats and people left out by the
include/exclude lists; exact repeats (the same message in two overlapping exports). Stickers and
emoji stay as their text (``[捂脸]``, ``😂``): they carry the owner's tone. Other people's
forwards stay as context: they are what the owner was answering.

The blocklist (``Blocklist``) works on turns, after merging (``training.dataset.sessions``): a sensitive
word removes the whole burst it was said in, not just the one message, so no half-burst is left
to train on.

Text is normalized on the way through: invisible format characters (zero-width spaces, BOMs,
bidi marks that WhatsApp puts in front of names) are removed, line endings unified. Joiners used
inside emoji sequences (U+200D) are kept.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC

from training.importers.messages import Kind, Message

# Reasons, as they appear in the report.
SYSTEM = "system"
RECALLED = "recalled"
MEDIA_NO_TEXT = "media_no_text"
EMPTY = "empty"
OWNER_FORWARD = "owner_forward"
EXCLUDED_CHAT = "excluded_chat"
NOT_INCLUDED_CHAT = "not_included_chat"
EXCLUDED_CONTACT = "excluded_contact"
NOT_INCLUDED_CONTACT = "not_included_contact"
DUPLICATE = "duplicate"
BLOCKLIST = "blocklist"

_INVISIBLE = re.compile("[\u200b\u200c\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\u00ad]")
_RECALL_NOTICE = re.compile(
    r"撤回了一条消息|已撤回|此消息已(?:被)?删除|该消息已被删除|"
    r"^(?:This message was deleted|You deleted this message|Message deleted|This message has been deleted)\.?$",
    re.IGNORECASE,
)
# What exporters write in place of a photo, voice note or file when there is no caption.
_MEDIA_PLACEHOLDER = re.compile(
    r"^(?:<(?:Media omitted|媒体文件已省略|附件[:：].*|attached: .*)>|"
    r"\[(?:图片|照片|视频|语音|文件|位置|链接|小程序|音乐|Photo|Image|Video|Voice|Voice message|Audio|File|Location)\]|"
    r"(?:image|video|audio|GIF|document|sticker) omitted)$",
    re.IGNORECASE,
)


def normalize_text(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _INVISIBLE.sub("", text).strip()


def _names(values: Iterable[str]) -> frozenset[str]:
    return frozenset(v.strip().casefold() for v in values if v and v.strip())


@dataclass(frozen=True)
class CleanOptions:
    """Include/exclude lists, matched case-insensitively against ids and display names."""

    include_chats: frozenset[str] = frozenset()
    exclude_chats: frozenset[str] = frozenset()
    include_contacts: frozenset[str] = frozenset()
    exclude_contacts: frozenset[str] = frozenset()

    @classmethod
    def from_lists(cls, *, include_chats: Iterable[str] = (), exclude_chats: Iterable[str] = (),
                   include_contacts: Iterable[str] = (), exclude_contacts: Iterable[str] = ()) -> CleanOptions:
        return cls(_names(include_chats), _names(exclude_chats), _names(include_contacts), _names(exclude_contacts))


@dataclass
class CleanStats:
    read: int = 0
    kept: int = 0
    owner_read: int = 0
    owner_kept: int = 0
    dropped: Counter = field(default_factory=Counter)
    owner_dropped: Counter = field(default_factory=Counter)

    def drop(self, message: Message, reason: str) -> None:
        self.dropped[reason] += 1
        if message.is_owner:
            self.owner_dropped[reason] += 1


def _is(names: frozenset[str], *values: str) -> bool:
    return any(v and v.casefold() in names for v in values)


def _opted_out_dms(messages: Sequence[Message], options: CleanOptions) -> tuple[set[tuple], set[tuple]]:
    """Direct chats with an excluded person, and (with an include list) with anyone not included."""
    excluded, not_included = set(), set()
    for message in messages:
        if message.chat_type != "dm" or message.is_owner:
            continue
        key = (message.platform, message.chat_id)
        who = (message.sender_id, message.sender_name, message.chat_name)
        if options.exclude_contacts and _is(options.exclude_contacts, *who):
            excluded.add(key)
        if options.include_contacts and not _is(options.include_contacts, *who):
            not_included.add(key)
    return excluded, not_included


def _drop_reason(message: Message, options: CleanOptions) -> str | None:
    if message.extra.get("recalled") or _RECALL_NOTICE.search(message.text):
        return RECALLED
    if message.kind is Kind.SYSTEM:
        return SYSTEM
    if message.is_owner and (message.kind is Kind.FORWARD or message.extra.get("forwarded")):
        return OWNER_FORWARD
    chat = (message.chat_id, message.chat_name)
    if options.exclude_chats and _is(options.exclude_chats, *chat):
        return EXCLUDED_CHAT
    if options.include_chats and not _is(options.include_chats, *chat):
        return NOT_INCLUDED_CHAT
    if not message.is_owner:
        sender = (message.sender_id, message.sender_name)
        if options.exclude_contacts and _is(options.exclude_contacts, *sender):
            return EXCLUDED_CONTACT
        if options.include_contacts and not _is(options.include_contacts, *sender):
            return NOT_INCLUDED_CONTACT
    if message.kind is Kind.MEDIA and (not message.text or _MEDIA_PLACEHOLDER.match(message.text)):
        return MEDIA_NO_TEXT
    if message.kind is not Kind.MEDIA and _MEDIA_PLACEHOLDER.match(message.text):
        return MEDIA_NO_TEXT
    if not message.text:
        return MEDIA_NO_TEXT if message.kind in (Kind.MEDIA, Kind.STICKER) else EMPTY
    return None


def clean(messages: Iterable[Message], options: CleanOptions | None = None,
          stats: CleanStats | None = None) -> tuple[list[Message], CleanStats]:
    """The messages that may become training text, in input order, and the counts."""
    options = options or CleanOptions()
    stats = stats or CleanStats()
    normalized = []
    for message in messages:
        text = normalize_text(message.text)
        timestamp = message.timestamp if message.timestamp.tzinfo else message.timestamp.replace(tzinfo=UTC)
        if text != message.text or timestamp is not message.timestamp:
            message = replace(message, text=text, timestamp=timestamp)
        normalized.append(message)
    excluded_dms, not_included_dms = _opted_out_dms(normalized, options)
    seen: set[tuple] = set()
    kept = []
    for message in normalized:
        stats.read += 1
        stats.owner_read += message.is_owner
        chat_key = (message.platform, message.chat_id)
        reason = (EXCLUDED_CONTACT if chat_key in excluded_dms
                  else NOT_INCLUDED_CONTACT if chat_key in not_included_dms
                  else _drop_reason(message, options))
        if reason is None:
            key = (message.platform, message.chat_id, message.sender_id, message.timestamp, message.text)
            if key in seen:
                reason = DUPLICATE
            seen.add(key)
        if reason is not None:
            stats.drop(message, reason)
            continue
        stats.kept += 1
        stats.owner_kept += message.is_owner
        kept.append(message)
    return kept, stats


class Blocklist:
    """Case-insensitive words; ``matches`` is one precompiled regex search."""

    def __init__(self, words: Iterable[str]):
        self.words = tuple(w.strip() for w in words if w and w.strip())
        pattern = "|".join(re.escape(w) for w in sorted(self.words, key=len, reverse=True))
        self._regex = re.compile(pattern, re.IGNORECASE) if pattern else None

    def __bool__(self) -> bool:
        return self._regex is not None

    def matches(self, text: str) -> bool:
        return self._regex is not None and self._regex.search(text) is not None
