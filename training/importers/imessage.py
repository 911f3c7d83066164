"""iMessage, as imessage-exporter's text export writes it (``imessage-exporter -f txt``): one file per chat.

Each message is a block: the time (``May 14, 2023  9:03:12 PM``, sometimes followed by
``(Read by you after 2 minutes)``), the sender (``Me`` for the owner, else a phone number, an
e-mail address or a contact's name), then the text lines; a blank line ends the block. Inside a
block the exporter adds lines of its own, which are read as metadata, not as words:

- ``Tapbacks:`` (older versions: ``Reactions:``) and the ``Loved by Ann`` lines under it;
- attachment paths (``/Users/…/IMG_1234.HEIC``, ``Attachment missing!``): a MEDIA message when
  there is no text beside them; ``Sticker from Me: …`` is a STICKER;
- ``Sent with Loud``-style effects, ``This message responded to an earlier message.``;
- edits: the first version with its own time, then ``Edited 1 minute later: …`` lines (the last
  version is the text); ``You unsent a message.`` is SYSTEM;
- replies, indented four spaces under the message they answer: the exporter also writes each reply
  at its own place in the file, so the indented copy only links the reply to its parent (``reply_to``).

A time line with text after it (``… PM You named the conversation Trip``) is a SYSTEM notice.
Times are local wall-clock times in ``tz``. The owner is the export's ``Me`` (or a name given as
owner, for exports made with ``--custom-name``). Tested in ``tests/training/importers/test_imessage.py``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import datetime

from training.importers.base import Source, clean_name, clean_text, detect_encoding, iter_lines, local_time, text_kind
from training.importers.messages import Kind, Message

_MONTHS = {m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
                                       "Dec"), 1)}
STAMP = re.compile(r"^(?P<mon>Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) (?P<d>\d{1,2}), (?P<y>\d{4}) {1,2}"
                   r"(?P<h>\d{1,2}):(?P<mi>\d{2}):(?P<s>\d{2}) (?P<ampm>AM|PM)(?P<rest> .*)?$")
_READ = re.compile(r"^ \(Read by [^()]* after [^()]*\)$")
ME = "Me"
_TAPBACKS = frozenset({"Tapbacks:", "Reactions:"})
_TAPBACK = re.compile(r"^(?P<what>.{1,40}?) by (?P<who>.+)$")
_ATTACHMENT = re.compile(r"^(?:/|~/|[A-Za-z]:\\)\S.*\.[A-Za-z0-9]{2,5}$|^Attachment missing!$|^attachments/\S")
_STICKER = re.compile(r"^(?:\w+ )?Sticker from (?P<who>.+?): ")
_EFFECT = re.compile(r"^Sent with (?:Confetti|Echo|Fireworks|Balloons|Heart|Lasers|Shooting Star|Sparkles|Spotlight"
                     r"|Slam|Loud|Gentle|Invisible Ink|Celebration|Love)$")
_REPLY_NOTE = "This message responded to an earlier message."
_DELETED_NOTE = "This message was deleted from the conversation!"
_UNSENT = re.compile(r"^(?P<who>.{1,60}?) (?:unsent|deleted) a message\.?$")
_EDITED = re.compile(r"^Edited .{1,40}? later: ")
_NOTICES = frozenset({"Started sharing location!", "Stopped sharing location!", "SharePlay Message"})


def sniff(head: str) -> int:
    """How much ``head`` looks like an imessage-exporter text file: time lines each followed by a sender."""
    lines = head.splitlines()[:400]
    score = 0
    for index, line in enumerate(lines[:-1]):
        match = STAMP.match(line) if line[:1].isupper() else None
        if match and lines[index + 1].strip() and not STAMP.match(lines[index + 1]):
            if not match["rest"] or _READ.match(match["rest"]):
                score += 1
    return score


def _stamp(match: re.Match, src: Source) -> datetime | None:
    hour = int(match["h"]) % 12 + (12 if match["ampm"] == "PM" else 0)
    try:
        return local_time(int(match["y"]), _MONTHS[match["mon"]], int(match["d"]), hour, int(match["mi"]),
                          int(match["s"]), src.tz)
    except (ValueError, OverflowError, OSError):
        return None


def parse(src: Source) -> Iterator[Message]:
    encoding = detect_encoding(src, ("utf-8",))
    senders = _survey(iter_lines(src, encoding))
    yield from parse_lines(src, iter_lines(src, encoding), group=len(senders) > 2)


def _survey(lines: Iterable[tuple[int, str]]) -> set[str]:
    """First pass: up to three senders (the line after each top-level time line)."""
    senders: set[str] = set()
    seen: set[str] = set()   # raw sender lines already cleaned: a chat has few, on every message
    after_stamp = False
    for _, line in lines:
        if after_stamp and line.strip() and line not in seen:
            seen.add(line)
            senders.add(clean_name(line))
            if len(senders) > 2:
                break
        match = STAMP.match(line) if line[:1].isupper() else None
        after_stamp = bool(match) and (not match["rest"] or bool(_READ.match(match["rest"])))
    return senders


class _Block:
    """One top-level message being read."""

    __slots__ = ("lines", "mode", "number", "reactions", "reply_key", "sender", "stamp", "stamp_text", "unindented")

    def __init__(self, number: int, stamp: datetime, stamp_text: str):
        self.number, self.stamp, self.stamp_text = number, stamp, stamp_text
        self.sender: str | None = None
        self.lines: list[str] = []
        self.reactions: list[dict] = []
        self.mode = "body"                 # body | tapbacks | reply (the indented copy of a reply)
        self.unindented = False            # tapbacks under "Reactions:", as older versions wrote them
        self.reply_key: str | None = None  # time of the indented reply being skipped, until its sender


def parse_lines(src: Source, lines: Iterable[tuple[int, str]], *, group: bool = False) -> Iterator[Message]:
    """Messages from numbered lines; split out so property tests can feed any text."""
    chat = src.path.stem
    block: _Block | None = None
    previous_blank = True
    parents: dict[tuple[str, str], str] = {}   # (time, sender) of an indented reply -> the message it answers
    for number, raw in lines:
        line = raw.rstrip("\r\n")
        blank = not line.strip()
        # A new message starts after a blank line; a time line inside a block is an edit's first version.
        match = STAMP.match(line) if previous_blank and line[:1].isupper() else None
        previous_blank = blank
        if match:
            stamp = _stamp(match, src)
            if stamp is not None:
                if block is not None:
                    yield from _finish(src, block, chat, group, parents)
                    block = None
                src.stats.records += 1
                if match["rest"] and not _READ.match(match["rest"]):
                    yield _notice(src, number, stamp, match["rest"], chat, group)
                else:
                    block = _Block(number, stamp, _stamp_text(line))
                continue
        if block is None:
            if not blank:
                src.stats.records += 1
                src.skip("text outside a message")
            continue
        if block.sender is None:
            if not blank:
                block.sender = src.person(line)
            continue
        _read_line(block, line, blank, parents)
    if block is not None:
        yield from _finish(src, block, chat, group, parents)


def _stamp_text(line: str) -> str:
    return line.strip().split(" (Read by ", 1)[0]


def _read_line(block: _Block, line: str, blank: bool, parents: dict[tuple[str, str], str]) -> None:
    """Sort one line of a block into text, tapbacks or the indented copy of a reply."""
    text = line.strip()
    indent = len(line) - len(line.lstrip(" "))
    if blank:
        if block.mode == "body":
            block.lines.append("")
        return
    if indent >= 4:
        if block.reply_key is not None:
            parents[(block.reply_key, clean_name(text))] = str(block.number)
            block.reply_key = None
            return
        stamp = STAMP.match(text)
        if stamp and (not stamp["rest"] or _READ.match(stamp["rest"])):
            block.mode, block.reply_key = "reply", _stamp_text(text)
            return
        if block.mode == "tapbacks":
            _tapback(block, text)
            return
        if block.mode == "reply":
            return   # the reply's own lines: it is read where the exporter writes it again
    elif block.mode == "tapbacks" and block.unindented and _TAPBACK.match(text):
        _tapback(block, text)
        return
    if text in _TAPBACKS and indent < 4:
        block.mode, block.unindented = "tapbacks", text == "Reactions:"
        return
    block.mode = "body"
    block.lines.append(line if indent < 4 else text)


def _tapback(block: _Block, text: str) -> None:
    sticker = _STICKER.match(text)
    if sticker:
        block.reactions.append({"reaction": "sticker", "by": clean_name(sticker["who"])})
        return
    match = _TAPBACK.match(text)
    if match:
        block.reactions.append({"reaction": match["what"], "by": clean_name(match["who"])})


def _unsent(text: str, sender: str | None) -> bool:
    """"You unsent a message." (older: "deleted"), from the owner, "They" or a --custom-name."""
    match = _UNSENT.match(text)
    return match is not None and match["who"] in ("You", "They", sender)


def _finish(src: Source, block: _Block, chat: str, group: bool, parents: dict[tuple, str]) -> Iterator[Message]:
    if block.sender is None:
        src.skip("time line without a sender")
        return
    words: list[str] = []
    extra: dict = {}
    media = 0
    sticker = unsent = notice = False
    for line in block.lines:
        text = line.strip()
        if _ATTACHMENT.match(text):
            media += 1
        elif _STICKER.match(text):
            sticker = True
        elif _EFFECT.match(text):
            extra["effect"] = text.removeprefix("Sent with ")
        elif text == _REPLY_NOTE:
            extra["reply"] = True
        elif text == _DELETED_NOTE:
            extra["deleted"] = True
        elif not words and _unsent(text, block.sender):
            unsent = True
        elif text in _NOTICES:
            notice = True
        elif text == "Ended" and notice and not words:
            continue   # the second line of "SharePlay Message"
        elif _EDITED.match(text):
            words = [text[_EDITED.match(text).end():]]   # the latest version wins
            extra["edited"] = True
        else:
            first = STAMP.match(text) if not words and text[:1].isupper() else None
            if first and first["rest"]:
                words.append(first["rest"].strip())   # an edited message's first version, with its own time
            else:
                words.append(line)
    text = clean_text("\n".join(words))
    if media:
        extra["attachments"] = media
    if block.reactions:
        extra["reactions"] = block.reactions
    sender = block.sender
    if unsent:
        kind, text = Kind.SYSTEM, clean_text("\n".join(block.lines))
        extra["recalled"] = True
    elif notice and not text:
        kind, text = Kind.SYSTEM, clean_text("\n".join(block.lines))
    elif sticker and not text:
        kind, text = Kind.STICKER, "[sticker]"
    elif media and not text:
        kind = Kind.MEDIA
    else:
        kind = text_kind(text)
    if not text and kind is Kind.TEXT:
        src.skip("message without text")
        return
    mine = sender == ME
    if mine:
        src.stats.owner_marked = True
    yield Message(platform="imessage", chat_id=chat, chat_name=chat, chat_type="group" if group else "dm",
                  sender_id=sender, sender_name=sender,
                  is_owner=mine or (bool(src.owner) and src.owner.matches(sender)),
                  timestamp=block.stamp, text=text, kind=kind, message_id=str(block.number),
                  reply_to=parents.get((block.stamp_text, sender), ""),
                  source=src.where(block.number), extra=extra)


def _notice(src: Source, number: int, stamp: datetime, text: str, chat: str, group: bool) -> Message:
    return Message(platform="imessage", chat_id=chat, chat_name=chat, chat_type="group" if group else "dm",
                   sender_id="system", sender_name="system", is_owner=False, timestamp=stamp,
                   text=clean_text(text), kind=Kind.SYSTEM, message_id=str(number), source=src.where(number))
