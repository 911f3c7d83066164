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
