"""imessage-exporter text: blocks, the owner's "Me", tapbacks, attachments, edits, unsent and reply copies."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from doppel.errors import InputError
from training.importers import imessage
from training.importers.base import Owner, Source, clean_name, clean_text
from training.importers.detect import import_file
from training.importers.messages import Kind

EXPORTS = Path(__file__).parents[2] / "fixtures" / "exports" / "imessage"
DM = EXPORTS / "+15551234567.txt"
GROUP = EXPORTS / "Hiking Crew.txt"


def test_sniff_keys_on_time_lines_followed_by_a_sender():
    assert imessage.sniff(DM.read_text(encoding="utf-8")) == 12
    assert imessage.sniff(GROUP.read_text(encoding="utf-8")) == 5
    assert imessage.sniff("May 14, 2023  9:03:12 PM You named the conversation X\n") == 0   # a notice alone
    assert imessage.sniff("[14/05/2023, 21:03:00] Ann: hi\n") == 0
    assert imessage.sniff("2016-05-12 21:05:19 小明\n在吗\n") == 0


def test_dm_marks_the_owner_and_keeps_only_the_words():
    result = import_file(DM, fmt="imessage", tz="America/New_York")   # no owner given: "Me" is the owner
    assert {(m.platform, m.chat_name, m.chat_type) for m in result.messages} == {("imessage", "+15551234567", "dm")}
    summary = [(m.message_id, m.sender_name, m.is_owner, m.kind, m.text) for m in result.messages]
    assert summary == [
        ("1", "+15551234567", False, Kind.TEXT, "hey are you coming tonight?"),
        ("7", "Me", True, Kind.TEXT, "yes!! leaving in 10"),
        ("12", "Me", True, Kind.MEDIA, ""),
        ("16", "+15551234567", False, Kind.TEXT, "wait which entrance"),
        ("23", "Me", True, Kind.TEXT, "the north one, by the fountain"),   # once, not again as the indented copy
        ("28", "Me", True, Kind.TEXT, "omw!! 🏃\u200d♀️"),                 # the last edit
        ("33", "+15551234567", False, Kind.SYSTEM, "They unsent a message."),
        ("37", "+15551234567", False, Kind.TEXT, "good morning\nthis is a second line\n\nwith a blank line in it"),
        ("47", "Me", True, Kind.STICKER, "[sticker]"),
        ("51", "Me", True, Kind.TEXT, "sorry wrong chat"),
        ("56", "+15551234567", False, Kind.MEDIA, ""),
        ("60", "+15551234567", False, Kind.EMOJI, "😂😂"),
    ]
    by_id = {m.message_id: m for m in result.messages}
    assert by_id["1"].timestamp.isoformat() == "2023-05-14T21:03:12-04:00"
    assert by_id["47"].timestamp.isoformat() == "2023-05-15T10:20:00-04:00"   # one space before a 2-digit hour
    assert by_id["1"].extra == {"reactions": [{"reaction": "Loved", "by": "Me"}]}
    assert by_id["7"].extra == {"effect": "Loud"}
    assert by_id["12"].extra == {"attachments": 1}
    assert (by_id["23"].reply_to, by_id["23"].extra) == ("16", {"reply": True})
    assert by_id["28"].extra == {"edited": True}
    assert by_id["33"].extra == {"recalled": True}
    assert by_id["37"].extra["reactions"] == [{"reaction": "Laughed", "by": "Me"}, {"reaction": "sticker", "by": "Me"}]
    assert by_id["51"].extra == {"deleted": True}
    assert result.stats.owner_marked and result.stats.owner_messages == 6 and result.stats.problems == []


def test_group_with_notices_old_reactions_and_rtl_names():
    result = import_file(GROUP, fmt="imessage", tz="America/New_York")
    assert {(m.chat_name, m.chat_type) for m in result.messages} == {("Hiking Crew", "group")}
    summary = [(m.timestamp.strftime("%H:%M:%S"), m.sender_name, m.is_owner, m.kind, m.text) for m in result.messages]
    assert summary == [
        ("07:00:00", "system", False, Kind.SYSTEM, "You named the conversation Hiking Crew"),
        ("07:01:10", "Me", True, Kind.TEXT, "who's in for sunday"),
        ("07:02:00", "Ann Lee", False, Kind.TEXT, "me!! 🙋\u200d♀️"),
        ("07:03:00", "tom.park@example.com", False, Kind.TEXT, "سارة is coming too"),   # marks removed
        ("07:04:00", "سارة", False, Kind.TEXT, "مرحبا 👋\nhttps://maps.apple.com/?q=Trailhead\nTrailhead\n"
                                               "North entrance parking"),
        ("07:05:00", "Me", True, Kind.SYSTEM, "You unsent a message."),
        ("07:06:30", "system", False, Kind.SYSTEM, "Ann Lee left the conversation."),
    ]
    assert result.messages[2].extra == {"reactions": [{"reaction": "Loved", "by": "Me"},
                                                      {"reaction": "Emphasized", "by": "tom.park@example.com"}]}


def test_a_custom_name_for_the_owner_matches_by_name(tmp_path):
    path = tmp_path / "Ann.txt"
    path.write_text("May 14, 2023  9:03:12 PM\nAnn\nhi\n\nMay 14, 2023  9:04:00 PM\nMia\nhey\n\n", encoding="utf-8")
    result = import_file(path, owner="mia", fmt="imessage", tz="UTC")
    assert [(m.sender_name, m.is_owner) for m in result.messages] == [("Ann", False), ("Mia", True)]
    assert not result.stats.owner_marked


def test_lines_outside_blocks_and_senderless_blocks_are_counted(tmp_path):
    path = tmp_path / "Ann.txt"
    path.write_text("stray line\n\nMay 14, 2023  9:03:12 PM\n\nMay 14, 2023  9:04:00 PM\nAnn\nhi\n", encoding="utf-8")
    result = import_file(path, owner="Me", fmt="imessage", tz="UTC")
    assert [m.text for m in result.messages] == ["hi"]
    assert result.stats.skipped == {"text outside a message": 1, "time line without a sender": 1}


def _src() -> Source:
    return Source(Path("Prop.txt"), "imessage", Owner(["me"]), UTC)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=60), st.sampled_from(
    ["May 14, 2023  9:03:12 PM", "Feb 30, 2023  9:03:12 PM", "May 14, 2023  9:03:12 PM (Read by you after 1 minute)",
     "    May 14, 2023  9:03:12 PM", "Me", "", "Tapbacks:", "Reactions:", "    Loved by Me", "Liked by Ann",
     "Edited 1 minute later: x", "You unsent a message.", "/Users/x/a.jpg", "Sticker from Me: /a.heic",
     "This message responded to an earlier message.", "SharePlay Message", "Ended"])), max_size=40))
def test_any_lines_never_raise(lines):
    for message in imessage.parse_lines(_src(), enumerate(lines, 1)):
        assert message.timestamp.tzinfo is not None


_NAME = st.text(alphabet=st.sampled_from("AnnBoMia Chen李明+1234567890@."), min_size=1, max_size=12).filter(
    lambda n: clean_name(n) != "")
# A blank-looking line inside a message is written back as an empty line: compare lines with content.
_LINE = st.text(alphabet=st.sampled_from("hi there, ok? 好的😂:-/"), min_size=1, max_size=25).filter(str.strip)
_TEXT = st.lists(_LINE, min_size=1, max_size=3).map("\n".join).filter(lambda t: clean_text(t) != "")


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(messages=st.lists(st.tuples(st.datetimes(min_value=datetime(2015, 1, 1), max_value=datetime(2030, 1, 1)),
                                   _NAME, _TEXT), min_size=1, max_size=10))
def test_written_chats_read_back(tmp_path, messages):
    messages = sorted(messages, key=lambda m: m[0])   # the exporter writes a chat in time order
    out = []
    for when, name, text in messages:
        hour = f"{when.hour % 12 or 12:>2}"   # imessage-exporter pads a 1-digit hour with a space
        out.append(f"{when:%b %d, %Y} {hour}:{when:%M:%S} {'PM' if when.hour >= 12 else 'AM'}\n{name}\n{text}\n")
    path = tmp_path / "Prop.txt"
    path.write_text("\n".join(out), encoding="utf-8")
    result = import_file(path, owner="nobody", fmt="imessage", tz="UTC")
    expected = [(when.replace(microsecond=0, tzinfo=UTC), clean_name(name), clean_text(text))
                for when, name, text in messages]
    assert [(m.timestamp, m.sender_name, m.text) for m in result.messages] == expected


def test_a_latin1_file_is_one_line_error(tmp_path):
    path = tmp_path / "Zoë.txt"
    path.write_bytes("May 14, 2023  9:03:12 PM\nZoë\nolá\n".encode("latin-1"))
    with pytest.raises(InputError, match=r"Zoë.txt: line 2: is not UTF-8 text"):
        import_file(path, fmt="imessage")
