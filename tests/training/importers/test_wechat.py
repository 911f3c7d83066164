"""WeChat: MemoTrace CSV (utf-8-sig, Excel-resaved GB18030), PyWxDump CSV (both layouts), WeChatMsg JSON."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from doppel.errors import InputError
from training.importers.base import clean_text
from training.importers.detect import detect_format, import_file
from training.importers.messages import Kind

EXPORTS = Path(__file__).parents[2] / "fixtures" / "exports" / "wechat"
DM = EXPORTS / "小明_utf8.csv"
GROUP = EXPORTS / "周末羽毛球群_utf8.csv"
PYWXDUMP = EXPORTS / "pywxdump" / "wxid_xiaoming01_0_9.csv"
COLUMNS = "localId,TalkerId,Type,SubType,IsSender,CreateTime,Status,StrContent,StrTime,Remark,NickName,Sender"


@pytest.fixture(scope="module")
def dm():
    return import_file(DM, tz="Asia/Shanghai")


def test_formats_are_detected():
    assert detect_format(DM) == detect_format(GROUP) == "wechat"
    assert detect_format(PYWXDUMP) == "wechat-pywxdump"
    assert detect_format(EXPORTS / "小明_train.json") == "wechat-json"


def test_memotrace_dm(dm):
    assert dm.stats.problems == [] and dm.stats.owner_marked
    first = dm.messages[0]
    assert (first.platform, first.chat_id, first.chat_name, first.chat_type) == ("wechat", "wxid_xiaoming01", "小明",
                                                                               "dm")
    assert (first.sender_name, first.is_owner, first.text) == ("小明", False, "在吗？")
    assert first.timestamp.isoformat() == "2023-10-01T15:00:00+08:00"
    assert first.source.endswith("小明_utf8.csv:2")
    owner_texts = [m.text for m in dm.messages if m.is_owner and m.kind in (Kind.TEXT, Kind.EMOJI)]
    assert owner_texts == ["在的[捂脸]", "刚睡醒", "[捂脸][捂脸]", "晚上七点\n老地方见 🍜"]


def test_memotrace_kinds_keep_emoji_codes(dm):
    kinds = {m.message_id: (m.kind, m.text) for m in dm.messages}
    assert kinds["2"] == (Kind.TEXT, "在的[捂脸]")           # emoji codes stay in the text
    assert kinds["5"] == (Kind.EMOJI, "[捂脸][捂脸]")         # only codes: an emoji message
    assert kinds["13"] == (Kind.EMOJI, "[OK]")
    assert kinds["4"] == (Kind.STICKER, "[动画表情]")        # the sticker's XML is not kept
    assert kinds["6"] == (Kind.MEDIA, "")
    assert kinds["11"] == (Kind.MEDIA, "")
    assert kinds["12"] == (Kind.FORWARD, "")
    assert kinds["7"][0] is Kind.SYSTEM and dm.messages[6].extra == {"recalled": True}
    assert kinds["8"] == (Kind.TEXT, '好的，"老地方"是哪')     # quoted CSV field
    assert "10" not in kinds and dm.stats.skipped == {"quoted reply without its text": 1}


def test_memotrace_group_sorts_out_of_order_rows():
    result = import_file(GROUP, tz="Asia/Shanghai")
    assert {m.chat_type for m in result.messages} == {"group"}
    assert [m.message_id for m in result.messages] == ["101", "102", "103", "104", "105", "106"]
    assert result.stats.out_of_order == 1 and "sorted by time" in result.stats.notes[0]
    senders = [m.sender_name for m in result.messages if m.kind is Kind.TEXT]
    assert senders == ["老李", "小红🌸", "Mia", "Mia"]
    assert [m.is_owner for m in result.messages if m.kind is Kind.TEXT] == [False, False, True, True]


def test_excel_resaved_gb18030_csv(tmp_path):
    path = tmp_path / "小明.csv"
    path.write_bytes(DM.read_text(encoding="utf-8-sig").encode("gb18030"))
    result = import_file(path, tz="Asia/Shanghai")
    assert [m.text for m in result.messages][:3] == ["在吗？", "在的[捂脸]", "刚睡醒"]


def test_pywxdump_uses_users_json_for_names():
    result = import_file(PYWXDUMP, tz="Asia/Shanghai")
    summary = [(m.sender_name, m.is_owner, m.kind, m.text) for m in result.messages]
    assert summary == [
        ("小明", False, Kind.TEXT, "明天爬山吗"),
        ("我", True, Kind.TEXT, "去！[奸笑]"),
        ("小明", False, Kind.STICKER, "[动画表情]"),
        ("我", True, Kind.MEDIA, ""),
        ("我", True, Kind.TEXT, "七点出发"),
        ("小明", False, Kind.SYSTEM, '"小明" 拍了拍我'),
        ("我", True, Kind.FORWARD, ""),
        ("小明", False, Kind.EMOJI, "[强][强]"),
    ]
    assert result.messages[0].timestamp.isoformat() == "2023-10-02T09:00:00+08:00"
    assert result.messages[0].chat_name == "小明" and result.messages[0].message_id == "7155010001"


def test_pywxdump_older_layout_with_a_json_content_column(tmp_path):
    path = tmp_path / "wxid_a_0_2.csv"
    path.write_text('id,MsgSvrID,type_name,is_sender,talker,room_name,content,CreateTime\n'
                    '1,11,文本,0,wxid_a,wxid_a,"{""src"": """", ""msg"": ""吃了吗""}",1696208400\n'
                    '2,12,文本,1,我,wxid_a,"{""src"": """", ""msg"": ""吃了[呲牙]""}",1696208460\n', encoding="utf-8")
    result = import_file(path, tz="UTC")
    assert [(m.text, m.is_owner) for m in result.messages] == [("吃了吗", False), ("吃了[呲牙]", True)]
    assert result.messages[0].timestamp.isoformat() == "2023-10-02T01:00:00+00:00"


