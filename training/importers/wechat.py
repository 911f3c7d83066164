"""WeChat exports: WeChatMsg/MemoTrace CSV, PyWxDump CSV and the JSON that WeChatMsg writes.

Both CSVs mark the owner's messages themselves (``IsSender`` / ``is_sender``), so ``--owner`` is
not needed to find them; it names them. MemoTrace's ``Remark``/``NickName`` often describe the
contact even on the owner's rows, so those are never taken as the owner's name (``parse_memotrace``).
Text keeps bracketed emoji codes such as ``[捂脸]``: they carry the owner's tone, and a
message made only of them is EMOJI. Animated stickers have no text in the export and become
STICKER ``[动画表情]``; merged forwarded chats are FORWARD; recalls, pats and calls are SYSTEM.
Files re-saved by Excel on a Chinese system are GB18030, which is accepted too.

WeChatMsg's JSON is already a list of ``{"conversations": [{role, content}]}`` samples whose
consecutive messages were joined with newlines; they are split back into messages.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from training.importers.base import (
    Source,
    clean_name,
    clean_text,
    detect_encoding,
    from_epoch,
    iter_lines,
    local_time,
    text_kind,
)
from training.importers.messages import Kind, Message
from training.importers.sharegpt import iter_records, record_messages

MEMOTRACE_REQUIRED = ("localId", "TalkerId", "Type", "IsSender", "CreateTime", "StrContent")
PYWXDUMP_REQUIRED = ("type_name", "is_sender", "talker", "room_name", "CreateTime")

# MemoTrace Type codes (WeChat's own message types); 49 is an "app message" refined by SubType.
_MEDIA_TYPES = {3: "image", 34: "voice", 42: "contact card", 43: "video", 48: "location", 49: "app message"}
_SYSTEM_TYPES = {50: "call", 10000: "system", 10002: "system"}
_PYWXDUMP_KINDS = {
    "文本": Kind.TEXT, "引用回复": Kind.TEXT, "带有引用的文本消息": Kind.TEXT, "粘贴的文本": Kind.TEXT,
    "类似文字消息而不一样的消息": Kind.TEXT,
    "动画表情": Kind.STICKER, "用户上传的GIF表情": Kind.STICKER,
    "合并转发的聊天记录": Kind.FORWARD,
    "系统通知": Kind.SYSTEM, "拍一拍": Kind.SYSTEM, "撤回消息": Kind.SYSTEM, "语音通话": Kind.SYSTEM,
    "添加好友": Kind.SYSTEM, "群公告": Kind.SYSTEM,
}
STICKER_TEXT = "[动画表情]"
# The owner's sender name when the export has none for them; training.dataset.build knows it is no name.
OWNER_PLACEHOLDER = "我"
# WeChat ids: wxid_…, chat rooms, official accounts, numeric (QQ-era) ids, and custom WeChat IDs
# (6-20 letters, digits, _ or -, starting with a letter). Display names are anything else.
_WXID = re.compile(r"^(?:wxid_\w+|\w+@chatroom|gh_\w+|\d{5,}|[A-Za-z][-\w]{5,19})$", re.ASCII)
# Ids that are surely not a person's name, for --owner values ("MiaChen" could be either: kept).
_PLAIN_ID = re.compile(r"^(?:wxid_\w+|\w+@chatroom|gh_\w+|user\d+|\d+)$", re.ASCII)


def _rows(src: Source, required: tuple[str, ...], alternatives: tuple[str, ...] = ()) -> Iterator[tuple[int, dict]]:
    """(line, row dict) for each CSV row, after checking the header names every required column."""
    encoding = detect_encoding(src, ("utf-8-sig", "gb18030"))
    lines = (text for _, text in iter_lines(src, encoding, keepends=True))
    reader = csv.reader(lines)
    try:
        header = [name.strip().lstrip("\ufeff") for name in next(reader)]
    except StopIteration:
        raise src.error(None, "the file is empty") from None
    except csv.Error as exc:
        raise src.error(1, f"is not a valid CSV header ({exc})") from None
    missing = [name for name in required if name not in header]
    if alternatives and not any(name in header for name in alternatives):
        missing.append(" or ".join(alternatives))
    if missing:
        raise src.error(1, f"missing column(s) {', '.join(missing)} (found: {', '.join(header) or 'none'})")
    width = len(header)
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise src.error(reader.line_num, f"is not valid CSV ({exc})") from None
        if not row:
            continue
        src.stats.records += 1
        if len(row) != width:
            raise src.error(reader.line_num, f"has {len(row)} field(s) but the header has {width} "
                                             "(a cut-off or hand-edited row?)")
        yield reader.line_num, dict(zip(header, row, strict=True))


def _epoch_or_text(value: str, line: int, src: Source) -> datetime:
    value = value.strip()
    try:
        number = float(value)
    except ValueError:
        pass
    else:
        # Some tools write milliseconds.
        return from_epoch(number / 1000 if number > 1e11 else number, src.tz)
    try:
        stamp = datetime.fromisoformat(value.replace("/", "-"))
        return local_time(stamp.year, stamp.month, stamp.day, stamp.hour, stamp.minute, stamp.second, src.tz)
    except ValueError:
        raise src.error(line, f"CreateTime {value!r} is neither a Unix time nor a date-time") from None


def _chat_name_from_file(path: Path) -> str:
    # MemoTrace names its files "<contact remark>_utf8.csv".
    return path.stem.removesuffix("_utf8").removesuffix("_utf-8") or path.stem


def looks_like_wxid(value: str) -> bool:
    return bool(_WXID.match(value))


def is_plain_id(value: str) -> bool:
    """True for a value that is an id and never a name (``wxid_…``, ``user123``, digits)."""
    return bool(_PLAIN_ID.match(value.strip()))


def owner_given_name(src: Source) -> str:
    """The first ``--owner`` value that is a name rather than an id, or ""."""
    return next((name for name in src.owner.names if not is_plain_id(name)), "")


class _OwnerRows:
    """Names the owner's rows of a MemoTrace CSV: never after the contact (see parse_memotrace)."""

    def __init__(self, src: Source, chat_name: str):
        self.given = owner_given_name(src)
        self.contact_names = {chat_name}

    def name_row(self, talker: str, sender: str, names: str) -> tuple[str, str]:
        """(sender id, sender name) of one of the owner's rows."""
        # The row speaks for the owner only when its Sender is an id of its own: "我" and the
        # contact's wxid come with the contact's (or the group's) Remark/NickName.
        own = bool(sender) and sender not in (talker, "我") and looks_like_wxid(sender)
        name = names if own and names and names not in self.contact_names else ""
        return (sender if own else "me"), self.given or name or OWNER_PLACEHOLDER


