"""Display names on the web chat: what a name shows as, and when two names look the same.

``display_name`` is the name other pages are shown: NFKC (full-width letters become plain ones),
a right-to-left override applied the way it would be drawn, then every format character
(zero-width spaces and joiners, soft hyphens, direction marks, byte-order marks) dropped, except
a zero-width joiner inside an emoji sequence, and whitespace collapsed. What is left must be 1-32
printable characters.

``skeleton`` is what a name looks like, for comparing: case folded, accents and other combining
marks dropped, look-alike letters from Cyrillic, Greek, IPA and the digits folded onto the Latin
letter they imitate (``_CONFUSABLES``, a hand-written table of the common ones, after Unicode's
confusables list), ``rn``/``vv`` read as ``m``/``w``, and everything but letters and digits
dropped. Two names with one skeleton would pass for each other on the page: the web chat refuses
a guest's name whose skeleton is the owner's, the clone's, a scripted friend's or that of a guest
who is here now (``bot/webchat/platform.py``).

Tested in ``tests/bot/webchat/test_names.py``.
"""

from __future__ import annotations

import unicodedata

from doppel.errors import InputError

MAX_NAME_CHARS = 32

# Right-to-left override and its end (pop directional formatting): the text between is drawn reversed.
_RLO, _PDF = "\u202e", "\u202c"
_ZWJ = "\u200d"

# Capitals that pass for Latin ones, read before case folding: "Η" (Greek eta) looks like H
# while its small "η" looks like n.
_CAPITALS = str.maketrans({
    "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P", "С": "C", "Т": "T",
    "Х": "X", "У": "Y", "Ѕ": "S", "І": "I", "Ј": "J", "Ԛ": "Q", "Ԝ": "W", "Ү": "Y", "Ӏ": "I",
    "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N", "Ο": "O",
    "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
})
# Small look-alikes (after case folding) -> the Latin letter they pass for. "i" and "l" (and
# "1", "|") share one: a capital I and a small l are the same stroke in most sans-serif fonts.
_CONFUSABLES = str.maketrans({
    # Cyrillic
    "а": "a", "в": "b", "е": "e", "ё": "e", "з": "3", "к": "k", "м": "m", "н": "h", "о": "o", "п": "n",
    "р": "p", "с": "c", "т": "t", "у": "y", "х": "x", "ч": "4", "ш": "w", "ь": "b", "ы": "bl", "ѕ": "s",
    "і": "l", "ї": "l", "ј": "j", "ԁ": "d", "ԛ": "q", "ԝ": "w", "ӏ": "l", "һ": "h", "ү": "y", "ө": "o",
    # Greek
    "α": "a", "β": "b", "γ": "y", "ε": "e", "η": "n", "ι": "l", "κ": "k", "μ": "u", "ν": "v", "ο": "o",
    "π": "n", "ρ": "p", "σ": "o", "ς": "c", "τ": "t", "υ": "u", "χ": "x", "ω": "w", "ϲ": "c", "ϳ": "j",
    # Latin look-alikes: IPA, dotless i, small capitals, letters with a stroke
    "ı": "l", "ɩ": "l", "ǀ": "l", "ɑ": "a", "ɒ": "a", "ɐ": "a", "ɛ": "e", "ǝ": "e", "ɔ": "c", "ɡ": "g",
    "ɢ": "g", "ʜ": "h", "ɪ": "l", "ʟ": "l", "ɴ": "n", "ʀ": "r", "ʏ": "y", "ᴀ": "a", "ʙ": "b", "ᴄ": "c",
    "ᴅ": "d", "ᴇ": "e", "ᴊ": "j", "ᴋ": "k", "ᴍ": "m", "ᴏ": "o", "ᴘ": "p", "ᴛ": "t", "ᴜ": "u", "ᴠ": "v",
    "ᴡ": "w", "ᴢ": "z", "ø": "o", "đ": "d", "ħ": "h", "ł": "l", "ŀ": "l", "ƚ": "l", "ɾ": "r", "ʋ": "u",
    # the letters themselves, and digits and signs drawn like letters
    "i": "l", "1": "l", "|": "l", "!": "l", "0": "o", "@": "a", "$": "s",
})
_SEQUENCES = (("rn", "m"), ("vv", "w"))


def _drawn(text: str) -> str:
    """``text`` with each right-to-left override span reversed, as a browser would draw its letters."""
    out, span, inside = [], [], False
    for ch in text:
        if ch == _RLO:
            inside = True
        elif inside and ch in (_PDF, "\n"):
            out.extend(reversed(span))
            span, inside = [], False
        elif inside:
            span.append(ch)
        else:
            out.append(ch)
    out.extend(reversed(span))
    return "".join(out)


def _is_symbol(ch: str) -> bool:
    return unicodedata.category(ch) in ("So", "Sk")


def _strip_format(text: str) -> str:
    """``text`` without format characters (category Cf), keeping a joiner between two symbols (emoji)."""
    kept = []
    for index, ch in enumerate(text):
        if unicodedata.category(ch) != "Cf":
            kept.append(ch)
        elif ch == _ZWJ and kept and _is_symbol(kept[-1]) and index + 1 < len(text) and _is_symbol(text[index + 1]):
            kept.append(ch)
    return "".join(kept)


def display_name(raw) -> str:
    """The name a guest shows as; ``InputError`` (one line for the page) when nothing showable is left."""
    name = raw if isinstance(raw, str) else ""
    name = " ".join(_strip_format(_drawn(unicodedata.normalize("NFKC", name))).split())
    if not name:
        raise InputError("pick a name to join the chat")
    if len(name) > MAX_NAME_CHARS or any(unicodedata.category(ch) in ("Cc", "Co", "Cn", "Cs") for ch in name):
        raise InputError(f"a name is at most {MAX_NAME_CHARS} printable characters")
    return name


def skeleton(name: str) -> str:
    """What ``name`` looks like: equal skeletons are names that pass for each other."""
    folded = unicodedata.normalize("NFKC", _strip_format(_drawn(name))).translate(_CAPITALS).casefold()
    bare = "".join(ch for ch in unicodedata.normalize("NFD", folded) if not unicodedata.combining(ch))
    mapped = bare.translate(_CONFUSABLES)
    shape = "".join(ch for ch in mapped if ch.isalnum())
    for sequence, letter in _SEQUENCES:
        shape = shape.replace(sequence, letter)
    # A name of symbols alone (an emoji) has no letters to compare: it is compared as written.
    return shape or "".join(folded.split())


def taken(name: str, other: str) -> str:
    """The refusal of ``name``, which passes for ``other`` (one line for the page)."""
    if name.casefold() == other.casefold():
        return f"the name {name!r} is taken here; pick another"
    return f"the name {name!r} looks like {other!r}, a name taken here; pick another"
