"""Instagram and Messenger JSON (Meta's download): pages merged oldest first, mojibake repaired, kinds."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from doppel.errors import InputError
from training.importers import meta
from training.importers.detect import import_file, import_path
from training.importers.messages import Kind

EXPORTS = Path(__file__).parents[2] / "fixtures" / "exports"
INBOX = EXPORTS / "meta" / "facebook" / "messages" / "inbox"
DM = INBOX / "zoemartin_10158234567890123"
GROUP = INBOX / "hikingcrew_5678901234567890" / "message_1.json"
INSTAGRAM = (EXPORTS / "meta" / "instagram" / "your_instagram_activity" / "messages" / "inbox"
             / "annlee_17841400123456789" / "message_1.json")


@pytest.fixture(scope="module")
def dm():
    return import_file(DM / "message_1.json", fmt="meta", owner="Mia Chen", tz="UTC")


def texts(result):
    return [(m.sender_name, m.kind, m.text) for m in result.messages]


def test_a_chat_of_two_pages_comes_out_once_oldest_first(dm):
    stamps = [m.timestamp for m in dm.messages]
    assert stamps == sorted(stamps) and len(stamps) == 11
    # message_2.json holds the older half: it comes first, then message_1.json's.
    assert [m.source.rsplit("/", 1)[-1] for m in dm.messages[:5]] == [
        "message_2.json:messages[3]", "message_2.json:messages[2]", "message_2.json:messages[1]",
        "message_2.json:messages[0]", "message_1.json:messages[6]"]
    assert [m.message_id for m in dm.messages] == [str(n) for n in range(1, 12)]
    assert dm.stats.out_of_order == 0 and dm.stats.records == 11
    assert {m.chat_id for m in dm.messages} == {"inbox/zoemartin_10158234567890123"}


def test_the_other_pages_yield_nothing_and_name_the_first():
    assert meta.continuation_of(DM / "message_2.json") == DM / "message_1.json"
    assert meta.continuation_of(DM / "message_1.json") is None
    assert meta.continuation_of(GROUP.with_name("photos.json")) is None
    result = import_file(DM / "message_2.json", fmt="meta", owner="Mia Chen")
    assert result.messages == [] and result.stats.skipped == {"page of the chat in message_1.json (read with it)": 1}


def test_a_lone_later_page_is_read_on_its_own(tmp_path):
    chat = tmp_path / "inbox" / "zoemartin_10158234567890123"
    chat.mkdir(parents=True)
    shutil.copy(DM / "message_2.json", chat / "message_2.json")
    result = import_file(chat / "message_2.json", fmt="meta", owner="Mia Chen", tz="UTC")
    assert [m.text for m in result.messages if m.is_owner] == ["dinner tomorrow? the new ramen place 🍜"]


def test_a_whole_inbox_gives_each_chat_once_in_time_order():
    result = import_path(INBOX, fmt="meta", owner="Mia Chen", tz="UTC")
    chats: dict[str, set] = {}
    for source in result.sources:
        for message in source.messages:
            chats.setdefault(message.chat_name, set()).add(source.path.name)
    assert chats == {"Zoë Martín": {"message_1.json"}, "Hiking Crew 🥾": {"message_1.json"}}
    for name in chats:
        stamps = [m.timestamp for m in result.messages if m.chat_name == name]
        assert stamps == sorted(stamps)
    assert len(result.messages) == 18
    # Page 2 is read with page 1: the directory import leaves it out, with the reason.
    assert all(s.messages for s in result.sources)
    assert [(p.name, why) for p, why in result.ignored] == [("message_2.json", "page of the chat in message_1.json "
                                                                                "(read with it)")]


def test_mojibake_is_repaired_in_names_titles_texts_and_reactions(dm):
    assert dm.messages[0].chat_name == "Zoë Martín" and dm.messages[0].sender_name == "Zoë Martín"
    cafe = dm.messages[1]
    assert cafe.text == "café was amazing ☕ merci!!"
    assert cafe.extra["reactions"] == [{"reaction": "❤", "actor": "Mia Chen"}]
    assert dm.messages[4].text == "周末去爬山吗？\n我带咖啡 ☕"


@pytest.mark.parametrize("text, expected", [
    ("Zo\u00c3\u00ab", "Zoë"),
    ("\u00e5\u0091\u00a8\u00e6\u009c\u00ab", "周末"),
    ("\u00f0\u009f\u0098\u0082", "😂"),
    ("café", "café"),          # real latin-1 text is not UTF-8 bytes: left alone
    ("周末 ☕", "周末 ☕"),      # already repaired (or never broken): left alone
    ("plain", "plain"),
])
def test_repair(text, expected):
    assert meta.repair(text) == expected


def test_owner_flags_and_counts(dm):
    owners = {m.sender_name for m in dm.messages if m.is_owner}
    assert owners == {"Mia Chen"}
    assert dm.stats.owner_messages == 5 and dm.stats.problems == []
    assert {m.chat_type for m in dm.messages} == {"dm"} and {m.platform for m in dm.messages} == {"messenger"}


def test_times_are_the_millisecond_epoch_in_the_given_zone():
    utc = import_file(DM / "message_1.json", fmt="meta", owner="Mia Chen", tz="UTC").messages[0]
    shanghai = import_file(DM / "message_1.json", fmt="meta", owner="Mia Chen", tz="Asia/Shanghai").messages[0]
    assert utc.timestamp == datetime(2023, 5, 13, 18, 2, 11, tzinfo=UTC)
    assert shanghai.timestamp == utc.timestamp and shanghai.timestamp.tzinfo == ZoneInfo("Asia/Shanghai")
    assert shanghai.timestamp.hour == 2


@pytest.mark.parametrize("index, sender, kind, text, extra", [
    (0, "Zoë Martín", Kind.SYSTEM, "Zoë called you.", {"call_duration": 312}),
    (5, "Zoë Martín", Kind.MEDIA, "", {"media": "photo"}),
    (6, "Zoë Martín", Kind.MEDIA, "", {"link": "https://www.example.com/ramen-guide"}),  # link only: no words
    (7, "Mia Chen", Kind.TEXT, "ok I'm 10 min late, sorry!! 🙈", {}),
    (8, "Zoë Martín", Kind.SYSTEM, "", {"recalled": True}),                              # is_unsent
    (9, "Mia Chen", Kind.STICKER, "[sticker]", {}),    # same millisecond as the next: listed after it
    (10, "Mia Chen", Kind.EMOJI, "😂😂", {"reactions": [{"reaction": "😆", "actor": "Zoë Martín"}]}),
])
def test_kinds_in_a_dm(dm, index, sender, kind, text, extra):
    message = dm.messages[index]
    assert (message.sender_name, message.kind, message.text, message.extra) == (sender, kind, text, extra)


def test_group_chat():
    result = import_file(GROUP, fmt="meta", owner="mia chen", tz="UTC")
    assert {(m.chat_name, m.chat_type) for m in result.messages} == {("Hiking Crew 🥾", "group")}
    assert texts(result) == [
        ("Ann Lee", Kind.SYSTEM, "Ann Lee added 李雷 to the group."),
        ("Ann Lee", Kind.SYSTEM, "Ann Lee named the group Hiking Crew 🥾."),
        ("李雷", Kind.TEXT, "我带帐篷 ⛺"),
        ("Mia Chen", Kind.TEXT, "route for sunday? @Ann Lee"),
        ("Ann Lee", Kind.MEDIA, ""),                 # a voice message
        ("Mia Chen", Kind.MEDIA, "the summit!!"),    # a video keeps its caption
        ("Facebook user", Kind.TEXT, "nice one"),    # a deleted account
    ]
    assert result.messages[4].extra == {"media": "audio"}
    assert result.messages[2].extra["reactions"][1] == {"reaction": "😮", "actor": "Zoë Martín"}


def test_instagram_chat_notices_and_shares():
    result = import_file(INSTAGRAM, fmt="meta", owner="Mia Chen", tz="UTC")
    assert {m.platform for m in result.messages} == {"instagram"}
    assert texts(result) == [
        ("Ann Lee", Kind.MEDIA, ""),                            # "Ann sent an attachment." is not her words
        ("Mia Chen", Kind.TEXT, "omg I want to go"),
        ("Ann Lee", Kind.SYSTEM, "Reacted ❤️ to your message"),
        ("Ann Lee", Kind.TEXT, "see you saturday 👋"),
        ("Mia Chen", Kind.SYSTEM, "Liked a message"),
        ("Mia Chen", Kind.EMOJI, "👍"),
    ]
    assert result.messages[0].extra == {"link": "https://www.instagram.com/p/Cr1a2b3c4d5/",
                                        "share_text": "Sunset at the ridge 🌄"}
    assert result.stats.owner_messages == 2


def test_without_owner_the_senders_are_listed():
    result = import_file(INSTAGRAM, fmt="meta")
    assert "pass --owner" in result.stats.problems[0] and "Ann Lee (3)" in result.stats.problems[0]


def test_sniff_scores_meta_pages_and_nothing_else():
    for page in (DM / "message_1.json", DM / "message_2.json", GROUP, INSTAGRAM):
        assert meta.sniff(page.read_text()) >= 4
    others = [EXPORTS / "telegram" / "result.json", EXPORTS / "sharegpt" / "openai_chats.jsonl",
              *sorted((EXPORTS / "discord").glob("*.json"))]
    assert [meta.sniff(p.read_text(encoding="utf-8")) for p in others] == [0] * len(others)


def write(tmp_path: Path, data, name: str = "message_1.json") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


@pytest.mark.parametrize("data, error", [
    ([1, 2], r"message_1.json: is not an Instagram/Messenger export \(expected a JSON object"),
    ({"participants": []}, r"message_1.json: has no 'messages' list"),
    ({"messages": {}}, r"message_1.json: 'messages' is not a list"),
    ({"messages": ["hi"]}, r"message_1.json: messages\[0\]: a message is not a JSON object"),
    ({"messages": [{"sender_name": "A", "timestamp_ms": "soon"}]},
     r"message_1.json: messages\[0\]: timestamp_ms 'soon' is not a time in milliseconds"),
    ({"messages": [{"sender_name": "A", "timestamp_ms": 10 ** 30}]}, r"messages\[0\]: timestamp_ms 1000"),
    ('{"messages": [{"sender_name": "A",', r"message_1.json: line 1: the file ends inside messages\[0\]"),
])
def test_bad_pages_are_one_line_errors_naming_the_file_and_record(tmp_path, data, error):
    with pytest.raises(InputError, match=error):
        import_file(write(tmp_path, data), fmt="meta", owner="A")


def test_an_error_on_a_later_page_names_that_page(tmp_path):
    write(tmp_path, {"messages": [{"sender_name": "A", "timestamp_ms": 1684000000000, "content": "hi"}]})
    write(tmp_path, {"messages": [{"sender_name": "A", "timestamp_ms": None}]}, "message_2.json")
    with pytest.raises(InputError, match=r"message_2.json: messages\[0\]: timestamp_ms None"):
        import_file(tmp_path / "message_1.json", fmt="meta", owner="A")


KEYS = ["participants", "messages", "name", "sender_name", "timestamp_ms", "timestamp", "content", "reactions",
        "reaction", "actor", "photos", "videos", "audio_files", "share", "link", "share_text", "sticker",
        "is_unsent", "call_duration", "type", "title", "thread_path", "thread_type", "uri"]
SCALARS = st.none() | st.booleans() | st.integers(-10 ** 20, 10 ** 20) | st.floats() | \
    st.sampled_from(["Regular", "RegularGroup", "Call", "Zo\u00c3\u00ab", "\u00e2\u009d", "x sent an attachment."]) | \
    st.text(max_size=12)
JSONISH = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                       | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=4), inner, max_size=6),
                       max_leaves=30)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=JSONISH | st.fixed_dictionaries({"participants": JSONISH, "messages": st.lists(JSONISH, max_size=5)}),
       cut=st.integers(0, 400))
def test_any_json_is_messages_or_one_input_error(tmp_path, data, cut):
    text = json.dumps(data)
    for body in (text, text[:cut]):
        path = write(tmp_path, body)
        try:
            result = import_file(path, fmt="meta", owner="A")
        except InputError as exc:
            message = str(exc)
            assert "\n" not in message and message.startswith(str(path))
        else:
            assert all(m.timestamp.tzinfo is not None for m in result.messages)
