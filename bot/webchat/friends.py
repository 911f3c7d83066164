"""Scripted friends for the web chat: people who talk in its first group, so a group feels alive.

They are ordinary group members to the core: each line goes through ``BotCore.handle`` as a
message from a non-owner (author id ``friend-<name>``), so it is recorded in the channel history
and may make the clone answer by the normal trigger rules (a line naming the owner, an
``@mention``, the lurking chance). Nothing here decides when the clone speaks.

A script is scenes of ``Name: line`` lines, separated by blank lines (``#`` starts a comment);
``{owner}`` becomes the owner's name and ``{clone}`` an @mention of the clone. The schedule is
bounded (``[web] friends_max_messages``) and deterministic for a seed: scene order and the gaps
(``friend_interval_s`` jittered between half and one and a half times) come from
``random.Random(seed)``, so a test or a demo replays the same evening every time.

Tested in ``tests/bot/webchat/test_platform.py`` (lines recorded and triggering the clone, the seeded
bounded schedule, bad scripts) and ``tests/bot/webchat/test_browser.py`` (the friends in a browser).
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from doppel.errors import ConfigError

log = logging.getLogger(__name__)

BUILT_IN = """\
Sam: anyone up for tacos tonight?
Priya: always. 7ish?
Leo: I'm in if we go to the place on 5th
Sam: {owner} you coming?

Priya: did anyone watch the match yesterday
Leo: don't talk to me about it
Priya: haha that bad?
Leo: worst second half I've ever seen

Leo: {clone} settle this: pineapple on pizza, yes or no?
Sam: oh no here we go

Sam: just finished that book {owner} recommended
Sam: the ending!!
Priya: no spoilers please, I'm halfway

Priya: rain all weekend apparently
Leo: perfect excuse for a board game night
Sam: I'll bring snacks
Priya: {owner} still has my copy of Catan btw

Leo: what's everyone listening to lately
Sam: mostly old jazz records
Priya: the new album by that band {owner} keeps talking about
"""

_LINE = re.compile(r"^([^:#\n]{1,32}):\s*(\S.*)$")
_TYPING_CHARS_PER_S = 15.0
_TYPING_MAX_S = 2.5


@dataclass(frozen=True)
class Line:
    name: str
    text: str

    @property
    def author_id(self) -> str:
        return "friend-" + re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-")


def parse_script(text: str, source: str = "the built-in script") -> list[list[Line]]:
    """Scenes of lines; a line that is not ``Name: text`` is a ``ConfigError`` naming it."""
    scenes: list[list[Line]] = [[]]
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            if scenes[-1]:
                scenes.append([])
            continue
        if line.startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            raise ConfigError(f"{source}: line {number} is not 'Name: text' ({line[:60]!r})")
        scenes[-1].append(Line(match.group(1).strip(), match.group(2).strip()))
    scenes = [scene for scene in scenes if scene]
    if not scenes:
        raise ConfigError(f"{source}: no 'Name: text' lines")
    return scenes


def load_script(path: str) -> list[list[Line]]:
    """The scenes of ``[web] friends_script`` (a file), or the built-in ones when it is empty."""
    if not path:
        return parse_script(BUILT_IN)
    file = Path(path).expanduser()
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"web.friends_script = {path!r}: cannot read it ({type(exc).__name__})") from None
    return parse_script(text, str(file))


def plan(scenes: list[list[Line]], *, count: int, interval_s: float, seed: int) -> list[tuple[float, Line]]:
    """``count`` (gap before it in seconds, line) pairs: scenes in a seeded order, repeated as needed."""
    rng = random.Random(seed)
    out: list[tuple[float, Line]] = []
    while len(out) < count:
        order = list(range(len(scenes)))
        rng.shuffle(order)
        for index in order:
            for line in scenes[index]:
                if len(out) == count:
                    return out
                out.append((interval_s * (0.5 + rng.random()), line))
    return out


Post = Callable[[Line], Awaitable[None]]
Typing = Callable[[Line], Awaitable[None]]


class Friends:
    """Plays a schedule into one group: a typing indicator, then the line; stops when told."""

    def __init__(self, schedule: list[tuple[float, Line]], *, post: Post, typing: Typing,
                 owner: str, clone_handle: str):
        self.schedule = [(gap, Line(line.name, _fill(line.text, owner, clone_handle))) for gap, line in schedule]
        self.post = post
        self.typing = typing
        self.posted = 0

    async def run(self) -> None:
        for gap, line in self.schedule:
            typing_s = min(len(line.text) / _TYPING_CHARS_PER_S, _TYPING_MAX_S, gap / 2)
            await asyncio.sleep(gap - typing_s)
            try:
                await self.typing(line)
                await asyncio.sleep(typing_s)
                await self.post(line)
                self.posted += 1
            except asyncio.CancelledError:
                raise
            except Exception:  # boundary: a failed line (Redis restarting) must not end the scene
                log.exception("web: friend %s could not post", line.name)
        log.info("web: the friends' script is over (%d lines)", self.posted)


def _fill(text: str, owner: str, clone_handle: str) -> str:
    return text.replace("{owner}", owner).replace("{clone}", f"@{clone_handle}")