def test_wechatmsg_json_splits_merged_lines_back_into_messages():
    result = import_file(EXPORTS / "小明_train.json", owner="Mia")
    record_one = [(m.is_owner, m.text) for m in result.messages if m.chat_id.endswith("#1")]
    assert record_one == [(False, "在吗？"), (True, "在的[捂脸]"), (True, "刚睡醒"), (False, "晚上吃什么"),
                          (True, "火锅！")]
    assert result.messages[0].extra["system"].startswith("你是Mia")
    assert {m.platform for m in result.messages} == {"wechat"}


@pytest.mark.parametrize("text, expected", [
    ("localId,TalkerId,Type,IsSender,StrContent\n1,wxid_a,1,0,hi\n", "line 1: missing column(s) CreateTime"),
    (COLUMNS + "\n1,wxid_a,1,0,1,1696143600,2,hi,2023-10-01 15:00:00\n",
     "line 2: has 9 field(s) but the header has 12"),
    (COLUMNS + "\n1,wxid_a,text,0,1,1696143600,2,hi,x,,A,wxid_a\n", "line 2: Type 'text' is not a number"),
    (COLUMNS + "\n1,wxid_a,1,0,1,soon,2,hi,,,A,wxid_a\n", "line 2: CreateTime 'soon' is neither"),
    (COLUMNS + '\n1,wxid_a,1,0,1,1696143600,2,"unterminated,x,,A,wxid_a\n', "has 8 field"),
])
def test_bad_csv_names_file_and_line(tmp_path, text, expected):
    path = tmp_path / "chat_utf8.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as info:
        import_file(path, fmt="wechat")
    assert expected in str(info.value) and str(path) in str(info.value)


def test_pywxdump_missing_message_column(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("id,MsgSvrID,type_name,is_sender,talker,room_name,CreateTime\n1,2,文本,0,a,a,1\n")
    with pytest.raises(InputError, match=r"missing column\(s\) msg or content"):
        import_file(path)


def test_wrong_encoding_names_the_line(tmp_path):
    path = tmp_path / "chat_utf8.csv"
    good = (COLUMNS + "\n1,wxid_a,1,0,1,1696143600,2,hi,,,A,wxid_a\n").encode("utf-8")
    path.write_bytes(good * 1 + b"".join(b"2,wxid_a,1,0,1,1696143600,2,ok,,,A,wxid_a\n" for _ in range(3000))
                     + "3,wxid_a,1,0,1,1696143600,2,乱码,,,A,wxid_a\n".encode("gbk"))
    with pytest.raises(InputError, match=r"line 3003: is not valid UTF-8 text"):
        import_file(path, fmt="wechat")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                              min_size=1, max_size=40), min_size=1, max_size=8))
def test_any_text_round_trips_through_the_csv(tmp_path, texts):
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS.split(","))
    for index, text in enumerate(texts):
        writer.writerow([index, "wxid_a", 1, 0, index % 2, 1696143600 + index, 2, text, "", "", "A", "wxid_a"])
    path = tmp_path / "prop_utf8.csv"
    path.write_text(buffer.getvalue(), encoding="utf-8-sig", newline="")
    result = import_file(path, tz="UTC")
    assert [m.text for m in result.messages] == [clean_text(t) for t in texts]
