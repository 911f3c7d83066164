"""The sample persona: the shipped export is what the generator writes, it imports through the
real Telegram importer, the build scrubs every planted value, and Alex's voice is what we claim."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime

import pytest
from click.testing import CliRunner

from doppel.pii import Scrubber
from doppel.pii.findings import TYPES
from doppel.prompt import join_burst
from training.dataset.build import BuildOptions, build_from_paths
from training.dataset.clean import clean
from training.dataset.sessions import split_sessions
from training.importers.detect import detect_format, import_path
from training.importers.messages import Kind
from training.likeness.style import profile, top_phrases
from training.sample_persona import synth as persona_synth
from training.sample_persona.synth import (
    OWNER_ID,
    OWNER_NAME,
    demo_export_path,
    load_planted,
    planted_pii_path,
    write_export,
)
from training.sample_persona.voices import CATCHPHRASES

MAX_EXPORT_BYTES = 2 * 1024 * 1024


@pytest.fixture(scope="module")
def imported():
    """The shipped export, imported the way ``doppel data import`` and the demo do."""
    result = import_path(demo_export_path(), owner=[OWNER_ID], errors="raise")
    assert result.problems == []
    return result


@pytest.fixture(scope="module")
def planted():
    return [p for p in load_planted() if p["where"] != "personal_information"]


@pytest.fixture(scope="module")
def built(tmp_path_factory, planted):
    """``doppel data build``'s own function on the export, into a fresh directory."""
    out = tmp_path_factory.mktemp("persona-build")
    return build_from_paths([demo_export_path()], out, BuildOptions(owner=(OWNER_ID,))), out


def _bursts(messages):
    kept, _ = clean(messages)
    sessions = split_sessions(kept, merge_gap_s=120, session_gap_s=3600)
    return [burst for session in sessions for burst in session.bursts]


def test_the_shipped_files_are_what_the_default_seed_writes(tmp_path):
    export, planted_file = write_export(tmp_path / "persona_telegram.json")
    assert planted_file == tmp_path / "planted_pii.json"
    assert export.read_bytes() == demo_export_path().read_bytes(), \
        "training/sample_persona/data/ drifted from the generator: run python -m training.sample_persona.synth"
    assert planted_file.read_bytes() == planted_pii_path().read_bytes()
    assert demo_export_path().stat().st_size < MAX_EXPORT_BYTES
    assert demo_export_path().parent == persona_synth.demo_dir()


def test_the_export_imports_with_the_owner_and_every_chat(imported):
    (source,) = imported.sources
    assert detect_format(demo_export_path()) == "telegram"
    assert set(source.stats.chats) == {chat.name for chat in persona_synth.CHATS}
    types = {m.chat_name: m.chat_type for m in source.messages}
    assert sorted(types.values()) == ["dm"] * 4 + ["group"] * 4
    assert 2800 <= source.stats.messages <= 3300
    assert 1200 <= source.stats.owner_messages <= 1500
    assert {m.sender_name for m in source.messages if m.is_owner} == {OWNER_NAME}
    assert {m.sender_id for m in source.messages if m.is_owner} == {OWNER_ID}
    kinds = Counter(m.kind for m in source.messages)
    assert all(kinds[k] > 0 for k in (Kind.TEXT, Kind.STICKER, Kind.MEDIA, Kind.FORWARD, Kind.SYSTEM, Kind.EMOJI))
    assert sum(1 for m in source.messages if m.reply_to) > 20
    days = (source.stats.last - source.stats.first).days
    assert 150 <= days <= 200, "about six months"
    assert source.stats.out_of_order == 0


def test_the_full_account_export_marks_the_owner_without_owner_option():
    result = import_path(demo_export_path(), errors="raise")
    assert result.problems == []
    assert {m.sender_name for m in result.messages if m.is_owner} == {OWNER_NAME}


def test_the_export_uses_the_real_format_variety():
    export = json.loads(demo_export_path().read_text(encoding="utf-8"))
    assert export["personal_information"]["user_id"] == persona_synth.OWNER_USER_ID
    records = [m for chat in export["chats"]["list"] for m in chat["messages"]]
    entity_types = {e["type"] for m in records if isinstance(m["text"], list) for e in m["text"] if isinstance(e, dict)}
    assert {"link", "bold", "phone", "email"} <= entity_types
    assert {m["action"] for m in records if m["type"] == "service"} >= {"create_group"}
    assert {m.get("media_type") for m in records} >= {"sticker", "voice_message"}
    assert any("photo" in m for m in records) and any("forwarded_from" in m for m in records)
    assert any("edited" in m for m in records) and any("reply_to_message_id" in m for m in records)
    for record in records:
        local = datetime.fromisoformat(record["date"]).replace(tzinfo=persona_synth.ZONE)
        assert int(record["date_unixtime"]) == int(local.timestamp()), record["id"]
    for chat in export["chats"]["list"]:
        ids = [m["id"] for m in chat["messages"]]
        stamps = [int(m["date_unixtime"]) for m in chat["messages"]]
        assert ids == sorted(set(ids)) and stamps == sorted(stamps), chat["name"]


def test_every_scrubber_type_is_planted_by_both_alex_and_friends(planted):
    assert {p["kind"] for p in planted} == set(TYPES)
    senders = Counter(p["sender"] == OWNER_NAME for p in planted)
    assert senders[True] >= 10 and senders[False] >= 10
    assert len({p["chat"] for p in planted}) == len(persona_synth.CHATS)
    assert {p["where"] for p in planted} == {"message", "forwarded message", "photo caption"}
    assert len({p["value"] for p in planted}) == len(planted), "every planted value is distinct"


