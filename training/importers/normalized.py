"""Doppel's own normalized JSONL: one ``Message.to_json`` per line, what ``doppel data import --out`` writes.

Reading it back skips owner detection: whoever wrote the file already decided ownership.

Tested in ``tests/training/importers/test_detect.py`` (round trip, a bad line named) and
``tests/training/dataset/test_build.py`` (a build from normalized JSONL).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from training.importers.base import Source, iter_lines
from training.importers.messages import Message


def parse(src: Source) -> Iterator[Message]:
    """Read back what ``doppel data import --out`` wrote; ownership is already decided."""
    src.stats.owner_marked = True
    for number, line in iter_lines(src, "utf-8"):
        if not line.strip():
            continue
        src.stats.records += 1
        try:
            message = Message.from_json(line)
        except (ValueError, TypeError, KeyError) as exc:
            raise src.error(number, f"not a normalized message ({exc})") from None
        if message.timestamp.tzinfo is None:
            raise src.error(number, "timestamp has no time zone")
        yield message


def write_messages(path: Path, messages: list[Message] | Iterator[Message]) -> int:
    """Write messages as normalized JSONL (one ``Message.to_json`` per line); returns the count."""
    count = 0
    with path.open("w", encoding="utf-8") as handle:
        for message in messages:
            handle.write(message.to_json())
            handle.write("\n")
            count += 1
    return count
