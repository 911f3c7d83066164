"""The one message model every importer normalizes to, and the JSONL form it is stored in.

Importers read a real export format and yield ``Message`` objects; cleaning, session splitting,
scrubbing and sample building only ever see this model. Timestamps are timezone-aware.

Tested in ``tests/training/importers/test_detect.py`` (the JSONL round trip) and the format tests,
e.g. ``tests/training/importers/test_telegram.py`` (each message's ``Kind``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from enum import StrEnum
from typing import Literal

ChatType = Literal["dm", "group"]


class Kind(StrEnum):
    TEXT = "text"
    STICKER = "sticker"    # text holds the sticker's emoji or name, e.g. "😂" or "[捂脸]"
    EMOJI = "emoji"        # a message that is only emoji / bracketed emoji codes
    MEDIA = "media"        # photo, voice, file...; text holds the caption if any
    SYSTEM = "system"      # service messages: joins, pins, calls, recalled-message notices
    FORWARD = "forward"    # forwarded from someone else: never the owner's own words


@dataclass(frozen=True, init=False)
class Message:
    platform: str                 # wechat | qq | telegram | discord | whatsapp | sharegpt | article
    chat_id: str
    chat_name: str
    chat_type: ChatType
    sender_id: str
    sender_name: str
    is_owner: bool
    timestamp: datetime           # timezone-aware
    text: str
    kind: Kind = Kind.TEXT
    message_id: str = ""
    reply_to: str = ""            # message_id of the message this one answers, if known
    source: str = ""              # "path/to/file:line-or-record" for error messages and reports
    extra: dict = field(default_factory=dict, compare=False)

    def __init__(self, platform: str, chat_id: str, chat_name: str, chat_type: ChatType, sender_id: str,
                 sender_name: str, is_owner: bool, timestamp: datetime, text: str, kind: Kind = Kind.TEXT,
                 message_id: str = "", reply_to: str = "", source: str = "", extra: dict | None = None):
        # Written out: the __init__ a frozen dataclass makes calls object.__setattr__ once per field,
        # and every importer builds one Message per message; one dict update is 2.5x faster.
        self.__dict__.update({
            "platform": platform, "chat_id": chat_id, "chat_name": chat_name, "chat_type": chat_type,
            "sender_id": sender_id, "sender_name": sender_name, "is_owner": is_owner, "timestamp": timestamp,
            "text": text, "kind": kind, "message_id": message_id, "reply_to": reply_to, "source": source,
            "extra": {} if extra is None else extra})

    def to_json(self) -> str:
        data = asdict(self)
        data["timestamp"] = self.timestamp.isoformat()
        data["kind"] = self.kind.value
        return json.dumps(data, ensure_ascii=False)

    @classmethod
    def from_json(cls, line: str) -> Message:
        data = json.loads(line)
        data["timestamp"] = datetime.fromisoformat(data["timestamp"])
        # The table first: Kind() is slow; Kind() still names a bad value.
        data["kind"] = _KINDS.get(data["kind"]) or Kind(data["kind"])
        return cls(**data)


_KINDS = {kind.value: kind for kind in Kind}
# The written-out __init__ must take the fields, in their order: a field added above goes there too.
assert Message.__init__.__code__.co_varnames[1:len(fields(Message)) + 1] == tuple(f.name for f in fields(Message))
