"""WeChat: MemoTrace CSV (utf-8-sig, Excel-resaved GB18030), PyWxDump CSV (both layouts), WeChatMsg JSON,
MemoTrace TXT; the owner's name never taken from the contact's columns (regression), also in a build."""

from __future__ import annotations

import csv
import io
from datetime import UTC
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from doppel.errors import InputError
from training.dataset.build import BuildOptions, build_dataset
from training.importers.base import Owner, Source, clean_text
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


# -- the owner's name (regression: a WeChat-only build wrote the persona "You are 老王") --------

# MemoTrace's all-chats CSV, and some versions of its per-chat CSV, repeat the *contact's* Remark and
# NickName on the owner's own rows (IsSender=1); Sender is then "我", or the contact's wxid.
CONTACT_ON_OWNER_ROWS = COLUMNS + "\n" + "\n".join([
    "1,wxid_laowang,1,0,0,1699009205,2,周末有空吗,2023-11-03 19:00:05,老王,王大锤,wxid_laowang",
    "2,wxid_laowang,1,0,1,1699009240,2,有呀[旺柴],2023-11-03 19:00:40,老王,王大锤,我",
    "3,wxid_laowang,1,0,1,1699009262,2,干嘛,2023-11-03 19:01:02,老王,王大锤,我",
    "4,wxid_laowang,1,0,0,1699009290,2,去钓鱼,2023-11-03 19:01:30,老王,王大锤,wxid_laowang",
    "5,wxid_laowang,1,0,1,1699009300,2,好啊,2023-11-03 19:01:40,老王,王大锤,wxid_laowang",
    "6,wxid_laowang,1,0,0,1699009320,2,六点出发,2023-11-03 19:02:00,老王,王大锤,wxid_laowang",
]) + "\n"


@pytest.fixture
def contact_on_owner_rows(tmp_path):
    path = tmp_path / "老王_utf8.csv"
    path.write_text(CONTACT_ON_OWNER_ROWS, encoding="utf-8-sig")
    return path


@pytest.mark.parametrize("owner, expected", [(None, "我"), ("小美", "小美"), (["wxid_xiaomei", "小美"], "小美")])
def test_owner_rows_are_never_named_after_the_contact(contact_on_owner_rows, owner, expected):
    result = import_file(contact_on_owner_rows, owner=owner, tz="Asia/Shanghai")
    mine = [m for m in result.messages if m.is_owner]
    assert [m.text for m in mine] == ["有呀[旺柴]", "干嘛", "好啊"]
    assert {m.sender_name for m in mine} == {expected} and {m.sender_id for m in mine} == {"me"}
    assert {(m.sender_id, m.sender_name) for m in result.messages if not m.is_owner} == {("wxid_laowang", "老王")}


def test_a_wechat_only_build_is_not_a_clone_of_the_contact(contact_on_owner_rows, tmp_path):
    messages = import_file(contact_on_owner_rows, tz="Asia/Shanghai").messages
    unnamed = build_dataset(messages, tmp_path / "a").report["settings"]["system"]
    assert unnamed.startswith("You are me.") and "老王" not in unnamed and "王大锤" not in unnamed
    named = build_dataset(messages, tmp_path / "b", BuildOptions(owner_name="小美")).report["settings"]["system"]
    assert named.startswith("You are 小美.")
    # An --owner given as a name (not a wxid) names the persona when the export has no name for the owner.
    by_owner = build_dataset(messages, tmp_path / "c", BuildOptions(owner=("wxid_xiaomei", "小美")))
    assert by_owner.report["settings"]["system"].startswith("You are 小美.")


def test_the_owners_own_name_is_kept_where_the_export_really_has_it():
    # 小明_utf8.csv is the per-chat layout that writes the owner's own names and wxid on their rows.
    result = import_file(DM, tz="Asia/Shanghai")
    assert {(m.sender_id, m.sender_name) for m in result.messages if m.is_owner} == {("wxid_mia001", "Mia")}
    assert {m.sender_name for m in result.messages if not m.is_owner} == {"小明"}


