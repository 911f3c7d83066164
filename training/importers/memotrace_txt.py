"""MemoTrace/WeChatMsg's TXT export (留痕: 导出聊天记录 → TXT), one ``{contact remark}.txt`` per chat.

Each message is a ``{StrTime} {display name}`` line (``2023-10-01 15:00:00 小明``), its content on
the lines below, and a blank line. That header is a QQ text export's header too; what differs, and
is read here:

- a header only counts at the top of the file or after a blank line, so content that contains a
  date-and-name line stays content;
- a system notice is a header whose "name" is the notice itself, with no content
  (``2023-10-01 15:02:30 "小明" 撤回了一条消息``): SYSTEM, said by nobody;
- display names went through the tool's HTML and JavaScript escaping (``&amp;``, ``\\'``) and are
  unescaped; content is written raw;
- a quoted reply ends with ``引用:name:quoted text``: the quote is context (``extra["quote"]``),
  not the sender's words;
- placeholders ``[图片]``, ``[语音]``, ``[视频]``, ``[文件]``, ``[音乐分享]`` and the indented
  ``[链接]:title:…`` block are MEDIA without text, ``[表情包]`` is a STICKER; emoji codes such as
  ``[捂脸]`` stay in the text.

The file has display names only, so the owner is whoever ``--owner`` names; DM or group is told
from who speaks (``wechatexporter.is_group``). Times are local wall-clock times in ``tz``.

Tested in ``tests/training/importers/test_wechat.py`` (the TXT tests).
"""

from __future__ import annotations

import html
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import datetime

from training.importers.base import Source, clean_name, clean_text, detect_encoding, iter_lines, local_time, text_kind
from training.importers.messages import Kind, Message
from training.importers.wechatexporter import STICKER_TEXT, is_group

HEADER = re.compile(r"^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2}) (.+)$")
_JS_ESCAPE = re.compile(r"\\([\\'\"nrt])")
_MEDIA = {"[图片]": "image", "[语音]": "voice", "[视频]": "video", "[文件]": "file", "[音乐分享]": "music"}
_LINK = "[链接]:title:"
_QUOTE = "引用:"
# What only QQ writes: its section lines and rules, and QQ numbers or e-mail ids after names.
_QQ_MARKS = re.compile(r"^(?:消息分组|消息对象)[:：]|^={8,}|消息记录（此消息记录为文本格式", re.M)
_QQ_SENDER = re.compile(r"(?:[(（]\d{5,12}[)）]|<[^<>\s]+>)\s*$")
# What only MemoTrace writes: its placeholders, its quote line, WeChat's own emoji codes.
_MARKS = re.compile(r"^(?:\[表情包\]|\[音乐分享\]|\s*\[链接\]:title:|引用:)"
                    r"|\[(?:捂脸|破涕为笑|旺柴|奸笑|呲牙|偷笑|机智|吃瓜|裂开|苦涩|让我看看|社会社会|Emm|耶|皱眉)\]",
                    re.M)


def sniff(head: str) -> int:
    """How much ``head`` looks like a MemoTrace TXT export (0: not at all).

    One point per ``YYYY-MM-DD HH:MM:SS name`` line at the top or after a blank line (as many as
    ``qq.sniff`` gives the same file), plus 5 when a MemoTrace mark is there; 0 when a QQ mark is.
    """
    if _QQ_MARKS.search(head):
        return 0
    score, blank = 0, True
    for line in head.splitlines()[:400]:
        if blank and line[:1].isdigit():
            match = HEADER.match(line)
            if match:
                if _QQ_SENDER.search(match.group(7)):
                    return 0
                score += 1
        blank = not line.strip()
    return score + (5 if score and _MARKS.search(head) else 0)


def unescape_name(name: str) -> str:
    """A display name as the person wrote it, before MemoTrace's HTML and JavaScript escaping."""
    if "\\" in name:
        name = _JS_ESCAPE.sub(lambda m: {"n": " ", "r": " ", "t": " "}.get(m.group(1), m.group(1)), name)
    if "&" in name:
        name = html.unescape(name)
    return clean_name(name)


def _sender(src: Source, raw: str) -> str:
    # src.person memoizes: the same few names head every message.
    return src.person(raw) if "\\" not in raw and "&" not in raw else unescape_name(raw)


