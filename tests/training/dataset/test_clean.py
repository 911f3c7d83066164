"""Cleaning: what is dropped (and counted under which reason), what is kept as the owner's tone,
opt-outs by chat and by person, repeats, invisible characters, and the blocklist matcher."""

from __future__ import annotations

from dataclasses import replace

from data_helpers import Chat

from training.dataset.clean import (
    DUPLICATE,
    EMPTY,
    EXCLUDED_CHAT,
    EXCLUDED_CONTACT,
    MEDIA_NO_TEXT,
    NOT_INCLUDED_CHAT,
    NOT_INCLUDED_CONTACT,
    OWNER_FORWARD,
    RECALLED,
    SYSTEM,
    Blocklist,
    CleanOptions,
    clean,
    normalize_text,
)
from training.importers.messages import Kind


def _texts(messages):
    return [m.text for m in messages]


def test_service_recalled_media_and_empty_messages_are_dropped_with_their_reason():
    chat = Chat()
    messages = [
        chat.say("Ann", "Ann pinned a message", kind=Kind.SYSTEM),
        chat.say("Ann", "Ann撤回了一条消息"),
        chat.say("Mia", "This message was deleted"),
        chat.say("Ann", "oops", recalled=True),
        chat.say("Ann", "", kind=Kind.MEDIA),
        chat.say("Mia", "<Media omitted>"),
        chat.say("Ann", "[图片]", kind=Kind.MEDIA),
        chat.say("Ann", "   \u200b "),
        chat.say("Ann", "look at this view", kind=Kind.MEDIA),
        chat.say("Mia", "wow"),
    ]
    kept, stats = clean(messages)
    assert _texts(kept) == ["look at this view", "wow"], "a caption is the sender's words; the photo is not"
    assert stats.dropped == {SYSTEM: 1, RECALLED: 3, MEDIA_NO_TEXT: 3, EMPTY: 1}
    assert (stats.read, stats.kept, stats.owner_read, stats.owner_kept) == (10, 2, 3, 1)
    assert stats.owner_dropped == {RECALLED: 1, MEDIA_NO_TEXT: 1}


def test_stickers_and_emoji_stay_as_text_because_they_carry_tone():
    chat = Chat()
    messages = [chat.say("Ann", "晚上吃火锅"), chat.say("Mia", "[捂脸]", kind=Kind.EMOJI),
                chat.say("Mia", "😂", kind=Kind.STICKER), chat.say("Mia", "", kind=Kind.STICKER)]
    kept, stats = clean(messages)
    assert _texts(kept) == ["晚上吃火锅", "[捂脸]", "😂"]
    assert stats.dropped == {MEDIA_NO_TEXT: 1}


def test_the_owners_forwards_are_dropped_but_other_peoples_stay_as_context():
    chat = Chat()
    messages = [chat.say("Ann", "read this: prices are up 10%", kind=Kind.FORWARD),
                chat.say("Mia", "Breaking: a long article", kind=Kind.FORWARD),
                chat.say("Mia", "copied from a channel", forwarded=True),
                chat.say("Mia", "wild")]
    kept, stats = clean(messages)
    assert _texts(kept) == ["read this: prices are up 10%", "wild"]
    assert stats.dropped == {OWNER_FORWARD: 2} and stats.owner_dropped == {OWNER_FORWARD: 2}


def test_chats_are_included_or_excluded_by_id_or_name_case_insensitively():
    work, family, friends = Chat("w", name="Work", group=True), Chat("f", name="Family", group=True), Chat("x")
    messages = [work.say("Bob", "deadline?"), family.say("Mum", "dinner"), friends.say("Ann", "hey")]
    kept, stats = clean(messages, CleanOptions.from_lists(exclude_chats=["WORK"]))
    assert _texts(kept) == ["dinner", "hey"] and stats.dropped == {EXCLUDED_CHAT: 1}
    kept, stats = clean(messages, CleanOptions.from_lists(include_chats=["f", "x"]))
    assert _texts(kept) == ["dinner", "hey"] and stats.dropped == {NOT_INCLUDED_CHAT: 1}


def test_an_excluded_person_disappears_from_groups_and_their_direct_chat_entirely():
    dm_ann, dm_bob, group = Chat("dm-ann", name="Ann"), Chat("dm-bob", name="Bob"), Chat("g", group=True)
    messages = [dm_ann.say("Ann", "secret plans"), dm_ann.say("Mia", "tell me more"),
                dm_bob.say("Bob", "hi"), dm_bob.say("Mia", "hey Bob"),
                group.say("Ann", "hello all"), group.say("Bob", "yo"), group.say("Mia", "hi both")]
    kept, stats = clean(messages, CleanOptions.from_lists(exclude_contacts=["ann"]))
    assert _texts(kept) == ["hi", "hey Bob", "yo", "hi both"]
    assert stats.dropped == {EXCLUDED_CONTACT: 3}, "including the owner's reply in the direct chat with Ann"


def test_an_include_list_keeps_only_those_people_and_the_owner():
    dm_ann, dm_bob, group = Chat("dm-ann", name="Ann"), Chat("dm-bob", name="Bob"), Chat("g", group=True)
    messages = [dm_ann.say("Ann", "hi"), dm_ann.say("Mia", "hey Ann"), dm_bob.say("Bob", "hi"),
                dm_bob.say("Mia", "hey Bob"), group.say("Bob", "yo"), group.say("Ann", "hello"), group.say("Mia", "hi")]
    kept, stats = clean(messages, CleanOptions.from_lists(include_contacts=["id-Ann"]))
    assert _texts(kept) == ["hi", "hey Ann", "hello", "hi"]
    assert stats.dropped == {NOT_INCLUDED_CONTACT: 3}


def test_exact_repeats_from_overlapping_exports_are_dropped_once():
    chat = Chat()
    first = chat.say("Ann", "see you at 8")
    again = replace(first, message_id="other-export-id", source="other.json:9")
    reply = chat.say("Mia", "ok")
    same_words_later = chat.say("Ann", "see you at 8", after=600)
    kept, stats = clean([first, reply, again, same_words_later])
    assert kept == [first, reply, same_words_later]
    assert stats.dropped == {DUPLICATE: 1}


def test_invisible_characters_go_but_emoji_joiners_stay():
    assert normalize_text("\u200ehi\u200b there\ufeff\r\n") == "hi there"
    family = "👨\u200d👩\u200d👧"
    assert normalize_text(f" {family} ") == family
    chat = Chat()
    kept, _ = clean([chat.say("Ann", "\u202bمرحبا\u202c")])
    assert kept[0].text == "مرحبا"


def test_naive_timestamps_are_read_as_utc():
    chat = Chat()
    message = chat.say("Ann", "hi")
    naive = replace(message, timestamp=message.timestamp.replace(tzinfo=None))
    kept, _ = clean([naive])
    assert kept[0].timestamp.utcoffset().total_seconds() == 0


def test_blocklist_matches_words_case_insensitively_and_empty_means_off():
    blocklist = Blocklist(["Project X", "密码", " "])
    assert blocklist.words == ("Project X", "密码")
    assert blocklist.matches("about project x tomorrow") and blocklist.matches("我的密码忘了")
    assert not blocklist.matches("project y")
    assert not Blocklist([]) and not Blocklist([]).matches("anything")
