"""Detection, dispatch, directories of mixed formats, bad files, streaming, and `doppel data import`."""

from __future__ import annotations

import json
import shutil
import tracemalloc
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from doppel.errors import InputError
from training.cli.data import data
from training.importers.base import Owner, Source
from training.importers.detect import (
    FORMAT_NAMES,
    detect_format,
    import_file,
    import_path,
    iter_messages,
)
from training.importers.messages import Message
from training.importers.normalized import write_messages

EXPORTS = Path(__file__).parents[2] / "fixtures" / "exports"
OWNER = ["Mia Chen", "米娅", "mia.chen", "Mia"]

EXPECTED_FORMATS = {
    "telegram/result.json": "telegram",
    "telegram/single_chat.json": "telegram",
    "discord/Doppel Testers - general [1100000000000000001].json": "discord",
    "discord/Direct Messages - tompark [1300000000000000001].json": "discord",
    "wechat/小明_utf8.csv": "wechat",
    "wechat/周末羽毛球群_utf8.csv": "wechat",
    "wechat/pywxdump/wxid_xiaoming01_0_9.csv": "wechat-pywxdump",
    "wechat/小明_train.json": "wechat-json",
    "qq/全部消息记录.txt": "qq",
    "qq/高三2班_gb18030.txt": "qq",
    "whatsapp/WhatsApp Chat with Ann Lee.txt": "whatsapp",
    "whatsapp/WhatsApp Chat - Hiking Crew/_chat.txt": "whatsapp",
    "sharegpt/persona_dataset.jsonl": "sharegpt",
    "sharegpt/openai_chats.jsonl": "sharegpt",
    "sharegpt/alpaca.json": "sharegpt",
    "articles/2023-05-01-why-i-hike.md": "articles",
    "wechat/老王.txt": "wechat-txt",
    "wechatexporter/小明/index.txt": "wechatexporter",
    "wechatexporter/周末羽毛球群/index.txt": "wechatexporter",
    "whatsapp/WhatsApp Chat - Bo Tanaka.zip": "whatsapp",
    "whatsapp/WhatsApp Chat with Lakeside Book Club.txt": "whatsapp",
    "line/[LINE] Chat with Ann Lee.txt": "line",
    "line/[LINE] 週末登山社.txt": "line",
    "imessage/+15551234567.txt": "imessage",
    "imessage/Hiking Crew.txt": "imessage",
    "signal/Ann Lee/chat.md": "signal",
    "signal/Climbing Crew/index.md": "signal",
    "meta/facebook/messages/inbox/hikingcrew_5678901234567890/message_1.json": "meta",
    "meta/facebook/messages/inbox/zoemartin_10158234567890123/message_1.json": "meta",
    "meta/instagram/your_instagram_activity/messages/inbox/annlee_17841400123456789/message_1.json": "meta",
    "twitter/data/tweets.js": "twitter",
    "weibo/7412345678.csv": "weibo",
    "weibo/7412345678.json": "weibo",
    "weibo/mymblog_page1.json": "weibo",
}
# Pages read with their chat's first page, and archive files that hold no posts.
EXPECTED_IGNORED = {
    "meta/facebook/messages/inbox/zoemartin_10158234567890123/message_2.json": "page of the chat in message_1.json",
    "twitter/data/account.js": "not a tweets file",
}


@pytest.mark.parametrize("relative, fmt", sorted(EXPECTED_FORMATS.items()))
def test_every_fixture_is_detected(relative, fmt):
    assert detect_format(EXPORTS / relative) == fmt


@pytest.mark.parametrize("relative", sorted(k for k, fmt in EXPECTED_FORMATS.items() if fmt != "articles"))
def test_detection_does_not_depend_on_the_extension(tmp_path, relative):
    """Files renamed by a download or a chat app still import: content decides, extension only hints."""
    copy = tmp_path / "export.dat"
    shutil.copy(EXPORTS / relative, copy)
    assert detect_format(copy) == EXPECTED_FORMATS[relative]


@pytest.mark.parametrize("content, expected", [
    (b"", "the file is empty"),
    (b"\xef\xbb\xbf  \n\n", "the file is empty"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "is a binary file"),
    (b"just some notes\nnothing like a chat\n", "cannot tell which export this is"),
    (b'{"hello": "world"}', "cannot tell which export this is"),
    (b"a,b,c,d,e\n1,2,3,4,5\n", "cannot tell which export this is"),
])
def test_undetectable_files_are_clear_errors(tmp_path, content, expected):
    path = tmp_path / "mystery.txt"
    path.write_bytes(content)
    with pytest.raises(InputError, match=expected) as info:
        import_path(path, owner="me")
    assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)


