"""The engine the worker runs for a real model: history + persona + routed adapter -> reply parts.

For one request it reads, in one round trip, the channel's history, its route and the owner's
overrides; builds the prompt with the same ``build_messages`` that built the training samples;
shrinks the window until the prompt fits the model's context; generates with the routed adapter
(falling back to the default one, and saying so, when a channel's adapter cannot load); splits,
filters and redacts the reply; and records the clone's reply in the channel history.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import tzinfo
from pathlib import Path

from doppel import history
from doppel.errors import ConfigError, DoppelError
from doppel.history import HistoryOptions, StoredTurn
from doppel.prompt import DEFAULT_PERSONA, Turn, build_messages, join_burst, owner_zone, persona_prompt
from doppel.registry import AdapterRef
from doppel.relay import Keys, Request
from inference.adapters import AdapterSet
from inference.backends.base import ModelBackend, Sampling
from inference.engine import Generation
from inference.postprocess import PostProcessor

# Room the reply needs in the context; a window that leaves less is shrunk.
_MIN_REPLY_TOKENS = 32


@dataclass(frozen=True)
class ChatOptions:
    owner: str = "me"
    persona: str = DEFAULT_PERSONA
    sampling: Sampling = field(default_factory=Sampling)
    history: HistoryOptions = field(default_factory=HistoryOptions)
    tz: tzinfo | None = None    # the owner's zone for the prompt's time stamp ([data] tz)


class ChatEngine:
    def __init__(self, redis, keys: Keys, model: ModelBackend, adapters_root: Path,
                 options: ChatOptions = ChatOptions(), postprocess: PostProcessor | None = None,
                 max_loaded_adapters: int = 8):
        self.redis = redis
        self.keys = keys
        self.model = model
        self.options = options
        self.name = model.name
        self.adapters = AdapterSet(model, adapters_root, max_loaded=max_loaded_adapters)
        self.postprocess = postprocess or PostProcessor()
        self.system = persona_prompt(options.owner, options.persona)

    async def startup(self) -> None:
        await self.model.startup()

    async def shutdown(self) -> None:
        await self.model.shutdown()

    async def generate(self, request: Request) -> Generation:
        stored, channel_route, default_route, channel_overrides, global_overrides = await self._read_state(request)
        turns = self._turns_for(request, stored)
        sampling = self.options.sampling.with_overrides({**global_overrides, **channel_overrides})
        messages = self._fit(turns, group=request.chat_type == "group")
        adapter, notice = await self._acquire(channel_route, default_route)
        try:
            text = await self.model.complete(request.id, messages, adapter, sampling)
        finally:
            if adapter is not None:
                await self.adapters.release(adapter)
        parts = self.postprocess.parts(text)
        if parts:
            await history.record(self.redis, self.keys, request.channel,
                                 Turn(self.options.owner, join_burst(parts), time.time(), is_owner=True),
                                 options=self.options.history)
        return Generation(parts=parts, adapter=adapter.key if adapter else "", notice=notice)

    async def _read_state(self, request: Request):
        options = self.options.history
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.lrange(self.keys.history(request.channel), -(options.max_turns + options.chunk_turns), -1)
            pipe.hget(self.keys.channel_routes, request.channel)
            pipe.get(self.keys.default_route)
            pipe.hgetall(self.keys.channel_settings(request.channel))
            pipe.hgetall(self.keys.global_settings)
            raw, channel_route, default_route, channel_overrides, global_overrides = await pipe.execute()
        stored = [t for t in map(history.parse, raw) if t is not None]
        return stored, channel_route, default_route, channel_overrides, global_overrides

    def _turns_for(self, request: Request, stored: list[StoredTurn]) -> list[StoredTurn]:
        """History up to the request's own message, which is added if the bot did not record it."""
        cutoff = request.sent_at + 1.0
        turns = [t for t in stored if t.turn.at <= cutoff]
        known = any((request.reply_to and t.message_id == request.reply_to)
                    or (t.turn.text == request.text and t.turn.speaker == request.author_name and not t.turn.is_owner)
                    for t in turns[-5:])
        if not known:
            next_seq = (turns[-1].seq + 1) if turns else 1
            turns.append(StoredTurn(next_seq, Turn(request.author_name, request.text, request.sent_at),
                                    request.reply_to))
        return turns

    def _fit(self, turns: list[StoredTurn], *, group: bool) -> list[dict]:
        """Messages for the window, shrunk (never an engine error) until the prompt fits the context."""
        options = self.options.history
        limit = self.model.max_model_len - min(_MIN_REPLY_TOKENS, self.options.sampling.max_tokens)
        chosen = history.window(turns, options, self.model.count_tokens)
        while True:
            messages = build_messages(self.system, [t.turn for t in chosen], group=group, tz=self.options.tz)
            if len(self.model.prompt_ids(messages)) <= limit:
                return messages
            if len(chosen) > 1:
                chosen = chosen[max(1, options.chunk_turns):] or chosen[-1:]
                continue
            # One message longer than the context: keep its end, which is what is being asked.
            last = chosen[-1]
            keep = max(1, len(last.turn.text) // 2)
            chosen = [replace(last, turn=replace(last.turn, text=last.turn.text[-keep:]))]
            if keep == 1:
                return build_messages(self.system, [t.turn for t in chosen], group=group, tz=self.options.tz)

    async def _acquire(self, channel_route: str | None, default_route: str | None):
        """The routed adapter, else the default (with a notice for the owner), else the base model."""
        failures = []
        for route in dict.fromkeys(r for r in (channel_route, default_route) if r):
            try:
                adapter = await self.adapters.acquire(AdapterRef.parse(route))
            except DoppelError as exc:
                failures.append(str(exc))
                continue
            return adapter, (f"{failures[0]}; answered with {adapter.key}" if failures else "")
        return None, (f"{'; '.join(failures)}; answered with the base model" if failures else "")


# (base, source of the setting) -> model directory
ResolveModel = Callable[[str, str], Path]


def model_directory(base: str, source: str = "doppel.toml") -> Path:
    """``[model] base`` as a model directory: the resolver a worker uses when nobody passes one.

    Names of models that are built on first use (``tiny``, ``smollm2``) are resolved by whoever
    builds them: the ``doppel`` entry points pass ``training.offline_models.resolve_base_model``.
    """
    path = Path(base).expanduser()
    if not (path / "config.json").is_file():
        raise ConfigError(f"{source}: model.base = {base!r}: not a model directory")
    return path


def chat_engine_from_settings(settings, redis, resolve_model: ResolveModel = model_directory) -> ChatEngine:
    from inference.backends.vllm import VLLMBackend, VLLMOptions

    m = settings.model
    base = resolve_model(m.base, settings.source)
    if settings.worker.engine == "vllm":
        model = VLLMBackend(base, VLLMOptions(
            dtype=m.dtype, max_model_len=m.max_model_len, max_loras=m.max_loras, max_lora_rank=m.max_lora_rank,
            max_cpu_loras=m.max_cpu_loras, gpu_memory_utilization=m.gpu_memory_utilization,
            tensor_parallel_size=m.tensor_parallel_size, data_parallel_size=m.data_parallel_size,
            enforce_eager=m.enforce_eager, cpu_kv_cache_gb=m.cpu_kv_cache_gb))
    else:
        from inference.backends.hf import HFBackend

        model = HFBackend(base, dtype=m.dtype, device=m.device, max_model_len=m.max_model_len)
    options = ChatOptions(
        owner=settings.data.owner_name or "me", persona=settings.data.persona or DEFAULT_PERSONA,
        sampling=Sampling.from_settings(settings), history=HistoryOptions.from_settings(settings),
        tz=owner_zone(settings.data.tz),
    )
    return ChatEngine(redis, Keys(settings.redis.prefix), model, settings.adapters_root(), options,
                      postprocess=PostProcessor.from_settings(settings), max_loaded_adapters=m.max_cpu_loras)