def test_all_chats_csv_names_group_members_by_sender_not_by_the_group(tmp_path):
    # In messages.csv, Remark/NickName name the chat (here the group) and Sender is the member's name.
    path = tmp_path / "messages.csv"
    path.write_text(COLUMNS + "\n"
                    "1,2023@chatroom,1,0,0,1699009205,2,周六打球?,,羽毛球群,羽毛球群,老李\n"
                    "2,2023@chatroom,1,0,1,1699009240,2,来,,羽毛球群,羽毛球群,我\n"
                    "3,2023@chatroom,1,0,0,1699009262,2,+1,,羽毛球群,羽毛球群,小红 🌸\n"
                    "4,2023@chatroom,1,0,0,1699009290,2,几点,,羽毛球群,羽毛球群,wxid_a1b2c3\n", encoding="utf-8")
    result = import_file(path, tz="UTC")
    assert [(m.sender_name, m.is_owner) for m in result.messages] == [
        ("老李", False), ("我", True), ("小红 🌸", False), ("羽毛球群", False)]


# -- MemoTrace's TXT export ("wechat-txt") -------------------------------------------------------

TXT = EXPORTS / "老王.txt"


def test_memotrace_txt_dm():
    result = import_file(TXT, fmt="wechat-txt", owner="Mia", tz="Asia/Shanghai")
    assert result.stats.problems == [] and result.stats.skipped == {}
    assert {(m.platform, m.chat_id, m.chat_name, m.chat_type) for m in result.messages} == {("wechat", "老王", "老王",
                                                                                             "dm")}
    summary = [(m.sender_name, m.is_owner, m.kind, m.text) for m in result.messages]
    assert summary == [
        ("老王", False, Kind.TEXT, "周末有空吗"),
        ("Mia", True, Kind.TEXT, "有呀[旺柴]"),
        ("Mia", True, Kind.TEXT, "干嘛"),
        ("老王", False, Kind.TEXT, "去钓鱼\n带上你的竿子\n\n再叫上阿强"),  # a blank line inside one message
        ("system", False, Kind.SYSTEM, '"老王" 撤回了一条消息'),            # a header with no content
        ("老王", False, Kind.MEDIA, ""),
        ("Mia", True, Kind.TEXT, "好啊"),                                   # the 引用: lines are not hers
        ("老王", False, Kind.STICKER, "[动画表情]"),                         # [表情包]
        ("Mia", True, Kind.MEDIA, ""),                                      # [语音]
        ("老王", False, Kind.MEDIA, ""),                                    # the indented [链接]:title: block
        ("Mia", True, Kind.TEXT, "导出来长这样：\n2023-01-01 10:00:00 老王\n是不是很像"),  # no blank line before it
        ("Mia", True, Kind.EMOJI, "[捂脸][捂脸]"),
        ("老王", False, Kind.MEDIA, ""),
        ("system", False, Kind.SYSTEM, '你拍了拍"老王"'),
        ("老王", False, Kind.TEXT, "那就周六早上六点 🎣"),
    ]
    by_id = {m.message_id: m for m in result.messages}
    assert by_id["21"].extra == {"quote": {"name": "老王", "text": "去钓鱼\n带上你的竿子"}}
    assert by_id["16"].extra == {"recalled": True} and by_id["32"].extra == {"media": "link"}
    assert by_id["1"].timestamp.isoformat() == "2023-11-03T19:00:05+08:00" and by_id["1"].source.endswith("老王.txt:1")