def test_html_exports_get_a_hint(tmp_path):
    path = tmp_path / "messages.html"
    path.write_text("<html><body><div class='message'>hi</div></body></html>")
    with pytest.raises(InputError, match="export as JSON instead"):
        detect_format(path)


def test_missing_path_and_unknown_format_and_zone(tmp_path):
    with pytest.raises(InputError, match="no such file or directory"):
        import_path(tmp_path / "nope.json")
    with pytest.raises(InputError, match="unknown format 'myspace'"):
        import_path(EXPORTS / "telegram" / "result.json", fmt="myspace")
    with pytest.raises(InputError, match="unknown time zone 'Mars/Olympus'"):
        import_path(EXPORTS / "telegram" / "result.json", tz="Mars/Olympus")


def test_a_directory_of_mixed_formats_gives_one_result_per_file(tmp_path):
    root = tmp_path / "exports"
    shutil.copytree(EXPORTS, root)
    (root / "telegram" / "photos").mkdir()
    (root / "telegram" / "photos" / "photo_1.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(64))
    (root / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (root / "notes.txt").write_text("remember to export telegram too\n")
    result = import_path(root, owner=OWNER, tz="Asia/Shanghai")
    formats = {str(s.path.relative_to(root)): s.format for s in result.sources}
    assert formats == EXPECTED_FORMATS
    ignored = {str(p.relative_to(root)): why for p, why in result.ignored}
    assert ignored["telegram/photos/photo_1.jpg"] == "not an export (.jpg)"
    assert "cannot tell which export" in ignored["notes.txt"]
    assert "cannot tell which export" in ignored["wechat/pywxdump/users.json"]
    assert "articles/周末随笔.txt" in ignored and ".DS_Store" not in ignored
    for relative, why in EXPECTED_IGNORED.items():
        assert why in ignored[relative], (relative, ignored.get(relative))
    assert result.problems == []
    assert all(s.stats.owner_messages > 0 for s in result.sources)
    platforms = {m.platform for m in result.messages}
    assert platforms >= {"telegram", "discord", "wechat", "qq", "whatsapp", "sharegpt", "article"}
    assert platforms - {"telegram", "discord", "wechat", "qq", "whatsapp", "sharegpt", "article"} == {
        "line", "imessage", "signal", "messenger", "instagram", "twitter", "weibo"}
    assert all(m.timestamp.tzinfo is not None for m in result.messages)


def test_directory_with_a_broken_file_raises_or_collects(tmp_path):
    shutil.copy(EXPORTS / "telegram" / "single_chat.json", tmp_path / "good.json")
    text = (EXPORTS / "telegram" / "single_chat.json").read_text()
    (tmp_path / "cut.json").write_text(text[: len(text) // 2])
    with pytest.raises(InputError, match=r"cut.json: line \d+: the file ends inside messages\[1\]"):
        import_path(tmp_path, owner="Mia Chen")
    result = import_path(tmp_path, owner="Mia Chen", errors="collect")
    by_name = {s.path.name: s for s in result.sources}
    assert by_name["good.json"].stats.owner_messages == 2
    assert by_name["cut.json"].messages == [] and "truncated JSON" in by_name["cut.json"].error
    assert by_name["cut.json"].error in result.problems


def test_empty_directory_is_an_error(tmp_path):
    (tmp_path / "readme.md.bak").write_text("x")
    with pytest.raises(InputError, match="no chat exports found"):
        import_path(tmp_path)


def test_format_override_applies_to_a_whole_directory(tmp_path):
    shutil.copy(EXPORTS / "articles" / "周末随笔.txt", tmp_path / "a.txt")
    shutil.copy(EXPORTS / "articles" / "2023-05-01-why-i-hike.md", tmp_path / "b.md")
    result = import_path(tmp_path, fmt="articles", owner="Mia", tz="UTC")
    assert [s.format for s in result.sources] == ["articles", "articles"]
    assert all(s.stats.owner_messages for s in result.sources)


def test_owner_names_are_case_insensitive_and_several_are_allowed():
    owner = Owner(["  MIA chen ", "@MiaChen", "12345"])
    assert owner.matches("", "mia CHEN") and owner.matches("miachen") and owner.matches("user12345")
    assert not owner.matches("mia", "chen") and not owner.matches("user123456")
    assert not Owner() and not Owner(["", "  "])


def test_normalized_messages_round_trip_through_jsonl(tmp_path):
    original = import_file(EXPORTS / "telegram" / "result.json").messages
    path = tmp_path / "telegram-result.jsonl"
    assert write_messages(path, original) == len(original)
    assert detect_format(path) == "doppel"
    again = import_file(path)
    assert again.messages == original and again.stats.problems == []
    assert [m.extra for m in again.messages] == [m.extra for m in original]


def test_normalized_jsonl_with_a_bad_line(tmp_path):
    path = tmp_path / "m.jsonl"
    good = import_file(EXPORTS / "telegram" / "single_chat.json", owner="Mia Chen").messages[0].to_json()
    path.write_text(good + "\n" + good.replace('"timestamp": "', '"timestamp": "x') + "\n")
    with pytest.raises(InputError, match=r"m.jsonl: line 2: not a normalized message"):
        import_file(path)


def test_progress_is_reported_per_file_and_every_few_thousand_messages(tmp_path):
    lines = [f"12/03/2023, 09:{i % 60:02d} - {'Mia' if i % 2 else 'Ann'}: message {i}" for i in range(12000)]
    path = tmp_path / "WhatsApp Chat with Ann.txt"
    path.write_text("\n".join(lines) + "\n")
    seen: list[int] = []
    import_path(path, owner="Mia", tz="UTC", progress=lambda file, count: seen.append(count))
    assert seen == [0, 5000, 10000]


def test_big_exports_stream_in_bounded_memory(tmp_path):
    """Reading a 4 MB Telegram export message by message never holds the file."""
    message = ('{"id": %d, "type": "message", "date_unixtime": "%d", "from": "Ann", "from_id": "user2", '
               '"text": "' + "lorem ipsum " * 20 + '"}')
    path = tmp_path / "result.json"
    with path.open("w") as handle:
        handle.write('{"name": "Ann", "type": "personal_chat", "id": 2, "messages": [\n')
        handle.write(",\n".join(message % (i, 1_600_000_000 + i) for i in range(14000)))
        handle.write("]}\n")
    size = path.stat().st_size
    assert size > 4_000_000
    src = Source(path, "telegram", Owner("Ann"), None)
    tracemalloc.start()
    try:
        count = sum(1 for _ in iter_messages(src))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 14000 and src.stats.owner_messages == 14000
    assert peak < size / 3, f"peak {peak} bytes for a {size}-byte file"


# -- doppel data import ---------------------------------------------------------------------------

def test_import_command_writes_one_jsonl_per_source_and_a_summary(tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(data, ["import", str(EXPORTS / "telegram"), str(EXPORTS / "qq"), "--owner", "米娅",
                                       "--owner", "Mia Chen", "--tz", "Asia/Shanghai", "--out", str(out)])
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in out.iterdir())
    assert names == ["import-summary.json", "qq-全部消息记录.jsonl", "qq-高三2班_gb18030.jsonl",
                     "telegram-single_chat.jsonl", "telegram-telegram-result.jsonl"]
    lines = (out / "telegram-single_chat.jsonl").read_text(encoding="utf-8").splitlines()
    assert [Message.from_json(line).text for line in lines] == ["morning! coffee?", "always ☕", "10 min"]
    summary = json.loads((out / "import-summary.json").read_text(encoding="utf-8"))
    assert {s["format"] for s in summary["sources"]} == {"telegram", "qq"}
    assert "imported" in result.output and "全部消息记录" in result.output
    assert "messages from 4 source(s) written to" in result.output


def test_import_command_reports_a_missing_owner_and_fails_when_nobody_is_the_owner(tmp_path):
    result = CliRunner().invoke(data, ["import", str(EXPORTS / "discord"), "--owner", "ghost"])
    assert isinstance(result.exception, InputError)
    assert "none of the sources has a message from the owner" in str(result.exception)
    assert "problem:" in result.output and "never speaks" in result.output and "Tom" in result.output


def test_import_command_with_one_bad_file_fails_after_importing_the_rest(tmp_path):
    shutil.copy(EXPORTS / "telegram" / "single_chat.json", tmp_path / "good.json")
    (tmp_path / "bad.csv").write_text("localId,TalkerId,Type,IsSender\n1,a,1,0\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(data, ["import", str(tmp_path / "good.json"), str(tmp_path / "bad.csv"),
                                       "--owner", "Mia Chen", "--out", str(out)])
    assert isinstance(result.exception, InputError)
    message = str(result.exception)
    assert "1 of 2 source(s) could not be imported" in message and "bad.csv: line 1: missing column(s)" in message
    assert (out / "telegram-good.jsonl").exists() and "failed" in result.output


def test_import_command_dry_run_writes_nothing(tmp_path):
    result = CliRunner().invoke(data, ["import", str(EXPORTS / "sharegpt" / "persona_dataset.jsonl")])
    assert result.exit_code == 0, result.output
    assert "not written (no --out)" in result.output


def test_import_command_help_lists_the_formats():
    result = CliRunner().invoke(data, ["import", "--help"])
    assert result.exit_code == 0
    for fmt in FORMAT_NAMES:
        assert fmt in result.output


def test_a_json_export_resaved_as_utf16_is_named(tmp_path):
    path = tmp_path / "result.json"
    path.write_text((EXPORTS / "telegram" / "single_chat.json").read_text(encoding="utf-8"), encoding="utf-16")
    with pytest.raises(InputError, match=r"result.json: line 1: is not valid UTF-8 text"):
        import_path(path, owner="Mia Chen")


def test_invisible_marks_in_names_do_not_hide_the_owner():
    owner = Owner(["Mia Chen"])
    assert owner.matches("\u200eMia\u00a0Chen\u200f") and owner.matches("\ufeffMIA  CHEN")


def test_progress_appears_only_after_a_second():
    import io

    from rich.console import Console

    from doppel.progress import LazyProgress

    quiet, shown = io.StringIO(), io.StringIO()
    with LazyProgress(Console(file=quiet, force_terminal=True), "fast", delay_s=60) as progress:
        progress.update(10)
    with LazyProgress(Console(file=shown, force_terminal=True, width=80), "slow", total=4, delay_s=0) as progress:
        progress.update(2, "importing big.json")
    assert quiet.getvalue() == ""
    assert "importing big.json" in shown.getvalue()


# -- anything in the right envelope: imported or refused with an InputError, never a traceback ---

_SCALARS = st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats(allow_nan=False, allow_infinity=False) \
    | st.text(max_size=12) | st.sampled_from(["message", "service", "sticker", "Default", "Reply", "human", "gpt",
                                              "2023-01-01T10:00:00", "1672567200", "user1"])
_KEYS = st.sampled_from(["id", "type", "date", "date_unixtime", "from", "from_id", "text", "text_entities",
                         "media_type", "sticker_emoji", "forwarded_from", "photo", "file", "reply_to_message_id",
                         "actor", "actor_id", "action", "timestamp", "content", "author", "name", "nickname",
                         "isBot", "attachments", "stickers", "embeds", "reference", "messageId", "conversations",
                         "messages", "from", "value", "role", "instruction", "output", "history", "system"])
_JSON = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS, inner, max_size=6),
                     max_leaves=25)
_RECORDS = st.lists(st.dictionaries(_KEYS, _JSON, max_size=8) | _JSON, max_size=5)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fmt=st.sampled_from(["telegram", "discord", "sharegpt", "wechat-json"]), records=_RECORDS)
def test_arbitrary_json_records_never_crash(tmp_path, fmt, records):
    path = tmp_path / f"fuzz-{fmt}.json"
    if fmt == "telegram":
        document = json.dumps({"name": "A", "type": "personal_chat", "id": 1, "messages": records})
    elif fmt == "discord":
        document = json.dumps({"guild": {"id": "1", "name": "G"}, "channel": {"id": "2", "type": "GuildTextChat",
                                                                               "name": "c"}, "messages": records})
    else:
        document = "\n".join(json.dumps(r) for r in records)
    path.write_text(document, encoding="utf-8")
    try:
        result = import_file(path, owner="user1", fmt=fmt, tz="UTC")
    except InputError as exc:
        assert str(path) in str(exc) and "\n" not in str(exc)
        return
    assert all(m.timestamp.tzinfo is not None for m in result.messages)


_PREFIXES = st.sampled_from([b"", b"\xef\xbb\xbf", "2016-01-02 15:04:05 阿杰\n".encode(), b"12/03/2023, 09:14 - Bo: ",
                             b"localId,TalkerId,Type,SubType,IsSender,CreateTime,Status,StrContent,StrTime,Remark,"
                             b"NickName,Sender\n", b'{"conversations": [', b"---\ntitle: x\n---\n"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fmt=st.sampled_from(["qq", "whatsapp", "wechat", "wechat-pywxdump", "sharegpt", "articles", "doppel"]),
       prefix=_PREFIXES, body=st.binary(max_size=200))
def test_arbitrary_bytes_never_crash(tmp_path, fmt, prefix, body):
    path = tmp_path / "fuzz.txt"
    path.write_bytes(prefix + body)
    try:
        import_file(path, owner="Bo", fmt=fmt, tz="UTC")
    except InputError as exc:
        assert str(path) in str(exc) and "\n" not in str(exc)
