"""Training samples: one per owner turn, with the conversation that led to it, in ShareGPT form.

Each owner reply -- a burst, or several bursts with nobody speaking in between -- that follows
something someone else said becomes a sample: up to ``context_turns`` earlier turns of its
session, then the reply. The chat messages come from
``doppel.prompt.build_messages`` -- the function the worker uses for its prompts -- so the
model is trained on exactly the shape it is served: persona as system message, other people's
messages as user turns (``Name: text`` in groups, one line per message, as the worker's history
holds them), the owner's burst as one assistant turn joined by ``BURST_SEPARATOR``, and the date
and time on the newest message from someone else.

Output, one JSON object per line (LLaMA-Factory's ShareGPT layout)::

    {"conversations": [{"from": "human", "value": ...}, {"from": "gpt", "value": ...}, ...],
     "system": "<persona>",
     "meta": {"platform", "chat_id", "chat", "chat_type", "session_start", "reply_at",
              "context_turns", "length", "source"}}

Conversations start with ``human`` and end with ``gpt``; the final ``gpt`` turn is the reply the
sample is for, earlier ``gpt`` turns are the owner's real earlier replies in the same
conversation (train on the last only, or on all: each is the owner's own words).
``meta.session_start`` (epoch seconds) lets training hold out the latest sessions by time.

Length: a sample over ``max_length`` tokens loses its oldest context turns, whole ones, until it
fits; one that does not fit even with a single context turn is dropped. Nothing is ever cut
inside a turn. Tokens are counted by the configured tokenizer (and its chat template) or
estimated from characters (``CharEstimate``).

Private data: every text is scrubbed (typed placeholders, numbered consistently within the
sample, see ``doppel.pii``) before it is measured or written.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path
from typing import Protocol

from doppel.errors import ConfigError
from doppel.pii.findings import Finding
from doppel.pii.placeholders import render
from doppel.prompt import Turn, build_messages, join_burst
from training.dataset.sessions import Burst, Session
from training.importers.messages import Message

# The owner's turn has nothing from anyone else before it (within context_turns, in its session).
NO_PROMPT = "no_prompt"
OVER_LENGTH = "over_max_length"
DUPLICATE_SAMPLE = "duplicate_sample"

Findings = Callable[[Message], Sequence[Finding]]


class LengthCounter(Protocol):
    name: str

    def count(self, messages: list[dict[str, str]]) -> int: ...


class CharEstimate:
    """Tokens estimated from characters, erring long: one per CJK (or other wide) character,
    one per three others, four per message for the template. Real BPE vocabularies for Chinese
    and English (Qwen2, Llama 3) need fewer, so a sample that fits here fits there."""

    name = "estimate"
    per_message = 4

    def count(self, messages: list[dict[str, str]]) -> int:
        total = 0
        for message in messages:
            text = message["content"]
            chars = len(text)
            # Non-ASCII characters are 2-4 bytes in UTF-8; CJK is 3: counting the extra bytes
            # is a C-speed way to tell wide characters from ASCII.
            wide = (len(text.encode("utf-8")) - chars + 1) // 2
            total += wide + (chars - wide + 2) // 3 + self.per_message
        return total


class TokenizerCount:
    """Token counts from a local Hugging Face tokenizer and its chat template.

    Counting renders the template only near the limit: elsewhere the sum of the messages'
    token counts plus the template's measured overhead is exact enough and ~100x cheaper.
    """

    name = "tokenizer"

    def __init__(self, path: str | Path, *, setting: str = "data.length_model"):
        try:
            from transformers import AutoTokenizer
        except ImportError:
            raise ConfigError(f"{setting} = '{path}': counting tokens needs transformers "
                              "(install the train extra), or leave it empty for the estimate") from None
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        except Exception as exc:  # transformers raises OSError, ValueError, EnvironmentError...
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(f"{setting} = '{path}': not a tokenizer directory ({first[:160]})") from None
        self.name = f"tokenizer:{Path(path).name}"
        self._cache: dict[str, int] = {}
        self._templated = bool(getattr(self.tokenizer, "chat_template", None))
        probe = [{"role": role, "content": ""} for role in ("system", "user", "assistant")]
        self.per_message = max(1, -(-self._exact(probe) // 3)) if self._templated else 4

    def _tokens(self, text: str) -> int:
        count = self._cache.get(text)
        if count is None:
            count = len(self.tokenizer.encode(text, add_special_tokens=False))
            if len(self._cache) < 200_000:
                self._cache[text] = count
        return count

    def _exact(self, messages: list[dict[str, str]]) -> int:
        ids = self.tokenizer.apply_chat_template(messages, tokenize=True)
        if hasattr(ids, "keys"):
            ids = ids["input_ids"]
        return len(ids)

    def count(self, messages: list[dict[str, str]]) -> int:
        quick = sum(self._tokens(m["content"]) for m in messages) + self.per_message * len(messages)
        return quick

    def count_exact(self, messages: list[dict[str, str]]) -> int:
        return self._exact(messages) if self._templated else self.count(messages)


def length_counter(path: str | Path | None) -> LengthCounter:
    return TokenizerCount(path) if path else CharEstimate()


@dataclass(frozen=True)
class SampleOptions:
    system: str                 # the persona, rendered (doppel.prompt.persona_prompt)
    context_turns: int = 10
    max_length: int = 2048
    tz: tzinfo | None = None    # the owner's zone for the time stamp; None: each message's own


@dataclass
class SampleStats:
    candidates: int = 0         # owner replies (runs of owner turns with nobody in between)
    written: int = 0
    trimmed: int = 0            # samples that lost context turns to fit
    dropped: Counter = field(default_factory=Counter)
    reply_chars: list[int] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)


def _turns(bursts: Sequence[Burst], texts: dict[int, str]) -> list[Turn]:
    """Prompt turns: an owner burst is one turn; other people's messages stay one turn each, as
    they sit in the worker's history (build_messages puts consecutive ones on one user message)."""
    turns = []
    for burst in bursts:
        if burst.is_owner:
            turns.append(Turn(burst.speaker, join_burst(texts[id(m)] for m in burst.messages), burst.start, True))
        else:
            turns.extend(Turn(burst.speaker, texts[id(m)], m.timestamp.timestamp()) for m in burst.messages)
    return turns


