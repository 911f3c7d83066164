"""What a model-backed engine does for the chat engine: load adapters, turn messages into text.

Two implementations: ``hf.HFBackend`` (transformers + peft, anywhere) and
``vllm.VLLMBackend`` (vLLM's async engine with LoRA, continuous batching). For the same
adapter and greedy sampling they return the same text. Both apply the base model's chat template
to the messages from ``doppel.prompt.build_messages``, exactly as training does.

Tested in ``tests/inference/backends/test_hf.py`` and ``tests/inference/backends/test_vllm.py`` (the
``ModelBackend`` contract: adapters in and out, greedy replies) and
``tests/inference/test_chat_engine.py`` (``Sampling.with_overrides``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class Sampling:
    # 0.9 keeps a clone's replies varied like a person's; 0 means greedy (tests, comparisons).
    temperature: float = 0.9
    top_p: float = 0.95
    max_tokens: int = 160
    repetition_penalty: float = 1.1
    presence_penalty: float = 0.0
    seed: int | None = None

    @classmethod
    def from_settings(cls, settings) -> Sampling:
        """What the worker serves with: ``[sampling]``."""
        s = settings.sampling
        return cls(temperature=s.temperature, top_p=s.top_p, max_tokens=s.max_tokens,
                   repetition_penalty=s.repetition_penalty, presence_penalty=s.presence_penalty)

    def with_overrides(self, overrides: dict) -> Sampling:
        """Apply owner overrides (strings from a Redis hash); unknown or bad values are ignored."""
        values = {}
        for name, raw in overrides.items():
            if name in ("temperature", "top_p", "repetition_penalty", "presence_penalty"):
                try:
                    values[name] = float(raw)
                except (TypeError, ValueError):
                    continue
            elif name == "max_tokens" and str(raw).isdigit():
                values[name] = int(raw)
        return replace(self, **values)


@dataclass(frozen=True)
class LoadedAdapter:
    """An adapter version as an engine knows it: a unique key and int id per version."""

    key: str        # "name@vN": never reused for different weights
    int_id: int     # vLLM's lora_int_id: never reused within a worker process
    path: Path


class ModelBackend(Protocol):
    name: str
    max_model_len: int

    async def startup(self) -> None: ...

    async def shutdown(self) -> None: ...

    async def add_adapter(self, adapter: LoadedAdapter) -> None: ...

    async def remove_adapter(self, adapter: LoadedAdapter) -> None: ...

    def count_tokens(self, text: str) -> int: ...

    def prompt_ids(self, messages: list[dict]) -> list[int]: ...

    async def complete(self, request_id: str, messages: list[dict], adapter: LoadedAdapter | None,
                       sampling: Sampling) -> str: ...
