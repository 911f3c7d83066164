"""The scrubber against the spellings people type to get past it (issue 14): the adversarial
evaluation set (``training.pii_eval.adversarial``) is what its generator writes, its values are
valid by the rules of their kinds, and it is separate from the tuning set."""

from __future__ import annotations

import random
from pathlib import Path

from training.pii_eval import spellings
from training.pii_eval.adversarial import generate
from training.pii_eval.evalset import read

ROOT = Path(__file__).resolve().parents[2]
ADVERSARIAL_SET = ROOT / "tests" / "fixtures" / "pii_adversarial.jsonl"
TUNING_SET = ROOT / "tests" / "fixtures" / "pii_eval.jsonl"


def test_the_shipped_adversarial_set_is_what_the_generator_writes():
    assert read(ADVERSARIAL_SET) == generate(), \
        "regenerate: python -m training.pii_eval.adversarial tests/fixtures/pii_adversarial.jsonl"


def test_the_adversarial_set_is_large_bilingual_mostly_obfuscated_and_apart_from_the_tuning_set():
    records = read(ADVERSARIAL_SET)
    forms = [r["id"].split("-")[0] for r in records]
    assert len(records) >= 500 and {r["lang"] for r in records} == {"zh", "en"}
    assert forms.count("obf") * 2 >= len(records), "at least half are obfuscated spellings"
    looks = [r for r in records if r["id"].startswith("look-")]
    assert len(looks) >= 150 and all(r["lookalikes"] and not r["pii"] for r in looks)
    assert not {r["text"] for r in records} & {r["text"] for r in read(TUNING_SET)}


def test_the_check_digits_of_the_planted_ids_follow_their_rules():
    assert spellings.tw_check("A", "12345678") == "9", "A123456789 is the textbook valid Taiwan ID"
    assert spellings.hk_check("A", "123456") == "3", "A123456(3) is the textbook valid Hong Kong ID"
    assert spellings.hk_check("C", "668668") == "9"
    rng = random.Random(3)
    for _ in range(50):
        for valid in (True, False):
            hk = spellings.hk_id(rng, valid=valid).replace("（", "(").replace("）", ")").replace("(", "").rstrip(")")
            letters = hk[:2] if hk[1].isalpha() else hk[:1]
            assert (spellings.hk_check(letters, hk[len(letters):-1]) == hk[-1]) is valid, hk
            tw = spellings.tw_id(rng, valid=valid)
            assert (spellings.tw_check(tw[0], tw[1:9]) == tw[9]) is valid, tw


def test_numbers_are_spelled_as_people_write_them():
    rng = random.Random(1)
    assert spellings.zh_number(88) == "八十八" and spellings.zh_number(205) == "二百零五"
    assert spellings.zh_number(1201) == "一千二百零一" and spellings.zh_number(10) == "十"
    assert spellings.spell("13812345678", (3, 4, 4), "zh_yao", rng) == "幺三八幺二三四五六七八"
    assert spellings.spell("13812345678", (3, 4, 4), "dotted", rng) == "138.1234.5678"
    assert spellings.spell("1381", (4,), "fullwidth", rng) == "１３８１"
