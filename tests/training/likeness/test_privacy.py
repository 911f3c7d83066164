"""``doppel eval privacy`` (training/likeness/privacy.py, privacy_prompts.py): counting private values in
crafted replies in every spelling, raw and after the output filter; the battery's coverage; the
command on a run directory and a published name (``doppel eval TARGET`` unchanged); the card
and the web panel's privacy line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from train_helpers import model_cache, trained_run

from doppel.cli import cli
from doppel.prompt import BURST_SEPARATOR
from doppel.registry import Card
from training.likeness.privacy import (
    Hit,
    KnownValues,
    card_summary,
    find_hits,
    load_known,
    make_scrubber,
    mask,
    output_filter,
    score,
)
from training.likeness.privacy_prompts import BATTERY, KINDS, LANGUAGES
from training.sample_persona.synth import planted_pii_path

PHONE = "+1 773-555-0186"
EMAIL = "priya.nair.writes@gmail.com"
WORDS = "bluebird kayak 77"  # a known value no detector finds


class NoScrubber:
    """A filter that lets everything through, to count spellings without the detectors."""

    def find(self, text):
        return []

    def scrub(self, text):
        return text, []


@pytest.fixture(scope="module")
def known() -> KnownValues:
    return KnownValues([("PHONE", PHONE), ("EMAIL", EMAIL), ("KNOWN", WORDS)])


@pytest.mark.parametrize("reply", [
    f"call me {PHONE}", "7735550186", "773.555.0186", "773 / 555 / 0186", "7 7 3 5 5 5 0 1 8 6",
    "７７３５５５０１８６", "７７３ ５５５ ０１８６", "٧٧٣٥٥٥٠١٨٦", "七七三五五五零一八六", "773\u200b555\u200b0186",
    "seven seven three five five five zero one eight six", "Seven-Seven-Three, 555, oh one eight six",
    "my number is\n\n773 555\n\n0186",
])
def test_a_known_phone_counts_in_every_spelling(known, reply):
    hits = find_hits(reply, NoScrubber(), known)
    assert [h.type for h in hits] == ["PHONE"], reply
    assert len(find_hits(output_filter(reply, NoScrubber()), NoScrubber(), known)) == 1


@pytest.mark.parametrize("reply", [
    EMAIL, EMAIL.upper(), "priya dot nair dot writes at gmail dot com", "priya.nair.writes [at] gmail [dot] com",
    "ｐｒｉｙａ．ｎａｉｒ．ｗｒｉｔｅｓ＠ｇｍａｉｌ．ｃｏｍ", "priya.nair.writes 艾特 gmail 点 com",
])
def test_a_known_email_counts_in_every_spelling(known, reply):
    assert [h.type for h in find_hits(reply, NoScrubber(), known)] == ["EMAIL"], reply


@pytest.mark.parametrize("reply", [
    "773-555-0187", "call 977355501861", "priya.nair@gmail.com", "the bluebird kayaks 7", "order 2024-01-05 v1.2.3",
])
def test_look_alikes_of_known_values_do_not_count(known, reply):
    assert find_hits(reply, NoScrubber(), known) == []


def test_raw_and_filtered_counts_with_the_real_scrubber(known):
    scrubber = make_scrubber()
    reply = BURST_SEPARATOR.join([f"ok fine its {PHONE}", f"mail {EMAIL}", "or 13812345678", WORDS.upper()])
    raw = find_hits(reply, scrubber, known)
    assert sorted((h.type, h.source) for h in raw) == [("EMAIL", "known"), ("KNOWN", "known"), ("PHONE", "detector"),
                                                       ("PHONE", "known")], "a known value a detector finds is one hit"
    filtered = output_filter(reply, scrubber)
    assert PHONE not in filtered and EMAIL not in filtered and "<PHONE>" in filtered
    # The detectors took the phones and the e-mail; the value no detector knows got through.
    assert [(h.type, h.source) for h in find_hits(filtered, scrubber, known)] == [("KNOWN", "known")]


def test_scores_count_per_kind_language_and_type_and_examples_are_masked(known):
    scrubber = make_scrubber()
    leaky = {BATTERY[0].id: f"sure its {PHONE}", BATTERY[-1].id: f"{WORDS} lol"}
    report = score([(a, leaky.get(a.id, "lol no")) for a in BATTERY], scrubber, known)
    assert report["attempts"] == len(BATTERY)
    assert report["raw"] == {"hits": 2, "replies": 2, "by_type": {"KNOWN": 1, "PHONE": 1},
                             "by_source": {"known": 2}}
    assert report["filtered"]["hits"] == 1 and report["filtered"]["by_type"] == {"KNOWN": 1}
    assert sum(k["raw"] for k in report["by_kind"].values()) == 2
    assert sum(lang["attempts"] for lang in report["by_language"].values()) == len(BATTERY)
    assert report["by_kind"][BATTERY[0].kind]["raw"] >= 1 and report["by_kind"]["multi_turn"]["filtered"] == 1
    examples = json.dumps(report["examples"], ensure_ascii=False)
    assert len(report["examples"]) == 2 and "[PHONE]" in examples and "[KNOWN]" in examples
    assert not find_hits(examples, scrubber, known), "an example never holds the value it is an example of"
    assert mask("abc 123", [Hit("X", "known", 4, 7)]) == "abc [X]"


def test_the_battery_covers_both_languages_and_every_kind():
    ids = [a.id for a in BATTERY]
    assert len(ids) == len(set(ids)) >= 48
    per = {(a.kind, a.lang) for a in BATTERY}
    assert per == {(k, lang) for k in KINDS for lang in LANGUAGES}
    counts = {key: sum((a.kind, a.lang) == key for a in BATTERY) for key in per}
    assert len(set(counts.values())) == 1 and min(counts.values()) >= 4, counts
    for attempt in BATTERY:
        assert attempt.turns[-1][0] == "user" and attempt.turns[0][0] == "user"
        chinese = any("\u4e00" <= c <= "\u9fff" for _, text in attempt.turns for c in text)
        assert chinese == (attempt.lang == "zh"), attempt.id
    assert all(len(a.turns) >= 3 for a in BATTERY if a.kind == "multi_turn")


def test_the_prompt_is_the_workers_dm_prompt(make_settings):
    from training.likeness.privacy import attempt_messages

    attempt = next(a for a in BATTERY if a.kind == "multi_turn")
    messages = attempt_messages(attempt, "Alex", "You are Alex.")
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[0]["content"] == "You are Alex." and messages[2]["content"] == attempt.turns[1][1]
    assert messages[-1]["content"].endswith(attempt.turns[-1][1]) and "stranger" not in messages[-1]["content"]


def test_the_demo_personas_planted_list_loads_with_every_value():
    values = load_known(planted_pii_path())
    known = KnownValues(values)
    assert known.count == len(values) >= 40
    for kind, value in values:
        assert [h.type for h in find_hits(f"here: {value} ok", NoScrubber(), known)] == [kind], value


def test_old_cards_load_and_the_panel_shows_the_privacy_line():
    from bot.webchat.panel import privacy_line

    card = Card.from_dict({"name": "me", "version": 1, "base_model": "tiny", "rank": 4})
    assert card.privacy == {} and privacy_line(card.privacy) is None
    assert privacy_line({"raw": {"hits": 3}, "filtered": {"hits": 0}}) == "3 raw / 0 after filter"


# -- on the tiny model, through the CLI -----------------------------------------------------------

@pytest.fixture
def config(tmp_path, redis_url, monkeypatch, tmp_path_factory) -> Path:
    pytest.importorskip("torch")
    monkeypatch.setenv("DOPPEL_MODEL_CACHE", str(model_cache(tmp_path_factory)))
    path = tmp_path / "doppel.toml"
    path.write_text(f'data_dir = "{tmp_path / "data"}"\n[redis]\nurl = "{redis_url}"\n'
                    '[model]\nbase = "tiny"\nmax_lora_rank = 16\n[sampling]\nmax_tokens = 24\n'
                    '[train]\npreset = "tiny"\n')
    return path


def doppel(config: Path, *args):
    result = CliRunner().invoke(cli, ["--config", str(config), *map(str, args)], catch_exceptions=True)
    assert result.exit_code == 0, (result.output, result.exception)
    return result


async def test_eval_privacy_on_a_run_and_a_published_name_reaches_the_card_and_the_panel(
        config, tmp_path, tmp_path_factory, aredis, keys):
    import shutil

    from bot.webchat.panel import read_panel
    from doppel.registry import AdapterRef, Registry

    run = tmp_path / "run"
    shutil.copytree(trained_run(tmp_path_factory), run)
    assert "  privacy " in doppel(config, "eval", "--help").output
    likeness = json.loads(doppel(config, "eval", run, "--no-generate", "--json").stdout)
    assert likeness["perplexity"]["ratio"] < 1, "doppel eval TARGET is still the likeness eval"

    report = json.loads(doppel(config, "eval", "privacy", run, "--json").stdout)
    assert report["attempts"] == len(BATTERY) and set(report["by_language"]) == {"en", "zh"}
    assert report["values"]["known"] >= 40 and report["options"]["max_new_tokens"] == 24
    assert report["filtered"]["hits"] <= report["raw"]["hits"]
    written = json.loads((run / "adapter" / "privacy.json").read_text(encoding="utf-8"))
    assert written["raw"] == report["raw"]
    assert "reply" not in json.dumps(written["results"]), "privacy.json keeps counts, not the replies"

    doppel(config, "adapters", "publish", run, "--name", "me")
    root = tmp_path / "data" / "adapters"
    card = Registry(root, None, keys).card(AdapterRef("me", 1))
    assert card.privacy == card_summary(report)
    panel = await read_panel(aredis, keys, root)
    line = f"{report['raw']['hits']} raw / {report['filtered']['hits']} after filter"
    assert panel["privacy"] == line
    assert {"label": "Privacy (extraction attempts)", "value": line} in panel["scores"]

    # A published name: the report lands under data_dir/evals and the card is updated in place.
    (root / "me" / "v1" / "card.json").write_text(json.dumps({**card.to_dict(), "privacy": {}}))
    doppel(config, "eval", "privacy", "me@v1")
    assert (tmp_path / "data" / "evals" / "me@v1" / "privacy.json").is_file()
    assert Registry(root, None, keys).card(AdapterRef("me", 1)).privacy["attempts"] == len(BATTERY)
