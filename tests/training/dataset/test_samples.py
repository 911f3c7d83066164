"""Samples: built by the serving prompt builder, owner as assistant, names in groups, context
limits, whole-turn trimming to the token limit (estimate and a real tokenizer), consistent
scrubbing, duplicates, and the ShareGPT shape training reads."""

from __future__ import annotations

import json
from itertools import pairwise

import pytest
from data_helpers import Chat

from doppel.errors import ConfigError
from doppel.pii import Scrubber
from doppel.prompt import BURST_SEPARATOR, Turn, build_messages
from training.dataset.clean import clean
from training.dataset.samples import (
    DUPLICATE_SAMPLE,
    NO_PROMPT,
    OVER_LENGTH,
    CharEstimate,
    SampleOptions,
    SampleStats,
    TokenizerCount,
    build_samples,
)
from training.dataset.sessions import split_sessions
from training.importers.messages import Kind

SYSTEM = "You are Mia."


def _samples(messages, *, context_turns=10, max_length=2048, counter=None, scrub=False, stats=None):
    kept, _ = clean(messages)
    sessions = split_sessions(kept, merge_gap_s=120, session_gap_s=3600)
    findings = None
    if scrub:
        scrubber = Scrubber()
        found = {id(m): scrubber.find(m.text) for m in kept}
        findings = lambda m: found[id(m)]  # noqa: E731
    return list(build_samples(sessions, SampleOptions(SYSTEM, context_turns, max_length), counter=counter,
                              findings=findings, stats=stats))


def _values(sample):
    return [(c["from"], c["value"]) for c in sample["conversations"]]


def test_a_sample_is_exactly_what_the_serving_prompt_builder_makes():
    chat = Chat()
    ann1, mia1, mia2, ann2, mia3 = (chat.say("Ann", "在吗"), chat.say("Mia", "在"), chat.say("Mia", "咋了"),
                                    chat.say("Ann", "周六爬山去不去", after=200), chat.say("Mia", "去！"))
    samples = _samples([ann1, mia1, mia2, ann2, mia3])
    expected = build_messages(SYSTEM, [
        Turn("Ann", "在吗", ann1.timestamp.timestamp()),
        Turn("Mia", "在" + BURST_SEPARATOR + "咋了", mia1.timestamp.timestamp(), True),
        Turn("Ann", "周六爬山去不去", ann2.timestamp.timestamp()),
        Turn("Mia", "去！", mia3.timestamp.timestamp(), True),
    ], group=False, tz=ann2.timestamp.tzinfo)
    last = samples[-1]
    assert last["system"] == expected[0]["content"] == SYSTEM
    assert [{"role": "user" if c["from"] == "human" else "assistant", "content": c["value"]}
            for c in last["conversations"]] == expected[1:]
    assert _values(last) == [("human", "在吗"), ("gpt", "在\n\n咋了"), ("human", "[2024-05-01 20:04] 周六爬山去不去"),
                             ("gpt", "去！")], "the stamp is local time of the message, on the newest human turn only"
    assert _values(samples[0]) == [("human", "[2024-05-01 20:00] 在吗"), ("gpt", "在\n\n咋了")]


def test_meta_carries_what_the_training_split_needs():
    chat = Chat(platform="wechat")
    ann, mia = chat.say("Ann", "hi"), chat.say("Mia", "hey")
    (sample,) = _samples([ann, mia])
    meta = sample["meta"]
    assert meta["session_start"] == ann.timestamp.timestamp() and meta["reply_at"] == mia.timestamp.timestamp()
    assert (meta["platform"], meta["chat_id"], meta["chat"], meta["chat_type"]) == ("wechat", "c1", "Ann", "dm")
    assert meta["source"] == mia.source and meta["context_turns"] == 1 and meta["length"] > 0
    json.dumps(sample, ensure_ascii=False)


def test_group_samples_name_other_speakers_and_never_the_owner():
    group = Chat("g", group=True)
    samples = _samples([group.say("Ann", "who's in for hotpot"), group.say("Ann", "7pm"), group.say("Bob", "me"),
                        group.say("Mia", "me too"), group.say("Bob", "nice")])
    assert _values(samples[0]) == [("human", "Ann: who's in for hotpot\nAnn: 7pm\n[2024-05-01 20:01] Bob: me"),
                                   ("gpt", "me too")]


def test_conversations_open_with_human_end_with_gpt_and_alternate():
    chat = Chat()
    messages = [chat.say("Mia", "morning!"), chat.say("Mia", "anyone up", after=200), chat.say("Ann", "me"),
                chat.say("Mia", "coffee?"), chat.say("Ann", "sure"), chat.say("Bob", "+1"), chat.say("Mia", "omw")]
    stats = SampleStats()
    samples = _samples(messages, stats=stats)
    # Mia's two opening bursts are one reply (nobody spoke between them), and it answers no one.
    assert stats.candidates == 3 and stats.dropped == {NO_PROMPT: 1}
    for sample in samples:
        roles = [c["from"] for c in sample["conversations"]]
        assert roles[0] == "human" and roles[-1] == "gpt"
        assert all(a != b for a, b in pairwise(roles))


