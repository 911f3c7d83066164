"""The transformers + peft engine: serves where vLLM cannot be installed.

One base model with any number of named LoRA adapters loaded into it (peft's multi-adapter
model). Generation runs in a worker thread, one request at a time (peft switches the active
adapter on the shared model), so the event loop stays free for the relay. For the same adapter
and greedy sampling it produces the same text as the vLLM engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from doppel.errors import EngineError
from inference.backends.base import LoadedAdapter, Sampling

log = logging.getLogger(__name__)


class HFBackend:
    name = "hf"

    def __init__(self, model_dir: Path, *, dtype: str = "float32", device: str = "cpu", max_model_len: int = 2048):
        self.model_dir = Path(model_dir)
        self.dtype = dtype
        self.device = device
        self.max_model_len = max_model_len
        self.tokenizer = None
        self.model = None          # the base model, or a PeftModel once an adapter is added
        self._adapters: set[str] = set()
        self._lock = asyncio.Lock()

    async def startup(self) -> None:
        await asyncio.to_thread(self._load)

    def _load(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if not (self.model_dir / "config.json").is_file():
            raise EngineError(f"model directory {self.model_dir} has no config.json")
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        self.model = AutoModelForCausalLM.from_pretrained(self.model_dir, dtype=getattr(torch, self.dtype))
        self.model.to(self.device).eval()
        log.info("hf engine: loaded %s (%s on %s)", self.model_dir, self.dtype, self.device)

    async def shutdown(self) -> None:
        self.model = None

    async def add_adapter(self, adapter: LoadedAdapter) -> None:
        async with self._lock:
            await asyncio.to_thread(self._add, adapter)

    def _add(self, adapter: LoadedAdapter) -> None:
        from peft import PeftModel

        if adapter.key in self._adapters:
            return
        try:
            if not self._adapters and not isinstance(self.model, PeftModel):
                self.model = PeftModel.from_pretrained(self.model, adapter.path, adapter_name=adapter.key)
            else:
                self.model.load_adapter(adapter.path, adapter_name=adapter.key)
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            raise EngineError(f"adapter {adapter.key} at {adapter.path} does not load: {exc}") from None
        self.model.eval()
        self._adapters.add(adapter.key)

    async def remove_adapter(self, adapter: LoadedAdapter) -> None:
        async with self._lock:
            if adapter.key in self._adapters:
                await asyncio.to_thread(self.model.delete_adapter, adapter.key)
                self._adapters.discard(adapter.key)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def prompt_ids(self, messages: list[dict]) -> list[int]:
        """Token ids of the chat-templated prompt: the exact input both engines generate from."""
        encoded = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        return list(encoded["input_ids"] if isinstance(encoded, dict) or hasattr(encoded, "keys") else encoded)

    async def complete(self, request_id: str, messages: list[dict], adapter: LoadedAdapter | None,
                       sampling: Sampling) -> str:
        async with self._lock:
            return await asyncio.to_thread(self._complete, messages, adapter, sampling)

    def _complete(self, messages: list[dict], adapter: LoadedAdapter | None, sampling: Sampling) -> str:
        import torch

        ids = self.prompt_ids(messages)
        max_new = max(1, min(sampling.max_tokens, self.max_model_len - len(ids)))
        inputs = torch.tensor([ids], device=self.device)
        kwargs = dict(max_new_tokens=max_new, repetition_penalty=sampling.repetition_penalty,
                      pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id)
        if sampling.temperature > 0:
            kwargs.update(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p)
            if sampling.seed is not None:
                torch.manual_seed(sampling.seed)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        with self._adapter_context(adapter), torch.inference_mode():
            output = self.model.generate(inputs, attention_mask=torch.ones_like(inputs), **kwargs)
        return self.tokenizer.decode(output[0, len(ids):], skip_special_tokens=True)

    def _adapter_context(self, adapter: LoadedAdapter | None):
        if adapter is not None:
            if adapter.key not in self._adapters:
                raise EngineError(f"adapter {adapter.key} is not loaded")
            self.model.set_adapter(adapter.key)
            return contextlib.nullcontext()
        if self._adapters:
            return self.model.disable_adapter()  # the base model, for unrouted channels
        return contextlib.nullcontext()
