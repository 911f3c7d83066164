"""Datasets people already have: ShareGPT, OpenAI ``messages`` and Alpaca records, JSONL or a JSON array.

Each record is already a sample, but it is turned back into Messages, one synthetic chat per
record, so it goes through the same cleaning, scrubbing and sample building as real chats. The
"gpt"/"assistant" side is the owner. An owner turn holding several messages of a burst (joined by
``BURST_SEPARATOR``) becomes those messages again, so that the burst survives the round trip.
Times are synthetic: records an hour apart, turns a minute apart, burst parts seconds apart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from doppel.prompt import split_burst
from training.importers.base import Source, clean_text, text_kind
from training.importers.json_stream import JsonStream
from training.importers.messages import Message

USER_ROLES = frozenset({"human", "user"})
OWNER_ROLES = frozenset({"gpt", "assistant", "model", "chatgpt", "bard", "bing"})
SYSTEM_ROLES = frozenset({"system"})
TOOL_ROLES = frozenset({"function_call", "observation", "tool", "function", "ipython"})
_EPOCH = datetime(2020, 1, 1, tzinfo=UTC)


def parse(src: Source) -> Iterator[Message]:
    src.stats.owner_marked = True
    for where, record in iter_records(src):
        yield from record_messages(src, record, where, platform="sharegpt", split=split_burst)


def iter_records(src: Source) -> Iterator[tuple[str, Any]]:
    """(location, record) for a JSON array of records or for JSONL (one value after another)."""
    try:
        handle = src.path.open("rb")
    except OSError as exc:
        raise src.error(None, f"cannot read: {exc.strerror or exc}") from None
    with handle:
        stream = JsonStream(handle, src.name)
        if stream.peek_type() == "array":
            for index in stream.array_items():
                line = stream.line()
                yield f"line {line}, record {index + 1}", stream.value()
            stream.finish()
            return
        number = 0
        while stream.peek_type():
            number += 1
            stream.path[:] = [f"record {number}"]
            line = stream.line()
            yield f"line {line}, record {number}", stream.value()


def _turns(record: Any, where: str, src: Source) -> tuple[list[tuple[str, str]], str]:
    """The record's (role, text) turns and its system prompt."""
    if not isinstance(record, dict):
        raise src.error(where, "is not a JSON object")
    system = str(record.get("system") or "")
    if "conversations" in record or "messages" in record:
        raw = record.get("conversations", record.get("messages"))
        if not isinstance(raw, list):
            raise src.error(where, "'conversations'/'messages' is not a list")
        turns = []
        for number, turn in enumerate(raw, 1):
            if not isinstance(turn, dict):
                raise src.error(where, f"turn {number} is not an object")
            role = turn.get("from", turn.get("role"))
            content = turn.get("value", turn.get("content"))
            if not isinstance(role, str):
                raise src.error(where, f"turn {number} has no 'from'/'role'")
            turns.append((role.strip().lower(), _content_text(content)))
        return turns, system
    if "instruction" in record or "output" in record:
        turns = []
        for pair in record.get("history") or []:
            if isinstance(pair, list | tuple) and len(pair) == 2:
                turns += [("user", str(pair[0] or "")), ("assistant", str(pair[1] or ""))]
        prompt = "\n".join(str(record.get(k) or "") for k in ("instruction", "input") if record.get(k))
        turns += [("user", prompt), ("assistant", str(record.get("output") or ""))]
        return turns, system
    keys = ", ".join(sorted(map(str, record))[:6]) or "none"
    raise src.error(where, f"has neither 'conversations', 'messages' nor 'instruction' (keys: {keys})")


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI content parts: keep the text ones
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
    return "" if content is None else str(content)


def record_messages(src: Source, record: Any, where: str, *, platform: str,
                    split: Callable[[str], list[str]], owner_name: str = "",
                    other_name: str = "user") -> Iterator[Message]:
    """The messages of one record, as one synthetic DM; ``split`` cuts a turn into messages."""
    src.stats.records += 1
    turns, system = _turns(record, where, src)
    index = src.stats.records - 1
    chat_id = f"{src.path.stem}#{index + 1}"
    start = _EPOCH + timedelta(hours=index)
    owner = owner_name or (src.owner.names[0] if src.owner.names else "assistant")
    produced = 0
    for number, (role, text) in enumerate(turns):
        if role in SYSTEM_ROLES:
            system = system or text
            continue
        if role in TOOL_ROLES:
            src.skip("tool/function turn")
            continue
        if role not in USER_ROLES and role not in OWNER_ROLES:
            raise src.error(where, f"turn {number + 1} has role {role!r}; expected human/user or gpt/assistant")
        is_owner = role in OWNER_ROLES
        parts = [clean_text(p) for p in split(text)] if is_owner or platform != "sharegpt" else [clean_text(text)]
        parts = [p for p in parts if p]
        if not parts:
            src.skip("empty turn")
            continue
        for part_index, part in enumerate(parts):
            extra = {"system": system} if system and not produced else {}
            produced += 1
            yield Message(platform=platform, chat_id=chat_id, chat_name=src.path.stem, chat_type="dm",
                          sender_id="assistant" if is_owner else "user",
                          sender_name=owner if is_owner else other_name, is_owner=is_owner,
                          timestamp=start + timedelta(minutes=number, seconds=5 * part_index),
                          text=part, kind=text_kind(part), message_id=f"{index + 1}.{number + 1}.{part_index + 1}",
                          source=src.where(where), extra=extra)
    if not produced:
        src.skip("record with no usable turns")
