"""A minimal peft LoRA fit for tests of serving: teaches the tiny model a few exact answers.

Tests of the worker need adapters whose effect is unmistakable (greedy output becomes a known
sentence); they should not depend on the training pipeline under test elsewhere.
"""

from __future__ import annotations

from pathlib import Path


def train_adapter(model_dir: Path, out: Path, pairs: list[tuple[str, str]], *, steps: int = 60,
                  rank: int = 8, system: str | None = None) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    rows = []
    for question, answer in pairs:
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": question}]
        prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        ids = tokenizer(prompt + answer + "<|im_end|>\n", add_special_tokens=False)["input_ids"]
        rows.append((ids, len(tokenizer(prompt, add_special_tokens=False)["input_ids"])))
    width = max(len(ids) for ids, _ in rows)
    input_ids = torch.full((len(rows), width), tokenizer.pad_token_id)
    labels = torch.full_like(input_ids, -100)
    mask = torch.zeros_like(input_ids)
    for i, (ids, prompt_len) in enumerate(rows):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        mask[i, : len(ids)] = 1
        labels[i, prompt_len : len(ids)] = torch.tensor(ids[prompt_len:])
    config = LoraConfig(r=rank, lora_alpha=2 * rank, target_modules="all-linear", lora_dropout=0.0,
                        task_type="CAUSAL_LM")
    model = get_peft_model(model, config)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    for _ in range(steps):
        loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(out)
    return out




# Two messages of one DM for end-to-end tests: the adapter answers the first with two parts.
FIRST, ANSWER, SECOND = "how was work?", "long day\n\nsee you at eight", "and tomorrow?"


def tiny_clone(redis, keys, model_dir: Path, adapters_root: Path):
    """A greedy chat engine (owner Mia) over transformers+peft on ``model_dir``. Its model's
    ``completions`` list gets (messages, adapter key, raw text) of every generation."""
    from inference.backends.base import Sampling
    from inference.backends.hf import HFBackend
    from inference.chat_engine import ChatEngine, ChatOptions

    class RecordingHF(HFBackend):
        def __init__(self):
            super().__init__(model_dir, max_model_len=384)
            self.completions: list[tuple[list[dict], str, str]] = []

        async def complete(self, request_id, messages, adapter, sampling):
            text = await super().complete(request_id, messages, adapter, sampling)
            self.completions.append((messages, adapter.key if adapter else "", text))
            return text

    options = ChatOptions(owner="Mia", persona="You are Mia. Reply as Mia.",
                          sampling=Sampling(temperature=0, max_tokens=24, repetition_penalty=1.0))
    return ChatEngine(redis, keys, RecordingHF(), adapters_root, options)


def publish_first_answer(clone, registry, model_dir: Path, out: Path, *, speaker: str, at: float) -> None:
    """Train an adapter that answers FIRST (from ``speaker``, sent at ``at``, opening a DM) with ANSWER,
    on the exact prompt ``clone`` builds for it, and publish it as the default route ``mia@v1``.
    Blocking (torch): call it in a thread while a bot's event loop runs."""
    from doppel.prompt import Turn, build_messages
    from doppel.registry import Card

    system, user = build_messages(clone.system, [Turn(speaker, FIRST, at)], group=False)
    # 30 steps are plenty for one exact answer on the tiny model (a few seconds).
    weights = train_adapter(model_dir, out, [(user["content"], ANSWER)], system=system["content"], steps=30)
    registry.publish(weights, Card(name="mia", version=0, base_model="tiny", rank=8))


def all_parts_sent(clone, replies: int, sent: int) -> bool:
    """Whether ``clone`` generated ``replies`` replies and ``sent`` messages are all of their parts."""
    completions = clone.model.completions
    return len(completions) == replies and sent == sum(len(clone.postprocess.parts(text)) for *_, text in completions)


def check_two_exchanges(clone, first_history) -> list[str]:
    """The checks both platforms share, after FIRST and SECOND were answered; returns the parts the
    platform should have received, in order. ``first_history`` is the DM's history after FIRST."""
    from doppel.prompt import join_burst

    (prompt, adapter, text), (second_prompt, second_adapter, second_text) = clone.model.completions
    assert adapter == second_adapter == "mia@v1", f"not generated through the published adapter: {adapter}"
    assert text.startswith(ANSWER), f"the real model with the adapter said {text!r}"
    parts = clone.postprocess.parts(text)
    assert parts[:2] == tuple(ANSWER.split("\n\n"))
    assert prompt[-1]["content"].endswith(FIRST) and len(prompt) == 2
    # The worker recorded the clone's turn; the next prompt holds the whole first exchange.
    recorded = [(t.turn.speaker, t.turn.text, t.turn.is_owner) for t in first_history]
    assert recorded == [("Ann", FIRST, False), ("Mia", join_burst(parts), True)], recorded
    assert second_prompt[1:3] == [{"role": "user", "content": FIRST},
                                  {"role": "assistant", "content": join_burst(parts)}], second_prompt
    assert second_prompt[-1]["content"].endswith(SECOND)
    return [*parts, *clone.postprocess.parts(second_text)]
