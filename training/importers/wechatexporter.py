"""WechatExporter's text output (BlueMatthew/WechatExporter: WeChat chats read from an iPhone backup).

One ``index.txt`` per chat, in a folder named after the chat. The first line is
``NAME - 微信聊天记录`` (``NAME - WeChat Chat History`` in the English build). Each message starts
with ``SENDER (YYYY-MM-DD HH:MM:SS):TEXT`` (an ASCII colon, no space after it); the lines after it,
up to the next such line, continue it unescaped. Times are the exporting machine's wall clock, read
in ``tz``. Senders are display names only, so the owner is whoever ``--owner`` names.

The tool's text templates leave marks that are undone here:

- a quoted reply is a ``「name：quoted text」`` block and a ``- - - …`` line before the reply's own
  text. The quote is context (``extra["quote"]``), never a message by the quoted person. A quote
  block with no sender line above it cannot be attributed to anyone: it is counted as skipped, not
  glued onto the message before it;
- system notices (recalls ``撤回了一条消息``, pats, joins, ``系统消息：…``) are lines without a
  sender or time (they get the time of the message before them). Their template ends without a line
  break, so the next sender line can follow on the same line (``"小明" 撤回了一条消息Mia (…):…``):
  the two are split again where a sender's name starts;
- media are placeholders (``[图片]``, ``[语音 0:05]``, ``[视频]``, ``[文件: …]``, …): MEDIA without
  text; ``[表情]`` is a custom sticker: STICKER. Emoji codes such as ``[捂脸]`` stay in the text.

A line shaped like a sender line inside a message (quoted chat text) is ambiguous: it is read as
text when its "sender" speaks nowhere else in the file and its time runs against the file's order.
DM or group is not written down either: a chat where two or more people besides the chat's own
name speak is a group.

Tested in ``tests/training/importers/test_wechatexporter.py``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
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

STICKER_TEXT = "[动画表情]"   # as training.importers.wechat writes WeChat stickers
TITLE = re.compile(r"^\ufeff?(?P<name>.*?)\s+-\s+(?:微信聊天记录|WeChat Chat History)\s*$")
_STAMP = r"\((\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})\):"
# The name is lazy: text that contains "(2023-01-01 10:00:00):" later in the line stays text.
HEADER = re.compile(rf"^(.{{0,80}}?) {_STAMP}(.*)$")
_STAMP_ANYWHERE = re.compile(rf" {_STAMP}")
_QUOTE_RULE = re.compile(r"^\s*-(?:\s+-){5,}\s*$")
_NOTICE = re.compile(
    r"^(?:系统消息[:：].*"
    r"|.{0,40}撤回了一条消息(?:\s*重新编辑)?"
    r"|(?:\"[^\"]{1,40}\"|我|你) ?拍了拍(?:\"[^\"]{1,40}\"|我|你|自己).{0,30}"
    r"|.{0,300}(?:加入了群聊|移出了群聊|退出了群聊|加入群聊)"
    r"|.{0,60}修改群名为.{1,80}|.{0,40}成为新群主"
    r"|你已添加了.{1,60}，现在可以开始聊天了。?|以上是打招呼的内容|.{0,40}开启了朋友验证.*"
    r"|.{0,40}领取了.{0,40}红包|.{0,80}与群里其他人都不是(?:微信)?朋友关系.*)$")
_MEDIA = re.compile(
    r"^(?:\[(?P<tag>图片|视频|语音|音频|位置|红包|转账|实时位置共享|文件|链接|个人名片|名片|视频号名片|视频号|"
    r"Photo|Video|Audio|Location|Red Packet|Transfer|Real-time Location|File|Link|Contact Card|Channel Card)"
    r"(?:[:：\s][^\]]*)?\].*|（视频丢失）|\(Video Missed\)|(?P<transfer>微信转账|Weixin Transfer)(?: .*)?)$")
_MEDIA_NAMES = {
    "图片": "image", "Photo": "image", "视频": "video", "Video": "video", "语音": "voice", "音频": "voice",
    "Audio": "voice", "位置": "location", "Location": "location", "实时位置共享": "location",
    "Real-time Location": "location", "红包": "red packet", "Red Packet": "red packet", "转账": "transfer",
    "Transfer": "transfer", "文件": "file", "File": "file", "链接": "link", "Link": "link",
    "个人名片": "contact card", "名片": "contact card", "Contact Card": "contact card",
    "视频号名片": "channel card", "视频号": "channel card", "Channel Card": "channel card",
}
_STICKERS = frozenset({"[表情]", "[Emoji]"})
_CALLS = frozenset({"[视频/语音通话]", "[Video/Audio Call]"})
# Titles of merged forwards ("群聊的聊天记录", "小明和Mia的聊天记录"), not a sentence about one.
_FORWARD = re.compile(r"^[^\s，。！？,.!?]{1,60}的聊天记录$")
# Words one of the notices above contains: most lines are not notices, and this is cheaper to rule out.
_NOTICE_WORDS = ("系统消息", "撤回", "拍了拍", "群", "添加了", "打招呼", "朋友验证", "红包", "朋友关系")
_QUOTE_SEARCH_LINES = 200


def sniff(head: str) -> int:
    """How much ``head`` looks like a WechatExporter text export (0: not at all).

    One point per ``SENDER (YYYY-MM-DD HH:MM:SS):`` line, 20 for the ``NAME - 微信聊天记录`` title.
    """
    lines = head.splitlines()[:200]
    score = sum(1 for line in lines if "):" in line and HEADER.match(line))
    first = next((line for line in lines if line.strip()), "")
    return score + (20 if TITLE.match(first) else 0)


@dataclass
class Survey:
    """What a first pass over the file tells: the chat's name, who speaks how often, the order."""

    chat_name: str
    senders: Counter = field(default_factory=Counter)
    descending: bool = False


