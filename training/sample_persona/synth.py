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
(``training.sample_persona.plant``) and listed in ``planted_pii.json``. The sessions are made in
``training.sample_persona.conversations`` and become export records in
``training.sample_persona.records``; this module places them on the time line and writes the files.

Everything comes from one seeded ``random.Random``: the same seed and size give the same bytes,
and the shipped files (``training/sample_persona/data/``) are what the default seed writes::

    python -m training.sample_persona.synth --out training/sample_persona/data/persona_telegram.json

``demo_export_path()``, ``planted_pii_path()``, ``OWNER_NAME``/``OWNER_ID`` and
``write_export(path, messages=N)`` (a smaller persona, for quick runs) are what the demo pipeline
uses.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import click

from training.sample_persona.cast import (
    CHATS,
    HOURS,
    NIGHT_HOURS,
    OWNER_ID,
    OWNER_NAME,
    OWNER_USER_ID,
    PEOPLE,
    ChatSpec,
)
from training.sample_persona.conversations import Msg, Session, episode_session, random_session
from training.sample_persona.plant import EPISODES, PROFILE_PHONE
from training.sample_persona.records import ZONE, to_record

# The owner as ``--owner`` takes it: the display name (OWNER_NAME) or the Telegram id (OWNER_ID).
OWNER = OWNER_NAME
DEFAULT_SEED = 20250310
DEFAULT_MESSAGES = 3000
EXPORT_FILE = "persona_telegram.json"
PLANTED_FILE = "planted_pii.json"
START = datetime(2025, 3, 10, tzinfo=ZONE)
SPAN_DAYS = 178
MIN_SESSION_GAP_S = 3 * 3600


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
    sessions = [episode_session(episode, rng) for episode in EPISODES]
    total = sum(len(s.messages) for s in sessions)
    weights = [c.weight for c in CHATS]
    while total < messages:
        session = random_session(rng.choices(CHATS, weights=weights)[0], rng)
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
                records.append(to_record(message, next_id, at, ids, counter))
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
