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
from datetime import UTC, datetime, timezone

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


def _stamp(at: float, tz: timezone | None) -> str:
    return datetime.fromtimestamp(at, tz or UTC).strftime("%Y-%m-%d %H:%M")


def build_messages(system: str, turns: Sequence[Turn], *, group: bool,
                   tz: timezone | None = None, stamp_newest: bool = True) -> list[dict[str, str]]:
    """Chat messages for ``turns`` (oldest first) under the persona ``system``.

    In group chats other speakers' turns read ``Name: text``; consecutive turns of the same role
    are merged into one message, so every template that wants alternation gets it. With
    ``stamp_newest`` the newest non-owner message is prefixed with its date and time: the one
    place the time appears, so everything before it stays identical from prompt to prompt.
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