def parse_memotrace(src: Source) -> Iterator[Message]:
    """MemoTrace CSV rows; ``IsSender`` marks the owner's.

    ``Remark``/``NickName`` describe the contact (or the chat) in several of MemoTrace's layouts,
    the owner's own rows included, so the owner's rows take the ``--owner`` name, else their own
    name where the row really has one (its ``Sender`` is the owner's wxid and the name is not one of
    the contact's), else "我": a clone of the owner must never be named after their friend.
    """
    src.stats.owner_marked = True
    chat_name = _chat_name_from_file(src.path)
    owners = _OwnerRows(src, chat_name)
    for line, row in _rows(src, MEMOTRACE_REQUIRED):
        try:
            msg_type = int(row["Type"])
            sub_type = int(row.get("SubType") or 0)
        except ValueError:
            raise src.error(line, f"Type {row['Type']!r} is not a number") from None
        content = clean_text(row["StrContent"])
        extra: dict[str, Any] = {}
        if msg_type == 1:
            kind = text_kind(content)
        elif msg_type == 47:
            kind, content = Kind.STICKER, STICKER_TEXT
        elif msg_type == 49 and sub_type == 19:
            kind, content = Kind.FORWARD, ""
        elif msg_type == 49 and sub_type == 57:
            if not content or content.startswith("<"):
                src.skip("quoted reply without its text")
                continue
            kind = text_kind(content)
        elif msg_type in _SYSTEM_TYPES:
            kind = Kind.SYSTEM
            if "撤回" in content:
                extra["recalled"] = True
        elif msg_type in _MEDIA_TYPES:
            kind, content = Kind.MEDIA, ""
            extra["media"] = _MEDIA_TYPES[msg_type]
        else:
            src.skip(f"message type {msg_type}")
            continue
        talker = row["TalkerId"].strip()
        group = talker.endswith("@chatroom")
        is_owner = row["IsSender"].strip() == "1"
        sender = (row.get("Sender") or "").strip()
        names = src.person(row.get("Remark") or "") or src.person(row.get("NickName") or "")
        if is_owner:
            sender_id, sender_name = owners.name_row(talker, sender, names)
        else:
            sender_id = sender or talker
            if group and sender and not looks_like_wxid(sender):
                names = src.person(sender)  # the all-chats CSV: Sender is the member's name, names the group's
            sender_name = names or sender_id
            owners.contact_names.update(filter(None, (src.person(row.get("Remark") or ""),
                                                      src.person(row.get("NickName") or ""))))
        timestamp = _epoch_or_text(row["CreateTime"] or row.get("StrTime", ""), line, src)
        yield Message(platform="wechat", chat_id=talker, chat_name=chat_name, chat_type="group" if group else "dm",
                      sender_id=sender_id or "me", sender_name=sender_name or "me", is_owner=is_owner,
                      timestamp=timestamp, text=content, kind=kind, message_id=row["localId"].strip(),
                      source=src.where(line), extra=extra)


