"""Sessions and turns: order each chat by time, cut it where the conversation went quiet, and
merge one sender's consecutive messages into a burst.

A *session* is a stretch of one chat without a silence longer than ``session_gap_s``; context
never crosses a session boundary (yesterday's last message is not what today's reply answers).
A *burst* is one sender's consecutive messages, each at most ``merge_gap_s`` after the previous
one: the unit the clone learns to produce, its messages later joined by
``doppel.prompt.BURST_SEPARATOR`` (DESIGN.md, Inference).

Exports are not trusted to be in order: each chat is sorted by timestamp (stably, so messages
with equal times keep their export order).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import pairwise

from training.dataset.clean import Blocklist
from training.importers.messages import Message


@dataclass(frozen=True)
class Burst:
    """One sender's consecutive messages (oldest first)."""

    messages: tuple[Message, ...]

    @property
    def is_owner(self) -> bool:
        return self.messages[0].is_owner

    @property
    def speaker(self) -> str:
        first = self.messages[0]
        return first.sender_name or first.sender_id

    @property
    def start(self) -> float:
        return self.messages[0].timestamp.timestamp()

    @property
    def end(self) -> float:
        return self.messages[-1].timestamp.timestamp()

    @property
    def texts(self) -> list[str]:
        return [m.text for m in self.messages]


@dataclass(frozen=True)
class Session:
    platform: str
    chat_id: str
    chat_name: str
    chat_type: str
    bursts: tuple[Burst, ...]

    @property
    def start(self) -> float:
        return self.bursts[0].start

    @property
    def group(self) -> bool:
        return self.chat_type == "group"


@dataclass
class SessionStats:
    chats: int = 0
    sessions: int = 0
    bursts: int = 0
    owner_bursts: int = 0
    blocked_turns: int = 0
    blocked_messages: int = 0
    owner_burst_sizes: Counter = field(default_factory=Counter)  # messages per owner burst
    owner_gaps: list[float] = field(default_factory=list)  # seconds between an owner burst's messages


def _by_chat(messages: Iterable[Message]) -> dict[tuple[str, str], list[tuple[float, Message]]]:
    chats: dict[tuple[str, str], list[tuple[float, Message]]] = {}
    for message in messages:
        chats.setdefault((message.platform, message.chat_id), []).append((message.timestamp.timestamp(), message))
    for timeline in chats.values():
        timeline.sort(key=lambda pair: pair[0])
    return chats


def _sender(message: Message) -> tuple[str, bool]:
    return message.sender_id or message.sender_name, message.is_owner


def split_sessions(messages: Iterable[Message], *, merge_gap_s: float, session_gap_s: float,
                   blocklist: Blocklist | None = None, stats: SessionStats | None = None) -> list[Session]:
    """Sessions of every chat, each a sequence of bursts; blocklisted bursts are left out."""
    stats = stats if stats is not None else SessionStats()
    sessions: list[Session] = []
    for timeline in _by_chat(messages).values():
        stats.chats += 1
        pieces: list[list[tuple[float, Message]]] = [[timeline[0]]]
        for previous, current in pairwise(timeline):
            if current[0] - previous[0] > session_gap_s:
                pieces.append([])
            pieces[-1].append(current)
        for piece in pieces:
            bursts = _bursts(piece, merge_gap_s, blocklist, stats)
            if bursts:
                first = piece[0][1]
                sessions.append(Session(first.platform, first.chat_id, first.chat_name, first.chat_type, tuple(bursts)))
    stats.sessions += len(sessions)
    return sessions


def _bursts(piece: list[tuple[float, Message]], merge_gap_s: float, blocklist: Blocklist | None,
            stats: SessionStats) -> list[Burst]:
    groups: list[list[tuple[float, Message]]] = []
    for at, message in piece:
        last = groups[-1] if groups else None
        if last and _sender(last[-1][1]) == _sender(message) and at - last[-1][0] <= merge_gap_s:
            last.append((at, message))
        else:
            groups.append([(at, message)])
    bursts = []
    for group in groups:
        burst = Burst(tuple(m for _, m in group))
        if blocklist and any(blocklist.matches(text) for text in burst.texts):
            stats.blocked_turns += 1
            stats.blocked_messages += len(group)
            continue
        stats.bursts += 1
        if burst.is_owner:
            stats.owner_bursts += 1
            stats.owner_burst_sizes[len(group)] += 1
            stats.owner_gaps.extend(b[0] - a[0] for a, b in pairwise(group))
        bursts.append(burst)
    return bursts
