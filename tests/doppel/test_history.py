"""Channel history in Redis: atomic seq, trimming, TTL, and a chunk-aligned window."""

from __future__ import annotations

from doppel.history import HistoryOptions, StoredTurn, forget, load, record, seq_key, window
from doppel.prompt import Turn


def stored(n: int, text: str = "x") -> list[StoredTurn]:
    return [StoredTurn(i, Turn("Ann", text, float(i)), str(i)) for i in range(1, n + 1)]


async def test_record_numbers_turns_and_trims(aredis, keys):
    options = HistoryOptions(max_stored=5, ttl_s=60)
    for i in range(8):
        assert await record(aredis, keys, "c", Turn("Ann", f"m{i}", float(i)), options=options) == i + 1
    turns = await load(aredis, keys, "c", HistoryOptions(max_turns=10, chunk_turns=0))
    assert [t.seq for t in turns] == [4, 5, 6, 7, 8]
    assert [t.turn.text for t in turns] == ["m3", "m4", "m5", "m6", "m7"]
    assert 0 < await aredis.ttl(keys.history("c")) <= 60
    await forget(aredis, keys, "c")
    assert not await aredis.exists(keys.history("c"), seq_key(keys, "c"))


async def test_a_corrupt_entry_is_skipped_not_fatal(aredis, keys):
    await record(aredis, keys, "c", Turn("Ann", "hi", 1.0))
    await aredis.rpush(keys.history("c"), "{not json")
    await record(aredis, keys, "c", Turn("Bob", "yo", 2.0))
    assert [t.turn.text for t in await load(aredis, keys, "c")] == ["hi", "yo"]


async def test_unicode_survives_the_lua_path(aredis, keys):
    await record(aredis, keys, "c", Turn("Zoë", 'قال "hi" 😂\n\n[捂脸]', 1.0))
    [turn] = await load(aredis, keys, "c")
    assert turn.turn.speaker == "Zoë" and turn.turn.text == 'قال "hi" 😂\n\n[捂脸]'


def test_window_starts_on_a_chunk_and_keeps_its_start_while_the_chat_grows():
    options = HistoryOptions(max_turns=20, chunk_turns=10, token_budget=10_000)
    starts = [window(stored(n), options)[0].seq for n in range(25, 45)]
    assert all(s % 10 == 0 for s in starts)
    assert all(len(window(stored(n), options)) <= 20 for n in range(25, 45))
    assert len(set(starts)) <= 3, "the start must move in chunks, not one turn at a time"


def test_window_respects_the_token_budget_and_always_keeps_the_newest():
    options = HistoryOptions(max_turns=40, chunk_turns=5, token_budget=100)
    turns = stored(30, text="y" * 30)  # ~11 tokens each with the default estimate
    chosen = window(turns, options)
    assert sum(len(t.turn.text) // 3 + 1 for t in chosen) <= 100
    assert chosen[-1].seq == 30
    huge = stored(3, text="z" * 10_000)
    assert [t.seq for t in window(huge, options)] == [3]


def test_a_young_channel_keeps_all_its_turns():
    options = HistoryOptions(max_turns=60, chunk_turns=20, token_budget=10_000)
    assert [t.seq for t in window(stored(7), options)] == list(range(1, 8))
    assert len(window(stored(59), options)) == 59
