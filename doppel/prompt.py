"""The one function that turns a conversation into chat messages, for training and for serving.

Training samples (``training/``) and the worker's prompts are both built by ``build_messages``,
so the model sees at serving time exactly the shape it was trained on: the persona as the system
message (never with a date or time in it, so it stays a cacheable prefix), other people's turns
as ``user`` messages (with the speaker's name in group chats), the owner's turns as ``assistant``
messages whose consecutive short messages are joined by ``BURST_SEPARATOR``.

Imports nothing heavy: the bot side may use it too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# Between consecutive messages of one burst (DESIGN.md, Inference). A blank line is what a
# chat model naturally emits between paragraphs, so it learns the boundary cheaply.
BURST_SEPARATOR = "\n\n"

DEFAULT_PERSONA = (
    "You are {owner}. You are chatting with friends in a messaging app. Reply the way {owner} "
    "does: same tone, length, language, slang and emoji. Several short messages are separated "
    "by a blank line."
)


@dataclass(frozen=True)
class Turn:
    """One speaker's message (or burst of messages) in a conversation."""

    speaker: str
    text: str            # a burst is its messages joined by BURST_SEPARATOR
    at: float = 0.0      # epoch seconds
    is_owner: bool = False


def persona_prompt(owner: str, template: str = DEFAULT_PERSONA) -> str:
    """The system message; ``template`` may use ``{owner}``."""
    return template.replace("{owner}", owner).strip()


def join_burst(messages: Iterable[str]) -> str:
    return BURST_SEPARATOR.join(m.strip() for m in messages if m and m.strip())


def split_burst(text: str) -> list[str]:
    return [part.strip() for part in text.split(BURST_SEPARATOR) if part.strip()]


def owner_zone(name: str | None) -> tzinfo | None:
    """``[data] tz`` as a zone: a name such as Asia/Shanghai, UTC, or empty for this machine's own.

    The one zone of the stamps in training samples and in the worker's prompts, so a Shanghai
    owner's 9 a.m. reads 09:00 in both. ValueError for a name the zone database does not know.
    """
    if not name:
        return None
    if name.upper() in ("UTC", "Z"):
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (use a name such as Asia/Shanghai or Europe/Berlin)") from None


def _stamp(at: float, tz: tzinfo | None) -> str:
    # No zone: this machine's local time, the default of [data] tz.
    moment = datetime.fromtimestamp(at, tz) if tz is not None else datetime.fromtimestamp(at, UTC).astimezone()
    return moment.strftime("%Y-%m-%d %H:%M")


def build_messages(system: str, turns: Sequence[Turn], *, group: bool,
                   tz: tzinfo | None = None, stamp_newest: bool = True) -> list[dict[str, str]]:
    """Chat messages for ``turns`` (oldest first) under the persona ``system``.

    In group chats other speakers' turns read ``Name: text``; consecutive turns of the same role
    are merged into one message, so every template that wants alternation gets it. With
    ``stamp_newest`` the newest non-owner message is prefixed with its date and time: the one
    place the time appears, so everything before it stays identical from prompt to prompt. The
    stamp is in ``tz`` (the owner's zone, ``owner_zone``), else in this machine's local time.
    """
    messages: list[dict[str, str]] = [{"role": "system", "content": system}]
    newest_user = max((i for i, t in enumerate(turns) if not t.is_owner), default=-1)
    for index, turn in enumerate(turns):
        role = "assistant" if turn.is_owner else "user"
        content = turn.text.strip()
        if not turn.is_owner and group:
            content = f"{turn.speaker}: {content}"
        if stamp_newest and index == newest_user and turn.at:
            content = f"[{_stamp(turn.at, tz)}] {content}"
        if messages[-1]["role"] == role:
            joiner = BURST_SEPARATOR if role == "assistant" else "\n"
            messages[-1] = {"role": role, "content": messages[-1]["content"] + joiner + content}
        else:
            messages.append({"role": role, "content": content})
    return messages
