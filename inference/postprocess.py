"""What happens to generated text before it leaves the worker.

The reply is split on the burst separator into the messages the bot sends one by one; empty
parts and "AI-isms" (a clone never says it is a language model) are removed, as is a runaway
repetition (one symbol sampled until the token limit); and any phone, e-mail, ID, card or
similar value, in any spelling, and any of the owner's own values (``[privacy] private_values``)
is redacted with the same scrubber that cleans training data, so the clone cannot leak what the
base model or the data might contain. The reply is redacted as a whole, before it is split: a
number split across two burst parts ("138 1234" then "5678") is still one number.

Tested in ``tests/inference/test_postprocess.py``.
"""

from __future__ import annotations

import re

from doppel.prompt import split_burst

_AI_ISMS = re.compile(
    r"(as an ai\b|as a language model|i'?m (just |only )?an? (ai|language model|large language model)"
    r"|i am (just |only )?an? (ai|language model|large language model)|openai|作为一个?(人工智能|ai|语言模型)"
    r"|我是一个?(人工智能|ai|语言模型)|作为ai)",
    re.IGNORECASE,
)
# Template tokens a small model sometimes spells out instead of stopping.
_LEAKED_TOKENS = re.compile(r"<\|[a-z_]+\|>|</?s>")
# A sampled small model can fall into repeating one symbol (or a few) until max_tokens: a run of
# twelve or more copies that goes on to the end of the text. It keeps three copies. A run with
# text after it ("1000000000000 dollars", a "------------" line) is the writer's own.
_RUNAWAY = re.compile(r"(.{1,4}?)\1{11,}\s*$", re.DOTALL)
RUNAWAY_KEEP = 3


class PostProcessor:
    def __init__(self, scrubber=None, max_parts: int = 8):
        if scrubber is None:
            from doppel.pii import Scrubber

            scrubber = Scrubber()
        self.scrubber = scrubber
        self.max_parts = max_parts

    @classmethod
    def from_settings(cls, settings) -> PostProcessor:
        """The worker's filter: the scrubber with the owner's ``[privacy] private_values``."""
        from doppel.pii import Scrubber
        from doppel.pii.private import load_private_values

        return cls(Scrubber(private_values=load_private_values(settings.privacy.private_values)))

    def parts(self, text: str) -> tuple[str, ...]:
        text = _LEAKED_TOKENS.split(text, maxsplit=1)[0]
        runaway = _RUNAWAY.search(text)
        if runaway:
            text = text[: runaway.start()] + runaway.group(1) * RUNAWAY_KEEP
        # The whole reply at once: each part alone would hide a number split across two of them.
        kept = [part for part in split_burst(self.redact(text)) if not _AI_ISMS.search(part)]
        return tuple(kept[: self.max_parts])

    def redact(self, text: str) -> str:
        return self.scrubber.scrub(text)[0]


def is_ai_ism(text: str) -> bool:
    return bool(_AI_ISMS.search(text))