def is_group(senders: Counter, chat_name: str) -> bool:
    """Group or DM from who speaks: in a DM only the owner speaks besides the chat's own name.

    Names seen once may be quoted text that looked like a sender line, so they count only when
    there are many of them, or when the chat's own name never speaks.
    """
    others = [name for name in senders if name and name != chat_name]
    regular = [name for name in others if senders[name] >= 2]
    return len(others) >= 3 or len(regular) >= 2 or (chat_name not in senders and len(others) >= 2)


def chat_id_for(path: Path) -> str:
    # WechatExporter writes <chat folder>/index.txt (index-2.txt... for later pages).
    return path.parent.name if path.stem.startswith("index") and path.parent.name else path.stem


def parse(src: Source) -> Iterator[Message]:
    encoding = detect_encoding(src, ("utf-8",))
    survey = survey_lines(src, iter_lines(src, encoding))
    yield from parse_lines(src, iter_lines(src, encoding), survey)


def survey_lines(src: Source, lines: Iterable[tuple[int, str]]) -> Survey:
    survey = Survey(chat_id_for(src.path))
    first = last = ""
    looking_for_title = True
    for _, line in lines:
        if looking_for_title and line.strip():
            looking_for_title = False
            title = TITLE.match(line)
            if title:
                survey.chat_name = clean_name(title.group("name")) or survey.chat_name
                continue
        match = HEADER.match(line) if "):" in line else None
        if match is not None:
            survey.senders[src.person(match.group(1))] += 1
            # The time stamps are fixed-width, so their text sorts as they do.
            last = "".join(match.groups()[1:7])
            first = first or last
    survey.descending = last < first
    # A notice glued to the sender line after it reads as one long "sender" name: count it as
    # the sender whose name it ends with.
    regular = _regular(survey)
    for name in [n for n in survey.senders if n not in regular]:
        glued = _split_glued(name + " (2000-01-01 00:00:00):", regular, _is_notice)
        if glued is not None:
            real = glued[1][: -len(" (2000-01-01 00:00:00):")]
            survey.senders[real] += survey.senders.pop(name)
    return survey


def _regular(survey: Survey) -> list[str]:
    """Names that surely are senders (they speak twice or more, or are the chat's), longest first."""
    names = {name for name, count in survey.senders.items() if name and count >= 2} | {survey.chat_name}
    return sorted(names, key=len, reverse=True)


def _header(line: str, src: Source) -> tuple[str, datetime, str] | None:
    """(sender, time, text) of a sender line, or None (also for an impossible date: that is text)."""
    match = HEADER.match(line)
    if not match:
        return None
    name, year, month, day, hour, minute, second, text = match.groups()
    try:
        stamp = local_time(int(year), int(month), int(day), int(hour), int(minute), int(second), src.tz)
    except (ValueError, OverflowError, OSError):
        return None
    return src.person(name), stamp, text


@dataclass
class _Pending:
    number: int
    sender: str                    # "" for a system notice
    stamp: datetime | None         # None: a notice before any time is known
    lines: list[str]
    notice: bool = False
    ident: str = ""                # message_id when the line number is shared with a glued line


