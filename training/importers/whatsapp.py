"""WhatsApp's "Export chat" text file, from Android (``31/12/20, 23:59 - Name: text``) and iOS
(``[31/12/20, 23:59:59] Name: text``), in 24-hour and 12-hour (``11:59 PM``) styles.

Lines that do not start with a date continue the message before them. Whether dates are
day-first or month-first depends on the phone's locale and is decided per file from the dates
themselves (a day over 12 settles it); when every date is ambiguous, 12-hour files are taken as
month-first (US) and others as day-first. Lines without ``Name:`` are SYSTEM, as are iOS lines
whose text starts with U+200E; ``<Media omitted>`` and ``image omitted`` are MEDIA. The file has
no user ids, so the owner is matched by display name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path

from training.importers.base import (
    Source,
    clean_name,
    clean_text,
    detect_encoding,
    iter_lines,
    local_time,
    text_kind,
)
from training.importers.messages import Kind, Message

_DATE_TIME = (r"(\d{1,4})[./-](\d{1,2})[./-](\d{1,4}),?\s+(\d{1,2})[:.](\d{2})(?:[:.](\d{2}))?"
              r"\s*([AaPp]\.?\s?[Mm]\.?|上午|下午)?")
ANDROID = re.compile(rf"^{_DATE_TIME}\s+[-–]\s+(.*)$")
IOS = re.compile(rf"^\[{_DATE_TIME}\]\s*(.*)$")
_LEAD = "\u200e\u200f\ufeff\u202a\u202c "
# One pass over a message's first line sorts out media, stickers, deletions and call notices.
_SPECIAL = re.compile(
    r"^(?:(?P<media><Media omitted>|<attached: [^>]*>|(?:image|video|audio|GIF|document|Contact card) omitted"
    r"|.+ \(file attached\)|null)|(?P<sticker>sticker omitted)"
    r"|(?P<deleted>This message was deleted\.?|You deleted this message\.?)"
    r"|(?P<system>Missed (?:voice|video) call|Waiting for this message.*))$", re.I)
_EDITED = "<This message was edited>"
_CHAT_FILE = re.compile(r"^WhatsApp Chat (?:with|-) (.+)$", re.I)


def sniff(head: str) -> int:
    """How much ``head`` looks like a WhatsApp export (0: not at all)."""
    return sum(1 for line in head.splitlines()[:200]
               if ANDROID.match(line.lstrip(_LEAD)) or IOS.match(line.lstrip(_LEAD)))


def chat_name_for(path: Path) -> str:
    for candidate in (path.stem, path.parent.name):
        match = _CHAT_FILE.match(candidate)
        if match:
            return clean_name(match.group(1))
    return path.parent.name if path.stem == "_chat" and path.parent.name else path.stem


def parse(src: Source) -> Iterator[Message]:
    encoding = detect_encoding(src, ("utf-8",))
    order, senders = _survey(src, iter_lines(src, encoding))
    yield from parse_lines(src, iter_lines(src, encoding), order=order, group=len(senders) > 2)


def _survey(src: Source, lines: Iterable[tuple[int, str]]) -> tuple[str, set[str]]:
    """First pass: the date order ("dmy", "mdy" or "ymd") and up to three sender names."""
    first_big = second_big = twelve_hour = year_first = False
    senders: set[str] = set()
    for _, raw in lines:
        line = raw.lstrip(_LEAD)
        match = ANDROID.match(line) or IOS.match(line)
        if not match:
            continue
        a, b = match.group(1), match.group(2)
        year_first = year_first or len(a) == 4
        first_big = first_big or int(a) > 12
        second_big = second_big or int(b) > 12
        twelve_hour = twelve_hour or bool(match.group(7))
        if len(senders) < 3:
            name, sep, _ = match.group(8).partition(": ")
            if sep:
                senders.add(clean_name(name))
    if year_first:
        return "ymd", senders
    if first_big and second_big:
        raise src.error(None, "dates are neither consistently day-first nor month-first: "
                              "is this several exports pasted together?")
    if first_big or second_big:
        return ("dmy" if first_big else "mdy"), senders
    src.stats.notes.append("every date could be day-first or month-first; assumed "
                           + ("month-first (12-hour clock)" if twelve_hour else "day-first"))
    return ("mdy" if twelve_hour else "dmy"), senders


def parse_header(line: str, order: str, src: Source) -> tuple[datetime, str] | None:
    """(timestamp, rest of line) for a message's first line, or None for a continuation line."""
    match = ANDROID.match(line) or IOS.match(line)
    if not match:
        return None
    a, b, c, hour, minute, second, ampm, rest = match.groups()
    if order == "ymd":
        year, month, day = int(a), int(b), int(c)
    elif order == "mdy":
        month, day, year = int(a), int(b), int(c)
    else:
        day, month, year = int(a), int(b), int(c)
    if year < 100:
        year += 2000
    hour_n = int(hour)
    if ampm:
        pm = ampm[0] in "Pp" or ampm == "下午"
        if pm and hour_n < 12:
            hour_n += 12
        elif not pm and hour_n == 12:
            hour_n = 0
    try:
        stamp = local_time(year, month, day, hour_n, int(minute), int(second or 0), src.tz)
    except (ValueError, OverflowError, OSError):
        return None  # not a real date: message text that happens to look like a header
    return stamp, rest


