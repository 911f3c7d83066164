"""The sample persona that ``doppel demo`` trains on: Alex Rivera's Telegram export, generated.

**Alex Rivera** (the owner) is a night-shift lab tech in Chicago who boulders, keeps a sourdough
starter called Gerald and a cat called Miso, and puts synthwave on for the 3am drive home. Alex
writes in bursts of two to four short messages, always lower case, almost never with a final full
stop, with "ngl", "lowkey", "ok but hear me out", "that's so real" and "bestie", 💀 😭 ✨ and a
favourite cat sticker (😼): a voice SmolLM2-135M picks up in a few minutes of LoRA training and
no generic assistant has. The friends each keep one voice: Priya Nair (flatmate, formal full
sentences), Jordan Okafor (climbing buddy, ALL CAPS), Sam Keller (coworker, terse: "k."),
Mei Lin, Dani Brooks, Tomás Ruiz and Kez Adeyemi (casual, each with a signature ending). The
cast and the chats are in ``training.sample_persona.cast``.

The export is a Telegram Desktop full-account ``result.json`` (``personal_information`` and
``chats.list``, see DESIGN.md): four direct chats and four groups, about six months (March to
September 2025, Chicago summer time), ~3,000 messages of which Alex writes ~45%. Conversations
are generated from the topic phrase bank (``training.sample_persona.phrases``) in each speaker's voice
(``training.sample_persona.voices``): someone raises a topic, the others answer on it. Sessions are
hours to days apart, replies seconds to minutes; the export has service messages, photos, voice
messages and stickers, forwarded posts, replies, edits, and text as entity lists (links, bold,
phone numbers, e-mails). Private values are planted in scripted exchanges
(``training.sample_persona.plant``) and listed in ``planted_pii.json``.

Everything comes from one seeded ``random.Random``: the same seed and size give the same bytes,
and the shipped files (``training/sample_persona/data/``) are what the default seed writes::

    python -m training.sample_persona.synth --out training/demo/persona_telegram.json

``demo_export_path()``, ``planted_pii_path()``, ``OWNER_NAME``/``OWNER_ID`` and
``write_export(path, messages=N)`` (a smaller persona, for quick runs) are what the demo pipeline
uses.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import MappingProxyType

import click

from training.sample_persona.cast import (
    CHAT_BY_KEY,
    CHATS,
    HOURS,
    NIGHT_HOURS,
    OWNER_ID,
    OWNER_NAME,
    OWNER_USER_ID,
    PEOPLE,
    ChatSpec,
)
from training.sample_persona.phrases import FORWARDS, TOPICS, Topic
from training.sample_persona.plant import EPISODES, PROFILE_PHONE, VALUES, Episode
from training.sample_persona.voices import ALEX_STICKER, Part, alex_burst, fill, friend_line, friend_reaction

# The owner as ``--owner`` takes it: the display name (OWNER_NAME) or the Telegram id (OWNER_ID).
OWNER = OWNER_NAME
DEFAULT_SEED = 20250310
DEFAULT_MESSAGES = 3000
EXPORT_FILE = "persona_telegram.json"
PLANTED_FILE = "planted_pii.json"
# Chicago in summer time (CDT) for the whole span: Telegram writes "date" in the exporter's zone.
ZONE = timezone(timedelta(hours=-5))
START = datetime(2025, 3, 10, tzinfo=ZONE)
SPAN_DAYS = 178
MIN_SESSION_GAP_S = 3 * 3600
NOT_INCLUDED = "(File not included. Change data exporting settings to download.)"
_ENTITY = MappingProxyType({"EMAIL": "email", "URL": "link"})
_SLOT = re.compile(r"\{([A-Z]+)(?:_([A-Z]+))?(?:=([^}]*))?\}")


@dataclass
class Msg:
    """One message before it has a time and an id: who, what, and how long after the previous one."""

    speaker: str
    text: str = ""
    kind: str = "text"                 # text, sticker, photo, voice, service
    delay_s: float = 0.0
    spans: list[tuple[int, int, str]] = field(default_factory=list)    # entities: (start, end, type)
    forwarded_from: str = ""
    reply_to: Msg | None = None
    action: dict | None = None
    planted: list[tuple[str, str]] = field(default_factory=list)      # (kind, value)
    edited: bool = False


@dataclass
class Session:
    chat: ChatSpec
    messages: list[Msg]
    start: float = 0.0


# -- conversations ----------------------------------------------------------------------------

def _weighted(rng: random.Random, pairs: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([k for k, _ in pairs], weights=[w for _, w in pairs])[0]


def _gap(rng: random.Random, low: float, high: float) -> float:
    return round(low * (high / low) ** rng.random(), 1)


def _alex(parts: list[Part], rng: random.Random) -> list[Msg]:
    out = []
    for index, part in enumerate(parts):
        delay = _gap(rng, 3, 25) + 0.12 * len(part.text) if index else _gap(rng, 20, 600)
        out.append(Msg("alex", part.text, "sticker" if part.sticker else "text", delay))
    return out


def _friend(speaker: str, topic: Topic, rng: random.Random, *, opening: bool = False) -> list[Msg]:
    """A friend's turn: opening ``topic``, or answering Alex (a reaction or a question on the
    topic), then now and then one or two more messages on the topic in the same voice."""
    voice = PEOPLE[speaker].voice
    if opening:
        first = friend_line(voice, fill(rng.choice(topic.friend_open), topic, rng), rng)
    elif rng.random() < 0.45:
        first = friend_reaction(voice, rng)
    else:
        first = friend_line(voice, fill(rng.choice(topic.friend_follow), topic, rng), rng)
    messages = [Msg(speaker, first, delay_s=_gap(rng, 30, 900) if opening else _gap(rng, 15, 600))]
    chance = {"caps": 0.6, "terse": 0.4}.get(voice.kind, 0.5)
    asked = {first}
    while len(messages) < 3 and rng.random() < chance:
        # Caps friends stack reactions ("LMAOOO" "I'M SCREAMING"); everyone else moves the topic on.
        if voice.kind == "caps" and not opening and len(messages) == 1 and rng.random() < 0.5:
            extra = friend_reaction(voice, rng)
            template = extra
        else:
            template = fill(rng.choice(topic.friend_follow), topic, rng)
            extra = friend_line(voice, template, rng)
        if template not in asked:
            asked.add(template)
            messages.append(Msg(speaker, extra, delay_s=_gap(rng, 4, 40)))
        chance /= 2
    return messages


def _link(rng: random.Random) -> str:
    letters = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ"
    return "https://youtu.be/" + "".join(rng.choice(letters) for _ in range(11))


def _friend_opening(chat: ChatSpec, topic: Topic, speaker: str, rng: random.Random) -> list[Msg]:
    voice = PEOPLE[speaker].voice
    messages = _friend(speaker, topic, rng, opening=True)
    first = messages[0]
    if voice.kind == "formal" and first.text.startswith("Reminder:"):
        first.spans.append((0, len("Reminder:"), "bold"))
    if topic.name == "synthwave" and voice.kind in ("caps", "casual") and "HEARD" in first.text.upper() \
            and rng.random() < 0.6:
        url = _link(rng)
        first.spans.append((len(first.text) + 1, len(first.text) + 1 + len(url), "link"))
        first.text += " " + url
    if topic.name in ("sourdough", "miso") and rng.random() < 0.2:
        messages.append(Msg(speaker, "", "photo", _gap(rng, 2, 15)))
    return messages


def _session(chat: ChatSpec, rng: random.Random) -> Session:
    topic = TOPICS[_weighted(rng, chat.topics)]
    group = len(chat.members) > 1
    messages: list[Msg] = []
    used: set[str] = set()    # Alex's lines said in this session: nobody repeats themselves in one talk
    forwards = [(origin, post) for name, origin, post in FORWARDS if name == topic.name]
    if forwards and rng.random() < 0.12:
        origin, post = rng.choice(forwards)
        messages.append(Msg(rng.choice(("alex", *chat.members)), post, forwarded_from=origin))
    last = "alex" if rng.random() < 0.35 else rng.choice(chat.members)
    if last == "alex":
        messages += _alex(alex_burst(topic, rng, used, opening=True), rng)
    else:
        messages += _friend_opening(chat, topic, last, rng)
    for _ in range(rng.randint(2, 7)):
        if last != "alex" and (not group or rng.random() < 0.6):
            if rng.random() < 0.1:
                topic = TOPICS[_weighted(rng, chat.topics)]
                parts = alex_burst(topic, rng, used, opening=True)
                if parts[0].text != "ok but hear me out":
                    parts.insert(0, Part("ok but hear me out"))
                burst = _alex(parts, rng)
            else:
                burst = _alex(alex_burst(topic, rng, used), rng)
            if rng.random() < 0.15:
                burst[0].reply_to = next(m for m in reversed(messages) if m.speaker == last)
            if topic.name == "miso" and rng.random() < 0.15:
                burst.append(Msg("alex", rng.choice(("", "look at her", "she knows what she did")), "photo",
                                 _gap(rng, 3, 20)))
            messages += burst
            last = "alex"
            continue
        speakers = [s for s in chat.members if s != last] or list(chat.members)
        for speaker in rng.sample(speakers, 2 if group and len(speakers) > 1 and rng.random() < 0.55 else 1):
            if rng.random() < 0.03:
                messages.append(Msg(speaker, "", "voice", _gap(rng, 30, 600)))
            else:
                messages += _friend(speaker, topic, rng)
            last = speaker
    if rng.random() < 0.03:
        messages.append(Msg("alex", "", "voice", _gap(rng, 20, 300)))
    for message in messages:
        message.edited = message.kind == "text" and rng.random() < 0.02
    return Session(chat, messages)


def _episode(episode: Episode, rng: random.Random) -> Session:
    chat = CHAT_BY_KEY[episode.chat]
    messages: list[Msg] = []
    previous = ""
    for speaker, template, form in episode.lines:
        message = Msg(speaker, delay_s=_gap(rng, 3, 20) if speaker == previous else _gap(rng, 30, 600))
        text, cursor = "", 0
        for match in _SLOT.finditer(template):
            kind, style, literal = match.groups()
            value = literal if literal is not None else VALUES["_".join(filter(None, (kind, style)))](rng)
            text += template[cursor:match.start()]
            entity = _ENTITY.get(kind) or ("phone" if kind == "PHONE" and value.startswith("+") else "")
            if entity:
                message.spans.append((len(text), len(text) + len(value), entity))
            message.planted.append((kind, value))
            text += value
            cursor = match.end()
        message.text = text + template[cursor:]
        if form == "photo":
            message.kind = "photo"
        elif form.startswith("forward:"):
            message.forwarded_from = form.split(":", 1)[1]
        messages.append(message)
        previous = speaker
    return Session(chat, messages)


# -- time line and export -----------------------------------------------------------------------

def _place(sessions: list[Session], rng: random.Random) -> None:
    """Start times: a random day, an hour Alex is awake, and never within three hours of the end
    of the same chat's previous session (so each session is one conversation)."""
    for session in sessions:
        hours = NIGHT_HOURS if session.chat.night else HOURS
        hour = rng.choices(range(24), weights=hours)[0]
        day = rng.randrange(SPAN_DAYS)
        session.start = (START + timedelta(days=day, hours=hour, seconds=rng.randrange(3600))).timestamp()
    by_chat: dict[str, list[Session]] = {}
    for session in sorted(sessions, key=lambda s: s.start):
        by_chat.setdefault(session.chat.key, []).append(session)
    for chat_sessions in by_chat.values():
        end = None
        for session in chat_sessions:
            if end is not None and session.start < end + MIN_SESSION_GAP_S:
                session.start = end + MIN_SESSION_GAP_S + rng.randrange(3 * 3600)
            end = session.start + sum(m.delay_s for m in session.messages[1:])


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


