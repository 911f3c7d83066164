"""The ``Scrubber``: normalizes a text (``doppel.pii.normalize``), runs the detectors it
triggers on the normalized text, validates what they match, maps each finding back to the span
of the original text it came from, merges the overlaps and replaces every finding with its
placeholder.

The detectors: the patterns (``doppel.pii.patterns``), numbers however they are split or spelled
(``doppel.pii.numbers``), the kinds that are not plain numbers (``doppel.pii.kinds``) and the
owner's own values (``doppel.pii.private``). Stateless once built, so one instance serves a whole
dataset build or the worker's output redaction.

Tested in ``tests/doppel/test_pii.py`` and ``tests/doppel/test_pii_spellings.py``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from doppel.pii.findings import PRIVATE, TYPES, Finding, resolve
from doppel.pii.kinds import TRIGGER as KINDS_TRIGGER
from doppel.pii.kinds import TRIGGER_FIRST as KINDS_FIRST
from doppel.pii.kinds import TRIGGER_WORDS as KINDS_WORDS
from doppel.pii.kinds import find_kinds
from doppel.pii.normalize import Normalized, may_change, normalized
from doppel.pii.numbers import find_numbers
from doppel.pii.patterns import (
    CAPS_RUN,
    CARD,
    CARD_NOT_AFTER,
    CN_ADDRESS,
    CN_ADDRESS_HINT,
    EMAIL,
    EN_ADDRESS,
    EN_ADDRESS_CAPS,
    EN_ADDRESS_LOWER,
    IBAN,
    ID,
    IP_NOT_AFTER,
    IPV4,
    IPV4_DEFANGED,
    NUMERIC_SECRET,
    PHONE_NOT_AFTER,
    PHONE_PATTERNS,
    SECRET_EN,
    SECRET_STOPWORDS,
    SECRET_ZH,
    TOKEN_SHAPES,
    TRIGGER,
    TRIGGER_FIRST,
    TRIGGER_WORDS,
    URL,
    URL_SECRET_KEY,
    URL_TRAILING,
    URL_USERINFO,
)
from doppel.pii.placeholders import render
from doppel.pii.private import PrivateValues
from doppel.pii.validators import card_issued, cn_id_ok, iban_ok, luhn_ok

_DIGIT = re.compile(r"[0-9]")
# The patterns' trigger or the kinds' (both searched in the lower-cased text): a text with
# neither is returned untouched after one search.
ANY_TRIGGER = re.compile(f"(?=[{TRIGGER_FIRST}{KINDS_FIRST}])(?:{TRIGGER_WORDS}|{KINDS_WORDS})")


class Scrubber:
    """Finds private values and replaces them with typed placeholders.

    ``types`` limits what is looked for (default: all of ``TYPES``); ``private_values`` are the
    owner's own values (``[privacy] private_values``, ``doppel.pii.private``), found as
    ``PRIVATE`` in any spelling whatever ``types`` says. Thread-safe: one instance serves a whole
    build or the worker's output redaction.
    """

    def __init__(self, types: Iterable[str] = TYPES, private_values: Iterable[str] = ()):
        self.types = frozenset(types)
        unknown = self.types - set(TYPES)
        if unknown:
            raise ValueError(f"unknown PII types {sorted(unknown)}; known: {', '.join(TYPES)}")
        self.private = PrivateValues(private_values)

    # -- finding ----------------------------------------------------------------------------------

    def find(self, text: str) -> list[Finding]:
        """Non-overlapping findings in ``text``, by position (overlaps merged: ``resolve``).

        A value glued to another one ("+8613812345678+8613912345678") can only be told apart once
        its neighbour is gone: the text is searched again with the findings masked the way their
        placeholders will stand (``<...>``), so scrubbing scrubbed text finds nothing new."""
        findings = self._find_once(text)
        for _ in range(3 if findings else 0):
            if not any(_glues(text[max(0, f.start - 2):f.start][::-1]) or _glues(text[f.end:f.end + 2])
                       or "@" in text[f.end:f.end + 6] for f in findings):
                break
            masked = list(text)
            for finding in findings:
                size = finding.end - finding.start
                masked[finding.start:finding.end] = "<" + "\x00" * (size - 2) + ">" if size > 1 else "\x00"
            more = [f for f in self._find_once("".join(masked))
                    if not any(f.start < g.end and g.start < f.end for g in findings)]
            if not more:
                break
            findings = resolve(text, findings + [Finding(f.type, f.start, f.end, text[f.start:f.end]) for f in more])
        return findings

    def _find_once(self, text: str) -> list[Finding]:
        if not text:
            return []
        lower = text.lower()
        if not self.private and ANY_TRIGGER.search(lower) is None and not may_change(lower):
            return []  # most chat messages: nothing to look at, and nothing that normalizing would reveal
        norm = normalized(text)
        if norm:
            ntext = norm.text
            lower = ntext.lower()
        else:
            ntext = text
        found = self._find_normalized(ntext, norm or Normalized(text, text), lower) \
            if ANY_TRIGGER.search(lower) else []
        if self.private:
            found += [(PRIVATE, start, end) for start, end in self.private.find(ntext)]
        if not found:
            return []
        candidates = []
        for kind, start, end in found:
            if norm:
                start, end = norm.span(start, end)
            candidates.append(Finding(kind, start, end, text[start:end]))
        return resolve(text, candidates)

    def _find_normalized(self, text: str, norm: Normalized, lower: str) -> list[tuple[str, int, int]]:
        """(type, start, end) of every candidate in the normalized ``text``."""
        if TRIGGER.search(lower) is None:
            return [f for f in find_kinds(text, lower, False) if f[0] in self.types]
        wanted = self.types
        found = [(f.type, f.start, f.end) for f in self._patterns(text)]
        has_digit = _DIGIT.search(text) is not None
        if has_digit:
            found += [f for f in find_numbers(norm) if f[0] in wanted]
        if has_digit or KINDS_TRIGGER.search(lower):
            found += [f for f in find_kinds(text, lower, has_digit) if f[0] in wanted]
        if "PHONE" in wanted:
            found = [f for f in found if f[0] != "PHONE" or not PHONE_NOT_AFTER.search(text[max(0, f[1] - 24):f[1]])]
        return found

    def _patterns(self, text: str) -> list[Finding]:
        """The candidates of the patterns (``doppel.pii.patterns``) in a text that has a ``TRIGGER``."""
        candidates: list[Finding] = []
        has_digit = _DIGIT.search(text) is not None
        wanted = self.types
        if "URL" in wanted and ("://" in text or "www." in text.lower()):
            candidates += self._urls(text)
        if "EMAIL" in wanted and "@" in text:
            candidates += [Finding("EMAIL", m.start(), m.end(), m.group()) for m in EMAIL.finditer(text)]
        if "SECRET" in wanted:
            candidates += self._secrets(text)
        if has_digit:
            if "ID" in wanted:
                candidates += self._ids(text)
            if "CARD" in wanted:
                candidates += self._cards(text)
            if "IBAN" in wanted:
                candidates += self._ibans(text)
            if "PHONE" in wanted:
                candidates += self._phones(text)
            if "IP" in wanted and "." in text:
                candidates += self._ips(text)
            if "IP" in wanted and ("[" in text or "(" in text):
                candidates += [Finding("IP", m.start(), m.end(), m.group()) for m in IPV4_DEFANGED.finditer(text)]
            if "ADDRESS" in wanted:
                candidates += self._addresses(text)
        return candidates

    def _urls(self, text: str) -> list[Finding]:
        found = []
        for match in URL.finditer(text):
            url = match.group().rstrip(URL_TRAILING)
            if URL_SECRET_KEY.search(url) or URL_USERINFO.match(url):
                found.append(Finding("URL", match.start(), match.start() + len(url), url))
        return found

    def _secrets(self, text: str) -> list[Finding]:
        found = [Finding("SECRET", m.start(), m.end(), m.group()) for m in TOKEN_SHAPES.finditer(text)]
        for pattern in (SECRET_ZH, SECRET_EN):
            # A rejected match ("PIN PIN") must not hide a keyword inside it ("PIN token=x"):
            # search again from just after where it started, not from where it ended.
            position = 0
            while match := pattern.search(text, position):
                # "!" and "?" stay: password rules make them common at the end of a secret.
                value = match.group("value").rstrip(".,;:)]}'\"")
                weak = pattern is SECRET_EN and match.group("weak") is not None
                if len(value) < 3 or value.lower() in SECRET_STOPWORDS or \
                        (weak and not _looks_secret(value, match.group("kw"))):
                    position = match.start() + 1
                    continue
                start = match.start("value")
                found.append(Finding("SECRET", start, start + len(value), value))
                position = match.end()
        return found

    def _ids(self, text: str) -> list[Finding]:
        found = []
        for match in ID.finditer(text):
            if cn_id_ok("".join(match.groups())):
                found.append(Finding("ID", match.start(), match.end(), match.group()))
        return found

    def _cards(self, text: str) -> list[Finding]:
        found = []
        for match in CARD.finditer(text):
            groups = [(match.start() + g.start(), match.start() + g.end()) for g in re.finditer(r"\d+", match.group())]
            # A group longer than six digits is a number of its own (card groups are 4-6 long),
            # so "+8613866604876 6236 6866 0487 6475 934" is a phone, then a card.
            segment: list[tuple[int, int]] = []
            for group in [*groups, None]:
                if group is None or group[1] - group[0] > 6:
                    found += self._cards_in(text, segment)
                    if group is not None:
                        found += self._cards_in(text, [group])
                    segment = []
                else:
                    segment.append(group)
        return found

    @staticmethod
    def _cards_in(text: str, groups: list[tuple[int, int]]) -> list[Finding]:
        # From each group, the longest run of groups first, so a card followed by a year
        # ("4111 1111 1111 1111 2025") is still found, and two cards in a row are two.
        found, first = [], 0
        while first < len(groups):
            start = groups[first][0]
            for last in range(len(groups), first, -1):
                digits = "".join(text[s:e] for s, e in groups[first:last])
                if not 13 <= len(digits) <= 19 or not (card_issued(digits) and luhn_ok(digits)):
                    continue
                # Shaped like a resident ID with a typo, or an order number by its label: no card.
                if not (len(digits) == 18 and ID.fullmatch(digits)) and \
                        not CARD_NOT_AFTER.search(text[max(0, start - 16):start]):
                    found.append(Finding("CARD", start, groups[last - 1][1], text[start:groups[last - 1][1]]))
                first = last - 1
                break
            first += 1
        return found

    @staticmethod
    def _ibans(text: str) -> list[Finding]:
        found = []
        position = 0
        while match := IBAN.search(text, position):
            # The last groups may be the next words ("... 3201 pls", or a second IBAN): drop
            # groups from the end until what is left is an IBAN, and look again right after it.
            pieces = match.group().split(" ")
            position = match.start() + 1
            while pieces:
                value = " ".join(pieces)
                if iban_ok(value.replace(" ", "")):
                    found.append(Finding("IBAN", match.start(), match.start() + len(value), value))
                    position = match.start() + len(value)
                    break
                pieces.pop()
        return found

    def _phones(self, text: str) -> list[Finding]:
        found = []
        for pattern in PHONE_PATTERNS:
            for match in pattern.finditer(text):
                digits = sum(c.isdigit() for c in match.group())
                if 7 <= digits <= 15:
                    found.append(Finding("PHONE", match.start(), match.end(), match.group()))
        return found

    def _ips(self, text: str) -> list[Finding]:
        found = []
        for match in IPV4.finditer(text):
            if not IP_NOT_AFTER.search(text[max(0, match.start() - 16):match.start()]):
                found.append(Finding("IP", match.start(), match.end(), match.group()))
        return found

    def _addresses(self, text: str) -> list[Finding]:
        found = [Finding("ADDRESS", m.start(), m.end(), m.group())
                 for pattern in (EN_ADDRESS, EN_ADDRESS_LOWER) for m in pattern.finditer(text)]
        if CAPS_RUN.search(text):
            found += [Finding("ADDRESS", m.start(), m.end(), m.group()) for m in EN_ADDRESS_CAPS.finditer(text)]
        if CN_ADDRESS_HINT.search(text):
            for match in CN_ADDRESS.finditer(text):
                value = match.group().rstrip()
                found.append(Finding("ADDRESS", match.start(), match.start() + len(value), value))
        return found

    # -- replacing --------------------------------------------------------------------------------

    def scrub(self, text: str) -> tuple[str, list[Finding]]:
        """``text`` with every finding replaced, numbered within this text alone."""
        texts, findings = self.scrub_texts([text])
        return texts[0], findings[0]

    def scrub_texts(self, texts: Sequence[str]) -> tuple[list[str], list[list[Finding]]]:
        """Scrub the texts of one sample together, so a value gets the same placeholder everywhere."""
        findings = [self.find(text) for text in texts]
        return render(texts, findings), findings



def _glues(near: str) -> bool:
    """Whether a value may have hidden another one next to it: the next character (``near[0]``,
    going away from the value) joins a word or number, or a separator comes before a digit."""
    if not near:
        return False
    char = near[0]
    return char.isdigit() or (char.isascii() and (char.isalnum() or char in "+@._-")) or \
        "\uff01" <= char <= "\uff5e" or ((char.isspace() or char in "-/._·\u200b\u200c\u200d\u2060\ufeff")
                                          and near[1:2].isdigit())


def _looks_secret(value: str, keyword: str) -> bool:
    """After a weak separator ('password is X') only a value that is not an ordinary word counts;
    a bare number only after a word that asks for one (PIN, 验证码), not after 'token 2049'."""
    if value.isdigit():
        return len(value) >= 4 and NUMERIC_SECRET.search(keyword) is not None
    has_digit = any(c.isdigit() for c in value)
    has_symbol = any(not c.isalnum() for c in value)
    mixed_case = any(c.isupper() for c in value[1:]) and any(c.islower() for c in value)
    return has_digit or has_symbol or mixed_case