def parse(src: Source) -> Iterator[Message]:
    encoding = detect_encoding(src, ("utf-8", "gb18030"))
    senders = survey_lines(src, iter_lines(src, encoding))
    yield from parse_lines(src, iter_lines(src, encoding), senders)


def _header(line: str, src: Source) -> tuple[datetime, str] | None:
    match = HEADER.match(line)
    if not match:
        return None
    year, month, day, hour, minute, second, rest = match.groups()
    try:
        stamp = local_time(int(year), int(month), int(day), int(hour), int(minute), int(second), src.tz)
    except (ValueError, OverflowError, OSError):
        return None  # not a real date: content that looks like a header
    return stamp, rest


def _headers(src: Source, lines: Iterable[tuple[int, str]]) -> Iterator[tuple[int, str, tuple | None]]:
    """(number, line, header or None) for each line; a header only after a blank line or at the top."""
    blank = True
    for number, raw in lines:
        line = raw.rstrip()
        header = _header(line, src) if blank and line[:1].isdigit() else None
        blank = not line
        yield number, line, header


def survey_lines(src: Source, lines: Iterable[tuple[int, str]]) -> Counter:
    """Who speaks how often: the names of headers that have content (notices have none)."""
    senders: Counter = Counter()
    name = None
    blank = True
    for _, raw in lines:
        line = raw.rstrip()
        if name is not None and line:
            senders[_sender(src, name)] += 1
        # Only the shape here: the second pass checks the dates.
        match = HEADER.match(line) if blank and line[:1].isdigit() else None
        name = match.group(7) if match else None
        blank = not line
    return senders


def parse_lines(src: Source, lines: Iterable[tuple[int, str]], senders: Counter | None = None) -> Iterator[Message]:
    """Messages from numbered lines (``senders`` from ``survey_lines``); split out for property tests."""
    senders = senders or Counter()
    group = is_group(senders, src.path.stem)
    pending: tuple[int, datetime, str] | None = None
    body: list[str] = []
    for number, line, header in _headers(src, lines):
        if header is not None:
            if pending is not None:
                yield from _message(src, pending, body, group, senders)
            src.stats.records += 1
            pending, body = (number, *header), []
        elif pending is not None:
            body.append(line)
        elif line.strip():
            src.stats.records += 1
            src.skip("text before the first message")
    if pending is not None:
        yield from _message(src, pending, body, group, senders)


def _message(src: Source, pending: tuple[int, datetime, str], body: list[str], group: bool,
             senders: Counter) -> Iterator[Message]:
    number, timestamp, rest = pending
    while body and not body[-1].strip():
        body.pop()
    extra: dict = {}
    if not body and _sender(src, rest) in senders:
        src.skip("empty message")  # a sender's header without content: an empty message, not a notice
        return
    if not body:
        # A notice: the header's "name" is the notice's text, and nobody said it.
        sender, text, kind = "", clean_text(rest), Kind.SYSTEM
        if "撤回" in text:
            extra["recalled"] = True
    else:
        sender = _sender(src, rest)
        quote_at = next((i for i, line in enumerate(body) if line.startswith(_QUOTE)), None)
        if quote_at is not None:
            name, _, quoted = "\n".join(body[quote_at:])[len(_QUOTE):].partition(":")
            extra["quote"] = {"name": clean_name(name), "text": clean_text(quoted)}
            body = body[:quote_at]
        text = clean_text("\n".join(body))
        if text in _MEDIA:
            extra["media"] = _MEDIA[text]
            kind, text = Kind.MEDIA, ""
        elif text.startswith(_LINK):
            kind, text = Kind.MEDIA, ""
            extra["media"] = "link"
        elif text == "[表情包]":
            kind, text = Kind.STICKER, STICKER_TEXT
        elif not text:
            src.skip("quoted reply without its text" if quote_at is not None else "empty message")
            return
        else:
            kind = text_kind(text)
    chat = src.path.stem
    yield Message(platform="wechat", chat_id=chat, chat_name=chat, chat_type="group" if group else "dm",
                  sender_id=sender or "system", sender_name=sender or "system",
                  is_owner=bool(sender) and bool(src.owner) and src.owner.matches(sender),
                  timestamp=timestamp, text=text, kind=kind, message_id=str(number), source=src.where(number),
                  extra=extra)
