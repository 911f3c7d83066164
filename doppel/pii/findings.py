"""What the scrubber finds: the private-data types, one ``Finding``, and how overlapping
candidates merge into one finding.

Placeholders are named after the types: ``<PHONE>``, ``<EMAIL>``, ``<ID>``, ``<CARD>``,
``<IBAN>``, ``<IP>``, ``<URL>``, ``<ADDRESS>`` and ``<SECRET>`` (``doppel.pii.placeholders``).
``ID`` is every identity number: CN resident IDs (old and new), passports, HK and TW IDs, US SSNs,
QQ numbers, WeChat IDs, licence plates. ``<PRIVATE>`` is a value the owner listed
(``[privacy] private_values``), found only when the scrubber is given such values.

Values are compared in their normalized form (``doppel.pii.normalize``), so "138 1234 5678",
"１３８１２３４５６７８" and "一三八一二三四五六七八" are one value, and so are an e-mail and its
spelled-out form.

Tested in ``tests/doppel/test_pii.py`` (numbering, overlaps) and ``tests/doppel/test_pii_spellings.py``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import MappingProxyType

from doppel.pii.normalize import normalize

TYPES = ("PHONE", "EMAIL", "ID", "CARD", "IBAN", "IP", "URL", "ADDRESS", "SECRET")
# Not a detector's type: the owner's own values, found only when the scrubber is given them.
PRIVATE = "PRIVATE"

# On a tie between overlapping candidates, the more specific type names the finding (an owner's
# value that a detector also finds keeps the detector's type: "<PHONE>" says more).
_PRIORITY = MappingProxyType({name: rank for rank, name in enumerate(
    ("URL", "EMAIL", "SECRET", "ID", "IBAN", "CARD", "PHONE", "IP", "ADDRESS", PRIVATE))})
_SPELLED_AT = re.compile(r"\s*[\[({<]\s*at\s*[\])}>]\s*|\s+at\s+|\s*@\s*|\s*艾特\s*", re.IGNORECASE)
_SPELLED_DOT = re.compile(r"\s*[\[({<]\s*dot\s*[\])}>]\s*|\s+dot\s+|\s*\.\s*|\s*[点點]\s*", re.IGNORECASE)


@dataclass(frozen=True)
class Finding:
    """One private value found in a text: ``text[start:end] == value``."""

    type: str
    start: int
    end: int
    value: str

    def key(self) -> tuple[str, str]:
        """What counts as 'the same value' for numbering: digits only for phones and cards, letters
        and digits for IDs, case-folded e-mails, all in their normalized form, so '138 1234 5678'
        and '１３８１２３４５６７８' share a placeholder."""
        value = normalize(self.value).text
        if self.type in ("PHONE", "CARD"):
            return self.type, re.sub(r"[^0-9]", "", value)
        if self.type == "ID":
            return self.type, "".join(c for c in value if c.isalnum()).upper()
        if self.type == "EMAIL":
            return self.type, _SPELLED_DOT.sub(".", _SPELLED_AT.sub("@", value)).casefold()
        if self.type == PRIVATE:
            return self.type, "".join(c for c in value if c.isalnum()).casefold()
        return self.type, value


def resolve(text: str, candidates: list[Finding]) -> list[Finding]:
    """Overlapping candidates become one finding over their union, so no part of either is left
    in the clear ("password: +86 150..." is one value, not a secret "+86" and a stray number).
    It takes the type of the longest candidate; on a tie the more specific type (a URL over the
    e-mail in it, a spoken secret over the number that is its value, an ID over a card)."""
    candidates.sort(key=lambda f: (f.start, -f.end))
    clusters: list[list] = []
    for candidate in candidates:
        if clusters and candidate.start < clusters[-1][1]:
            clusters[-1][1] = max(clusters[-1][1], candidate.end)
            clusters[-1][2].append(candidate)
        else:
            clusters.append([candidate.start, candidate.end, [candidate]])
    resolved = []
    for start, end, members in clusters:
        best = max(members, key=lambda f: (f.end - f.start, -_PRIORITY[f.type]))
        whole = (best.start, best.end) == (start, end)
        resolved.append(best if whole else Finding(best.type, start, end, text[start:end]))
    return resolved
