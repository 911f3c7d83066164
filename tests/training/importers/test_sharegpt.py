"""ShareGPT / OpenAI-messages / Alpaca records become one synthetic chat each, gpt side as owner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from doppel.errors import InputError
from doppel.prompt import BURST_SEPARATOR
from training.importers.detect import detect_format, import_file
from training.importers.messages import Kind

EXPORTS = Path(__file__).parents[2] / "fixtures" / "exports" / "sharegpt"


def test_detected():
    for name in ("persona_dataset.jsonl", "openai_chats.jsonl", "alpaca.json"):
        assert detect_format(EXPORTS / name) == "sharegpt"


def test_sharegpt_records_are_chats_with_the_gpt_side_as_owner():
    result = import_file(EXPORTS / "persona_dataset.jsonl", owner="Mia")
    assert result.stats.records == 3 and result.stats.problems == []
    chats = {}
    for message in result.messages:
        chats.setdefault(message.chat_id, []).append((message.sender_name, message.is_owner, message.text))
    assert list(chats) == ["persona_dataset#1", "persona_dataset#2", "persona_dataset#3"]
    assert chats["persona_dataset#1"] == [
        ("user", False, "what are you up to this weekend?"),
        ("Mia", True, "hiking probably"),            # a burst comes back as its messages
        ("Mia", True, "if the weather holds 🤞"),
        ("user", False, "can I come"),
        ("Mia", True, "obviously"),
    ]
    assert chats["persona_dataset#2"] == [("user", False, "周末干嘛"), ("Mia", True, "在家躺着[捂脸]")]
    assert chats["persona_dataset#3"][-1] == ("Mia", True, "9 degrees and raining, classic")
    assert result.stats.skipped == {"tool/function turn": 2}
    assert result.messages[0].extra == {"system": "You are Mia. Reply casually."}


def test_turns_run_forward_in_time_and_records_do_not_mix():
    result = import_file(EXPORTS / "persona_dataset.jsonl")
    for chat in {m.chat_id for m in result.messages}:
        stamps = [m.timestamp for m in result.messages if m.chat_id == chat]
        assert stamps == sorted(stamps) and stamps[0].tzinfo is not None
    assert len({m.chat_id for m in result.messages}) == 3
    assert all(m.chat_type == "dm" and m.platform == "sharegpt" for m in result.messages)


def test_burst_split_uses_the_shared_separator(tmp_path):
    path = tmp_path / "data.jsonl"
    reply = BURST_SEPARATOR.join(["one", "two", "three"])
    path.write_text(json.dumps({"conversations": [{"from": "human", "value": "a\n\nb"},
                                                  {"from": "gpt", "value": reply}]}) + "\n")
    result = import_file(path)
    assert [m.text for m in result.messages] == ["a\n\nb", "one", "two", "three"]  # only the owner's turn splits


def test_openai_messages_with_content_parts():
    result = import_file(EXPORTS / "openai_chats.jsonl")
    assert [(m.is_owner, m.text) for m in result.messages] == [
        (False, "coffee later?"), (True, "yes pls ☕"), (False, "look at this"), (True, "STOP he's so round")]
    assert result.messages[0].extra == {"system": "You are Mia."}
    assert result.messages[1].kind is Kind.TEXT


def test_alpaca_array_with_history():
    result = import_file(EXPORTS / "alpaca.json")
    assert [(m.is_owner, m.text) for m in result.messages] == [
        (False, "hey"), (True, "hey hey"), (False, "How do you take your tea?"),
        (True, "strong, splash of milk, no sugar")]


@pytest.mark.parametrize("content, expected", [
    ('{"conversations": [{"from": "human", "value": "hi"}]}\n{"conversations": [{"from": "gpt", "val',
     "line 2: the file ends inside record 2: truncated JSON"),
    ('{"conversations": [{"from": "human", "value": "hi"}]}\n{"conversations": [}\n',
     "line 2: record 2: not valid JSON"),
    ('{"conversations": [{"from": "narrator", "value": "hi"}]}\n', "record 1: turn 1 has role 'narrator'"),
    ('{"prompt": "hi", "completion": "yo"}\n', "record 1: has neither 'conversations', 'messages' nor 'instruction'"),
    ('{"conversations": "hi"}\n', "'conversations'/'messages' is not a list"),
    ('["just", "strings"]', "record 1: is not a JSON object"),
])
def test_bad_records_are_errors_naming_line_and_record(tmp_path, content, expected):
    path = tmp_path / "data.jsonl"
    path.write_text(content)
    with pytest.raises(InputError) as info:
        import_file(path, fmt="sharegpt")
    assert expected in str(info.value) and str(path) in str(info.value)


def test_record_without_any_owner_turn_is_fine_but_a_file_without_is_a_problem(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text('{"conversations": [{"from": "human", "value": "hi"}]}\n')
    result = import_file(path)
    assert result.stats.owner_messages == 0 and "never speaks" in result.stats.problems[0]


def test_empty_turns_are_counted(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text('{"conversations": [{"from": "human", "value": "  "}, {"from": "gpt", "value": "ok"}]}\n')
    result = import_file(path)
    assert [m.text for m in result.messages] == ["ok"] and result.stats.skipped == {"empty turn": 1}
