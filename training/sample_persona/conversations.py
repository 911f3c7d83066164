"""The sample persona's chat sessions, as messages that have a speaker, a text and a delay but no
time or id yet.

Conversations are generated from the topic phrase bank (``training.sample_persona.phrases``) in
each speaker's voice (``training.sample_persona.voices``): someone raises a topic, the others
answer on it, Alex in bursts. The scripted exchanges that plant private values
(``training.sample_persona.plant``) become sessions too, with every planted value noted on its
message. ``training.sample_persona.synth`` places the sessions on the time line.

Tested in ``tests/training/sample_persona/test_synth.py`` (the export, byte for byte).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from types import MappingProxyType

from training.sample_persona.cast import CHAT_BY_KEY, PEOPLE, ChatSpec
from training.sample_persona.phrases import FORWARDS, TOPICS, Topic
from training.sample_persona.plant import VALUES, Episode
from training.sample_persona.voices import Part, alex_burst, fill, friend_line, friend_reaction

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


def random_session(chat: ChatSpec, rng: random.Random) -> Session:
    """A conversation in ``chat`` on one of its topics (now and then Alex moves to another)."""
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


def episode_session(episode: Episode, rng: random.Random) -> Session:
    """The scripted exchange ``episode``, its slots filled with fresh values."""
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
