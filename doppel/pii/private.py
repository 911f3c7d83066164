"""The owner's own secrets: ``[privacy] private_values``, a file with one value per line (their
phone numbers, ID numbers, address lines, the names of people who must never be mentioned;
``#`` starts a comment line), which the build removes from training data and the worker's output
filter blocks, as type ``PRIVATE``.

A value is matched in any spelling the normalizer produces (``doppel.pii.normalize``): full-width
or other-script digits, Chinese numerals, number words, with any separators or spaces between its
characters, in any letter case. "13812345678" is found in "１３８ １２３４ ５６７８",
"138.1234.5678", "一三八一二三四五六七八" and "+86 138-1234-5678"; "建国路88号" in "建国路八十八号";
an e-mail also with "@" and "." spelled out ("mia at example dot com", "mia 艾特 example 点 com").
A Latin name matches only as a whole word ("Ann" is not in "Annual"); a value too short to be
told apart from ordinary text (one character, fewer than four digits) is skipped, and listed by
``PrivateValues.skipped``.

Standard library only. Tested in ``tests/doppel/test_pii_spellings.py`` (spellings, the file, the
build) and, through the worker's filter, in ``tests/inference/test_postprocess.py``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from doppel.errors import ConfigError
from doppel.pii.normalize import canonical

# What may stand between two characters of a value: spaces, line breaks and separators; in an
# e-mail also the spelled-out "@" and ".".
_BETWEEN = r"[\s\-./_·•,、|:：()（）\[\]]*"
_AT = r"\s*(?:@|[\[({<]\s*at\s*[\])}>]|\bat\b|艾特)\s*"
_DOT_BETWEEN = r"(?:[\s\-./_·•,、|:：()（）\[\]]|[\[({<]?\s*(?:\bdot\b|点|點)\s*[\])}>]?)*"


def load_private_values(path: str | Path | None, key: str = "privacy.private_values") -> tuple[str, ...]:
    """The values in the file at ``path`` (none for an empty path); ``#`` lines are comments."""
    if not path:
        return ()
    file = Path(path).expanduser()
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{key} = {str(path)!r}: cannot read it ({type(exc).__name__})") from None
    return tuple(line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#"))


class PrivateValues:
    """Finds the owner's values in normalized text (``find`` returns spans of that text)."""

    def __init__(self, values: Iterable[str]):
        keys, skipped = set(), []
        for value in values:
            key = canonical(value)
            digits = sum(c.isdigit() for c in key)
            if len(key) < 2 or (digits == len(key) and digits < 4) or (key.isascii() and len(key) < 3):
                skipped.append(value)
            else:
                keys.add(key)
        self.skipped = tuple(skipped)
        self.count = len(keys)
        parts = [self._pattern(key) for key in sorted(keys, key=lambda k: (-len(k), k))]
        self._pattern_re = re.compile("|".join(parts), re.IGNORECASE) if parts else None

    @staticmethod
    def _pattern(key: str) -> str:
        if "@" in key[1:-1]:
            local, domain = key.split("@", 1)
            body = _AT.join(_DOT_BETWEEN.join(re.escape(c) for c in part) for part in (local, domain))
        else:
            body = _BETWEEN.join(re.escape(c) for c in key)
        digits = key.isdigit()
        before = r"(?<![0-9])" if digits and len(key) < 7 else r"(?<![A-Za-z0-9])" if key[0].isascii() and \
            key[0].isalpha() else ""
        after = r"(?![0-9])" if digits and len(key) < 7 else r"(?![A-Za-z0-9])" if key[-1].isascii() and \
            key[-1].isalpha() else ""
        return f"{before}{body}{after}"

    def __bool__(self) -> bool:
        return self._pattern_re is not None

    def find(self, text: str) -> list[tuple[int, int]]:
        if self._pattern_re is None:
            return []
        return [(m.start(), m.end()) for m in self._pattern_re.finditer(text) if m.end() > m.start()]