def parse_lines(src: Source, lines: Iterable[tuple[int, str]], *, order: str = "dmy",
                group: bool = False) -> Iterator[Message]:
    """Messages from numbered lines; split out so property tests can feed any text."""
    chat_name = chat_name_for(src.path)
    pending: tuple | None = None
    body: list[str] = []
    for number, raw in lines:
        line = raw.lstrip(_LEAD) if raw[:1] in _LEAD else raw
        header = parse_header(line, order, src) if line[:1].isdigit() or line[:1] == "[" else None
        if header is None:
            if pending is not None:
                body.append(raw)
            elif raw.strip():
                src.stats.records += 1
                src.skip("text before the first message")
            continue
        if pending is not None:
            yield _message(src, pending, body, chat_name, group)
        src.stats.records += 1
        pending, body = (number, header), []
    if pending is not None:
        yield _message(src, pending, body, chat_name, group)


def _message(src: Source, pending: tuple, body: list[str], chat_name: str, group: bool) -> Message:
    number, (timestamp, rest) = pending
    name, sep, first = rest.partition(": ")
    extra: dict = {}
    if not sep:
        # "Messages and calls are end-to-end encrypted", "Ann added Bob": no speaker.
        sender, text, kind = "", clean_text("\n".join([rest, *body])), Kind.SYSTEM
    else:
        sender = src.person(name)
        system_mark = first.startswith("\u200e")
        text = clean_text("\n".join([first, *body]))
        if text.endswith(_EDITED):
            text = text[: -len(_EDITED)].rstrip()
            extra["edited"] = True
        first_line = text.partition("\n")[0]
        special = _SPECIAL.match(first_line) if len(first_line) < 300 else None
        what = special.lastgroup if special else None
        if what == "media":
            kind, text = Kind.MEDIA, text.partition("\n")[2].strip()
        elif what == "sticker" and "\n" not in text:
            kind, text = Kind.STICKER, "[sticker]"
        elif what == "deleted":
            kind = Kind.SYSTEM
            extra["recalled"] = True
        elif system_mark or what == "system":
            kind = Kind.SYSTEM
            if sender == chat_name:
                sender = ""  # iOS writes group notices as said by the group itself
        else:
            kind = text_kind(text)
    return Message(platform="whatsapp", chat_id=chat_name, chat_name=chat_name, chat_type="group" if group else "dm",
                   sender_id=sender or "system", sender_name=sender or "system",
                   is_owner=bool(sender) and bool(src.owner) and src.owner.matches(sender),
                   timestamp=timestamp, text=text, kind=kind, message_id=str(number), source=src.where(number),
                   extra=extra)
