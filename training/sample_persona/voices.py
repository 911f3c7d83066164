"""How each speaker of the sample persona writes: Alex's bursts and the friends' four voices.

Alex (the owner) writes in bursts of two to four short messages, always lower case, almost never
with final punctuation, with catchphrases ("ngl", "lowkey", "ok but hear me out", "that's so
real", "bestie"), 💀 😭 ✨ and a favourite cat sticker. ``alex_burst`` builds one burst from a
topic's lines (``training.sample_persona.phrases``), combining a lead reaction, one to three topic lines
with their slots filled, catchphrase and emoji decorations and stretched words, so the same line
rarely comes out the same way twice.

The friends each keep one voice, so the clone has something to be told apart from:
``formal`` (full sentences, capitals, final punctuation), ``caps`` (ALL CAPS, "!!!"), ``terse``
(two or three words and a full stop) and ``casual`` (ordinary texting with a signature tail).

Tested in ``tests/training/sample_persona/test_synth.py`` (Alex's claimed voice and catchphrases,
the friends' distinct voices).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from training.sample_persona.phrases import COMMON_SLOTS, Topic

CATCHPHRASES = ("ngl", "lowkey", "ok but hear me out", "that's so real", "bestie")
ALEX_EMOJI = ("💀", "😭", "✨")
ALEX_STICKER = "😼"
# A lead line before the topic lines of a reply: catchphrases first, they are the voice.
_LEADS = ("that's so real", "ok but hear me out", "bestie", "bestie no", "ngl", "lowkey yes", "wait",
          "omg", "no bc", "help", "not me", "i'm crying", "that's so real bestie", "ngl same", "lmao")
_OPENING_LEADS = ("ok but hear me out", "bestie", "omg", "wait", "lowkey", "ngl", "update")
_PREFIXES = ("ngl ", "lowkey ", "bestie ", "honestly ", "literally ")
_SUFFIXES = (" ngl", " lowkey", " tbh", " bestie", " fr")
_TAILS = ("anyway", "i'm fine", "it's fine", "ok bye", "love that for me", "that's so real")
_STRETCH = re.compile(r"\b(so|no|omg|yes|why)\b")


def fill(template: str, topic: Topic | None, rng: random.Random) -> str:
    """``template`` with each ``{slot}`` filled; one value per slot name, so both halves of a
    ``full|terse`` line name the same thing."""
    chosen: dict[str, str] = {}

    def value(match: re.Match) -> str:
        name = match.group(1)
        if name not in chosen:
            options = (topic.slots.get(name) if topic else None) or COMMON_SLOTS[name]
            chosen[name] = rng.choice(options)
        return chosen[name]

    return re.sub(r"\{(\w+)\}", value, template)


def _emoji(rng: random.Random) -> str:
    mark = rng.choices((*ALEX_EMOJI, "🥲", "🫠"), weights=(5, 4, 3, 1, 1))[0]
    return mark * rng.choice((1, 1, 1, 2, 3))


def _decorate(line: str, rng: random.Random, said: set[str]) -> str:
    """A topic line with a catchphrase before or after it (one not yet in this burst), a
    stretched word now and then, and an emoji."""
    roll = rng.random()
    if roll < 0.4:
        options = [p for p in (_PREFIXES if roll < 0.3 else _SUFFIXES) if p.strip() not in said]
        if options:
            choice = rng.choice(options)
            said.add(choice.strip())
            line = choice + line if roll < 0.3 else line + choice
    if rng.random() < 0.12:
        line = _STRETCH.sub(lambda m: m.group(1) + m.group(1)[-1] * rng.randint(2, 4), line, count=1)
    if rng.random() < 0.33:
        line = f"{line} {_emoji(rng)}"
    return alex_case(line, rng)


def alex_case(line: str, rng: random.Random) -> str:
    """Lower case, and the final full stop never; a question mark only now and then."""
    line = line.lower().rstrip(" .")
    if line.endswith("?") and rng.random() < 0.7:
        line = line.rstrip("?")
    return line


@dataclass(frozen=True)
class Part:
    """One message of a burst: text, or Alex's favourite sticker."""

    text: str
    sticker: bool = False


