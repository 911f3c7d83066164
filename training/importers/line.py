"""LINE's chat history text ("Save chat" / "Export chat history" in a chat's settings), UTF-8.

The file starts with a title (``[LINE] Chat history with NAME``, ``[LINE] NAME的聊天記錄``,
``[LINE] NAMEとのトーク履歴``) and a ``Saved on: ...`` line. Each day opens with a date line
(``2023.05.14 Sunday``, ``Sun, 05/14/2023``, ``2023/05/14（日）``); each message is
``HH:MM<TAB>Sender<TAB>Text``. A message over several lines is wrapped in double quotes, with
quotes inside doubled; a line that only opened a quote (a message that starts with ``"``) is taken
back when a message line follows before any closing quote. Lines without a sender
(``HH:MM<TAB><TAB>Ann joined the group.``) are SYSTEM, as are calls and unsent messages;
``[Sticker]`` is a STICKER and ``[Photo]``-style placeholders are MEDIA.

Times are local wall-clock times in ``tz``. Year-last dates are read day- or month-first as the
whole file's dates say (``whatsapp.DateOrder``; LINE writes US order when nothing tells, and
``Source.date_order`` overrides). The owner is matched by display name: the export does not mark
the owner. Tested in ``tests/training/importers/test_line.py``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import date, datetime

from training.importers.base import Source, clean_name, clean_text, detect_encoding, iter_lines, local_time, text_kind
from training.importers.messages import Kind, Message
from training.importers.whatsapp import DateOrder

_TITLE = re.compile(r"^\ufeff?\[LINE\]\s*(?:Chat history (?P<how>with|in) (?P<en>.+?)|與?(?P<zh>.+?)的聊天記錄"
                    r"|(?P<ja>.+?)(?:との)?トーク履歴|(?P<other>.+?))\s*$")
_SAVED = re.compile(r"^(?:Saved on|儲存日期|保存日時|保存日期|저장한 날짜)\s*[:：]")
_DAY = re.compile(r"^(?:[A-Z][a-z]{2},\s*)?(?P<a>\d{1,4})[./-](?P<b>\d{1,2})[./-](?P<c>\d{1,4})"
                  r'(?:\s*(?:\([^()\d"]{1,12}\)|（[^（）\d"]{1,12}）|[^\s\d"]{1,12}))?\s*$')
_HALF = "上午|下午|午前|午後|AM|PM|am|pm"
_LINE = re.compile(rf"^(?:(?P<pre>{_HALF})\s?)?(?P<h>\d{{1,2}}):(?P<m>\d{{2}})(?:\s?(?P<post>{_HALF}))?\t(?P<rest>.*)$")
_PM = frozenset({"下午", "午後", "PM", "pm"})
_STICKER = re.compile(r"^\[(?:Sticker|貼圖|スタンプ|表情贴|스티커)\]$")
_MEDIA = re.compile(r"^\[(?:Photo|Photos|Video|Voice message|Audio|File|Album|Location|Contact|Gift|Note|"
                    r"照片|相片|影片|語音訊息|檔案|位置資訊|聯絡資訊|写真|動画|ボイスメッセージ|ファイル|位置情報|連絡先|"
                    r"사진|동영상|음성메시지|파일)\]$")
_SYSTEM = re.compile(r"^☎|unsent a message\.?$|已收回訊息|メッセージの送信を取り消しました|메시지를 취소했습니다")
_UNSENT = re.compile(r"unsent a message\.?$|已收回訊息|メッセージの送信を取り消しました|메시지를 취소했습니다")


def sniff(head: str) -> int:
    """How much ``head`` looks like a LINE export (0: not at all)."""
    lines = head.splitlines()[:300]
    titled = bool(lines) and _TITLE.match(lines[0]) is not None
    days = sum(1 for line in lines if _DAY.match(line))
    messages = sum(1 for line in lines if _LINE.match(line))
    if not titled and not (days and messages):
        return 0  # tab-separated times alone are any spreadsheet
    return (10 if titled else 0) + days + messages


def parse(src: Source) -> Iterator[Message]:
    encoding = detect_encoding(src, ("utf-8",))
    order, senders = _survey(src, iter_lines(src, encoding))
    yield from parse_lines(src, iter_lines(src, encoding), order=order, group=len(senders) > 2)


def _survey(src: Source, lines: Iterable[tuple[int, str]]) -> tuple[str, set[str]]:
    """First pass: how to read the date lines ("dmy", "mdy", "ymd") and up to three senders."""
    evidence = DateOrder()
    senders: set[str] = set()
    seen: set[str] = set()   # raw names already cleaned: a chat has few, on every line
    for number, line in lines:
        day = _DAY.match(line) if line[:1].isalnum() else None
        if day and len(day["a"]) < 4:
            evidence.add(number, int(day["a"]), int(day["b"]), int(day["c"]))
        elif len(senders) < 3 and "\t" in line:
            match = _LINE.match(line)
            sender = match["rest"].partition("\t")[0].strip() if match and "\t" in match["rest"] else ""
            if sender and sender not in seen:
                seen.add(sender)
                senders.add(clean_name(sender))
    return evidence.decide(src, src.date_order, default="mdy", why=" (LINE's English layout)"), senders


def _day(match: re.Match, order: str) -> date | None:
    a, b, c = match["a"], int(match["b"]), int(match["c"])
    if len(a) == 4 or order == "ymd":
        year, month, day = int(a), b, c
    elif order == "mdy":
        month, day, year = int(a), b, c
    else:
        day, month, year = int(a), b, c
    try:
        return date(year + 2000 if year < 100 else year, month, day)
    except ValueError:
        return None


class _Pending:
    """A message being read: its first line's fields and the lines that follow it."""

    __slots__ = ("body", "day", "hour", "minute", "number", "quoted", "sender")

    def __init__(self, number: int, day: date, hour: int, minute: int, sender: str | None, first: str):
        self.number, self.day, self.hour, self.minute, self.sender = number, day, hour, minute, sender
        # A text that opens a quote it does not close goes on over the next lines.
        self.quoted = first.startswith('"') and not _closes(first[1:])
        self.body = [first]


