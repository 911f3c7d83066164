"""What the scrubber finds: the private-data types, one ``Finding``, and how overlapping
candidates merge into one finding.

Placeholders are named after the types: ``<PHONE>``, ``<EMAIL>``, ``<ID>``, ``<CARD>``,
``<IBAN>``, ``<IP>``, ``<URL>``, ``<ADDRESS>`` and ``<SECRET>`` (``doppel.pii.placeholders``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import MappingProxyType

TYPES = ("PHONE", "EMAIL", "ID", "CARD", "IBAN", "IP", "URL", "ADDRESS", "SECRET")

# On a tie between overlapping candidates, the more specific type names the finding.
_PRIORITY = MappingProxyType({name: rank for rank, name in
                              enumerate(("URL", "EMAIL", "SECRET", "ID", "IBAN", "CARD", "PHONE", "IP", "ADDRESS"))})


@dataclass(frozen=True)
class Finding:
    """One private value found in a text: ``text[start:end] == value``."""

    type: str
    start: int
    end: int
    value: str

    def key(self) -> tuple[str, str]:
        """What counts as 'the same value' for numbering: digits only for numbers, case-folded
        e-mails, so '138 1234 5678' and '13812345678' share a placeholder."""
        if self.type in ("PHONE", "ID", "CARD"):
            return self.type, re.sub(r"[^0-9Xx]", "", self.value).upper()
        if self.type == "EMAIL":
            return self.type, self.value.casefold()
        return self.type, self.value


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