def alex_burst(topic: Topic, rng: random.Random, used: set[str] | None = None, *,
               opening: bool = False) -> list[Part]:
    """One burst of Alex's: 1-4 messages on ``topic`` (opening it, or replying on it). Lines in
    ``used`` are avoided while there are others, and the ones said are added to it."""
    used = used if used is not None else set()
    size = rng.choices((1, 2, 3, 4), weights=(14, 40, 30, 16))[0]
    parts: list[Part] = []
    said: set[str] = set()
    if size > 1 and rng.random() < (0.25 if opening else 0.5):
        lead = rng.choice(_OPENING_LEADS if opening else _LEADS)
        said.update(p for p in CATCHPHRASES if p in lead)
        parts.append(Part(alex_case(lead, rng)))
    pool = list(topic.alex_open if opening else topic.alex_reply)
    if opening and rng.random() < 0.4:
        pool += topic.alex_reply
    rng.shuffle(pool)
    pool.sort(key=lambda line: line in used)     # stable: unsaid lines first, still shuffled
    tail = size >= 3 and rng.random() < 0.35
    while len(parts) < size - tail and pool:
        line = pool.pop(0)
        used.add(line)
        parts.append(Part(_decorate(fill(line, topic, rng), rng, said)))
    if tail:
        roll = rng.random()
        if roll < 0.3:
            parts.append(Part(ALEX_STICKER, sticker=True))
        elif roll < 0.65:
            parts.append(Part(_emoji(rng)))
        else:
            parts.append(Part(alex_case(rng.choice(_TAILS), rng)))
    elif size == 1 and rng.random() < 0.08:
        parts.append(Part(ALEX_STICKER, sticker=True))
    return parts


# -- friends ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Voice:
    """A friend's way of writing: ``kind`` is formal, caps, terse or casual; ``tails`` are their
    signature endings (casual voices only)."""

    kind: str
    tails: tuple[str, ...] = ()


_REACTIONS = {
    "formal": ("That sounds lovely.", "Oh no, I am sorry to hear that.", "Ha, that is very you.",
               "I see. Thank you for letting me know.", "Please get some rest.", "That is wonderful news!",
               "Understood.", "How exciting.", "I cannot believe that happened."),
    "caps": ("NO WAY!!!", "LMAOOO", "STOPPP 😭", "I'M SCREAMING", "YESSS!!!", "THAT'S AMAZING!!!", "WAIT WHAT",
             "BRO 💀", "LET'S GOOO 🔥"),
    "terse": ("lol.", "nice.", "rip.", "same.", "ok.", "k.", "fair.", "yep.", "true.", "oof."),
    "casual": ("hahaha no way", "omg same", "that's so you", "wait really?", "aww", "hahaha ok fair", "love that",
               "oh no", "classic", "noo"),
}


def friend_line(voice: Voice, line: str, rng: random.Random) -> str:
    """A ``full|terse`` line (slots already filled) as ``voice`` writes it."""
    full, _, terse = line.partition("|")
    terse = terse or full
    if voice.kind == "formal":
        text = full[0].upper() + full[1:]
        if rng.random() < 0.12:
            text += rng.choice((" Thank you.", " Let me know.", " I hope that is all right."))
        return text
    if voice.kind == "caps":
        text = full.upper().replace("?", "?!").rstrip(".") + rng.choice(("!!!", "!!", "", "!"))
        if rng.random() < 0.2:
            text = rng.choice(("OMG ", "BRO ", "OK ")) + text
        if rng.random() < 0.3:
            text += rng.choice((" 🔥", " 🎉", " 😤", " 🙌"))
        return text
    if voice.kind == "terse":
        return terse.lower().rstrip("?.") + ("?" if full.endswith("?") and rng.random() < 0.4 else ".")
    text = full.rstrip(".")
    if rng.random() < 0.5:
        text = text[0].lower() + text[1:]
    if voice.tails and rng.random() < 0.35:
        text += " " + rng.choice(voice.tails)
    return text


def friend_reaction(voice: Voice, rng: random.Random) -> str:
    text = rng.choice(_REACTIONS[voice.kind])
    if voice.kind == "casual" and voice.tails and rng.random() < 0.3:
        text += " " + rng.choice(voice.tails)
    return text
