"""What the scrubber's detectors see: the text normalized, with every character mapped back to the
span of the original text it came from.

Two layers, each applied only where it changes something:

1. characters: NFKC (full-width digits and letters, ``＠``, ``．``, ``①``, math bold digits become
   ASCII), every other Unicode digit to its ASCII digit (``unicodedata.digit``: Arabic-Indic,
   Persian, Devanagari...), format characters (zero-width spaces, bidi marks) removed, or made a
   space between two digits, where they split a number into groups. The full-width sentence
   punctuation Chinese is written with (，：；（）) stays, so a value still ends where the sentence
   goes on ("密码：abc，ok");
2. numbers in words: a run of Chinese numerals becomes digits where it is a number (three or more
   digits read one by one, 一三八… or 幺三八…, or a number before a unit of an address, 八十八号,
   三栋, 二单元), and a run of three or more English number words becomes digits ("four one five"
   -> "4 1 5"). A lone 一 in 一起 or the 五一 of 五一路 stay as they are.

``normalize(text).span(start, end)`` is the original span of ``normalized[start:end]``, so a
replacement lands on what the person typed. Standard library only. Tested in
``tests/doppel/test_pii_spellings.py`` (spellings, offsets under random input).
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

_KEEP = frozenset("，：；（）")

ZH_DIGITS = {"零": 0, "〇": 0, "一": 1, "幺": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7,
             "八": 8, "九": 9}
_ZH_UNITS = {"十": 10, "百": 100, "千": 1000}
# Two numerals or more, or one before an address unit: a lone 一 (一起, 一下) is never a number here.
_ZH_RUN = re.compile(r"[零〇一幺二两三四五六七八九十百千]{2,}|"
                     r"[零〇一幺二两三四五六七八九十百千](?=[号號栋棟幢单單室楼樓层層座期弄巷])")
# What follows a number in an address: door, building, unit, room, floor, phase, lane.
_ADDRESS_UNITS = frozenset("号號栋棟幢单單室楼樓层層座期弄巷")
EN_DIGITS = {"zero": 0, "oh": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
             "eight": 8, "nine": 9}
_EN_WORD = "(?:zero|oh|one|two|three|four|five|six|seven|eight|nine)"
_EN_RUN = re.compile(rf"(?<![A-Za-z]){_EN_WORD}(?:(?:[ \t]*[-,/.][ \t]*|[ \t]+){_EN_WORD}){{2,}}(?![A-Za-z])",
                     re.IGNORECASE)
_EN_WORD_RE = re.compile(_EN_WORD, re.IGNORECASE)
# The look-ahead lets the regex engine skip other characters fast.
_EN_HINT = re.compile(r"(?=[zotfsenZOTFSEN])(?i:zero|one|two|three|four|five|six|seven|eight|nine)[ ,-]")
_NUMBER_HINT = re.compile(f"{_ZH_RUN.pattern}|{_EN_HINT.pattern}")


def _fold_char(char: str) -> str:
    if char in _KEEP:
        return char
    if unicodedata.category(char) == "Cf":
        return ""
    folded = unicodedata.normalize("NFKC", char)
    if folded.isascii():
        return folded
    return "".join(str(unicodedata.digit(c)) if c.isdigit() and unicodedata.digit(c, None) is not None else c
                   for c in folded)


_fold = lru_cache(maxsize=8192)(_fold_char)
_CHANGING: dict[int, None] = {}


def _changing() -> dict[int, None]:
    """A deletion table of every character the first layer changes (the Basic Multilingual Plane,
    plane 1 with the mathematical and enclosed digits, the CJK compatibility ideographs, the tag
    characters), built on first use: ``len(text.translate(table)) == len(text)`` then tells, at C
    speed, that a text needs no first layer at all."""
    if not _CHANGING:
        normalized, category = unicodedata.is_normalized, unicodedata.category
        # CJK ideographs (Extension A and the unified block) and Hangul syllables never change.
        for code in (*range(0x80, 0x3400), *range(0x4DC0, 0x4E00), *range(0xA000, 0xAC00), *range(0xD7A4, 0xD800),
                     *range(0xE000, 0x20000), *range(0x2F800, 0x2FA20), *range(0xE0000, 0xE0080)):
            char = chr(code)
            if char not in _KEEP and (not normalized("NFKC", char) or char.isdigit() or category(char) == "Cf"):
                _CHANGING[code] = None
    return _CHANGING


_HIDING: list[re.Pattern] = []


def may_change(lower: str) -> bool:
    """Whether normalizing could turn up something a detector looks for in this (lower-cased)
    text: a character that folds to an ASCII letter, digit or ``@.:/+-_``, a format character, a
    non-ASCII digit, a run of Chinese numerals or English number words. One regex search, so the
    scrubber can skip normalizing a text that has neither this nor any of its triggers."""
    if not _HIDING:
        ranges: list[list[int]] = []
        for code in _CHANGING or _changing():
            folded = _fold_char(chr(code))
            if code < 0x10000 and (not folded or chr(code).isdigit() or
                                   any(c.isascii() and (c.isalnum() or c in "@.:/+-_") for c in folded)):
                if ranges and ranges[-1][1] == code - 1:
                    ranges[-1][1] = code
                else:
                    ranges.append([code, code])
        chars = "".join(re.escape(chr(a)) + (f"-{re.escape(chr(b))}" if b > a else "") for a, b in ranges)
        # One character class first, so the regex engine skips other characters fast; then what
        # the character starts: a numeral run (two, or one before a unit), a number word.
        numerals, units = "零〇一幺二两三四五六七八九十百千", "号號栋棟幢单單室楼樓层層座期弄巷"
        _HIDING.append(re.compile(
            f"[{chars}{numerals}zotfsen](?:(?<=[{chars}])|(?<=[{numerals}])(?:[{numerals}]|(?=[{units}]))|"
            "(?<=[zotfsen])(?<![a-z][zotfsen])(?:ero|ne|wo|hree|our|ive|ix|even|ight|ine)[ ,-])"
            "|[\U0001d400-\U0001d7ff\U0001f100-\U0001f1ff\U0001fbf0-\U0001fbf9\U000e0000-\U000e007f]"))
    return _HIDING[0].search(lower) is not None


class Normalized:
    """``text`` normalized from ``original``; ``span`` maps a span of ``text`` back."""

    __slots__ = ("_ends", "_starts", "original", "text")

    def __init__(self, original: str, text: str, starts: list[int] | None = None, ends: list[int] | None = None):
        self.original, self.text, self._starts, self._ends = original, text, starts, ends

    @property
    def identity(self) -> bool:
        return self._starts is None

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The span of ``original`` that ``text[start:end]`` (not empty) came from."""
        if self._starts is None:
            return start, end
        return self._starts[start], self._ends[end - 1]

    def original_of(self, start: int, end: int) -> str:
        s, e = self.span(start, end)
        return self.original[s:e]