def _record(message: Msg, message_id: int, at: float, ids: dict[int, int], counter: list[int]) -> dict:
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


def _service(chat: ChatSpec, rng: random.Random, sessions: list[Session]) -> None:
    """The group's creation before its first session, and one other notice inside its history."""
    own = sorted((s for s in sessions if s.chat is chat), key=lambda s: s.start)
    if chat.type == "personal_chat" or not own:
        return
    creator = rng.choice(("alex", *chat.members))
    names = [PEOPLE[k].name for k in ("alex", *chat.members)]
    created = Msg(creator, kind="service", action={"action": "create_group", "title": chat.name, "members": names})
    sessions.append(Session(chat, [created], own[0].start - 86_400 - rng.randrange(86_400)))
    middle = own[len(own) // 2]
    notice = Msg("alex", kind="service", delay_s=5,
                 action={"action": "edit_group_title", "title": chat.name} if rng.random() < 0.5 else
                 {"action": "pin_message", "message_id": None})
    if notice.action["action"] == "pin_message":
        notice.reply_to = middle.messages[0]    # the pinned message: its id is known once ids are given
    middle.messages.append(notice)


@dataclass
class Persona:
    export: dict
    planted: list[dict]


def generate(seed: int = DEFAULT_SEED, messages: int = DEFAULT_MESSAGES) -> Persona:
    """The export and the planted values for ``seed`` and about ``messages`` messages in all."""
    rng = random.Random(seed)
    sessions = [_episode(episode, rng) for episode in EPISODES]
    total = sum(len(s.messages) for s in sessions)
    weights = [c.weight for c in CHATS]
    while total < messages:
        session = _session(rng.choices(CHATS, weights=weights)[0], rng)
        sessions.append(session)
        total += len(session.messages)
    _place(sessions, rng)
    for chat in CHATS:
        _service(chat, rng, sessions)
    chats, planted = [], []
    for chat in CHATS:
        records: list[dict] = []
        ids: dict[int, int] = {}
        next_id = 1 if chat.type == "private_supergroup" else 20_000 + chat.id % 1000 * 10
        counter = [0]
        for session in sorted((s for s in sessions if s.chat is chat), key=lambda s: s.start):
            at = session.start
            for index, message in enumerate(session.messages):
                at += message.delay_s if index else 0
                next_id += 1 + (rng.random() < 0.03)     # deleted messages leave gaps in the ids
                ids[id(message)] = next_id
                if message.kind == "service" and message.action and "message_id" in message.action:
                    message.action["message_id"] = ids[id(message.reply_to)]
                    message.reply_to = None
                records.append(_record(message, next_id, at, ids, counter))
                for kind, value in message.planted:
                    planted.append({"kind": kind, "value": value, "chat": chat.name, "message_id": next_id,
                                    "sender": PEOPLE[message.speaker].name,
                                    "where": "photo caption" if message.kind == "photo" else
                                    "forwarded message" if message.forwarded_from else "message"})
        chats.append({"name": chat.name, "type": chat.type, "id": chat.id, "messages": records})
    planted.append({"kind": "PHONE", "value": PROFILE_PHONE, "chat": "", "message_id": None, "sender": OWNER_NAME,
                    "where": "personal_information"})
    export = {
        "about": "Here is the data you requested. Remember: Telegram is ad free, it doesn't sell your data, "
                 "and it doesn't store data on its servers.",
        "personal_information": {"user_id": OWNER_USER_ID, "first_name": "Alex", "last_name": "Rivera",
                                 "phone_number": PROFILE_PHONE, "username": "@alexriv",
                                 "bio": "miso's assistant ✨ night shift gremlin"},
        "chats": {"about": "This page lists all chats from this export.", "list": chats},
    }
    return Persona(export, planted)


def dumps(value: dict | list) -> str:
    """JSON as Telegram Desktop writes it (one-space indent, characters unescaped)."""
    return json.dumps(value, ensure_ascii=False, indent=1) + "\n"


def write_export(out: Path, seed: int = DEFAULT_SEED, messages: int = DEFAULT_MESSAGES,
          planted_out: Path | None = None) -> tuple[Path, Path]:
    """Write the export to ``out`` and the planted values next to it (or to ``planted_out``)."""
    persona = generate(seed, messages)
    planted_out = planted_out or out.with_name(PLANTED_FILE)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(dumps(persona.export), encoding="utf-8")
    counts: dict[str, int] = {}
    for item in persona.planted:
        if item["where"] != "personal_information":
            counts[item["kind"]] = counts.get(item["kind"], 0) + 1
    planted_out.write_text(dumps({"owner": OWNER_NAME, "owner_id": OWNER_ID, "seed": seed, "messages": messages,
                                  "counts_in_messages": dict(sorted(counts.items())),
                                  "values": persona.planted}), encoding="utf-8")
    return out, planted_out


# -- what the demo uses --------------------------------------------------------------------------

def demo_dir() -> Path:
    """Where the package ships the generated persona (installed as package data)."""
    return Path(__file__).resolve().parent / "data"


def demo_export_path() -> Path:
    return demo_dir() / EXPORT_FILE


def planted_pii_path() -> Path:
    return demo_dir() / PLANTED_FILE


def load_planted(path: Path | None = None) -> list[dict]:
    """The planted values: ``{"kind", "value", "chat", "message_id", "sender", "where"}`` each."""
    return json.loads((path or planted_pii_path()).read_text(encoding="utf-8"))["values"]


@click.command()
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help=f"The export to write (default: {EXPORT_FILE} in the package's demo directory).")
@click.option("--planted", "planted_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help=f"Where the planted values go (default: {PLANTED_FILE} next to --out).")
@click.option("--seed", type=int, default=DEFAULT_SEED, show_default=True)
@click.option("--messages", type=click.IntRange(min=200), default=DEFAULT_MESSAGES, show_default=True,
              help="About how many messages in all (every planted value is always there).")
def main(out: Path | None, planted_out: Path | None, seed: int, messages: int) -> None:
    """Write the sample persona's Telegram export and its planted private values."""
    export, planted = write_export(out or demo_export_path(), seed, messages, planted_out)
    click.echo(f"wrote {export} and {planted}")


if __name__ == "__main__":
    main()