def _closes(text: str) -> bool:
    """True if ``text`` ends a quoted block: an odd run of quotes at its end (``""`` is a quote)."""
    run = len(text) - len(text.rstrip('"'))
    return run % 2 == 1


def parse_lines(src: Source, lines: Iterable[tuple[int, str]], *, order: str = "mdy",
                group: bool = False) -> Iterator[Message]:
    """Messages from numbered lines; split out so property tests can feed any text."""
    chat = src.path.stem.removeprefix("[LINE] ").removeprefix("Chat with ").strip() or src.path.stem
    day: date | None = None
    pending: _Pending | None = None
    held: tuple[int, str, date] | None = None   # a date line inside an open quote: a new day or text?
    for number, raw in lines:
        line = raw.rstrip("\r\n")
        match = _LINE.match(line) if line[:1].isdigit() or line[:1] in "上下午AaPp" else None
        if pending is not None and pending.quoted and match is None:
            if held is not None:
                pending.body.append(held[1])
                held = None
            day_match = _DAY.match(line) if line[:1].isalnum() else None
            parsed = _day(day_match, order) if day_match else None
            if parsed is not None:
                held = (number, line, parsed)
                continue
            pending.body.append(line)
            if _closes(line):
                pending.quoted = False
            continue
        if held is not None:
            # A message line came before the quote closed: the quote was literal, the date line a new day.
            day, held = held[2], None
        if match is None:
            if number == 1 or (pending is None and day is None and _TITLE.match(line)):
                title = _TITLE.match(line)
                if title:
                    chat = clean_name(title["en"] or title["zh"] or title["ja"] or title["other"] or chat)
                    group = group or title["how"] == "in"
                    continue
            day_match = _DAY.match(line) if line[:1].isalnum() else None
            parsed = _day(day_match, order) if day_match else None
            if parsed is not None:
                if pending is not None:
                    yield from _emit(src, pending, chat, group)
                    pending = None
                day = parsed
            elif pending is not None:
                pending.body.append(line)
            elif line.strip() and not _SAVED.match(line):
                src.stats.records += 1
                src.skip("text before the first message")
            continue
        if pending is not None:
            yield from _emit(src, pending, chat, group)
            pending = None
        src.stats.records += 1
        hour = int(match["h"])
        half = match["pre"] or match["post"]
        if half:
            hour = hour % 12 + (12 if half in _PM else 0)
        sender, tab, text = match["rest"].partition("\t")
        if day is None or hour > 23 or int(match["m"]) > 59:
            src.skip("message line before the first date line" if day is None else "impossible time")
            continue
        pending = _Pending(number, day, hour, int(match["m"]), sender if tab else None, text if tab else sender)
    if pending is not None:
        if held is not None:
            pending.body.append(held[1])
        yield from _emit(src, pending, chat, group)


def _emit(src: Source, pending: _Pending, chat: str, group: bool) -> Iterator[Message]:
    stamp = _stamped(src, pending)
    if stamp is None:
        src.skip("impossible date")
    else:
        yield _message(src, pending, chat, group, stamp)


def _stamped(src: Source, pending: _Pending) -> datetime | None:
    try:
        return local_time(pending.day.year, pending.day.month, pending.day.day, pending.hour, pending.minute, 0,
                          src.tz)
    except (ValueError, OverflowError, OSError):
        return None  # a year at the edge of the calendar: not from a real export


def _message(src: Source, pending: _Pending, chat: str, group: bool, stamp: datetime) -> Message:
    body = pending.body
    while len(body) > 1 and not body[-1].strip():
        body.pop()  # the blank line before the next day's date line
    if len(body) > 1 and body[0].startswith('"') and not pending.quoted and _closes(body[-1]):
        text = "\n".join(body)[1:-1].replace('""', '"')   # LINE's quoting of a multi-line message
    else:
        text = "\n".join(body)
    text = clean_text(text)
    sender = src.person(pending.sender) if pending.sender else ""
    extra: dict = {}
    if not sender:
        kind = Kind.SYSTEM   # "Ann joined the group.", "Ann changed the group name": nobody said it
    elif _STICKER.match(text):
        kind = Kind.STICKER
    elif _MEDIA.match(text):
        kind, text = Kind.MEDIA, ""
    elif _SYSTEM.search(text) and "\n" not in text:
        kind = Kind.SYSTEM
        if _UNSENT.search(text):
            extra["recalled"] = True
    else:
        kind = text_kind(text)
    return Message(platform="line", chat_id=chat, chat_name=chat, chat_type="group" if group else "dm",
                   sender_id=sender or "system", sender_name=sender or "system",
                   is_owner=bool(sender) and bool(src.owner) and src.owner.matches(sender),
                   timestamp=stamp, text=text, kind=kind, message_id=str(pending.number),
                   source=src.where(pending.number), extra=extra)
