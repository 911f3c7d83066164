"""Findings become typed placeholders, numbered within one sample.

Within one sample (a list of texts scrubbed together, ``Scrubber.scrub_texts``): when a type
occurs with a single distinct value the placeholder is bare (``<PHONE>``, however often the value
repeats); when several distinct values of a type occur they become ``<PHONE_1>``, ``<PHONE_2>``,
... in order of first appearance, and the same value always gets the same number. So "call
138... or 139..., 138... is better" keeps its meaning without keeping the numbers.

Tested in ``tests/doppel/test_pii.py`` (numbering within a sample, idempotence).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from doppel.pii.findings import Finding

# Matches every placeholder the scrubber writes, so callers (and tests) can recognise them.
PLACEHOLDER = re.compile(r"<(?:PHONE|EMAIL|ID|CARD|IBAN|IP|URL|ADDRESS|SECRET|PRIVATE)(?:_\d+)?>")


def render(texts: Sequence[str], findings: Sequence[Sequence[Finding]]) -> list[str]:
    """Replace ``findings[i]`` in ``texts[i]`` with placeholders numbered across all the texts.

    Lets a caller find once per message and render once per sample that contains it.
    """
    distinct: dict[str, list[tuple[str, str]]] = {}
    for finding in (f for fs in findings for f in fs):
        values = distinct.setdefault(finding.type, [])
        if finding.key() not in values:
            values.append(finding.key())
    out = []
    for text, found in zip(texts, findings, strict=True):
        if not found:
            out.append(text)
            continue
        pieces, cursor = [], 0
        for finding in found:
            values = distinct[finding.type]
            label = finding.type if len(values) == 1 else f"{finding.type}_{values.index(finding.key()) + 1}"
            pieces += [text[cursor:finding.start], f"<{label}>"]
            cursor = finding.end
        pieces.append(text[cursor:])
        out.append("".join(pieces))
    return out
