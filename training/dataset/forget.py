"""``doppel data forget``: take a chat or a contact out of the datasets already on disk.

What Doppel wrote from the owner's exports is found under the given paths (files, or directories
searched for ``*.jsonl`` and ``report.json``) and rewritten without the forgotten ones:

- **training samples** (``samples.jsonl`` of ``doppel data build``): a sample goes when its chat
  is a forgotten chat, when it is a DM with a forgotten contact, or when a forgotten contact speaks
  in it (a group sample's context lines read ``Name: text``, so a contact is matched by the name
  shown there);
- **normalized messages** (``doppel data import --out``): a message goes when its chat is
  forgotten or its sender is a forgotten contact, and so does every message of a DM with them;
- **report.json**: a forgotten contact leaves ``top_senders`` (the other figures are the original
  build's until it is run again).

Chats match by id or name, contacts by id or display name; names without regard to case. Files
are replaced atomically (a temporary file, then a rename); other lines are kept as they are.
The exports themselves and adapters already trained on the data are not touched: the report says
so, because a trained adapter keeps what it learned until it is trained again without the data.

Tested in ``tests/training/dataset/test_forget.py``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from doppel.errors import InputError

REPORT_FILE = "report.json"


@dataclass(frozen=True)
class Forget:
    """Who and what to forget: chat ids or names, contact ids or display names."""

    chats: tuple[str, ...] = ()
    contacts: tuple[str, ...] = ()

    def __post_init__(self):
        if not any(v.strip() for v in (*self.chats, *self.contacts)):
            raise InputError("say what to forget: a chat (--chat) or a contact (--contact), by id or name")

    def _folded(self, values: tuple[str, ...]) -> frozenset[str]:
        return frozenset(v.strip().casefold() for v in values if v.strip())

    def chat(self, chat_id, chat_name) -> bool:
        wanted = self._folded(self.chats)
        return str(chat_id).casefold() in wanted or str(chat_name).casefold() in wanted

    def contact(self, contact_id, contact_name) -> bool:
        wanted = self._folded(self.contacts)
        return str(contact_id).casefold() in wanted or str(contact_name).casefold() in wanted

    def speaker_pattern(self) -> re.Pattern | None:
        """A context line spoken by a forgotten contact: ``Name: text``, after an optional time stamp."""
        names = sorted(self._folded(self.contacts), key=len, reverse=True)
        if not names:
            return None
        alternatives = "|".join(re.escape(name) for name in names)
        return re.compile(rf"^(?:\[[^\]\n]*\] )?(?:{alternatives}): ", re.IGNORECASE | re.MULTILINE)


@dataclass
class FileResult:
    path: Path
    kind: str            # "samples", "messages", "report" or "other"
    kept: int = 0
    removed: int = 0


@dataclass
class ForgetReport:
    files: list[FileResult] = field(default_factory=list)
    dry_run: bool = False

    @property
    def removed(self) -> int:
        return sum(f.removed for f in self.files)


def _lines(path: Path) -> Iterator[tuple[str, dict | None]]:
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            yield line, record if isinstance(record, dict) else None


def _is_sample(record: dict) -> bool:
    return "conversations" in record and isinstance(record.get("meta"), dict)


def _is_message(record: dict) -> bool:
    return {"chat_id", "sender_id", "sender_name", "text"} <= record.keys()


def _sample_goes(record: dict, forget: Forget, speaker: re.Pattern | None) -> bool:
    meta = record["meta"]
    if forget.chat(meta.get("chat_id", ""), meta.get("chat", "")):
        return True
    if meta.get("chat_type") == "dm" and forget.contact(meta.get("chat_id", ""), meta.get("chat", "")):
        return True
    return speaker is not None and any(
        turn.get("from") == "human" and speaker.search(str(turn.get("value", "")))
        for turn in record["conversations"] if isinstance(turn, dict))


def _forgotten_dms(path: Path, forget: Forget) -> set[str]:
    """The DM chats of this file that a forgotten contact is in (their name, or a message of theirs)."""
    found = set()
    for _, record in _lines(path):
        if record is not None and _is_message(record) and record.get("chat_type") == "dm" and (
                forget.contact(record.get("chat_id", ""), record.get("chat_name", ""))
                or forget.contact(record["sender_id"], record["sender_name"])):
            found.add(str(record["chat_id"]))
    return found


def _message_goes(record: dict, forget: Forget, dms: set[str]) -> bool:
    return (str(record["chat_id"]) in dms or forget.chat(record["chat_id"], record.get("chat_name", ""))
            or forget.contact(record["sender_id"], record["sender_name"]))


def _write(path: Path, lines: Iterable[str], *, replace: Callable[[], bool] = lambda: True) -> None:
    """Write ``lines`` to a temporary file next to ``path``, then rename it over ``path`` if
    ``replace()`` says so once they are written (a rename: never a half-written dataset)."""
    partial = path.with_name(path.name + ".forget-partial")
    try:
        with partial.open("w", encoding="utf-8") as handle:
            handle.writelines(lines)
        if replace():
            os.replace(partial, path)
    except OSError as exc:
        raise InputError(f"{path}: cannot rewrite ({exc.strerror or exc})") from None
    finally:
        partial.unlink(missing_ok=True)


def forget_jsonl(path: Path, forget: Forget, *, dry_run: bool = False) -> FileResult:
    """Drop the forgotten samples or messages of one JSONL file."""
    result = FileResult(path, "other")
    speaker = forget.speaker_pattern()
    dms = _forgotten_dms(path, forget)

    def kept() -> Iterator[str]:
        for line, record in _lines(path):
            goes = False
            if record is not None and _is_sample(record):
                result.kind, goes = "samples", _sample_goes(record, forget, speaker)
            elif record is not None and _is_message(record):
                result.kind, goes = "messages", _message_goes(record, forget, dms)
            if goes:
                result.removed += 1
            else:
                result.kept += 1
                yield line

    if dry_run:
        for _ in kept():  # counted, not written
            pass
    else:  # one pass writes the kept lines; the file is replaced only when something went
        _write(path, kept(), replace=lambda: result.removed > 0)
    return result


def forget_report(path: Path, forget: Forget, *, dry_run: bool = False) -> FileResult:
    """Drop a forgotten contact from a build report's ``top_senders``."""
    result = FileResult(path, "report")
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return FileResult(path, "other")
    senders = report.get("top_senders") if isinstance(report, dict) else None
    if not isinstance(senders, list):
        return FileResult(path, "other")
    kept = [row for row in senders if not (isinstance(row, list) and row and forget.contact("", row[0]))]
    result.kept, result.removed = len(kept), len(senders) - len(kept)
    if result.removed and not dry_run:
        report["top_senders"] = kept
        _write(path, [json.dumps(report, ensure_ascii=False, indent=2) + "\n"])
    return result


def dataset_files(paths: Iterable[Path]) -> list[Path]:
    """The JSONL files and build reports under ``paths``, sorted, each once."""
    found: set[Path] = set()
    for path in paths:
        if path.is_dir():
            found.update(p for p in path.rglob("*.jsonl") if p.is_file())
            found.update(p for p in path.rglob(REPORT_FILE) if p.is_file())
        elif path.is_file():
            found.add(path)
        else:
            raise InputError(f"{path}: no such file or directory")
    return sorted(found)


def forget_in(paths: Iterable[Path], forget: Forget, *, dry_run: bool = False) -> ForgetReport:
    """Remove the forgotten chats and contacts from every dataset file under ``paths``."""
    report = ForgetReport(dry_run=dry_run)
    for path in dataset_files(paths):
        if path.name == REPORT_FILE:
            report.files.append(forget_report(path, forget, dry_run=dry_run))
        elif path.suffix == ".jsonl":
            report.files.append(forget_jsonl(path, forget, dry_run=dry_run))
    return report
