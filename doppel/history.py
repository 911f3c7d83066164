"""Per-channel conversation history in Redis, and the sliding window a prompt is built from.

Every message seen in a channel (everyone's, not only exchanges with the clone) is one JSON entry
in the list at ``Keys.history(channel)``, oldest first::

    {"seq": 41, "speaker": "Ann", "text": "lunch?", "at": 1700000000.0, "is_owner": false,
     "message_id": "123"}

``seq`` counts every turn ever recorded in the channel; ``record`` assigns it atomically (a Lua
script), so the window can start on chunk boundaries of an absolute count: consecutive prompts
then share the same first turns, and vLLM's prefix cache (keyed per block) keeps hitting, instead
of a window that slides by one turn and invalidates it every time.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from doppel.prompt import Turn
from doppel.relay import Keys

# KEYS[1] history list, KEYS[2] its sequence counter; ARGV: json-without-seq, max_len, ttl_s.
_RECORD = """
local n = redis.call('INCR', KEYS[2])
redis.call('RPUSH', KEYS[1], '{"seq":' .. n .. ',' .. string.sub(ARGV[1], 2))
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[2]), -1)
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[3])
return n
"""


@dataclass(frozen=True)
class HistoryOptions:
    max_stored: int = 500            # turns kept in Redis per channel
    ttl_s: int = 14 * 24 * 3600      # a quiet channel forgets after this
    # 41-60 turns: a start that moves every 20 turns keeps the median prompt sharing ~0.86 of the
    # previous one's tokens (benchmarks/history.py); steps of 10 measured ~0.75.
    max_turns: int = 60              # turns in one prompt, at most
    token_budget: int = 1500         # tokens of history in one prompt, at most
    chunk_turns: int = 20            # the window's start moves in steps of this many turns

    @classmethod
    def from_settings(cls, settings, **changes) -> HistoryOptions:
        """The limits of ``[history]`` (shared by the bots and the worker), or the defaults."""
        section = getattr(settings, "history", None)
        if section is None:
            return cls(**changes)
        return cls(**{"max_stored": section.max_stored, "ttl_s": section.ttl_s, "max_turns": section.max_turns,
                      "token_budget": section.max_prompt_tokens, "chunk_turns": section.chunk_turns, **changes})


def seq_key(keys: Keys, channel: str) -> str:
    return keys.history(channel) + ":seq"


def _entry(turn: Turn, message_id: str) -> str:
    return json.dumps({"speaker": turn.speaker, "text": turn.text, "at": turn.at,
                       "is_owner": turn.is_owner, "message_id": message_id}, ensure_ascii=False)


async def record(redis, keys: Keys, channel: str, turn: Turn, *, message_id: str = "",
                 options: HistoryOptions = HistoryOptions()) -> int:
    """Append ``turn`` to the channel's history (async client); returns its ``seq``."""
    return int(await redis.eval(_RECORD, 2, keys.history(channel), seq_key(keys, channel),
                                _entry(turn, message_id), options.max_stored, options.ttl_s))


def record_commands(pipe, keys: Keys, channel: str, turn: Turn, *, message_id: str = "",
                    options: HistoryOptions = HistoryOptions()) -> None:
    """Queue the same append on a pipeline/transaction (e.g. with the reply that produced it)."""
    pipe.eval(_RECORD, 2, keys.history(channel), seq_key(keys, channel),
              _entry(turn, message_id), options.max_stored, options.ttl_s)


async def forget(redis, keys: Keys, channel: str) -> None:
    await redis.delete(keys.history(channel), seq_key(keys, channel))


@dataclass(frozen=True)
class StoredTurn:
    seq: int
    turn: Turn
    message_id: str


def parse(raw: str) -> StoredTurn | None:
    try:
        data = json.loads(raw)
        turn = Turn(speaker=str(data["speaker"]), text=str(data["text"]), at=float(data.get("at", 0)),
                    is_owner=bool(data.get("is_owner", False)))
        return StoredTurn(int(data["seq"]), turn, str(data.get("message_id", "")))
    except (ValueError, KeyError, TypeError):
        return None  # one corrupt entry must not cost the channel its whole history


async def load(redis, keys: Keys, channel: str, options: HistoryOptions = HistoryOptions()) -> list[StoredTurn]:
    """The stored turns that could enter a window (the newest ``max_turns + chunk_turns``)."""
    raw = await redis.lrange(keys.history(channel), -(options.max_turns + options.chunk_turns), -1)
    return [t for t in map(parse, raw) if t is not None]


def window(turns: Sequence[StoredTurn], options: HistoryOptions,
           count_tokens: Callable[[str], int] = lambda text: len(text) // 3 + 1) -> list[StoredTurn]:
    """The newest turns that fit ``max_turns`` and ``token_budget``, starting on a chunk boundary.

    The start is the first ``seq`` that is a multiple of ``chunk_turns`` and leaves at most
    ``max_turns``; while the budget is exceeded it moves one more chunk. The newest turn is always
    kept (trimmed from the front only), so a single huge message still gets an answer.
    """
    if not turns:
        return []
    chunk = max(1, options.chunk_turns)
    last = turns[-1].seq
    # Only the max_turns bound is rounded up to the grid: a young channel keeps all its turns.
    start = max(turns[0].seq, -(-(last - options.max_turns + 1) // chunk) * chunk)
    while True:
        selected = [t for t in turns if t.seq >= start] or [turns[-1]]
        if len(selected) == 1 or sum(count_tokens(t.turn.text) for t in selected) <= options.token_budget:
            return selected
        start = (start // chunk + 1) * chunk  # the next grid line
