"""signal-export Markdown: "Me", quotes, reactions, stickers, attachments, deletions, calls, old layouts."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from training.importers import signal, whatsapp
from training.importers.base import Owner, Source, clean_name, clean_text
from training.importers.detect import import_file
from training.importers.messages import Kind

EXPORTS = Path(__file__).parents[2] / "fixtures" / "exports" / "signal"
DM = EXPORTS / "Ann Lee" / "chat.md"
GROUP = EXPORTS / "Climbing Crew" / "index.md"
ARTICLE = Path(__file__).parents[2] / "fixtures" / "exports" / "articles" / "2023-05-01-why-i-hike.md"


def test_sniff_tells_a_chat_from_an_article():
    assert signal.sniff(DM.read_text(encoding="utf-8")) > 20
    assert signal.sniff(GROUP.read_text(encoding="utf-8")) > 5
    assert signal.sniff(ARTICLE.read_text(encoding="utf-8")) == 0
    assert signal.sniff("# Notes\n\n[2023-05-14] was a good day: we hiked\n") == 0
    # Message lines alone also fit WhatsApp with ISO dates; signal-export's own marks tip the balance.
    for chat in (DM, GROUP):
        head = chat.read_text(encoding="utf-8")
        assert signal.sniff(head) > 1.5 * whatsapp.sniff(head) > 0
    iso_whatsapp = "[2023-05-14 21:03:07] Ann: hi\n[2023-05-14 21:04:00] Bo: hey\n"
    assert signal.sniff(iso_whatsapp) == whatsapp.sniff(iso_whatsapp) == 2


def test_dm():
    result = import_file(DM, fmt="signal", tz="Europe/Berlin")   # "Me" is the owner without --owner
    assert {(m.platform, m.chat_name, m.chat_type) for m in result.messages} == {("signal", "Ann Lee", "dm")}
    summary = [(m.message_id, m.sender_name, m.is_owner, m.kind, m.text) for m in result.messages]
    assert summary == [
        ("1", "Ann Lee", False, Kind.TEXT, "are you still up?"),
        ("2", "Me", True, Kind.TEXT, "yes!! just got home"),
        ("4", "Ann Lee", False, Kind.MEDIA, "look at this"),
        ("5", "Me", True, Kind.TEXT, "the view!! where is that"),           # the quote is not the owner's words
        ("10", "Ann Lee", False, Kind.TEXT, "top of the hill\ntook forever to get up"),
        ("13", "Ann Lee", False, Kind.STICKER, "🥳"),
        ("15", "Me", True, Kind.STICKER, "😎"),
        ("16", "Me", True, Kind.SYSTEM, "(This message was deleted)"),
        ("17", "Ann Lee", False, Kind.SYSTEM, "Missed voice call"),
        ("18", "Me", True, Kind.MEDIA, "voice note coming"),
        ("19", "Me", True, Kind.TEXT, "שלום means hi"),                    # RTL marks, zero-width space gone
        ("20", "Ann Lee", False, Kind.TEXT, "ok see you [tomorrow](https://example.com/plan)"),  # a web link stays
        ("21", "Ann Lee", False, Kind.MEDIA, ""),
    ]
    by_id = {m.message_id: m for m in result.messages}
    assert by_id["1"].timestamp.isoformat() == "2023-05-14T21:03:07+02:00"
    assert by_id["2"].extra == {"reactions": [{"reaction": "❤️", "by": "Ann Lee"}]}
    assert by_id["4"].extra == {"attachments": ["IMG_0042.jpg"]}
    assert by_id["5"].extra == {"quote": "look at this"}
    assert by_id["10"].extra["reactions"] == [{"reaction": "😂", "by": "Me"}, {"reaction": "👍", "by": "Ann Lee"}]
    assert by_id["16"].extra == {"recalled": True}
    assert by_id["18"].extra == {"attachments": ["voice note.m4a"]}
    assert by_id["21"].extra == {"attachments": ["IMG_0050 (1).jpg"], "reactions": [{"reaction": "👍", "by": "Me"}]}
    assert result.stats.skipped == {"message without text (group change or other notice)": 1}
    assert result.stats.owner_marked and result.stats.owner_messages == 5 and result.stats.problems == []


def test_old_layout_group_from_index_md():
    result = import_file(GROUP, fmt="signal", tz="UTC")
    assert {(m.chat_name, m.chat_type) for m in result.messages} == {("Climbing Crew", "group")}
    summary = [(m.timestamp.strftime("%d %H:%M"), m.sender_name, m.is_owner, m.text) for m in result.messages]
    assert summary == [
        ("29 15:04", "Me", True, "How is everyone?"),
        ("29 15:10", "Aya", False, "We're great!"),
        ("29 15:20", "Jim", False, "I'm not.\nsprained my ankle 🤕"),
        ("29 15:22", "Aya", False, "oh no!! [2019-05-30, 09:00] works for a visit?"),
        ("30 09:05", "Jim", False, "👍"),
    ]
    assert result.messages[3].extra == {"quote": "I'm not.\nsprained my ankle 🤕"}


def test_an_owner_name_also_matches(tmp_path):
    path = tmp_path / "chat.md"
    path.write_text("[2023-05-14 21:03] Ann: hi  \n[2023-05-14 21:04] Mia Chen: hey  \n", encoding="utf-8")
    result = import_file(path, owner="mia chen", fmt="signal", tz="UTC")
    assert [(m.sender_name, m.is_owner) for m in result.messages] == [("Ann", False), ("Mia Chen", True)]
    assert result.messages[0].chat_name == tmp_path.name   # chat.md: the folder names the chat


def _src() -> Source:
    return Source(Path("Prop/chat.md"), "signal", Owner(["me"]), UTC)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=60), st.sampled_from(
    ["[2023-05-14 21:03:07] Ann: hi", "[2023-02-30 21:03] Ann: x", "[2023-05-14, 21:03] Me: ", "> quoted", ">",
     "(- Ann: 👍 -)", "(- -)", "(( 😀 ))", "![a.jpg](./media/a.jpg)  ", "[x](../exported_stickers/p/1.webp)", "",
     "(This message was deleted)"])), max_size=40))
def test_any_lines_never_raise(lines):
    for message in signal.parse_lines(_src(), enumerate(lines, 1)):
        assert message.timestamp.tzinfo is not None


_NAME = st.text(alphabet=st.sampled_from("AnnBoMia Chen李明😀"), min_size=1, max_size=10).filter(
    lambda n: clean_name(n) != "" and n == n.strip())
_TEXT = st.lists(st.text(alphabet=st.sampled_from("hi there, ok? 好的😂:-/"), min_size=1, max_size=25),
                 min_size=1, max_size=3).map("\n".join).filter(lambda t: clean_text(t) != "")


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(messages=st.lists(st.tuples(st.datetimes(min_value=datetime(2015, 1, 1), max_value=datetime(2030, 1, 1)),
                                   _NAME, _TEXT), min_size=1, max_size=10))
def test_written_chats_read_back(tmp_path, messages):
    messages = sorted(messages, key=lambda m: m[0])   # signal-export writes a chat in time order
    # As signal-export's Message.to_md writes them: the body, then two spaces.
    lines = [f"[{when:%Y-%m-%d %H:%M:%S}] {name}: {text}  " for when, name, text in messages]
    path = tmp_path / "chat.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = import_file(path, fmt="signal", tz="UTC")
    expected = [(when.replace(microsecond=0, tzinfo=UTC), clean_name(name), clean_text(text))
                for when, name, text in messages]
    assert [(m.timestamp, m.sender_name, m.text) for m in result.messages] == expected