def test_context_is_limited_to_the_last_n_turns():
    chat = Chat()
    messages = []
    for i in range(8):
        messages += [chat.say("Ann", f"q{i}", after=200), chat.say("Mia", f"a{i}")]
    samples = _samples(messages, context_turns=3)
    last = samples[-1]
    assert _values(last)[0] == ("human", "q6") and _values(last)[-1] == ("gpt", "a7")
    assert last["meta"]["context_turns"] == 3


def test_forwards_never_appear_as_the_owners_words():
    chat = Chat()
    messages = [chat.say("Ann", "news?"), chat.say("Mia", "BREAKING: markets fall", kind=Kind.FORWARD),
                chat.say("Mia", "lol look"), chat.say("Ann", "FWD: cat video", kind=Kind.FORWARD),
                chat.say("Mia", "cute")]
    samples = _samples(messages)
    gpt = [c["value"] for s in samples for c in s["conversations"] if c["from"] == "gpt"]
    assert gpt and not any("BREAKING" in v for v in gpt)
    assert any("FWD: cat video" in c["value"] for s in samples for c in s["conversations"] if c["from"] == "human")


def test_too_long_samples_lose_whole_context_turns_then_are_dropped():
    chat = Chat()
    long_question = "为什么" * 100
    messages = [chat.say("Ann", "hi"), chat.say("Mia", "hey"), chat.say("Ann", long_question, after=200),
                chat.say("Mia", "不知道"), chat.say("Ann", "ok", after=200), chat.say("Mia", "嗯" * 900)]
    stats = SampleStats()
    # With hi/hey the second sample measures 336 estimated tokens; without them, 326.
    samples = _samples(messages, max_length=330, stats=stats)
    counter = CharEstimate()
    texts = {m.text for m in messages}
    for sample in samples:
        messages_ = [{"role": "system", "content": sample["system"]}] + [{"role": c["from"], "content": c["value"]}
                                                                        for c in sample["conversations"]]
        assert counter.count(messages_) <= 330
        for c in sample["conversations"]:
            assert c["value"].split("] ", 1)[-1] in texts, "every turn is whole"
    assert [_values(s)[-1][1] for s in samples] == ["hey", "不知道"]
    assert _values(samples[1])[0] == ("human", "[2024-05-01 20:04] " + long_question), "the hi/hey context went"
    assert stats.trimmed == 1 and stats.dropped == {OVER_LENGTH: 1}


def test_private_values_are_scrubbed_consistently_within_a_sample():
    chat = Chat()
    messages = [chat.say("Ann", "is it 13812345678 or 13987654321?"), chat.say("Mia", "13812345678"),
                chat.say("Ann", "and your mail?"), chat.say("Mia", "mia@example.com")]
    samples = _samples(messages, scrub=True)
    blob = json.dumps(samples, ensure_ascii=False)
    assert "13812345678" not in blob and "mia@example.com" not in blob
    assert _values(samples[0])[-1] == ("gpt", "<PHONE_1>")
    assert _values(samples[1]) == [("human", "is it <PHONE_1> or <PHONE_2>?"), ("gpt", "<PHONE_1>"),
                                   ("human", "[2024-05-01 20:01] and your mail?"), ("gpt", "<EMAIL>")]


def test_the_same_exchange_again_is_a_duplicate():
    chat = Chat()
    messages = [chat.say("Ann", "早"), chat.say("Mia", "早呀"), chat.say("Ann", "早", after=86_400),
                chat.say("Mia", "早呀"), chat.say("Ann", "晚安", after=86_400), chat.say("Mia", "早呀")]
    stats = SampleStats()
    samples = _samples(messages, stats=stats)
    assert len(samples) == 2 and stats.dropped == {DUPLICATE_SAMPLE: 1}


def test_the_char_estimate_errs_long():
    counter = CharEstimate()
    assert counter.count([{"role": "user", "content": "你好世界"}]) == 4 + 4
    assert counter.count([{"role": "user", "content": "hello world!"}]) == 4 + 4


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from training.offline_models.tiny_model import CHATML_TEMPLATE

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(["hello there, how are you", "see you at seven", "你好 晚上吃什么"] * 50, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", chat_template=CHATML_TEMPLATE)
    path = tmp_path_factory.mktemp("tok")
    fast.save_pretrained(path)
    return path


def test_with_a_real_tokenizer_no_sample_is_over_the_limit(tokenizer_dir):
    counter = TokenizerCount(tokenizer_dir)
    chat = Chat()
    messages = []
    for i in range(30):
        messages += [chat.say("Ann", f"hello there {i}, how are you " * (1 + i % 4), after=200),
                     chat.say("Mia", "see you at seven " * (1 + i % 3))]
    samples = _samples(messages, max_length=120, counter=counter)
    assert len(samples) == 30
    for sample in samples:
        full = [{"role": "system", "content": sample["system"]}] + [
            {"role": "user" if c["from"] == "human" else "assistant", "content": c["value"]}
            for c in sample["conversations"]]
        exact = counter.tokenizer.apply_chat_template(full, tokenize=True)
        exact = exact["input_ids"] if hasattr(exact, "keys") else exact
        assert len(exact) <= 120
    assert any(s["meta"]["context_turns"] > 1 for s in samples)


def test_a_directory_that_is_not_a_tokenizer_is_one_config_error(tmp_path):
    with pytest.raises(ConfigError) as info:
        TokenizerCount(tmp_path / "nope")
    assert str(info.value).startswith("data.length_model = '") and "\n" not in str(info.value)
