"""QQ text export: UTF-8 and GB18030, several chats per file, ids, titles, placeholders, properties."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from doppel.errors import InputError
from training.importers.base import Owner, Source, clean_name, clean_text
from training.importers.detect import detect_format, import_file
from training.importers.messages import Kind
from training.importers.qq import parse_header, parse_lines

EXPORTS = Path(__file__).parents[2] / "fixtures" / "exports" / "qq"
FRIENDS = EXPORTS / "全部消息记录.txt"      # UTF-8 with BOM, CRLF, two chats
GROUP = EXPORTS / "高三2班_gb18030.txt"     # GB18030, a group with QQ numbers and e-mail ids


def test_detects_both_encodings():
    assert detect_format(FRIENDS) == detect_format(GROUP) == "qq"


def test_friend_export_with_two_chats():
    result = import_file(FRIENDS, owner="米娅", tz="Asia/Shanghai")
    assert result.stats.chats == {"阿杰": 7, "妈妈": 2}
    assert {m.chat_type for m in result.messages} == {"dm"}
    first = result.messages[0]
    assert (first.sender_name, first.text, first.timestamp.isoformat()) == ("阿杰", "在干嘛",
                                                                           "2015-06-12T21:05:19+08:00")
    assert first.source.endswith("全部消息记录.txt:9")
    summary = [(m.is_owner, m.kind, m.text) for m in result.messages if m.chat_name == "阿杰"]
    assert summary == [
        (False, Kind.TEXT, "在干嘛"),
        (True, Kind.TEXT, "刚下课[表情]\n累死了"),     # multi-line, QQ's face code kept in the text
        (True, Kind.MEDIA, ""),                         # [图片] alone: the picture is not in the file
        (False, Kind.TEXT, "周末去看电影不"),
        (True, Kind.TEXT, "好啊！\n\n那部新上的科幻片？"),  # a blank line inside one message
        (False, Kind.STICKER, "[表情]"),
        (True, Kind.TEXT, "/微笑/微笑"),
    ]
    mum = [m for m in result.messages if m.chat_name == "妈妈"]
    assert mum[0].timestamp.isoformat() == "2015-06-13T08:01:02+08:00"  # single-digit hour


def test_gb18030_group_export():
    result = import_file(GROUP, owner="20005678", tz="Asia/Shanghai")
    assert {m.chat_type for m in result.messages} == {"group"}
    assert {m.chat_name for m in result.messages} == {"高三(2)班"}
    people = [(m.sender_id, m.sender_name, m.kind) for m in result.messages]
    assert people == [
        ("10000", "系统消息", Kind.SYSTEM),
        ("10001234", "班长", Kind.TEXT),              # 【管理员】 title removed
        ("20005678", "米娅", Kind.TEXT),
        ("xiaopang@qq.com", "小胖", Kind.TEXT),
        ("20005678", "米娅", Kind.TEXT),
        ("10000", "系统消息", Kind.SYSTEM),
    ]
    assert [m.text for m in result.messages if m.is_owner] == ["收到～", "自己写啦"]  # placeholders dropped


def test_owner_by_name_matches_too():
    result = import_file(GROUP, owner="米娅", tz="UTC")
    assert result.stats.owner_messages == 2


def test_owner_absent_is_reported():
    result = import_file(GROUP, owner="someone", tz="UTC")
    assert "never speaks" in result.stats.problems[0] and "米娅 (2)" in result.stats.problems[0]


def test_twelve_hour_headers(tmp_path):
    path = tmp_path / "chat.txt"
    path.write_text("2016-01-02 下午 3:04:05 阿杰\n在吗\n\n2016-01-03 12:30:00 AM 米娅\n在\n", encoding="utf-8")
    result = import_file(path, owner="米娅", tz="UTC", fmt="qq")
    assert [m.timestamp.hour for m in result.messages] == [15, 0]


def test_text_before_the_first_header_is_counted_not_lost(tmp_path):
    path = tmp_path / "chat.txt"
    path.write_text("random preface\n2016-01-02 15:04:05 阿杰\n在吗\n", encoding="utf-8")
    result = import_file(path, owner="阿杰", tz="UTC", fmt="qq")
    assert result.stats.skipped == {"text before the first message": 1} and len(result.messages) == 1


def test_impossible_date_is_message_text(tmp_path):
    path = tmp_path / "chat.txt"
    path.write_text("2016-01-02 15:04:05 阿杰\n看这个\n2016-13-45 99:99:99 不是时间\n", encoding="utf-8")
    result = import_file(path, owner="阿杰", tz="UTC", fmt="qq")
    assert [m.text for m in result.messages] == ["看这个\n2016-13-45 99:99:99 不是时间"]


def test_mixed_encodings_name_the_bad_line(tmp_path):
    path = tmp_path / "chat.txt"
    good = "".join(f"2016-01-02 15:04:{i % 60:02d} 阿杰\n第{i}条消息\n\n" for i in range(3000)).encode("utf-8")
    path.write_bytes(good + "2016-01-03 10:00:00 米娅\n编码不一样\n".encode("gb18030"))
    with pytest.raises(InputError, match=r"line 9001: is not valid UTF-8 text"):
        import_file(path, owner="米娅", tz="UTC", fmt="qq")


def _src(tmp_path) -> Source:
    return Source(tmp_path / "prop.txt", "qq", Owner(["me"]), UTC)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=60), max_size=30))
def test_any_lines_never_raise(lines):
    src = Source(Path("prop.txt"), "qq", Owner(["me"]), UTC)
    for message in parse_lines(src, enumerate(lines, 1)):
        assert message.timestamp.tzinfo is not None and "\r" not in message.text


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_any_header_line_parses_or_is_text(line):
    src = Source(Path("prop.txt"), "qq", Owner(), UTC)
    header = parse_header(line, src)
    assert header is None or header[0].tzinfo is UTC


_NAME = st.text(alphabet=st.sampled_from("abcXYZ米娅阿杰小明 _.😀"), min_size=1, max_size=12).filter(
    lambda n: clean_name(n) != "")
_LINE = st.text(alphabet=st.sampled_from("hello 你好吗？！,.😂🙈 abc"), min_size=1, max_size=30).filter(
    lambda line: line.strip() != "")


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2030, 1, 1)), _NAME,
                          st.lists(_LINE, min_size=1, max_size=3)), min_size=1, max_size=12))
def test_written_messages_read_back(messages):
    text = "".join(f"{when:%Y-%m-%d %H:%M:%S} {name}\n" + "\n".join(lines) + "\n\n"
                   for when, name, lines in messages)
    src = Source(Path("prop.txt"), "qq", Owner(), UTC)
    parsed = list(parse_lines(src, enumerate(text.split("\n"), 1)))
    assert [(m.timestamp, m.sender_name, m.text) for m in parsed] == [
        # Trailing blanks on a line are export noise and are dropped.
        (when.replace(microsecond=0, tzinfo=UTC), clean_name(name), clean_text("\n".join(x.rstrip() for x in lines)))
        for when, name, lines in messages]
