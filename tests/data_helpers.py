"""Building blocks for the data-pipeline tests: normalized messages written the short way.

``Chat`` hands out messages of one chat with increasing times, so a test reads like the
conversation it sets up: ``chat.say("Ann", "hi", after=30)``.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from training.importers.messages import Kind, Message

SHANGHAI = timezone(timedelta(hours=8))
START = datetime(2024, 5, 1, 20, 0, tzinfo=SHANGHAI)
OWNER = "Mia"


class Chat:
    def __init__(self, chat_id: str = "c1", *, name: str = "", group: bool = False, platform: str = "telegram",
                 start: datetime = START, owner: str = OWNER):
        self.chat_id, self.group, self.platform, self.owner = chat_id, group, platform, owner
        self.name = name or ("Friends" if group else "Ann")
        self.at = start
        self.count = 0

    def say(self, sender: str, text: str, *, after: float = 30, kind: Kind = Kind.TEXT, **extra) -> Message:
        self.at += timedelta(seconds=after)
        self.count += 1
        return Message(
            platform=self.platform, chat_id=self.chat_id, chat_name=self.name,
            chat_type="group" if self.group else "dm", sender_id=f"id-{sender}", sender_name=sender,
            is_owner=sender == self.owner, timestamp=self.at, text=text, kind=kind,
            message_id=f"{self.chat_id}-{self.count}", source=f"export-{self.chat_id}.json:{self.count}",
            extra=extra,
        )