def _scrubbed(bursts: Sequence[Burst], findings: Findings) -> dict[int, str]:
    messages = [m for burst in bursts for m in burst.messages]
    rendered = render([m.text for m in messages], [findings(m) for m in messages])
    return {id(m): text for m, text in zip(messages, rendered, strict=True)}


def _fits(counter: LengthCounter, messages: list[dict[str, str]], limit: int) -> tuple[bool, int]:
    length = counter.count(messages)
    exact = getattr(counter, "count_exact", None)
    if exact is not None and length > limit * 0.9 - 8:
        length = exact(messages)
    return length <= limit, length


def build_samples(sessions: Iterable[Session], options: SampleOptions, *, counter: LengthCounter | None = None,
                  findings: Findings | None = None, stats: SampleStats | None = None) -> Iterator[dict]:
    """ShareGPT samples for every owner turn of ``sessions`` (see the module docstring)."""
    counter = counter or CharEstimate()
    findings = findings or (lambda _message: ())
    stats = stats if stats is not None else SampleStats()
    seen: set[int] = set()
    for session in sessions:
        for index, burst in enumerate(session.bursts):
            # A run of owner turns with nobody in between is one reply (build_messages would merge
            # them into one assistant message anyway): one sample, from the run's first turn.
            if not burst.is_owner or (index and session.bursts[index - 1].is_owner):
                continue
            stats.candidates += 1
            built = _sample(session, index, options, counter, findings, stats)
            if built is None:
                continue
            sample, key = built
            if key in seen:
                stats.dropped[DUPLICATE_SAMPLE] += 1
                continue
            seen.add(key)
            stats.written += 1
            stats.reply_chars.append(len(sample["conversations"][-1]["value"]))
            stats.lengths.append(sample["meta"]["length"])
            yield sample


def _drop_leading_owner(window: list[Burst]) -> None:
    # ShareGPT (and every chat template) wants the conversation to open with the user.
    while window and window[0].is_owner:
        window.pop(0)


def _sample(session: Session, index: int, options: SampleOptions, counter: LengthCounter, findings: Findings,
            stats: SampleStats) -> tuple[dict, int] | None:
    end = index + 1
    while end < len(session.bursts) and session.bursts[end].is_owner:
        end += 1
    reply = list(session.bursts[index:end])
    window = list(session.bursts[max(0, index - options.context_turns):index])
    _drop_leading_owner(window)
    if not window:
        stats.dropped[NO_PROMPT] += 1
        return None
    initial = len(window)
    while True:
        texts = _scrubbed([*window, *reply], findings)
        turns = _turns([*window, *reply], texts)
        # The stamp on the newest message from someone else: in the owner's zone, as the worker
        # writes it; without one, where the message was sent.
        newest_other = next(m for b in reversed(window) if not b.is_owner for m in reversed(b.messages))
        tz = options.tz or newest_other.timestamp.tzinfo
        messages = build_messages(options.system, turns, group=session.group, tz=tz)
        fits, length = _fits(counter, messages, options.max_length)
        if fits:
            break
        window.pop(0)
        _drop_leading_owner(window)
        if not window:
            stats.dropped[OVER_LENGTH] += 1
            return None
    stats.trimmed += len(window) < initial
    # Duplicates are judged without the time stamp: the same exchange on another day is a repeat.
    key = hash((session.group, tuple((t.speaker if session.group and not t.is_owner else "", t.text, t.is_owner)
                                     for t in turns)))
    sample = {
        "conversations": [{"from": "human" if m["role"] == "user" else "gpt", "value": m["content"]}
                          for m in messages[1:]],
        "system": messages[0]["content"],
        "meta": {
            "platform": session.platform, "chat_id": session.chat_id, "chat": session.chat_name,
            "chat_type": session.chat_type, "session_start": session.start, "reply_at": reply[0].start,
            "context_turns": len(window), "length": length, "source": reply[0].messages[0].source,
        },
    }
    return sample, key
