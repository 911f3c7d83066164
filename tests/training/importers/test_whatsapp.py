"""WhatsApp "Export chat" text: Android and iOS, 24- and 12-hour, date order, media, system lines."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from doppel.errors import InputError
from training.importers.base import Owner, Source, clean_name, clean_text
from training.importers.detect import detect_format, import_file
from training.importers.messages import Kind
from training.importers.whatsapp import _survey, parse_lines

EXPORTS = Path(__file__).parents[2] / "fixtures" / "exports" / "whatsapp"
ANDROID = EXPORTS / "WhatsApp Chat with Ann Lee.txt"
IOS = EXPORTS / "WhatsApp Chat - Hiking Crew" / "_chat.txt"


def test_detected():
    assert detect_format(ANDROID) == detect_format(IOS) == "whatsapp"


def test_android_24_hour_day_first():
    result = import_file(ANDROID, owner="mia chen", tz="Europe/London")
    assert {(m.chat_name, m.chat_type) for m in result.messages} == {("Ann Lee", "dm")}
    summary = [(m.sender_name, m.is_owner, m.kind, m.text) for m in result.messages]
    assert summary == [
        ("system", False, Kind.SYSTEM, "Messages and calls are end-to-end encrypted. No one outside of this chat, "
                                       "not even WhatsApp, can read or listen to them. Tap to learn more."),
        ("Ann Lee", False, Kind.TEXT, "morning!! did you see the game"),
        ("Mia Chen", True, Kind.TEXT, "no 😭 spoilers pls"),
        ("Mia Chen", True, Kind.TEXT, "ok fine tell me"),
        ("Ann Lee", False, Kind.MEDIA, ""),
        ("Ann Lee", False, Kind.TEXT, "look at this\nit's from the top\n\nof the hill"),
        ("Mia Chen", True, Kind.TEXT, "wow"),
        ("Mia Chen", True, Kind.SYSTEM, "This message was deleted"),
        ("Ann Lee", False, Kind.EMOJI, "😂😂😂"),
        ("Mia Chen", True, Kind.TEXT, "see you at 7 - bring the map: the old one"),
    ]
    assert result.messages[4].timestamp.isoformat() == "2023-03-13T18:45:00+00:00"  # 13/03: day first
    assert result.messages[6].extra == {"edited": True}
    assert result.messages[7].extra == {"recalled": True}
    assert result.messages[5].source.endswith("WhatsApp Chat with Ann Lee.txt:6")


def test_ios_12_hour_month_first_group():
    result = import_file(IOS, owner="Mia Chen", tz="America/New_York")
    assert {(m.chat_name, m.chat_type) for m in result.messages} == {("Hiking Crew", "group")}
    by_line = {m.message_id: m for m in result.messages}
    assert by_line["1"].kind is Kind.SYSTEM and by_line["1"].sender_name == "system"
    assert by_line["2"].text == "Ann Lee created group “Hiking Crew”"
    assert by_line["4"].text == "me!! 🙋\u200d♀️"               # the emoji's zero-width joiner survives
    assert (by_line["5"].kind, by_line["5"].sender_name) == (Kind.MEDIA, "Tom Park")
    assert (by_line["6"].kind, by_line["6"].text) == (Kind.STICKER, "[sticker]")
    assert by_line["6"].timestamp.isoformat() == "2023-03-12T12:01:30-04:00"  # 12 PM is noon; DST began
    assert by_line["7"].text == "see you at the trailhead\nbring water"
    assert by_line["9"].kind is Kind.MEDIA
    assert by_line["10"].timestamp.hour == 0  # 12:10 AM


def test_out_of_order_line_is_sorted_and_reported():
    result = import_file(IOS, owner="Mia Chen", tz="UTC")
    assert result.stats.out_of_order == 1
    assert [m.message_id for m in result.messages][-3:] == ["10", "7", "9"]
    stamps = [m.timestamp for m in result.messages]
    assert stamps == sorted(stamps)


def test_ambiguous_dates_default_and_note(tmp_path):
    path = tmp_path / "WhatsApp Chat with Bo.txt"
    path.write_text("01/02/2023, 10:00 - Bo: hi\n01/02/2023, 10:01 - Me: hey\n", encoding="utf-8")
    result = import_file(path, owner="Me", tz="UTC")
    assert result.messages[0].timestamp.date().isoformat() == "2023-02-01"
    assert "day-first" in result.stats.notes[0]


def test_contradictory_dates_are_an_error(tmp_path):
    path = tmp_path / "chat.txt"
    path.write_text("13/02/2023, 10:00 - Bo: hi\n02/13/2023, 10:01 - Me: hey\n", encoding="utf-8")
    with pytest.raises(InputError, match="neither consistently day-first nor month-first"):
        import_file(path, owner="Me", tz="UTC")


def test_year_first_locale(tmp_path):
    path = tmp_path / "chat.txt"
    path.write_text("2023-02-13 10:00 - Bo: hej\n2023-02-13 10:01 - Me: hej hej\n", encoding="utf-8")
    result = import_file(path, owner="Me", tz="UTC", fmt="whatsapp")
    assert [m.timestamp.day for m in result.messages] == [13, 13] and result.stats.owner_messages == 1


def test_binary_and_latin1_files_are_refused(tmp_path):
    latin = tmp_path / "chat.txt"
    latin.write_bytes("12/03/2023, 09:14 - Zoë: olá\n".encode("latin-1"))
    with pytest.raises(InputError, match=r"chat.txt: line 1: is not UTF-8 text"):
        import_file(latin, owner="Me", fmt="whatsapp")


def test_a_200_mb_sparse_file_is_refused_from_its_first_bytes(tmp_path):
    path = tmp_path / "chat.txt"
    with path.open("wb") as handle:
        handle.write(b"12/03/2023, 09:14 - Bo: hi\n")
        handle.truncate(200 * 1024 * 1024)  # sparse: NUL bytes, no disk used
    with pytest.raises(InputError, match=r"chat.txt: is a binary file"):
        import_file(path, owner="Me", fmt="whatsapp", tz="UTC")


def test_huge_single_line_is_refused_without_reading_it_all(tmp_path):
    path = tmp_path / "chat.txt"
    with path.open("wb") as handle:
        handle.write(b"12/03/2023, 09:14 - Bo: hi\n12/03/2023, 09:15 - Me: ")
        handle.write(b"x" * (17 * 1024 * 1024))
    with pytest.raises(InputError, match=r"line 2: is longer than 16 MB"):
        import_file(path, owner="Me", fmt="whatsapp", tz="UTC")


def _src() -> Source:
    return Source(Path("WhatsApp Chat with Prop.txt"), "whatsapp", Owner(["me"]), UTC)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=60), max_size=30), st.sampled_from(["dmy", "mdy", "ymd"]))
def test_any_lines_never_raise(lines, order):
    for message in parse_lines(_src(), enumerate(lines, 1), order=order):
        assert message.timestamp.tzinfo is not None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=60), max_size=30))
def test_survey_raises_only_input_errors(lines):
    try:
        order, senders = _survey(_src(), enumerate(lines, 1))
    except InputError:
        return
    assert order in ("dmy", "mdy", "ymd") and len(senders) <= 3


def _render(style: str, day_first: bool, when: datetime, name: str, text: str) -> str:
    date = f"{when:%d/%m/%Y}" if day_first else f"{when.month}/{when.day}/{when:%y}"
    if style.endswith("12"):
        clock = f"{when.hour % 12 or 12}:{when:%M}" + (f":{when:%S}" if style.startswith("ios") else "")
        clock += "\u202fPM" if when.hour >= 12 else "\u202fAM"
    else:
        clock = f"{when:%H:%M}" + (f":{when:%S}" if style.startswith("ios") else "")
    if style.startswith("ios"):
        return f"[{date}, {clock}] {name}: {text}"
    return f"{date}, {clock} - {name}: {text}"


_NAME = st.text(alphabet=st.sampled_from("AnnBoMia Chen李明😀 "), min_size=1, max_size=10).filter(
    lambda n: clean_name(n) != "" and ":" not in n)
_TEXT = st.lists(st.text(alphabet=st.sampled_from("hi there, ok? 好的😂:-/"), min_size=1, max_size=25).filter(
    lambda t: t.strip() != ""), min_size=1, max_size=3)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(style=st.sampled_from(["android24", "android12", "ios24", "ios12"]), day_first=st.booleans(),
       messages=st.lists(st.tuples(st.datetimes(min_value=datetime(2015, 1, 1), max_value=datetime(2030, 1, 1)),
                                   _NAME, _TEXT), min_size=1, max_size=10))
def test_written_chats_read_back(tmp_path, style, day_first, messages):
    messages = sorted(messages, key=lambda m: m[0])
    # One unambiguous date so the order can be told, as in any real chat longer than 12 days.
    anchor = datetime(2014, 12, 25, 10, 0)
    rows = [(anchor, "Anchor", ["start"]), *messages]
    text = "\n".join(_render(style, day_first, when, name, "\n".join(lines)) for when, name, lines in rows)
    path = tmp_path / "WhatsApp Chat with Prop.txt"
    path.write_text(text + "\n", encoding="utf-8")
    result = import_file(path, owner="Anchor", tz="UTC", fmt="whatsapp")
    seconds = style.startswith("ios")
    expected = [(when.replace(microsecond=0, second=when.second if seconds else 0, tzinfo=UTC), clean_name(name),
                 clean_text("\n".join(lines))) for when, name, lines in rows]
    assert [(m.timestamp, m.sender_name, m.text) for m in result.messages] == expected