def _fold_layer(text: str) -> tuple[str, list[int], list[int]] | None:
    if text.isascii() or len(text.translate(_CHANGING or _changing())) == len(text):
        return None
    return _fold_chars(text)


def _fold_chars(text: str) -> tuple[str, list[int], list[int]]:
    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    pending = -1  # a removed format character, which splits digits into groups
    for index, char in enumerate(text):
        folded = char if char < "\x80" else _fold(char)
        if not folded:
            pending = index if unicodedata.category(char) == "Cf" else pending
            continue
        if pending >= 0 and out and out[-1].isdigit() and folded[0].isdigit():
            out.append(" ")
            starts.append(pending)
            ends.append(pending + 1)
        pending = -1
        for piece in folded:
            out.append(piece)
            starts.append(index)
            ends.append(index + 1)
    return "".join(out), starts, ends


def zh_value(run: str) -> int | None:
    """A positional Chinese numeral (八十八, 二百零五, 一千二百零一) as a number, else None."""
    total, digit, last_unit = 0, None, 10_000
    for char in run:
        if char in _ZH_UNITS:
            unit = _ZH_UNITS[char]
            if unit >= last_unit:
                return None
            total += (1 if digit is None else digit) * unit
            digit, last_unit = None, unit
        elif digit:  # two digits in a row: 一二十 is no number (零 may come before one: 二百零五)
            return None
        else:
            digit = ZH_DIGITS[char]
    return total + (digit or 0)


def _numeral_replacements(text: str) -> list[tuple[int, int, str, bool]]:
    """(start, end, digits, one_to_one) for the number runs of the second layer."""
    found = []
    if not text.isascii() and _ZH_RUN.search(text):
        for match in _ZH_RUN.finditer(text):
            run = match.group()
            before_unit = text[match.end():match.end() + 1] in _ADDRESS_UNITS
            if any(c in _ZH_UNITS for c in run):
                value = zh_value(run) if before_unit else None
                if value is not None:
                    found.append((match.start(), match.end(), str(value), False))
            elif len(run) >= 3 or before_unit:
                found.append((match.start(), match.end(), "".join(str(ZH_DIGITS[c]) for c in run), True))
    if _EN_HINT.search(text):
        for match in _EN_RUN.finditer(text):
            for word in _EN_WORD_RE.finditer(match.group()):
                start = match.start() + word.start()
                found.append((start, start + len(word.group()), str(EN_DIGITS[word.group().lower()]), False))
    found.sort()
    return found


def normalize(text: str) -> Normalized:
    """``text`` through both layers, with the map back to it (none when nothing changed)."""
    return normalized(text) or Normalized(text, text)


def normalized(text: str) -> Normalized | None:
    """``normalize(text)``, or None when neither layer changes the text (most chat messages)."""
    if text.isascii():
        if _EN_HINT.search(text) is None:
            return None
        folded = None
    else:
        folded = None if len(text.translate(_CHANGING or _changing())) == len(text) else _fold_chars(text)
    layer1 = folded[0] if folded else text
    replacements = _numeral_replacements(layer1) if _NUMBER_HINT.search(layer1) else None
    if not replacements:
        return Normalized(text, layer1, *folded[1:]) if folded else None
    starts1, ends1 = (folded[1], folded[2]) if folded else (None, None)
    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []

    def emit(piece: str, start: int, end: int) -> None:
        out.append(piece)
        starts.append(starts1[start] if starts1 else start)
        ends.append(ends1[end - 1] if ends1 else end)

    cursor = 0
    for start, end, digits, one_to_one in replacements:
        for index in range(cursor, start):
            emit(layer1[index], index, index + 1)
        for offset, digit in enumerate(digits):
            if one_to_one:
                emit(digit, start + offset, start + offset + 1)
            else:
                emit(digit, start, end)
        cursor = end
    for index in range(cursor, len(layer1)):
        emit(layer1[index], index, index + 1)
    return Normalized(text, "".join(out), starts, ends)


def canonical(value: str) -> str:
    """How a value is compared: normalized, case-folded, without spaces or separators."""
    return re.sub(r"[\s\-./_·•,、|:：()（）\[\]]+", "", normalize(value).text).casefold()
