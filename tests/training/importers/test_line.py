"""LINE chat history text: English and Chinese layouts, quoted multi-line messages, system lines, dates."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from doppel.errors import InputError
from training.importers import line
from training.importers.base import Owner, Source, clean_name, clean_text
from training.importers.detect import import_file
from training.importers.messages import Kind

EXPORTS = Path(__file__).parents[2] / "fixtures" / "exports" / "line"
DM = EXPORTS / "[LINE] Chat with Ann Lee.txt"
GROUP = EXPORTS / "[LINE] 週末登山社.txt"


def test_sniff_keys_on_the_title_and_the_tabbed_lines():
    assert line.sniff(DM.read_text(encoding="utf-8")) > 10
    assert line.sniff(GROUP.read_text(encoding="utf-8-sig")) > 10
    assert line.sniff("21:03\tAnn\thi\n21:04\tBo\tyo\n") == 0            # a spreadsheet, not a chat
    assert line.sniff("[14/05/2023, 21:03:00] Ann: hi\n") == 0            # WhatsApp
    assert line.sniff("2016-05-12 21:05:19 小明\n在吗\n") == 0               # QQ


def test_english_dm():
    result = import_file(DM, owner="Mia Chen", fmt="line", tz="Asia/Tokyo")
    assert {(m.platform, m.chat_name, m.chat_type) for m in result.messages} == {("line", "Ann Lee", "dm")}
    summary = [(m.message_id, m.sender_name, m.is_owner, m.kind, m.text) for m in result.messages]
    assert summary == [
        ("5", "Ann Lee", False, Kind.TEXT, "are you still up?"),
        ("6", "Mia Chen", True, Kind.TEXT, "yes!! just got home"),
        ("7", "Mia Chen", True, Kind.TEXT, 'ok so\nthe concert was\n"amazing"'),    # quoted, "" unescaped
        ("10", "Ann Lee", False, Kind.STICKER, "[Sticker]"),
        ("11", "Ann Lee", False, Kind.MEDIA, ""),
        ("12", "Ann Lee", False, Kind.TEXT, "look who was there 👀"),
        ("13", "Mia Chen", True, Kind.TEXT, "(moon grin)"),
        ("14", "Ann Lee", False, Kind.SYSTEM, "☎ Missed call"),
        ("15", "Mia Chen", True, Kind.SYSTEM, "Mia Chen unsent a message."),
        ("16", "Mia Chen", True, Kind.TEXT, '"we should go again'),   # a quote that never closed is text
        ("17", "Ann Lee", False, Kind.TEXT, "yes 😂😂"),
        ("20", "Ann Lee", False, Kind.TEXT, "good morning ☀️"),
        ("21", "Mia Chen", True, Kind.TEXT, "שלום morning"),            # RTL marks and zero-width space gone
        ("22", "Ann Lee", False, Kind.MEDIA, ""),
        ("23", "Mia Chen", True, Kind.TEXT, "next one is on\nSat, 05/20/2023\nworks?"),  # a date inside quotes
        ("26", "Ann Lee", False, Kind.EMOJI, "👍"),
    ]
    assert result.messages[0].timestamp.isoformat() == "2023-05-14T21:03:00+09:00"
    assert result.messages[-1].timestamp.isoformat() == "2023-05-15T08:06:00+09:00"
    assert result.messages[8].extra == {"recalled": True}
    assert result.messages[2].source.endswith("[LINE] Chat with Ann Lee.txt:7")
    assert result.stats.owner_messages == 6 and result.stats.notes == [] and not result.stats.skipped


def test_chinese_group_with_system_lines_bom_and_crlf():
    result = import_file(GROUP, owner="Mia Chen", fmt="line", tz="Asia/Taipei")
    assert {(m.chat_name, m.chat_type) for m in result.messages} == {("週末登山社", "group")}
    summary = [(m.timestamp.strftime("%d %H:%M"), m.sender_name, m.is_owner, m.kind, m.text) for m in result.messages]
    assert summary == [
        ("13 09:00", "system", False, Kind.SYSTEM, "小明加入聊天"),
        ("13 09:01", "小明", False, Kind.TEXT, "大家好"),
        ("13 09:02", "Ann Lee", False, Kind.TEXT, "歡迎！"),
        ("13 09:03", "Mia Chen", True, Kind.STICKER, "[貼圖]"),
        ("13 09:05", "小明", False, Kind.MEDIA, ""),
        ("13 10:00", "Mia Chen", True, Kind.TEXT, "明天幾點集合？\n在車站嗎"),
        ("13 10:01", "小明", False, Kind.SYSTEM, "小明已收回訊息"),
        ("13 10:02", "Ann Lee", False, Kind.TEXT, "七點 ⛰️"),
        ("14 07:00", "Mia Chen", True, Kind.TEXT, "到了"),
        ("14 07:01", "Ann Lee", False, Kind.SYSTEM, "☎ 通話時間 0:42"),
        ("14 07:02", "system", False, Kind.SYSTEM, "Ann Lee已退出群組。"),
    ]
    assert result.messages[0].timestamp.utcoffset().total_seconds() == 8 * 3600


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "[LINE] Chat with Bo.txt"
    path.write_text(text, encoding="utf-8")
    return path


def test_dotted_dates_twelve_hour_times_and_text_before_the_first_day(tmp_path):
    path = _write(tmp_path, "[LINE] Chat history with Bo\nSaved on: 2023/05/16 22:10\n\n21:00\tBo\tno day yet\n"
                            "2023.05.14 Sunday\n上午12:05\tMe\tearly\nPM09:03\tBo\thi\n")
    result = import_file(path, owner="Me", fmt="line", tz="UTC")
    assert [(m.timestamp.isoformat(), m.sender_name, m.text) for m in result.messages] == [
        ("2023-05-14T00:05:00+00:00", "Me", "early"), ("2023-05-14T21:03:00+00:00", "Bo", "hi")]
    assert result.stats.skipped == {"message line before the first date line": 1}


def test_date_lines_are_read_in_the_order_the_file_proves(tmp_path):
    path = _write(tmp_path, "[LINE] Chat history with Bo\n\nSun, 07/05/2023\n10:00\tBo\thi\n"
                            "Mon, 15/05/2023\n10:00\tMe\they\n")
    result = import_file(path, owner="Me", fmt="line", tz="UTC")
    assert [m.timestamp.date().isoformat() for m in result.messages] == ["2023-05-07", "2023-05-15"]
    ambiguous = _write(tmp_path, "[LINE] Chat history with Bo\n\nSun, 07/05/2023\n10:00\tBo\thi\n")
    result = import_file(ambiguous, owner="Me", fmt="line", tz="UTC")
    assert result.messages[0].timestamp.date().isoformat() == "2023-07-05"
    assert "assumed month-first (LINE's English layout)" in result.stats.notes[0]
    src = Source(ambiguous, "line", Owner("Me"), UTC, date_order="dmy")
    assert [m.timestamp.date().isoformat() for m in line.parse(src)] == ["2023-05-07"]


def test_a_damaged_title_or_odd_layout_is_skipped_and_counted(tmp_path):
    path = _write(tmp_path, "some notes\n2023/05/14(Sun)\n10:00\tBo\thi\n")
    result = import_file(path, owner="Bo", fmt="line", tz="UTC")
    assert [m.text for m in result.messages] == ["hi"] and result.messages[0].chat_name == "Bo"
    assert result.stats.skipped == {"text before the first message": 1}


def _src() -> Source:
    return Source(Path("[LINE] Chat with Prop.txt"), "line", Owner(["me"]), UTC)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=60), st.sampled_from(
    ['10:00\tBo\t"open', '"', 'x"', "2023.05.14 Sunday", "Sun, 13/13/2023", "PM13:99\tBo\thi", "[LINE] x",
     "\t", "10:00\t\t", "10:00\tBo"])), max_size=30), st.sampled_from(["dmy", "mdy", "ymd"]))
def test_any_lines_never_raise(lines, order):
    for message in line.parse_lines(_src(), enumerate(lines, 1), order=order):
        assert message.timestamp.tzinfo is not None


# "AM"/"PM" right after the time is LINE's 12-hour clock, never a sender's name.
_NAME = st.text(alphabet=st.sampled_from("AnnBoMia Chen李明😀 "), min_size=1, max_size=10).filter(
    lambda n: clean_name(n) != "" and clean_name(n).upper() not in ("AM", "PM"))
_TEXT = st.lists(st.text(alphabet=st.sampled_from('hi there, ok? 好的😂:"-/2023.05.14'), min_size=1, max_size=25),
                 min_size=1, max_size=4).map("\n".join).filter(
    lambda t: clean_text(t) != "" and not t.startswith('"') and not t.startswith("["))


def _render(text: str) -> str:
    # LINE's layout: a message over several lines is quoted, with its quotes doubled.
    return '"' + text.replace('"', '""') + '"' if "\n" in text else text


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(messages=st.lists(st.tuples(st.datetimes(min_value=datetime(2015, 1, 1), max_value=datetime(2030, 1, 1)),
                                   _NAME, _TEXT), min_size=1, max_size=10))
def test_written_chats_read_back(tmp_path, messages):
    messages = sorted(messages, key=lambda m: m[0])
    out, day = ["[LINE] Chat history with Prop", "Saved on: 2030/01/01 00:00", ""], None
    for when, name, text in messages:
        if when.date() != day:
            day = when.date()
            out += ["", f"{when:%Y.%m.%d %A}"]
        out.append(f"{when:%H:%M}\t{name}\t{_render(text)}")
    path = tmp_path / "chat.txt"
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
    result = import_file(path, owner="Prop", fmt="line", tz="UTC")
    expected = [(when.replace(second=0, microsecond=0, tzinfo=UTC), clean_name(name), clean_text(text))
                for when, name, text in messages]
    assert [(m.timestamp, m.sender_name, m.text) for m in result.messages] == expected


def test_a_binary_file_is_one_line_error(tmp_path):
    path = tmp_path / "chat.txt"
    path.write_bytes(b"[LINE] x\x00\x00")
    with pytest.raises(InputError, match=r"chat.txt: is a binary file"):
        import_file(path, owner="Me", fmt="line")
