"""The one message model every importer normalizes to, and the JSONL form it is stored in.

Importers read a real export format and yield ``Message`` objects; cleaning, session splitting,
scrubbing and sample building only ever see this model. Timestamps are timezone-aware.

Tested in ``tests/training/importers/test_detect.py`` (the JSONL round trip) and the format tests,
e.g. ``tests/training/importers/test_telegram.py`` (each message's ``Kind``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
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


@dataclass(frozen=True)
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

    def to_json(self) -> str:
        data = asdict(self)
        data["timestamp"] = self.timestamp.isoformat()
        data["kind"] = self.kind.value
        return json.dumps(data, ensure_ascii=False)

    @classmethod
    def from_json(cls, line: str) -> Message:
        data = json.loads(line)
        data["timestamp"] = datetime.fromisoformat(data["timestamp"])
        data["kind"] = Kind(data["kind"])
        return cls(**data)
