"""One message of the sample persona as a record of a Telegram Desktop export: time stamps, sender,
media fields, and text as entity lists.

Tested in ``tests/training/sample_persona/test_synth.py`` (the export, byte for byte).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from training.sample_persona.cast import PEOPLE
from training.sample_persona.conversations import Msg
from training.sample_persona.voices import ALEX_STICKER

# Chicago in summer time (CDT) for the whole span: Telegram writes "date" in the exporter's zone.
ZONE = timezone(timedelta(hours=-5))
NOT_INCLUDED = "(File not included. Change data exporting settings to download.)"


def _stamp(at: float) -> dict:
    moment = datetime.fromtimestamp(round(at), ZONE)
    return {"date": moment.replace(tzinfo=None).isoformat(), "date_unixtime": str(round(at))}


def _text_fields(message: Msg) -> dict:
    text = message.text
    if not message.spans:
        return {"text": text, "text_entities": [{"type": "plain", "text": text}] if text else []}
    parts: list = []
    entities = []
    cursor = 0
    for start, end, kind in sorted(message.spans):
        if start > cursor:
            parts.append(text[cursor:start])
            entities.append({"type": "plain", "text": text[cursor:start]})
        parts.append({"type": kind, "text": text[start:end]})
        entities.append({"type": kind, "text": text[start:end]})
        cursor = end
    if cursor < len(text):
        parts.append(text[cursor:])
        entities.append({"type": "plain", "text": text[cursor:]})
    return {"text": parts, "text_entities": entities}


def to_record(message: Msg, message_id: int, at: float, ids: dict[int, int], counter: list[int]) -> dict:
    """``message`` as export record ``message_id`` sent at ``at``; ``ids`` maps the messages given an id
    so far (``id(msg)``) to it, ``counter`` numbers the media files."""
    person = PEOPLE[message.speaker]
    record: dict = {"id": message_id, "type": "service" if message.kind == "service" else "message", **_stamp(at)}
    if message.kind == "service":
        record.update(actor=person.name, actor_id=f"user{person.user_id}", **(message.action or {}))
        record.update(text="", text_entities=[])
        return record
    if message.edited:
        edited = _stamp(at + 40 + message_id % 300)
        record.update(edited=edited["date"], edited_unixtime=edited["date_unixtime"])
    record.update({"from": person.name, "from_id": f"user{person.user_id}"})
    if message.forwarded_from:
        record["forwarded_from"] = message.forwarded_from
    if message.reply_to is not None:
        record["reply_to_message_id"] = ids[id(message.reply_to)]
    counter[0] += 1
    moment = datetime.fromtimestamp(round(at), ZONE).strftime("%d-%m-%Y_%H-%M-%S")
    if message.kind == "photo":
        record.update(photo=f"photos/photo_{counter[0]}@{moment}.jpg",
                      photo_file_size=90_000 + message_id * 37 % 150_000, width=1280, height=960)
    elif message.kind == "voice":
        record.update(file=f"voice_messages/audio_{counter[0]}@{moment}.ogg", file_size=20_000 + message_id % 40_000,
                      media_type="voice_message", mime_type="audio/ogg", duration_seconds=3 + message_id % 40)
    elif message.kind == "sticker":
        record.update(file=NOT_INCLUDED, file_size=24_180, thumbnail=NOT_INCLUDED, media_type="sticker",
                      sticker_emoji=ALEX_STICKER if message.speaker == "alex" else message.text, width=512, height=512)
        return {**record, "text": "", "text_entities": []}
    return {**record, **_text_fields(message)}
