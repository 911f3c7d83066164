"""Sessions and bursts: merge gap, session gap, per-chat ordering, blocklisted turns."""

from __future__ import annotations

import random
from dataclasses import replace

from data_helpers import Chat

from training.dataset.clean import Blocklist
from training.dataset.sessions import SessionStats, split_sessions


def _shape(sessions):
    return [[(b.speaker, b.texts) for b in s.bursts] for s in sessions]


def test_one_senders_quick_messages_form_one_burst_and_a_pause_starts_another():
    chat = Chat()
    messages = [chat.say("Ann", "hey"), chat.say("Ann", "you there?", after=20),
                chat.say("Mia", "yes", after=40), chat.say("Mia", "what's up", after=15), chat.say("Mia", "?", after=5),
                chat.say("Mia", "hello??", after=600)]
    stats = SessionStats()
    sessions = split_sessions(messages, merge_gap_s=120, session_gap_s=3600, stats=stats)
    assert _shape(sessions) == [[("Ann", ["hey", "you there?"]), ("Mia", ["yes", "what's up", "?"]),
                                 ("Mia", ["hello??"])]]
    assert stats.owner_burst_sizes == {3: 1, 1: 1} and stats.owner_gaps == [15, 5]
    assert (stats.chats, stats.sessions, stats.bursts, stats.owner_bursts) == (1, 1, 3, 2)


def test_a_long_silence_splits_the_chat_into_sessions():
    chat = Chat()
    messages = [chat.say("Ann", "night"), chat.say("Mia", "night!"),
                chat.say("Ann", "morning", after=8 * 3600), chat.say("Mia", "morning :)")]
    sessions = split_sessions(messages, merge_gap_s=120, session_gap_s=3600)
    assert _shape(sessions) == [[("Ann", ["night"]), ("Mia", ["night!"])],
                                [("Ann", ["morning"]), ("Mia", ["morning :)"])]]
    assert sessions[1].start - sessions[0].start == 8 * 3600 + 30
    assert all(not s.group and s.chat_name == "Ann" for s in sessions)


def test_chats_never_mix_and_shuffled_exports_are_put_back_in_time_order():
    dm, group = Chat("dm"), Chat("g", group=True)
    messages = [dm.say("Ann", "1"), group.say("Bob", "a"), dm.say("Mia", "2"), group.say("Mia", "b"),
                dm.say("Ann", "3"), group.say("Bob", "c")]
    shuffled = messages[:]
    random.Random(7).shuffle(shuffled)
    sessions = split_sessions(shuffled, merge_gap_s=1, session_gap_s=3600)
    by_chat = {s.chat_id: [t for b in s.bursts for t in b.texts] for s in sessions}
    assert by_chat == {"dm": ["1", "2", "3"], "g": ["a", "b", "c"]}
    assert {s.chat_id: s.group for s in sessions} == {"dm": False, "g": True}


def test_same_name_different_sender_is_not_merged():
    group = Chat("g", group=True)
    first = group.say("Ann", "hi")
    other_ann = group.say("Ann", "I'm the other Ann")
    other_ann = replace(other_ann, sender_id="id-Ann-2")
    sessions = split_sessions([first, other_ann], merge_gap_s=120, session_gap_s=3600)
    assert len(sessions[0].bursts) == 2


def test_a_blocklisted_word_removes_the_whole_burst_it_was_said_in():
    chat = Chat()
    messages = [chat.say("Ann", "how's the launch"), chat.say("Mia", "ok so"),
                chat.say("Mia", "Project X ships friday"), chat.say("Mia", "don't tell anyone"),
                chat.say("Ann", "nice"), chat.say("Mia", "yep", after=300)]
    stats = SessionStats()
    sessions = split_sessions(messages, merge_gap_s=120, session_gap_s=3600, blocklist=Blocklist(["project x"]),
                              stats=stats)
    assert _shape(sessions) == [[("Ann", ["how's the launch"]), ("Ann", ["nice"]), ("Mia", ["yep"])]]
    assert (stats.blocked_turns, stats.blocked_messages) == (1, 3)


def test_a_session_of_only_blocked_turns_is_not_a_session():
    chat = Chat()
    sessions = split_sessions([chat.say("Ann", "the secret word")], merge_gap_s=120, session_gap_s=3600,
                              blocklist=Blocklist(["secret"]))
    assert sessions == []
