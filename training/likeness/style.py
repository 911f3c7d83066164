"""Style profile of a set of replies, and how far one profile is from another.

"Does it sound like me" measured on what people notice in a chat: how long the messages are
(distribution, not just the mean), how many messages a reply is split into (bursts, joined by
``BURST_SEPARATOR``), emoji and sticker codes, punctuation habits (the trailing period, "!!",
"...", "~", full-width marks), lower-case starts, the owner's own top phrases, and AI-isms
("as an AI", "作为一个人工智能") that a clone must never say.

``top_phrases`` picks the owner's phrases by how much more the owner uses them than the other
people in the same chats, so "the" and "ok" do not count but a catchphrase does. ``compare`` turns
two profiles into per-measure distances and one ``style_distance`` (0 = the same on every
measure; each term is at most 1), which ``training.likeness.evaluate`` reports and ranks checkpoints by.

Pure Python, no model: the bot side may profile text too.

Tested in ``tests/training/likeness/test_evaluate.py`` (profile measures, AI-isms, top phrases,
distances) and ``tests/training/sample_persona/test_synth.py`` (the sample persona's voice).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

from doppel.prompt import split_burst

EMOJI = re.compile(
    "[\U0001f000-\U0001faff\u2600-\u27bf\u2b00-\u2bff\u2300-\u23ff\u3030\u303d\u3297\u3299\u203c\u2049]")
# WeChat/QQ sticker codes such as [捂脸] or [Facepalm]; placeholders like <PHONE> are not stickers.
STICKER = re.compile(r"\[[^\[\]\s\d<>]{1,10}\]")
PLACEHOLDER = re.compile(r"<[A-Z]+(?:_\d+)?>")
AI_ISMS = re.compile("|".join((
    r"\bas an? (?:ai|a\.i\.|artificial intelligence|language model|large language model|llm)\b",
    r"\bi(?:'m| am) (?:just |only )?(?:an? )?(?:ai|a\.i\.|artificial intelligence|(?:large )?language model|"
    r"chatbot|virtual assistant)\b",
    r"\bi (?:don't|do not) have (?:personal )?(?:feelings|emotions|opinions|a body|personal experiences)\b",
    r"\bas a helpful assistant\b",
    r"作为(?:一个|一名)?(?:人工智能|AI|ai|语言模型|大语言模型|大型语言模型|AI助手|智能助手)",
    r"我(?:只)?是(?:一个|一名)?(?:人工智能|AI|ai|语言模型|大语言模型|AI助手|智能助手)",
)), re.IGNORECASE)
# Punctuation habits, counted per message. "..." and "…" are one habit; so are "!!" and "！！".
PUNCTUATION = {
    "!": r"(?<![!！])[!！](?![!！])", "!!": r"[!！]{2,}", "?": r"[?？]", ".": r"(?<![.。])[.。](?![.。])",
    "...": r"\.{3,}|…+|。{2,}", ",": r"[,，]", "~": r"[~～]", "haha": r"\b(?:ha){2,}\b|\blol\b|哈{2,}|233+",
}
_PUNCT = {name: re.compile(pattern, re.IGNORECASE) for name, pattern in PUNCTUATION.items()}
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")
_TOKEN = re.compile(r"\[[^\[\]\s\d<>]{1,10}\]|[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]"
                    r"|[^\W_]+(?:'[^\W_]+)?")


@dataclass
class StyleProfile:
    replies: int = 0
    messages: int = 0
    messages_per_burst: float = 0.0
    chars_per_message: dict = field(default_factory=dict)     # mean, p50, p90
    emoji_rate: float = 0.0          # messages with an emoji or sticker code
    punctuation: dict = field(default_factory=dict)           # mark -> occurrences per message
    ends_with_period: float = 0.0    # messages whose last character is "." or "。"
    lowercase_start: float = 0.0     # of messages starting with a Latin letter
    phrase_rate: float = 0.0         # replies with at least one of the owner's top phrases
    phrases: dict = field(default_factory=dict)               # phrase -> share of replies using it
    ai_ism_rate: float = 0.0
    ai_isms: list = field(default_factory=list)               # a few examples, for the report
    lengths: list = field(default_factory=list, repr=False)   # characters per message

    def to_dict(self) -> dict:
        data = asdict(self)
        data.pop("lengths")
        return data


def _rate(count: float, total: int) -> float:
    return round(count / total, 4) if total else 0.0


def tokens(text: str) -> list[str]:
    """Words (Latin), single CJK characters and sticker codes, lower-cased; placeholders removed."""
    return [t.lower() for t in _TOKEN.findall(PLACEHOLDER.sub(" ", text))]


def _grams(text: str, sizes: Sequence[int] = (1, 2, 3)) -> set[tuple[str, ...]]:
    words = tokens(text)
    grams = set()
    for n in sizes:
        for i in range(len(words) - n + 1):
            part = tuple(words[i:i + n])
            if n == 1 and _CJK.fullmatch(part[0]):
                continue  # one CJK character is a letter, not a phrase
            grams.add(part)
    return grams


def _text(gram: tuple[str, ...]) -> str:
    return ("" if all(_CJK.fullmatch(w) for w in gram) else " ").join(gram)


def ngrams(text: str, sizes: Sequence[int] = (1, 2, 3)) -> set[str]:
    """The phrases (1-3 words, or 2-3 CJK characters) in ``text``, as strings."""
    return {_text(g) for g in _grams(text, sizes)}


def _inside(small: tuple[str, ...], big: tuple[str, ...]) -> bool:
    return any(big[i:i + len(small)] == small for i in range(len(big) - len(small) + 1))


def top_phrases(owner: Iterable[str], others: Iterable[str], k: int = 10, min_count: int = 3) -> list[str]:
    """The owner's ``k`` most characteristic phrases: used in at least ``min_count`` replies and much
    more often by the owner than by the others (smoothed ratio of the two rates)."""
    owner, others = list(owner), list(others)
    mine = Counter(g for text in owner for g in _grams(text))
    theirs = Counter(g for text in others for g in _grams(text))
    n_mine, n_theirs = max(1, len(owner)), max(1, len(others))
    scored = []
    for gram, count in mine.items():
        if count < min_count:
            continue
        ratio = (count / n_mine) / ((theirs[gram] + 1) / (n_theirs + 1))
        if ratio > 2:
            scored.append((ratio * math.log1p(count), len(gram), gram))
    scored.sort(reverse=True)
    chosen: list[tuple[str, ...]] = []
    for _, _, gram in scored:
        # One habit, one phrase: "stay spicy" rather than "stay" and "spicy" -- the longer form
        # wins when it accounts for most uses of the shorter one.
        inner = [c for c in chosen if _inside(c, gram)]
        if any(_inside(gram, c) for c in chosen) or any(mine[gram] < 0.6 * mine[c] for c in inner):
            continue
        chosen = [c for c in chosen if c not in inner] + [gram]
        if len(chosen) == k:
            break
    order = {g: i for i, (_, _, g) in enumerate(scored)}
    return [_text(g) for g in sorted(chosen, key=order.__getitem__)]


def profile(replies: Sequence[str], phrases: Sequence[str] = ()) -> StyleProfile:
    """The style profile of ``replies`` (each a burst: messages joined by BURST_SEPARATOR)."""
    messages = [m for reply in replies for m in (split_burst(reply) or [""])]
    lengths = [len(m) for m in messages]
    latin = [m for m in messages if m[:1].isascii() and m[:1].isalpha()]
    ordered = sorted(lengths)
    grams = [ngrams(reply) for reply in replies]
    phrase_hits = {p: _rate(sum(p in g for g in grams), len(replies)) for p in phrases}
    ai = [reply for reply in replies if AI_ISMS.search(reply)]
    return StyleProfile(
        replies=len(replies), messages=len(messages),
        messages_per_burst=round(len(messages) / len(replies), 3) if replies else 0.0,
        chars_per_message={"mean": round(sum(lengths) / len(lengths), 1) if lengths else 0.0,
                           "p50": ordered[len(ordered) // 2] if ordered else 0,
                           "p90": ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))] if ordered else 0},
        emoji_rate=_rate(sum(bool(EMOJI.search(m) or STICKER.search(m)) for m in messages), len(messages)),
        punctuation={name: _rate(sum(len(p.findall(m)) for m in messages), len(messages))
                     for name, p in _PUNCT.items()},
        ends_with_period=_rate(sum(m.rstrip()[-1:] in (".", "。") and not m.rstrip().endswith("..")
                                   for m in messages), len(messages)),
        lowercase_start=_rate(sum(m[0].islower() for m in latin), len(latin)),
        phrase_rate=_rate(sum(any(p in g for p in phrases) for g in grams), len(replies)),
        phrases=phrase_hits, ai_ism_rate=_rate(len(ai), len(replies)), ai_isms=[a[:120] for a in ai[:3]],
        lengths=lengths,
    )


def wasserstein(a: Sequence[float], b: Sequence[float]) -> float:
    """1-D earth mover's distance between two samples (by their quantile functions)."""
    if not a or not b:
        return 0.0 if not a and not b else math.inf
    xs, ys = sorted(a), sorted(b)
    steps = max(len(xs), len(ys), 64)
    total = 0.0
    for i in range(steps):
        q = (i + 0.5) / steps
        total += abs(xs[min(len(xs) - 1, int(q * len(xs)))] - ys[min(len(ys) - 1, int(q * len(ys)))])
    return total / steps


