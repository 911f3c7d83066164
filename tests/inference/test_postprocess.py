"""What leaves the worker: burst parts, no AI-isms, no private data, no leaked template tokens."""

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