def _users(path: Path) -> dict[str, Any]:
    """PyWxDump writes users.json (wxid -> names) next to its CSVs; names beat raw wxids."""
    users_file = path.parent / "users.json"
    try:
        data = json.loads(users_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _display(users: dict[str, Any], wxid: str) -> str:
    info = users.get(wxid)
    if isinstance(info, dict):
        for key in ("remark", "nickname", "account"):
            if info.get(key):
                return clean_name(str(info[key]))
    return wxid


def parse_pywxdump(src: Source) -> Iterator[Message]:
    src.stats.owner_marked = True
    users = _users(src.path)
    for line, row in _rows(src, PYWXDUMP_REQUIRED, alternatives=("msg", "content")):
        type_name = row["type_name"].strip()
        text = row.get("msg")
        if text is None:
            # The older layout packs {"src": ..., "msg": ...} as JSON into one "content" column.
            text = row.get("content", "")
            try:
                packed = json.loads(text)
                text = str(packed.get("msg", "")) if isinstance(packed, dict) else str(packed)
            except ValueError:
                pass
        text = clean_text(text or "")
        kind = _PYWXDUMP_KINDS.get(type_name, Kind.MEDIA)
        if kind is Kind.TEXT:
            kind = text_kind(text)
        elif kind is Kind.STICKER:
            text = STICKER_TEXT
        elif kind in (Kind.MEDIA, Kind.FORWARD):
            text = ""
        is_owner = row["is_sender"].strip() == "1"
        talker = row["talker"].strip()
        room = row["room_name"].strip() or talker
        sender_name = "我" if is_owner and talker in ("", "我") else _display(users, talker)
        yield Message(platform="wechat", chat_id=room, chat_name=_display(users, room),
                      chat_type="group" if room.endswith("@chatroom") else "dm",
                      sender_id=talker or "me", sender_name=sender_name or "me", is_owner=is_owner,
                      timestamp=_epoch_or_text(row["CreateTime"], line, src), text=text, kind=kind,
                      message_id=(row.get("MsgSvrID") or row.get("id") or "").strip(), source=src.where(line),
                      extra={"type": type_name} if kind is Kind.MEDIA else {})


def _split_lines(text: str) -> list[str]:
    return text.split("\n")


def parse_wechatmsg_json(src: Source) -> Iterator[Message]:
    src.stats.owner_marked = True
    owner = owner_given_name(src) or "me"
    for where, record in iter_records(src):
        yield from record_messages(src, record, where, platform="wechat", split=_split_lines,
                                   owner_name=owner, other_name="friend")
