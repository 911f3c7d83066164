"""Signal Desktop, as signal-export writes it: one folder per chat with ``chat.md`` (older: ``index.md``).

Each message starts a line ``[2023-05-14 21:03:07] Ann: text`` (older versions: no seconds, or
``[2023-05-14, 21:03]``); the owner's own messages are sent by ``Me``, which the export sets, so the
owner needs no name here (one given as owner also matches). Lines that do not start a message
continue the one before. signal-export appends to the text what it knows about the message:

- a quoted message, as ``>`` lines after an empty first line, before the reply's own text;
- reactions, ``(- Bo: 👍, Me: ❤️ -)``, and a sticker, ``(( 😀 ))`` or a link to its image;
- attachments, ``![IMG_0042.jpg](./media/IMG_0042.jpg)`` (images) or ``[voice.m4a](./media/…)``;
- ``(This message was deleted)``, and call notices (``Missed voice call``, ``Outgoing call``).

These go to ``extra`` (``quote``, ``reactions``, ``attachments``), never into the text. Messages
with nothing left (group changes, which the export writes with an empty text) are skipped and
counted. Times are the local wall-clock times signal-export wrote, in ``tz``.

What tells a Signal export from a Markdown article (detection): most lines start with
``[YYYY-MM-DD HH:MM(:SS)] Name: ``; ``Me:`` senders; ``](./media/`` links and ``(- … -)``
reactions; a file named ``chat.md`` or ``index.md`` in a folder beside a ``media/`` folder.
Tested in ``tests/training/importers/test_signal.py``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import datetime

from training.importers.base import Source, clean_name, clean_text, detect_encoding, iter_lines, local_time, text_kind
from training.importers.messages import Kind, Message

HEADER = re.compile(r"^\[(?P<y>\d{4})-(?P<mo>\d{2})-(?P<d>\d{2}),? (?P<h>\d{2}):(?P<mi>\d{2})(?::(?P<s>\d{2}))?\] "
                    r"(?P<who>[^\n]{1,200}?): ?(?P<text>.*)$")
ME = "Me"
_REACTIONS = re.compile(r"^\(- (?P<list>.*) -\)$")
_STICKER = re.compile(r"^\(\( (?P<label>.*) \)\)$")
# A file name may hold brackets, so a link ends at the ")" before a space, the line's end or the next link.
_LINK = re.compile(r"(?P<image>!?)\[(?P<name>[^\[\]\n]*)\]\((?P<path>\.{1,2}/(?:media|exported_stickers)/\S*?)\)"
                   r"(?=\s|$|!?\[)")
_DELETED = "(This message was deleted)"
_CALL = re.compile(r"^(?:(?:Incoming|Outgoing|Missed) (?:voice |video )?call(?: \([^()]*\))?)$")


def sniff(head: str) -> int:
    """How much ``head`` looks like a signal-export chat (0: not at all).

    Message lines alone also fit a WhatsApp export from a phone that writes ISO dates
    (``[2023-05-14 21:03:07] Ann: hi``), so each line with a mark only signal-export leaves (the
    two trailing spaces of a Markdown line break, a reaction line, a ``./media/`` link, a ``Me:``
    sender) counts once more: a Signal chat scores about twice what ``whatsapp.sniff`` gives it.
    """
    lines = head.splitlines()[:400]
    messages = sum(1 for line in lines if line[:1] == "[" and HEADER.match(line))
    if not messages:
        return 0
    marks = sum(1 for line in lines if line.endswith("  ") or line.startswith("(- ") or "](./media/" in line
                or "] Me: " in line)
    return messages + marks


def chat_name_for(src: Source) -> str:
    path = src.path
    if path.stem in ("chat", "index") and path.parent.name:
        return path.parent.name   # signal-export names each chat's folder after the chat
    return path.stem


def parse(src: Source) -> Iterator[Message]:
    encoding = detect_encoding(src, ("utf-8",))
    senders = _survey(iter_lines(src, encoding))
    yield from parse_lines(src, iter_lines(src, encoding), group=len(senders) > 2)


def _survey(lines: Iterable[tuple[int, str]]) -> set[str]:
    senders: set[str] = set()
    seen: set[str] = set()   # raw names already cleaned: a chat has few, on every line
    for _, line in lines:
        match = HEADER.match(line) if line[:1] == "[" else None
        if match and match["who"] not in seen:
            seen.add(match["who"])
            senders.add(clean_name(match["who"]))
            if len(senders) > 2:
                break
    return senders


def parse_lines(src: Source, lines: Iterable[tuple[int, str]], *, group: bool = False) -> Iterator[Message]:
    """Messages from numbered lines; split out so property tests can feed any text."""
    chat = chat_name_for(src)
    pending: tuple[int, datetime, str] | None = None
    body: list[str] = []
    for number, raw in lines:
        line = raw.rstrip("\r\n")
        match = HEADER.match(line) if line[:1] == "[" else None
        stamp = _stamp(match, src) if match else None
        if stamp is None:
            if pending is not None:
                body.append(line)
            elif line.strip() and not line.startswith("# "):
                src.stats.records += 1
                src.skip("text before the first message")
            continue
        if pending is not None:
            yield from _message(src, pending, body, chat, group)
        src.stats.records += 1
        pending, body = (number, stamp, match["who"]), [match["text"]]
    if pending is not None:
        yield from _message(src, pending, body, chat, group)


def _stamp(match: re.Match, src: Source) -> datetime | None:
    try:
        return local_time(int(match["y"]), int(match["mo"]), int(match["d"]), int(match["h"]), int(match["mi"]),
                          int(match["s"] or 0), src.tz)
    except (ValueError, OverflowError, OSError):
        return None   # not a real time: message text that looks like a message line


def _message(src: Source, pending: tuple[int, datetime, str], body: list[str], chat: str,
             group: bool) -> Iterator[Message]:
    number, stamp, who = pending
    sender = src.person(who)
    extra: dict = {}
    words: list[str] = []
    quote: list[str] = []
    sticker = ""
    for index, line in enumerate(body):
        text = line.rstrip()   # signal-export ends each message with two spaces (a Markdown line break)
        if line.startswith("> ") or line == ">":
            if not words or not "".join(words).strip():
                quote.append(line[2:])
                continue
        found = False
        if "](" in text:
            # Attachments follow the text, or the reactions line, on the same line.
            text, found = _take_links(text, extra)
            text = text.rstrip()
        reactions = _REACTIONS.match(text) if text.startswith("(- ") and index else None
        if reactions:
            extra["reactions"] = _reactions(reactions["list"])
            continue
        label = _STICKER.match(text) if text.startswith("((") and index else None
        if label:
            sticker = label["label"]
            continue
        if found and not text:
            continue
        # Only the body's end carries signal-export's two spaces; clean_text drops them there.
        words.append(text if found else line)
    if quote:
        extra["quote"] = clean_text("\n".join(quote))
    text = clean_text("\n".join(words))
    sticker = sticker or extra.pop("sticker", "")
    if sticker:
        kind, text = Kind.STICKER, sticker
    elif text == _DELETED:
        kind, text = Kind.SYSTEM, text
        extra["recalled"] = True
    elif _CALL.match(text):
        kind = Kind.SYSTEM
    elif extra.get("attachments"):
        kind = Kind.MEDIA
    elif not text:
        src.skip("message without text (group change or other notice)")
        return
    else:
        kind = text_kind(text)
    mine = sender == ME
    if mine:
        src.stats.owner_marked = True
    yield Message(platform="signal", chat_id=chat, chat_name=chat, chat_type="group" if group else "dm",
                  sender_id=sender, sender_name=sender,
                  is_owner=mine or (bool(src.owner) and src.owner.matches(sender)),
                  timestamp=stamp, text=text, kind=kind, message_id=str(number), source=src.where(number),
                  extra=extra)


def _take_links(text: str, extra: dict) -> tuple[str, bool]:
    """``text`` without its attachment and sticker links, which are counted in ``extra``."""
    found = False

    def take(match: re.Match) -> str:
        nonlocal found
        found = True
        if "/exported_stickers/" in match["path"]:
            extra["sticker"] = match["name"] or "[sticker]"
        else:
            extra.setdefault("attachments", []).append(match["name"])
        return ""

    return _LINK.sub(take, text), found


def _reactions(listed: str) -> list[dict]:
    out = []
    for item in listed.split(", "):
        who, sep, emoji = item.rpartition(": ")
        if sep and who.strip():
            out.append({"reaction": emoji.strip(), "by": clean_name(who)})
    return out
