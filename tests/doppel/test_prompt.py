"""The shared message builder: persona, roles, group names, bursts, the single time stamp."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from doppel.prompt import BURST_SEPARATOR, Turn, build_messages, join_burst, owner_zone, persona_prompt, split_burst


def test_persona_names_the_owner_and_has_no_time():
    system = persona_prompt("Mia")
    assert "Mia" in system and "{owner}" not in system
    assert not any(ch.isdigit() for ch in system)


def test_group_turns_carry_names_and_consecutive_roles_merge():
    turns = [Turn("Ann", "hi all", 100), Turn("Bob", "yo", 110), Turn("Mia", "hey", 120, is_owner=True),
             Turn("Mia", "what's up", 125, is_owner=True), Turn("Ann", "lunch?", 200)]
    messages = build_messages("P", turns, group=True, stamp_newest=False)
    assert messages == [
        {"role": "system", "content": "P"},
        {"role": "user", "content": "Ann: hi all\nBob: yo"},
        {"role": "assistant", "content": "hey" + BURST_SEPARATOR + "what's up"},
        {"role": "user", "content": "Ann: lunch?"},
    ]


def test_dm_turns_have_no_names_and_only_the_newest_user_turn_is_stamped():
    turns = [Turn("Ann", "hi", 1_700_000_000), Turn("Mia", "hey", 1_700_000_060, is_owner=True),
             Turn("Ann", "free tonight?", 1_700_000_120)]
    messages = build_messages("P", turns, group=False)
    assert messages[1]["content"] == "hi"
    assert messages[3]["content"] == "[2023-11-14 22:15] free tonight?"
    assert messages[0]["content"] == "P"


def test_prompts_of_a_growing_conversation_share_their_prefix_up_to_the_stamp():
    turns = [Turn("Ann", f"message {i}", 1_700_000_000 + i * 60, is_owner=i % 3 == 2) for i in range(12)]
    before = build_messages("P", turns[:-1], group=True)
    after = build_messages("P", turns, group=True)
    shared = 0
    for a, b in zip(before, after, strict=False):
        if a != b:
            break
        shared += 1
    assert shared >= len(before) - 2


def test_bursts_round_trip():
    assert split_burst(join_burst(["lol", "  ", "ok then "])) == ["lol", "ok then"]


def test_the_stamp_is_written_in_the_owners_zone():
    nine_in_shanghai = datetime(2024, 5, 1, 1, 0, tzinfo=UTC).timestamp()
    turns = [Turn("Ann", "早", nine_in_shanghai)]
    shanghai = owner_zone("Asia/Shanghai")
    assert build_messages("P", turns, group=False, tz=shanghai)[1]["content"] == "[2024-05-01 09:00] 早"
    assert build_messages("P", turns, group=False, tz=owner_zone("UTC"))[1]["content"] == "[2024-05-01 01:00] 早"
    assert owner_zone("") is None
    with pytest.raises(ValueError, match="unknown time zone 'Nowhere/Else'"):
        owner_zone("Nowhere/Else")