def parse_lines(src: Source, lines: Iterable[tuple[int, str]], survey: Survey | None = None) -> Iterator[Message]:
    """Messages from numbered lines; split out so property tests can feed any text."""
    survey = survey or Survey(chat_id_for(src.path))
    chat = (chat_id_for(src.path), survey.chat_name, "group" if is_group(survey.senders, survey.chat_name) else "dm")
    regular = _regular(survey)
    regular_set = set(regular)
    pending: _Pending | None = None
    waiting: list[_Pending] = []          # notices before the first timed message
    last: datetime | None = None
    looking_for_title = True

    def in_order(sender: str, stamp: datetime) -> bool:
        if pending is None or last is None or survey.senders[sender] >= 2 or sender == survey.chat_name:
            return True
        if src.owner and src.owner.matches(sender):
            return True
        return stamp <= last if survey.descending else stamp >= last

    def finish(item: _Pending | None) -> Iterator[Message]:
        if item is None:
            return
        stamp = item.stamp or last
        if stamp is None:
            waiting.append(item)
            return
        message = _message(src, item, stamp, chat)
        if message is not None:
            yield message

    for number, line in lines:
        if looking_for_title and line.strip():
            looking_for_title = False
            if TITLE.match(line):
                continue
        header = _header(line, src) if "):" in line else None
        if "):" in line and (header is None or header[0] not in regular_set):
            glued = _split_glued(line, regular, _is_notice)
            if glued is not None and (after := _header(glued[1], src)) is not None:
                yield from finish(pending)
                src.stats.records += 1
                pending, header = _Pending(number, "", None, [glued[0]], True, f"{number}-notice"), after
            elif header is not None and not in_order(header[0], header[1]):
                header = None
        if header is not None:
            yield from finish(pending)
            sender, stamp, text = header
            for notice in waiting:
                message = _message(src, notice, stamp, chat)
                if message is not None:
                    yield message
            waiting.clear()
            last = stamp
            src.stats.records += 1
            pending = _Pending(number, sender, stamp, [text])
            continue
        if _is_notice(line):
            yield from finish(pending)
            src.stats.records += 1
            pending = _Pending(number, "", None, [line], notice=True)
        elif pending is not None:
            pending.lines.append(line)
        elif line.strip():
            src.stats.records += 1
            src.skip("text before the first message")
    yield from finish(pending)
    if waiting:
        src.skip("system line without a time", len(waiting))


def _is_notice(line: str) -> bool:
    return any(word in line for word in _NOTICE_WORDS) and bool(_NOTICE.match(clean_text(line)))


def _split_glued(line: str, known: list[str], accept) -> tuple[str, str] | None:
    """(prefix, sender line) where a known sender's line starts right after ``accept``-ed text."""
    for match in _STAMP_ANYWHERE.finditer(line):
        before = line[: match.start()]
        for name in known:
            if name and before.endswith(name):
                prefix = before[: -len(name)]
                if prefix.strip() and accept(prefix):
                    return prefix, line[len(prefix):]
    return None


def _rule_after(lines: list[str], start: int) -> int | None:
    """The index of the dashed line that closes a ``「…」`` quote starting at ``start``."""
    for index in range(start + 1, min(len(lines), start + _QUOTE_SEARCH_LINES)):
        if _QUOTE_RULE.match(lines[index]) and lines[index - 1].rstrip().endswith("」"):
            return index
    return None


def _cut_quotes(lines: list[str]) -> tuple[list[str], str, int]:
    """The message's own lines, its leading quote, and how many sender-less quoted replies follow."""
    quote = ""
    if lines and lines[0].lstrip().startswith("「"):
        rule = _rule_after(lines, 0)
        if rule is not None:
            quote, lines = "\n".join(lines[:rule]).strip(), lines[rule + 1:]
    for index, line in enumerate(lines):
        if line.lstrip().startswith("「") and _rule_after(lines, index) is not None:
            tail = lines[index:]
            blocks = sum(1 for i in range(1, len(tail)) if _QUOTE_RULE.match(tail[i])
                         and tail[i - 1].rstrip().endswith("」"))
            return lines[:index], quote, blocks
    return lines, quote, 0


def _message(src: Source, item: _Pending, stamp: datetime, chat: tuple[str, str, str]) -> Message | None:
    own, quote, orphans = _cut_quotes(item.lines)
    if orphans:
        src.skip("quoted reply without a sender line", orphans)
    text = clean_text("\n".join(own))
    extra: dict = {}
    if quote:
        name, _, quoted = quote.strip("「」").partition("：")
        extra["quote"] = {"name": clean_name(name), "text": clean_text(quoted)}
    sender = item.sender
    if item.notice or not sender:
        kind, sender = Kind.SYSTEM, ""
    elif text in _STICKERS:
        kind, text = Kind.STICKER, STICKER_TEXT
    elif text in _CALLS:
        kind = Kind.SYSTEM
    elif len(text) < 200 and (media := _MEDIA.match(text)):
        kind, text = Kind.MEDIA, ""
        extra["media"] = "transfer" if media.group("transfer") else _MEDIA_NAMES.get(media.group("tag"), "video")
    elif _FORWARD.match(text):
        kind, text = Kind.FORWARD, ""
    else:
        kind = text_kind(text)
    if kind is Kind.SYSTEM and "撤回" in text:
        extra["recalled"] = True
    if not text and kind in (Kind.TEXT, Kind.SYSTEM):
        src.skip("empty message")
        return None
    chat_id, chat_name, chat_type = chat
    return Message(platform="wechat", chat_id=chat_id, chat_name=chat_name, chat_type=chat_type,
                   sender_id=sender or "system", sender_name=sender or "system",
                   is_owner=bool(sender) and bool(src.owner) and src.owner.matches(sender),
                   timestamp=stamp, text=text, kind=kind, message_id=item.ident or str(item.number),
                   source=src.where(item.number), extra=extra)
