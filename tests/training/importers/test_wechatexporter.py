"""WechatExporter text output: a DM and a group, quotes, glued notices, look-alike sender lines, sniffing, fuzzing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from doppel.errors import InputError
from training.importers import qq, whatsapp
from training.importers.base import Owner, Source, clean_name, clean_text
from training.importers.detect import import_file
from training.importers.messages import Kind
from training.importers.wechatexporter import parse_lines, sniff, survey_lines

EXPORTS = Path(__file__).parents[2] / "fixtures" / "exports" / "wechatexporter"
DM = EXPORTS / "小明" / "index.txt"
GROUP = EXPORTS / "周末羽毛球群" / "index.txt"
FIXTURES = Path(__file__).parents[2] / "fixtures" / "exports"


@pytest.fixture(scope="module")
def dm():
    return import_file(DM, fmt="wechatexporter", owner="Mia", tz="Asia/Shanghai")


def test_dm_senders_owner_kinds_and_texts(dm):
    assert dm.stats.problems == []
    chats = {(m.platform, m.chat_id, m.chat_name, m.chat_type) for m in dm.messages}
    assert chats == {("wechat", "小明", "小明", "dm")}
    summary = [(m.sender_name, m.is_owner, m.kind, m.text) for m in dm.messages]
    assert summary == [
        ("小明", False, Kind.TEXT, "在吗？"),
        ("Mia", True, Kind.TEXT, "在的[捂脸]"),                  # emoji codes stay in the text
        ("Mia", True, Kind.TEXT, "刚睡醒"),                      # a zero-width space before the name
        ("小明", False, Kind.STICKER, "[动画表情]"),              # [表情]: a custom sticker
        ("Mia", True, Kind.EMOJI, "[捂脸][捂脸]"),
        ("小明", False, Kind.MEDIA, ""),                          # [图片]
        ("system", False, Kind.SYSTEM, '"小明" 撤回了一条消息'),   # glued to the next sender line
        ("Mia", True, Kind.TEXT, "撤回了啥？"),
        ("小明", False, Kind.TEXT, "没啥😅\n今晚吃什么\n火锅还是烧烤"),  # continuation lines
        ("Mia", True, Kind.TEXT, "火锅！\n老地方见 🍜"),          # a reply: its own text, not the quote
        ("小明", False, Kind.MEDIA, ""),                          # [语音 0:05]
        ("Mia", True, Kind.TEXT, "上次群里说 老李 (2023-01-01 10:00:00):周六爬山"),
        ("Mia", True, Kind.TEXT, "你转给我的\n老李 (2022-12-31 09:00:00):周六爬山吗\n我看到了"),
        ("小明", False, Kind.TEXT, "好的"),                      # the trailing zero-width space is gone
        ("小明", False, Kind.SYSTEM, "[视频/语音通话]"),
        ("Mia", True, Kind.MEDIA, ""),                            # [文件: 行程.pdf]
        ("小明", False, Kind.EMOJI, "[OK]"),
        ("system", False, Kind.SYSTEM, "你撤回了一条消息"),       # a notice on a line of its own
        ("Mia", True, Kind.FORWARD, ""),                          # 小明和Mia的聊天记录
        ("小明", False, Kind.TEXT, "明天见"),
    ]
    assert dm.stats.owner_messages == 8 and dm.stats.senders["Mia"] == 9


def test_times_stay_local_and_sources_name_the_line(dm):
    first = dm.messages[0]
    assert first.timestamp.isoformat() == "2023-10-01T15:00:00+08:00"
    assert first.source.endswith("小明/index.txt:3") and first.message_id == "3"
    notice, after = dm.messages[6], dm.messages[7]
    # A notice has no time of its own: it takes the one before it; the glued line keeps its number.
    assert notice.timestamp == dm.messages[5].timestamp and (notice.message_id, after.message_id) == ("9-notice", "9")
    assert notice.extra == {"recalled": True} and dm.messages[17].extra == {"recalled": True}
    assert [m.extra.get("media") for m in dm.messages if m.kind is Kind.MEDIA] == ["image", "voice", "file"]


def test_quotes_are_context_never_messages_of_the_quoted_person(dm):
    reply = dm.messages[9]
    assert reply.extra == {"quote": {"name": "小明", "text": "今晚吃什么"}}
    assert not any(m.text == "今晚吃什么" for m in dm.messages)
    # A quote block with no sender line above it belongs to nobody: counted, not glued onto Mia's message.
    assert dm.stats.skipped == {"quoted reply without a sender line": 1}
    assert not any("九点吧" in m.text for m in dm.messages)


def test_group_chat():
    result = import_file(GROUP, fmt="wechatexporter", owner="mia", tz="Asia/Shanghai")
    assert {(m.chat_id, m.chat_name, m.chat_type) for m in result.messages} == {("周末羽毛球群", "周末羽毛球群",
                                                                                    "group")}
    summary = [(m.sender_name, m.is_owner, m.kind, m.text) for m in result.messages]
    assert summary == [
        ("system", False, Kind.SYSTEM, '"老李"邀请"Mia"、"小红🌸"加入了群聊'),
        ("老李", False, Kind.TEXT, "周六早上九点，老场地"),
        ("小红🌸", False, Kind.TEXT, "我带球拍"),
        ("Mia", True, Kind.TEXT, "收到👌"),
        ("Mia", True, Kind.TEXT, "我订场"),
        ("老李", False, Kind.TEXT, "好，订两小时\n记得开发票"),
        ("system", False, Kind.SYSTEM, '"老李" 拍了拍我'),
        ("小红🌸", False, Kind.MEDIA, ""),
        ("阿强", False, Kind.TEXT, "新人报到[抱拳]"),
        ("Mia", True, Kind.TEXT, "欢迎欢迎[鼓掌]"),
        ("system", False, Kind.SYSTEM, '系统消息："阿强"修改群名为"周末羽毛球🏸"'),
        ("老李", False, Kind.MEDIA, ""),                          # [位置] … (31.23,121.47)
        ("小红🌸", False, Kind.FORWARD, ""),                       # 群聊的聊天记录
        ("Mia", True, Kind.MEDIA, ""),
    ]
    # The notice before the first message gets that message's time.
    assert result.messages[0].timestamp == result.messages[1].timestamp
    assert result.messages[5].extra == {"quote": {"name": "Mia", "text": "我订场"}}
    assert result.messages[0].timestamp.isoformat() == "2023-10-07T20:01:00+08:00"


def test_owner_who_never_speaks_is_reported_with_the_senders():
    result = import_file(GROUP, fmt="wechatexporter", owner="米娅", tz="UTC")
    assert len(result.stats.problems) == 1
    assert "the owner ('米娅') never speaks" in result.stats.problems[0] and "Mia (4)" in result.stats.problems[0]
    unnamed = import_file(DM, fmt="wechatexporter", tz="UTC")
    assert "does not say who the owner is: pass --owner" in unnamed.stats.problems[0]


def _write(tmp_path, text: str, name: str = "index.txt", folder: str = "阿杰") -> Path:
    path = tmp_path / folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_english_title_no_title_and_text_before_the_first_message(tmp_path):
    english = _write(tmp_path, "Ajie - WeChat Chat History\n\n"
                               "Ajie (2023-01-02 08:00:00):hi\nMia (2023-01-02 08:01:00):yo\n")
    result = import_file(english, fmt="wechatexporter", owner="Mia", tz="UTC")
    assert {m.chat_name for m in result.messages} == {"Ajie"} and {m.chat_id for m in result.messages} == {"阿杰"}
    bare = _write(tmp_path, "some preface\n\nAjie (2023-01-02 08:00:00):hi\n", name="index-2.txt", folder="Ajie")
    result = import_file(bare, fmt="wechatexporter", owner="Ajie", tz="UTC")
    assert [m.text for m in result.messages] == ["hi"] and result.messages[0].chat_name == "Ajie"
    assert result.stats.skipped == {"text before the first message": 1}


def test_an_impossible_date_is_text_and_an_empty_message_is_skipped(tmp_path):
    path = _write(tmp_path, "阿杰 - 微信聊天记录\n\n阿杰 (2023-01-02 08:00:00):看\n"
                            "阿杰 (2023-02-30 25:61:00):这行\nMia (2023-01-02 08:02:00):\n")
    result = import_file(path, fmt="wechatexporter", owner="Mia", tz="UTC")
    assert [m.text for m in result.messages] == ["看\n阿杰 (2023-02-30 25:61:00):这行"]
    assert result.stats.skipped == {"empty message": 1}


def test_a_descending_export_keeps_its_messages(tmp_path):
    # WechatExporter can write newest first; a first-time sender is then older than the line above.
    path = _write(tmp_path, "群 - 微信聊天记录\n\n老李 (2023-01-02 09:00:00):最后\n阿杰 (2023-01-02 08:30:00):中间\n"
                            "老李 (2023-01-02 08:00:00):最先\n小红 (2023-01-02 07:00:00):更早\n", folder="群")
    result = import_file(path, fmt="wechatexporter", owner="阿杰", tz="UTC")
    assert [m.sender_name for m in result.messages] == ["小红", "老李", "阿杰", "老李"]  # sorted back into time order
    assert result.stats.out_of_order == 3 and {m.chat_type for m in result.messages} == {"group"}


def test_bad_encoding_and_binary_files_name_the_file(tmp_path):
    path = tmp_path / "x" / "index.txt"
    path.parent.mkdir()
    good = "".join(f"阿杰 (2023-01-02 08:{i % 60:02d}:00):第{i}条\n" for i in range(3000)).encode("utf-8")
    path.write_bytes(good + "Mia (2023-01-03 10:00:00):编码不一样\n".encode("gb18030"))
    with pytest.raises(InputError, match=r"index.txt: line 3001: is not valid UTF-8 text") as info:
        import_file(path, fmt="wechatexporter", owner="Mia", tz="UTC")
    assert "\n" not in str(info.value)
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    with pytest.raises(InputError, match="is a binary file"):
        import_file(path, fmt="wechatexporter", owner="Mia")


def test_sniff_scores_this_format_and_only_this_one():
    for path in (DM, GROUP):
        head = path.read_text(encoding="utf-8")
        assert sniff(head) >= 20 + 10          # the title, and one point per sender line
        assert qq.sniff(head) == 0 and whatsapp.sniff(head) == 0
    assert sniff("Mia (2023-01-02 08:00:00):hi\n") == 1  # a page without its title still counts
    for other in ("qq/全部消息记录.txt", "whatsapp/WhatsApp Chat with Ann Lee.txt", "wechat/老王.txt"):
        assert sniff((FIXTURES / other).read_text(encoding="utf-8-sig")) == 0


def _src(owner: str = "Mia") -> Source:
    return Source(Path("chat/index.txt"), "wechatexporter", Owner([owner]), UTC)


_LINE = st.one_of(
    st.text(max_size=60),
    st.builds(lambda name, day, text: f"{name} (2023-01-{day:02d} 10:00:00):{text}",
              st.text(max_size=12), st.integers(0, 40), st.text(max_size=30)),
    st.sampled_from(["「小明：在吗」", "- - - - - - - - - - - - - - -", "你撤回了一条消息", "小明 - 微信聊天记录",
                     '"小明" 撤回了一条消息Mia (2023-01-02 10:00:00):hi', "系统消息：x", "[图片]", ""]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_LINE, max_size=30))
def test_any_lines_never_raise(lines):
    src = _src()
    numbered = list(enumerate(lines, 1))
    for message in parse_lines(src, numbered, survey_lines(src, numbered)):
        assert message.timestamp.tzinfo is not None and message.text == message.text.strip()
        assert message.kind is not Kind.TEXT or message.text


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300))
def test_any_bytes_give_messages_or_one_input_error(tmp_path, data):
    path = tmp_path / "c" / "index.txt"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)
    try:
        import_file(path, fmt="wechatexporter", owner="Mia", tz="UTC")
    except InputError as exc:
        assert "\n" not in str(exc) and str(path) in str(exc)


_NAME = st.text(alphabet="阿杰小红老李MiaBo 🌸", min_size=1, max_size=6).map(clean_name).filter(bool)
_TEXT_LINE = st.text(alphabet="你好在吗哈abc 123,.!?😂[捂脸]", min_size=1, max_size=20)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(messages=st.lists(st.tuples(_NAME, st.lists(_TEXT_LINE, min_size=1, max_size=3)), min_size=1, max_size=8))
def test_written_chats_read_back(tmp_path, messages):
    start = datetime(2023, 5, 1, 9, 0, tzinfo=UTC)
    lines = ["阿杰 - 微信聊天记录", ""]
    for index, (name, text_lines) in enumerate(messages):
        stamp = (start + timedelta(minutes=index)).strftime("%Y-%m-%d %H:%M:%S")
        lines.append(f"{name} ({stamp}):{text_lines[0]}")
        lines.extend(text_lines[1:])
    path = _write(tmp_path, "\n".join(lines) + "\n")
    result = import_file(path, fmt="wechatexporter", owner="Mia", tz="UTC")
    expected = [(name, start + timedelta(minutes=i), clean_text("\n".join(t))) for i, (name, t) in enumerate(messages)]
    assert [(m.sender_name, m.timestamp, m.text) for m in result.messages] == [e for e in expected if e[2]]
    assert result.stats.skipped == ({"empty message": len(messages) - len(result.messages)}
                                    if len(result.messages) < len(messages) else {})
