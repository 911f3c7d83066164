"""Telegram Desktop result.json: full-account and single-chat exports, kinds, owner, streaming."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from doppel.errors import InputError
from training.importers.detect import import_file
from training.importers.messages import Kind

EXPORTS = Path(__file__).parents[2] / "fixtures" / "exports" / "telegram"


@pytest.fixture(scope="module")
def account():
    """The full-account export; the owner comes from personal_information, no --owner needed."""
    return import_file(EXPORTS / "result.json", tz="UTC")


def by_id(result, chat_name: str, message_id: str):
    return next(m for m in result.messages if m.chat_name == chat_name and m.message_id == message_id)


def test_full_account_export_reads_every_chat_and_knows_the_owner(account):
    assert account.format == "telegram"
    assert account.stats.chats == {"Ann Lee": 8, "Hiking Crew": 5}
    assert account.stats.problems == []
    owners = {m.sender_name for m in account.messages if m.is_owner}
    assert owners == {"Mia Chen"}
    assert account.stats.owner_messages == 5  # the pin notice and the forward are not her words
    dm = by_id(account, "Ann Lee", "5001")
    assert (dm.chat_type, dm.chat_id, dm.sender_id, dm.platform) == ("dm", "200002", "user200002", "telegram")
    assert by_id(account, "Hiking Crew", "2").chat_type == "group"


def test_timestamps_come_from_date_unixtime_and_are_aware(account):
    first = by_id(account, "Ann Lee", "5001")
    assert first.timestamp == datetime(2023, 3, 4, 18, 2, 11, tzinfo=UTC)
    assert all(m.timestamp.tzinfo is not None for m in account.messages)


def test_entity_list_text_is_flattened_and_replies_are_linked(account):
    reply = by_id(account, "Ann Lee", "5002")
    assert reply.text == "obviously yes, booked the hut already"
    assert reply.kind is Kind.TEXT and reply.reply_to == "5001"
    assert by_id(account, "Hiking Crew", "2").text == "@miachen route for sunday?"


@pytest.mark.parametrize("message_id, kind, text", [
    ("5003", Kind.STICKER, "😂"),
    ("5004", Kind.MEDIA, "the view from last time"),   # a photo keeps its caption
    ("5005", Kind.FORWARD, "Storm warning for the ridge on Saturday afternoon."),
    ("5006", Kind.EMOJI, "😅🙈"),
    ("5007", Kind.MEDIA, ""),                           # a voice message has no text
])
def test_kinds(account, message_id, kind, text):
    message = by_id(account, "Ann Lee", message_id)
    assert (message.kind, message.text) == (kind, text)


def test_forward_keeps_its_origin(account):
    assert by_id(account, "Ann Lee", "5005").extra["forwarded_from"] == "Trail Conditions Bot"


def test_service_messages_are_system_with_the_actor(account):
    created = by_id(account, "Hiking Crew", "1")
    assert (created.kind, created.text, created.sender_name) == (Kind.SYSTEM, "create_group", "Ann Lee")


def test_rtl_and_invisible_marks(account):
    message = by_id(account, "Ann Lee", "5008")
    # Direction marks and the zero-width space go; the Arabic text and the emoji sequence stay.
    assert message.text.startswith("مرحبا — Rania")
    assert "\u200f" not in message.text and "\u200b" not in message.text
    assert "👋🏽" in message.text


def test_deleted_account_gets_a_name(account):
    assert by_id(account, "Hiking Crew", "5").sender_name == "Deleted Account"


def test_sources_name_the_record(account):
    assert by_id(account, "Hiking Crew", "3").source.endswith("result.json:chats.list[1].messages[2]")


def test_single_chat_needs_the_owner_by_id_or_name():
    by_name = import_file(EXPORTS / "single_chat.json", owner="mia chen")
    by_id_ = import_file(EXPORTS / "single_chat.json", owner="100001")
    by_prefixed_id = import_file(EXPORTS / "single_chat.json", owner="user100001")
    for result in (by_name, by_id_, by_prefixed_id):
        assert [m.text for m in result.messages if m.is_owner] == ["always ☕", "10 min"]
    nobody = import_file(EXPORTS / "single_chat.json")
    assert nobody.stats.owner_messages == 0
    assert "pass --owner" in nobody.stats.problems[0] and "Ann Lee (1)" in nobody.stats.problems[0]


def test_owner_that_never_speaks_is_a_problem_naming_the_senders():
    result = import_file(EXPORTS / "single_chat.json", owner="Zed")
    assert len(result.stats.problems) == 1
    problem = result.stats.problems[0]
    assert "single_chat.json" in problem and "'Zed'" in problem and "never speaks" in problem
    assert "Mia Chen (2)" in problem and "Ann Lee (1)" in problem


def test_chat_header_after_messages_is_still_used(tmp_path):
    path = tmp_path / "result.json"
    path.write_text(json.dumps({
        "messages": [{"id": 1, "type": "message", "date": "2023-01-01T10:00:00", "date_unixtime": "1672567200",
                      "from": "Ann", "from_id": "user2", "text": "hi"}],
        "name": "Ann", "type": "personal_chat", "id": 2}))
    result = import_file(path, owner="user1", fmt="telegram")
    assert [(m.chat_name, m.chat_type, m.text) for m in result.messages] == [("Ann", "dm", "hi")]


def test_old_export_without_unixtime_uses_date_in_the_given_zone(tmp_path):
    path = tmp_path / "result.json"
    path.write_text(json.dumps({"name": "Ann", "type": "personal_chat", "id": 2, "messages": [
        {"id": 1, "type": "message", "date": "2019-06-01T08:30:00", "from": "Ann", "from_id": "user2", "text": "yo"}]}))
    result = import_file(path, owner="Ann", tz="Asia/Shanghai", fmt="telegram")
    assert result.messages[0].timestamp.isoformat() == "2019-06-01T08:30:00+08:00"


@pytest.mark.parametrize("text, expected", [
    ('{"name": "A", "type": "personal_chat", "id": 1, "messages": [{"id": 1, "type": "mess',
     r"line 1: the file ends inside messages\[0\]: truncated JSON"),
    ('{"name": "A", "type": "personal_chat", "id": 1, "messages": [\n{"id": 1,, "type": "message"}]}',
     r"line 2: messages\[0\]: not valid JSON"),
    ('{"name": "A", "type": "personal_chat", "id": 1, "messages": [{"id": 1, "type": "message", '
     '"date_unixtime": "soon", "from": "A", "text": "x"}]}', r"messages\[0\]: date_unixtime 'soon' is not a Unix time"),
    ('{"name": "A", "type": "personal_chat", "id": 1, "messages": ["hello"]}', r"messages\[0\]: a message is not"),
    ('{"name": "A", "type": "personal_chat", "id": 1}', "has no 'messages' or 'chats' list"),
    ('{"name": "A", "type": "personal_chat", "id": 1, "messages": []} trailing', "unexpected data after"),
])
def test_bad_json_names_the_file_line_and_record(tmp_path, text, expected):
    path = tmp_path / "result.json"
    path.write_text(text)
    with pytest.raises(InputError, match=expected) as info:
        import_file(path, owner="A", fmt="telegram")
    assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)


def test_full_export_streams_past_a_damaged_tail_only_after_yielding(tmp_path):
    """A 200 MB file whose tail is garbage: the records before it come out, then a clear error."""
    from training.importers.base import Owner, Source
    from training.importers.detect import iter_messages

    head = ('{"personal_information": {"user_id": 1}, "chats": {"list": [{"name": "A", "type": "personal_chat", '
            '"id": 2, "messages": [{"id": 1, "type": "message", "date_unixtime": "1672567200", "from": "Me", '
            '"from_id": "user1", "text": "first"},\n')
    path = tmp_path / "result.json"
    with path.open("wb") as handle:
        handle.write(head.encode())
        handle.truncate(200 * 1024 * 1024)  # sparse: no disk, and no 200 MB in memory either
    src = Source(path, "telegram", Owner(), None)
    stream = iter_messages(src)
    assert next(stream).text == "first"
    with pytest.raises(InputError, match=r"line 2: chats.list\[0\].messages\[1\]: not valid JSON"):
        next(stream)