def test_memotrace_txt_is_told_from_qq_by_its_sniff():
    from training.importers import memotrace_txt, qq

    head = TXT.read_text(encoding="utf-8")
    assert memotrace_txt.sniff(head) > qq.sniff(head) > 0
    for other in ("qq/全部消息记录.txt", "qq/高三2班_gb18030.txt"):
        raw = (EXPORTS.parent / other).read_bytes()
        text = raw.decode("utf-8-sig") if "gb18030" not in other else raw.decode("gb18030")
        assert memotrace_txt.sniff(text) == 0 and qq.sniff(text) > 0
    plain = "2023-01-02 08:00:00 阿杰\n在吗\n\n2023-01-02 08:01:00 Mia\n在\n"
    assert memotrace_txt.sniff(plain) == qq.sniff(plain) == 2  # nothing tells them apart: a tie


def test_memotrace_txt_group_escaped_names_and_skips(tmp_path):
    path = tmp_path / "羽毛球群.txt"
    path.write_text("2023-01-02 08:00:00 Tom \\'T\\' &amp; Co\n周六？\n\n"
                    "2023-01-02 08:01:00 Mia\n来\n\n"
                    "2023-01-02 08:02:00 小红\n+1\n\n"
                    "2023-01-02 08:03:00 小红\n\n\n"                      # a sender with no content
                    "2023-01-02 08:04:00 Mia\n引用:小红:+1\n\n"          # a quote without a reply
                    "2023-01-02 08:05:00 Tom \\'T\\' &amp; Co\n好\n", encoding="utf-8")
    result = import_file(path, fmt="wechat-txt", owner="mia", tz="UTC")
    assert [(m.sender_name, m.is_owner, m.text) for m in result.messages] == [
        ("Tom 'T' & Co", False, "周六？"), ("Mia", True, "来"), ("小红", False, "+1"), ("Tom 'T' & Co", False, "好")]
    assert {m.chat_type for m in result.messages} == {"group"}
    assert result.stats.skipped == {"empty message": 1, "quoted reply without its text": 1}


def test_memotrace_txt_gb18030_owner_absent_and_preface(tmp_path):
    path = tmp_path / "老王.txt"
    path.write_bytes(("导出自留痕\n\n" + TXT.read_text(encoding="utf-8")).encode("gb18030"))
    result = import_file(path, fmt="wechat-txt", owner="nobody", tz="UTC")
    assert len(result.messages) == 15 and result.stats.skipped == {"text before the first message": 1}
    assert "never speaks" in result.stats.problems[0] and "Mia (6)" in result.stats.problems[0]


def test_memotrace_txt_bad_bytes_name_the_line(tmp_path):
    path = tmp_path / "x.txt"
    path.write_bytes(b"2023-01-02 08:00:00 A\nhi\n\n" + b"\x00\x01binary")
    with pytest.raises(InputError, match=r"x.txt: (line 4: contains NUL bytes|is a binary file)"):
        import_file(path, fmt="wechat-txt", owner="A")


_TXT_LINE = st.one_of(st.text(max_size=50), st.just(""), st.sampled_from(["引用:a:b", "[图片]", "[表情包]"]),
                      st.builds(lambda d, rest: f"2023-01-{d:02d} 10:00:00 {rest}", st.integers(0, 40),
                                st.text(max_size=20)))


@settings(max_examples=300, deadline=None)
@given(st.lists(_TXT_LINE, max_size=30))
def test_memotrace_txt_any_lines_never_raise(lines):
    from training.importers.memotrace_txt import parse_lines, survey_lines

    src = Source(Path("chat.txt"), "wechat-txt", Owner(["Mia"]), UTC)
    numbered = list(enumerate(lines, 1))
    for message in parse_lines(src, numbered, survey_lines(src, numbered)):
        assert message.timestamp.tzinfo is not None and message.text == message.text.strip()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300))
def test_memotrace_txt_any_bytes_give_messages_or_one_input_error(tmp_path, data):
    path = tmp_path / "chat.txt"
    path.write_bytes(data)
    try:
        import_file(path, fmt="wechat-txt", owner="Mia", tz="UTC")
    except InputError as exc:
        assert "\n" not in str(exc) and str(path) in str(exc)