def compare(owner: StyleProfile, other: StyleProfile) -> dict:
    """Per-measure distances of ``other`` from ``owner`` and their mean, ``style_distance``."""
    length = wasserstein([math.log1p(x) for x in owner.lengths], [math.log1p(x) for x in other.lengths])
    marks = set(owner.punctuation) | set(other.punctuation)
    punctuation = sum(abs(owner.punctuation.get(m, 0) - other.punctuation.get(m, 0)) for m in marks)
    parts = {
        # log-length EMD: 0.69 is "every message twice as long"
        "length": round(min(length, 9.99), 4),
        "burst": round(abs(owner.messages_per_burst - other.messages_per_burst), 4),
        "emoji": round(abs(owner.emoji_rate - other.emoji_rate), 4),
        "punctuation": round(punctuation, 4),
        "lowercase": round(abs(owner.lowercase_start - other.lowercase_start), 4),
        "phrases": round(abs(owner.phrase_rate - other.phrase_rate), 4),
        "ai_isms": other.ai_ism_rate,
    }
    terms = [min(1.0, parts["length"] / 0.69), min(1.0, parts["burst"] / max(1.0, owner.messages_per_burst)),
             parts["emoji"], min(1.0, punctuation / 2), parts["lowercase"], parts["phrases"],
             min(1.0, parts["ai_isms"])]
    return {**parts, "style_distance": round(sum(terms) / len(terms), 4)}
