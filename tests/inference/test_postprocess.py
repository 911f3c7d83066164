"""What leaves the worker: burst parts, no AI-isms, no private data (redacted across the whole
reply, with the owner's private values), no leaked template tokens."""

from __future__ import annotations

import pytest

from doppel.pii import Scrubber
from inference.postprocess import PostProcessor, is_ai_ism


def test_parts_follow_the_burst_separator_and_drop_empty_ones():
    assert PostProcessor().parts("lol\n\n\n\nok then  \n\n  ") == ("lol", "ok then")


def test_ai_isms_are_removed_in_english_and_chinese():
    text = "haha sure\n\nAs an AI, I cannot eat pizza\n\n作为一个人工智能，我没有感情\n\nsee you at 7"
    assert PostProcessor().parts(text) == ("haha sure", "see you at 7")
    assert is_ai_ism("I'm just a language model") and not is_ai_ism("my AI class was fun")


def test_private_data_is_redacted_before_it_leaves():
    parts = PostProcessor().parts("call me 13812345678\n\nor mail mia.chen@example.com")
    joined = " ".join(parts)
    assert "13812345678" not in joined and "mia.chen@example.com" not in joined
    assert "<PHONE>" in joined and "<EMAIL>" in joined


def test_text_after_a_spelled_out_template_token_is_cut():
    assert PostProcessor().parts("yeah<|im_end|>\n<|im_start|>user\nwhat") == ("yeah",)


def test_a_reply_is_capped_in_parts():
    assert len(PostProcessor(max_parts=3).parts("\n\n".join(f"m{i}" for i in range(10)))) == 3


@pytest.mark.parametrize("generated, expected", [
    ("i feel like it's just my imagination ✨" + "═" * 200, ("i feel like it's just my imagination ✨═══",)),
    ("ok\n\n" + "ha" * 40 + "  ", ("ok", "hahaha")),
    ("lol" * 30, ("lollollol",)),
])
def test_a_runaway_repetition_ends_the_message(generated, expected):
    assert PostProcessor(scrubber=Scrubber()).parts(generated) == expected


@pytest.mark.parametrize("typed", ["hahahahaha 😭😭😭", "noooooooo!!!!!!", "ok but hear me out 💀💀💀💀💀",
                                   "it costs 1000000000000 dollars", "-------------\nmenu"])
def test_a_persons_own_repetition_is_kept(typed):
    assert PostProcessor(scrubber=Scrubber()).parts(typed) == (typed,)


@pytest.mark.parametrize("generated", ["我电话 138 1234\n\n5678 记一下", "我电话1381234\n\n5678",
                                       "号码 138\n\n1234 5678"])
def test_a_phone_number_split_across_two_burst_parts_is_redacted(generated):
    assert Scrubber().find("138 1234") == [] and Scrubber().find("5678 记一下") == [], "each part alone hides it"
    parts = PostProcessor().parts(generated)
    joined = "".join(parts)
    assert "<PHONE>" in joined and not any(d in joined for d in ("138", "1234", "5678")), parts


def test_redaction_numbers_values_across_the_whole_reply():
    parts = PostProcessor().parts("call 13812345678\n\nor 13987654321\n\n13812345678 is better")
    assert parts == ("call <PHONE_1>", "or <PHONE_2>", "<PHONE_1> is better")


@pytest.mark.parametrize("generated", ["my landline is ５５５ ０１３２", "打 5 5 5 0 1 3 2", "五五五零一三二找我",
                                       "ask L I L Y chen", "别告诉ＬＩＬＹ ＣＨＥＮ"])
def test_the_owners_private_values_are_blocked_in_any_spelling(tmp_path, generated):
    from doppel.config import settings_from_dict

    values = tmp_path / "private.txt"
    values.write_text("# the owner's\n5550132\nLily Chen\n", encoding="utf-8")
    settings = settings_from_dict({"privacy": {"private_values": str(values)}})
    (part,) = PostProcessor.from_settings(settings).parts(generated)
    assert "<PRIVATE>" in part and not any(c.isdigit() for c in part) and "lily" not in part.lower(), part
    assert PostProcessor().parts(generated) == (generated,), "without the file nothing is redacted"
