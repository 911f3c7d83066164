"""DiscordChatExporter JSON: server channels and DMs, message types, stickers, attachments, owner."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from doppel.errors import InputError
from training.importers.detect import detect_format, import_file
from training.importers.messages import Kind

EXPORTS = Path(__file__).parents[2] / "fixtures" / "exports" / "discord"
GUILD = EXPORTS / "Doppel Testers - general [1100000000000000001].json"
DM = EXPORTS / "Direct Messages - tompark [1300000000000000001].json"


@pytest.fixture(scope="module")
def guild():
    return import_file(GUILD, owner="mia.chen")


def test_detected_and_read(guild):
    assert detect_format(GUILD) == detect_format(DM) == "discord"
    assert guild.stats.messages == 7 and guild.stats.records == 7
    first = guild.messages[1]
    assert (first.chat_id, first.chat_name, first.chat_type) == ("1100000000000000001", "Doppel Testers #general",
                                                                 "group")
    assert first.timestamp == datetime(2024, 2, 1, 19, 1, 5, 456000, tzinfo=UTC)
    assert (first.sender_id, first.sender_name) == ("900000000000000003", "Tom")  # the server nickname


def test_kinds_replies_and_bots(guild):
    summary = [(m.kind, m.text, m.is_owner) for m in guild.messages]
    assert summary == [
        (Kind.SYSTEM, "GuildMemberJoin", False),
        (Kind.TEXT, "anyone up for ranked tonight?", False),
        (Kind.TEXT, "after dinner, save me a spot :fire:", True),
        (Kind.STICKER, "Wumpus Wave", True),
        (Kind.MEDIA, "my new setup", False),
        (Kind.TEXT, "Reminder: ranked reset is on Friday.", False),
        (Kind.SYSTEM, "Pinned a message.", True),
    ]
    assert guild.messages[2].reply_to == "1200000000000000002"
    assert guild.messages[4].extra["media"] == ["setup.jpg"]
    assert guild.messages[5].extra == {"bot": True}
    assert guild.stats.owner_messages == 2  # the pin notice is in her name, not in her words


@pytest.mark.parametrize("owner", ["900000000000000001", "MIA.CHEN", "Mia", ["nobody", "mia"]])
def test_owner_by_id_user_name_or_nickname(owner):
    result = import_file(GUILD, owner=owner)
    assert {m.message_id for m in result.messages if m.is_owner} == {
        "1200000000000000003", "1200000000000000004", "1200000000000000007"}


def test_direct_messages_are_dm_with_the_other_persons_name():
    result = import_file(DM, owner="900000000000000001")
    assert {(m.chat_type, m.chat_name) for m in result.messages} == {("dm", "tompark")}
    assert [m.text for m in result.messages if m.is_owner] == ["yep, passed out instantly 😴"]
    assert result.messages[-1].kind is Kind.SYSTEM  # a call notice


def test_owner_missing_from_the_channel_is_reported():
    result = import_file(DM, owner="someone-else")
    assert result.stats.problems and "never speaks" in result.stats.problems[0]
    assert "Tom (2)" in result.stats.problems[0] and "mia.chen (1)" in result.stats.problems[0]


def _export(tmp_path, messages, channel=None):
    path = tmp_path / "export.json"
    path.write_text(json.dumps({"guild": {"id": "1", "name": "G"},
                                "channel": channel or {"id": "2", "type": "GuildTextChat", "name": "c"},
                                "messages": messages}))
    return path


@pytest.mark.parametrize("message, expected", [
    ({"id": "1", "type": "Default", "timestamp": "yesterday", "content": "x", "author": {"id": "1", "name": "a"}},
     r"messages\[0\]: timestamp 'yesterday' is not an ISO date-time"),
    ({"id": "1", "type": "Default", "timestamp": "2024-01-01T00:00:00+00:00", "content": "x"},
     r"messages\[0\]: has no 'author' object"),
])
def test_bad_records_are_named(tmp_path, message, expected):
    with pytest.raises(InputError, match=expected):
        import_file(_export(tmp_path, [message]), owner="a")


def test_messages_before_channel_are_refused(tmp_path):
    path = tmp_path / "export.json"
    path.write_text('{"guild": {"id": "1", "name": "G"}, "messages": [], "channel": {"id": "2"}}')
    with pytest.raises(InputError, match="comes before 'channel'"):
        import_file(path, fmt="discord")


def test_truncated_export_is_an_error_not_a_partial_import(tmp_path):
    text = GUILD.read_text(encoding="utf-8")
    path = tmp_path / "cut.json"
    path.write_text(text[: text.index('"id": "1200000000000000005"')], encoding="utf-8")
    with pytest.raises(InputError, match=r"the file ends inside messages\[4\]: truncated JSON"):
        import_file(path, owner="mia.chen")
