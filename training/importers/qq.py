"""QQ's text export (消息管理器 → 导出为 .txt), in UTF-8 or GB18030.

Each message is a header line ``2016-05-12 21:05:19 昵称`` (group exports add ``(QQ号)`` or
``<邮箱>``, sometimes a ``【管理员】`` title) followed by the message lines and a blank line. A
file may hold several chats, each introduced by ``消息分组:`` and ``消息对象:`` lines between
``====`` rules. ``[图片]``-style placeholders stand for media that is not in the file; ``[表情]``
alone is a STICKER. Times are local wall-clock times in ``tz``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

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

HEADER = re.compile(
    r"^(\d{4})[-/](\d{1,2})[-/](\d{1,2})\s+(?:(上午|下午|AM|PM)\s*)?(\d{1,2}):(\d{2}):(\d{2})(?:\s*(AM|PM))?"
    r"\s+(?!-\s)(\S.*)$")
_SECTION = re.compile(r"^(消息分组|消息对象)\s*[:：]\s*(.*)$")
_RULE = re.compile(r"^={8,}\s*$")
_SENDER_ID = re.compile(r"^(.*?)\s*(?:[(（](\d{5,12})[)）]|<([^<>\s]+)>)\s*$")
_TITLES = re.compile(r"^(?:【[^】]*】\s*)+")
_MEDIA = re.compile(r"\[(?:图片|语音|视频|文件|闪照|QQ红包|红包|位置|名片|音乐|链接|Image|Photo|Voice|Video|File)\]")
_STICKER_ONLY = re.compile(r"^(?:\[表情\]\s*)+$")
_SYSTEM_IDS = frozenset({"10000", "1000000"})


def sniff(head: str) -> int:
    """How much ``head`` looks like a QQ export (0: not at all)."""
    score = sum(1 for line in head.splitlines()[:200] if HEADER.match(line))
    return score + (5 if "消息对象" in head or "消息记录（此消息记录为文本格式" in head else 0)


def parse(src: Source) -> Iterator[Message]:
    encoding = detect_encoding(src, ("utf-8", "gb18030"))
    yield from parse_lines(src, iter_lines(src, encoding))


def parse_header(line: str, src: Source) -> tuple | None:
    """(timestamp, sender id, sender name, has id) for a header line, or None if it is not one."""
    match = HEADER.match(line)
    if not match:
        return None
    year, month, day, ampm1, hour, minute, second, ampm2, who = match.groups()
    hour_n = int(hour)
    ampm = ampm1 or ampm2
    if ampm in ("下午", "PM") and hour_n < 12:
        hour_n += 12
    elif ampm in ("上午", "AM") and hour_n == 12:
        hour_n = 0
    try:
        stamp = local_time(int(year), int(month), int(day), hour_n, int(minute), int(second), src.tz)
    except (ValueError, OverflowError, OSError):
        return None  # not a real date: a line of message text that looks like a header
    who = _TITLES.sub("", who.strip())
    ident = _SENDER_ID.match(who)
    if ident:
        name = src.person(ident.group(1))
        sender_id = ident.group(2) or ident.group(3)
        return stamp, sender_id, name or sender_id, True
    name = src.person(who)
    return stamp, name, name, False


def parse_lines(src: Source, lines: Iterable[tuple[int, str]]) -> Iterator[Message]:
    """Messages from numbered lines; split out so property tests can feed any text."""
    chat_name = src.path.stem
    group_label = ""
    pending: tuple | None = None          # (line number, header fields)
    body: list[str] = []
    for number, raw in lines:
        line = raw.rstrip()
        header = parse_header(line, src) if line[:1].isdigit() else None
        if header is None:
            section = _SECTION.match(line) if line.startswith("消息") else None
            if section or _RULE.match(line):
                if pending is not None:
                    yield _message(src, pending, body, chat_name, group_label)
                    pending, body = None, []
                if section and section.group(1) == "消息对象":
                    chat_name = clean_name(section.group(2)) or chat_name
                elif section:
                    group_label = section.group(2).strip()
                continue
            if pending is not None:
                body.append(line)
            elif line.strip() and not line.startswith("消息记录"):
                src.stats.records += 1
                src.skip("text before the first message")
            continue
        if pending is not None:
            yield _message(src, pending, body, chat_name, group_label)
        src.stats.records += 1
        pending, body = (number, header), []
    if pending is not None:
        yield _message(src, pending, body, chat_name, group_label)


def _message(src: Source, pending: tuple, body: list[str], chat_name: str, group_label: str) -> Message:
    number, (timestamp, sender_id, sender_name, has_id) = pending
    text = clean_text("\n".join(body))
    if sender_id in _SYSTEM_IDS or sender_name == "系统消息":
        kind = Kind.SYSTEM
    elif _STICKER_ONLY.match(text):
        kind, text = Kind.STICKER, "[表情]"
    else:
        stripped = clean_text(_MEDIA.sub("", text)) if "[" in text else text
        if text and not stripped:
            kind, text = Kind.MEDIA, ""
        else:
            text = stripped
            kind = text_kind(text)
    if group_label:
        group = any(word in group_label for word in ("群", "讨论组", "group", "Group"))
    else:
        group = has_id
    return Message(platform="qq", chat_id=chat_name, chat_name=chat_name, chat_type="group" if group else "dm",
                   sender_id=sender_id, sender_name=sender_name,
                   is_owner=bool(src.owner) and src.owner.matches(sender_id, sender_name),
                   timestamp=timestamp, text=text, kind=kind, message_id=str(number), source=src.where(number))