def test_the_scrubber_finds_exactly_the_planted_values(imported, planted):
    scrubber = Scrubber()
    found = Counter((f.type, f.value) for m in imported.messages for f in scrubber.find(m.text))
    assert found == Counter((p["kind"], p["value"]) for p in planted)


def test_no_planted_value_reaches_the_built_files(built, planted):
    result, out = built
    files = [path for path in out.rglob("*") if path.is_file()]
    assert {path.name for path in files} >= {"samples.jsonl", "report.json"}
    contents = b"".join(path.read_bytes() for path in files)
    leaked = [p["value"] for p in load_planted() if p["value"].encode() in contents]
    assert leaked == []
    counts = Counter(p["kind"] for p in planted)
    assert all(result.report["pii_found"].get(kind, 0) >= n for kind, n in counts.items()), result.report["pii_found"]
    samples = [json.loads(line) for line in result.samples_path.read_text(encoding="utf-8").splitlines()]
    assert any("<IBAN>" in t["value"] for s in samples for t in s["conversations"])


def test_the_build_makes_enough_samples_for_a_demo(built):
    result, _ = built
    assert result.samples >= 400
    assert result.report["sessions"] >= 200
    assert result.report["messages"]["owner_dropped"].keys() <= {"owner_forward", "media_no_text", "system"}


def test_alex_writes_in_the_claimed_voice(imported):
    bursts = _bursts(imported.messages)
    owner = [burst for burst in bursts if burst.is_owner]
    replies = [join_burst(burst.texts) for burst in owner]
    style = profile(replies)
    messages = [text for burst in owner for text in burst.texts]
    assert style.lowercase_start > 0.95
    assert sum(text == text.lower() for text in messages) / len(messages) > 0.9
    assert style.ends_with_period < 0.02 and style.punctuation["!"] < 0.02
    assert style.messages_per_burst >= 2.2
    assert sum(2 <= len(burst.messages) <= 4 for burst in owner) / len(owner) >= 0.7
    assert sum(any(phrase in reply for phrase in CATCHPHRASES) for reply in replies) / len(replies) >= 0.45
    assert style.emoji_rate >= 0.25
    assert style.ai_ism_rate == 0
    others = [join_burst(burst.texts) for burst in bursts if not burst.is_owner]
    assert len(set(top_phrases(replies, others, k=10)) & {"ngl", "lowkey", "bestie", "hear me out"}) >= 3
    # Enough variety that the clone learns a voice, not a handful of strings: short catchphrase
    # messages repeat (they are the voice), the lines with content hardly do.
    lines = [text for text in messages if len(text.split()) >= 4 and text not in CATCHPHRASES]
    assert len(set(messages)) / len(messages) > 0.5 and len(set(lines)) / len(lines) > 0.6
    assert Counter(lines).most_common(1)[0][1] / len(lines) < 0.02


def test_the_friends_sound_different_from_alex_and_each_other(imported):
    by_speaker: dict[str, list[str]] = {}
    for burst in _bursts(imported.messages):
        if not burst.is_owner:
            by_speaker.setdefault(burst.speaker, []).extend(burst.texts)
    priya, jordan, sam = (by_speaker[name] for name in ("Priya Nair", "Jordan Okafor", "Sam Keller"))
    assert sum(t[0].isupper() and t[-1] in ".?!" for t in priya) / len(priya) > 0.9, "formal"
    assert sum(t == t.upper() for t in jordan) / len(jordan) > 0.9, "all caps"
    assert sorted(len(t) for t in sam)[len(sam) // 2] < 15 and sum(t.endswith((".", "?")) for t in sam) / len(sam) > 0.9


def test_a_reduced_persona_is_small_deterministic_and_keeps_every_planted_kind(tmp_path):
    first, planted_file = write_export(tmp_path / "a" / "result.json", messages=600)
    again, _ = write_export(tmp_path / "b" / "result.json", messages=600)
    assert first.read_bytes() == again.read_bytes()
    assert first.stat().st_size < demo_export_path().stat().st_size / 3
    result = import_path(first, owner=[OWNER_ID], errors="raise")
    (source,) = result.sources
    assert 550 <= source.stats.messages <= 800 and result.problems == []
    assert 0.35 <= source.stats.owner_messages / source.stats.messages <= 0.6
    planted = json.loads(planted_file.read_text(encoding="utf-8"))["values"]
    assert {p["kind"] for p in planted} == set(TYPES)


def test_a_different_seed_gives_a_different_persona_with_the_same_shape(tmp_path):
    export, _ = write_export(tmp_path / "result.json", seed=7, messages=400)
    assert export.read_bytes() != write_export(tmp_path / "again.json", messages=400)[0].read_bytes()
    assert import_path(export, errors="raise").problems == []


def test_the_command_writes_the_export_and_the_planted_values(tmp_path):
    out = tmp_path / "persona" / "result.json"
    result = CliRunner().invoke(persona_synth.main, ["--out", str(out), "--messages", "300", "--seed", "3"])
    assert result.exit_code == 0, result.output
    planted = json.loads((out.parent / "planted_pii.json").read_text(encoding="utf-8"))
    assert planted["owner_id"] == OWNER_ID and planted["seed"] == 3
    assert sum(planted["counts_in_messages"].values()) == len(planted["values"]) - 1   # one is in the profile
    refused = CliRunner().invoke(persona_synth.main, ["--out", str(out), "--messages", "10"])
    assert refused.exit_code != 0 and "--messages" in refused.output
