"""The whole build: messages in, samples.jsonl + report.json + report.png out; why a build made
nothing; the command line on a real Telegram export and on normalized JSONL; [data] settings."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from click.testing import CliRunner
from data_helpers import Chat

from doppel.config import settings_from_dict
from doppel.errors import ConfigError, DoppelError, InputError
from training.cli.build import build_cmd
from training.dataset.build import BuildOptions, build_dataset, build_from_paths
from training.importers.detect import import_path
from training.importers.messages import Kind
from training.importers.normalized import write_messages

PHONE, EMAIL = "13812345678", "mia.chen@example.com"


def _conversation():
    dm, group = Chat("dm", name="Ann"), Chat("g", name="Hikers", group=True)
    return [
        dm.say("Ann", "在吗"), dm.say("Mia", "在"), dm.say("Mia", "咋了"),
        dm.say("Ann", "你电话多少，我存一下"), dm.say("Mia", PHONE), dm.say("Mia", f"邮箱 {EMAIL}"),
        dm.say("Ann", "收到", after=100), dm.say("Mia", "[捂脸]", kind=Kind.EMOJI),
        dm.say("Ann", "Ann pinned a message", kind=Kind.SYSTEM),
        dm.say("Mia", "A forwarded article", kind=Kind.FORWARD),
        dm.say("Ann", "周末爬山？", after=7200), dm.say("Mia", "去！"), dm.say("Mia", "几点"),
        group.say("Bob", "saturday hike?"), group.say("Ann", "I'm in"), group.say("Mia", "same"),
        group.say("Mia", "bringing snacks"), group.say("Bob", "the secret trail"), group.say("Mia", "ok"),
    ]


def test_build_writes_samples_and_a_report_without_private_data(tmp_path):
    result = build_dataset(_conversation(), tmp_path, BuildOptions(blocklist=("secret trail",)))
    lines = result.samples_path.read_text(encoding="utf-8").splitlines()
    samples = [json.loads(line) for line in lines]
    assert result.samples == len(samples) == 5
    for sample in samples:
        assert set(sample) == {"conversations", "system", "meta"}
        assert sample["conversations"][0]["from"] == "human" and sample["conversations"][-1]["from"] == "gpt"
        assert sample["system"].startswith("You are Mia.")
    everything = result.samples_path.read_text() + result.report_path.read_text()
    assert PHONE not in everything and EMAIL not in everything
    replies = [s["conversations"][-1]["value"] for s in samples]
    # Bob's blocked turn leaves "ok" right after Mia's burst: one reply of two turns.
    assert replies == ["在\n\n咋了", "<PHONE>\n\n邮箱 <EMAIL>", "[捂脸]", "去！\n\n几点",
                       "same\n\nbringing snacks\n\nok"]
    assert not any("forwarded" in v["value"] for s in samples for v in s["conversations"])
    assert not any("secret trail" in v["value"] for s in samples for v in s["conversations"])

    report = json.loads(result.report_path.read_text())
    assert report["sources"] == {"export-dm.json": 13, "export-g.json": 6}
    assert report["messages"]["read"] == 19 and report["messages"]["dropped"] == {"system": 1, "owner_forward": 1}
    assert report["messages"]["owner_share"] == round(10 / 17, 4)
    assert report["sessions"] == 3 and report["turns"]["dropped_by_blocklist"] == 1
    assert report["pii_found"] == {"EMAIL": 1, "PHONE": 1}
    assert report["samples"]["written"] == 5 and report["zero_samples_reason"] is None
    assert sum(report["reply_length_chars"]["histogram"].values()) == 5
    assert report["owner_activity_by_hour"][20] + report["owner_activity_by_hour"][22] == 10
    assert report["settings"]["length_counter"] == "estimate" and report["settings"]["blocklist"] == ["secret trail"]
    assert result.chart_path is not None and result.chart_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert report["chart"] == str(result.chart_path)
    assert not list(tmp_path.glob("*.partial"))


def test_top_phrases_count_the_owners_repeated_short_messages(tmp_path):
    chat = Chat()
    messages = []
    for i in range(4):
        messages += [chat.say("Ann", f"q{i}", after=200), chat.say("Mia", "哈哈哈哈"),
                     chat.say("Mia", f"a{i}", after=130)]
    messages += [chat.say("Ann", "number?", after=200), chat.say("Mia", PHONE), chat.say("Ann", "again?", after=200),
                 chat.say("Mia", PHONE)]
    report = build_dataset(messages, tmp_path).report
    assert report["top_owner_phrases"][0] == ["哈哈哈哈", 4]
    assert ["<phone>", 2] in report["top_owner_phrases"], "phrases are scrubbed too"


@pytest.mark.parametrize("case, expected", [
    ("empty", "no messages were read"),
    ("no_owner", "owner not found: none of the 3 messages is marked as the owner's (--owner: none given); "
                 "most frequent senders: Ann (2), Bob (1)"),
    ("all_forwards", "all 2 owner messages were filtered out by cleaning: owner_forward 2"),
    ("only_owner", "too few messages: only the owner's 2 messages are left, nobody else's"),
    ("never_replies", "the owner never answers anyone: all 2 times the owner speaks, nobody else spoke before"),
    ("too_long", "every sample is longer than max_length=64 tokens even with one context turn (1 of 1 owner replies)"),
    ("blocked", "all owner turns were removed by the blocklist (1 turns, 1 messages)"),
])
def test_a_build_with_no_samples_says_why_with_counts(tmp_path, case, expected):
    chat = Chat()
    options = BuildOptions()
    if case == "empty":
        messages = []
    elif case == "no_owner":
        messages = [chat.say("Ann", "hi"), chat.say("Bob", "yo"), chat.say("Ann", "?")]
    elif case == "all_forwards":
        messages = [chat.say("Ann", "hi"), chat.say("Mia", "fwd 1", kind=Kind.FORWARD),
                    chat.say("Mia", "fwd 2", kind=Kind.FORWARD)]
    elif case == "only_owner":
        messages = [chat.say("Ann", "", kind=Kind.MEDIA), chat.say("Mia", "note to self"), chat.say("Mia", "todo")]
    elif case == "never_replies":
        messages = [chat.say("Mia", "good morning"), chat.say("Ann", "morning", after=600),
                    chat.say("Mia", "night", after=86_400)]
    elif case == "too_long":
        messages = [chat.say("Ann", "tell me everything"), chat.say("Mia", "so " * 300)]
        options = BuildOptions(max_length=64)
    else:
        messages = [chat.say("Ann", "what's the plan"), chat.say("Mia", "the surprise party")]
        options = BuildOptions(blocklist=("surprise",))
    result = build_dataset(messages, tmp_path, options)
    assert result.samples == 0
    assert result.report["zero_samples_reason"].startswith(expected), result.report["zero_samples_reason"]
    assert json.loads(result.report_path.read_text())["zero_samples_reason"] == result.report["zero_samples_reason"]
    assert result.samples_path.read_text() == ""


def test_owner_option_marks_the_owner_by_id_or_name(tmp_path):
    chat = Chat(owner="nobody")
    messages = [chat.say("Ann", "hi"), chat.say("Mia", "hey"), chat.say("Ann", "lunch?"), chat.say("Mia", "sure")]
    assert build_dataset(messages, tmp_path / "a").samples == 0
    result = build_dataset(messages, tmp_path / "b", BuildOptions(owner=("MIA",), owner_name="Mia C."))
    assert result.samples == 2 and result.report["settings"]["system"].startswith("You are Mia C.")
    result = build_dataset(messages, tmp_path / "c", BuildOptions(owner=("id-Mia",), persona="I am {owner}!"))
    assert result.samples == 2
    assert json.loads(result.samples_path.read_text().splitlines()[0])["system"] == "I am Mia!"


def test_build_from_normalized_jsonl_and_a_broken_line_is_named(tmp_path):
    path = tmp_path / "messages.jsonl"
    path.write_text("".join(m.to_json() + "\n" for m in _conversation()), encoding="utf-8")
    result = build_from_paths([path], tmp_path / "out")
    assert result.samples == 6, "no blocklist this time: Bob's last message gets its own reply"
    assert result.report["sources"] == {str(path): 19}
    broken = tmp_path / "broken.jsonl"
    lines = path.read_text().splitlines()
    broken.write_text("\n".join([lines[0], lines[1][:40], *lines[2:]]) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"broken\.jsonl"):
        build_from_paths([broken], tmp_path / "out2")
    assert not (tmp_path / "out2" / "samples.jsonl").exists(), "no partial dataset"


def _telegram_export(path):
    messages = []
    script = [("Ann Lee", "user200", "are you coming saturday?"), ("Mia Chen", "user100", "yes!"),
              ("Mia Chen", "user100", "what should I bring"),
              ("Ann Lee", "user200", "snacks. my number is 13912345678"), ("Mia Chen", "user100", "ok 👍")]
    for number, (name, sender, text) in enumerate(script):
        messages.append({"id": 10 + number, "type": "message", "date": f"2023-03-04T18:0{number}:00",
                         "date_unixtime": str(1677952800 + 60 * number), "from": name, "from_id": sender,
                         "text": text, "text_entities": [{"type": "plain", "text": text}]})
    messages.append({"id": 99, "type": "service", "date": "2023-03-04T18:09:00", "date_unixtime": "1677953340",
                     "actor": "Ann Lee", "actor_id": "user200", "action": "pin_message", "text": ""})
    path.write_text(json.dumps({"name": "Ann Lee", "type": "personal_chat", "id": 200, "messages": messages}),
                    encoding="utf-8")


def test_the_build_command_on_a_telegram_export(tmp_path):
    export = tmp_path / "result.json"
    _telegram_export(export)
    out = tmp_path / "dataset"
    result = CliRunner().invoke(build_cmd, [str(export), "--owner", "user100", "--out", str(out),
                                            "--context-turns", "3", "--block", "nothing-matches"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "samples: 2 written of 2 owner replies" in result.output and "PHONE 1" in result.output
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert samples[1]["conversations"][-2]["value"].endswith("snacks. my number is <PHONE>")
    assert samples[1]["conversations"][-1] == {"from": "gpt", "value": "ok 👍"}
    assert samples[1]["meta"]["platform"] == "telegram" and samples[1]["meta"]["context_turns"] == 3
    assert (out / "report.json").exists() and (out / "report.png").exists()


def test_the_build_command_fails_with_the_reason_when_nothing_is_built(tmp_path):
    export = tmp_path / "result.json"
    _telegram_export(export)
    result = CliRunner().invoke(build_cmd, [str(export), "--owner", "user999", "--out", str(tmp_path / "o")])
    assert result.exit_code != 0 and isinstance(result.exception, DoppelError)
    assert "owner" in str(result.exception)


def test_data_settings_feed_the_options_and_bad_values_are_one_line():
    settings = settings_from_dict({"data": {"owner": ["Mia"], "context_turns": 4, "blocklist": ["x"],
                                            "length_model": ""}}, env={})
    options = BuildOptions.from_settings(settings.data, context_turns=None, include_chats=(), max_length=512)
    assert (options.owner, options.context_turns, options.blocklist, options.max_length) == (("Mia",), 4, ("x",), 512)
    with pytest.raises(ConfigError, match=r"^test: data.context_turns = 0: Input should be greater"):
        settings_from_dict({"data": {"context_turns": 0}}, source="test", env={})
    with pytest.raises(ConfigError, match=r"data.blocklist = \['ok', ' '\]: entries must not be empty"):
        settings_from_dict({"data": {"blocklist": ["ok", " "]}}, source="test", env={})


def _stamps(out) -> list[str]:
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    return [turn["value"][1:17] for s in samples for turn in s["conversations"] if turn["value"].startswith("[20")]


def test_epoch_exports_are_stamped_in_the_owners_zone(tmp_path):
    # Imported on a UTC machine (the normalized JSONL carries +00:00), built with [data] tz: the
    # stamps read the owner's wall clock, as the worker's do, not UTC.
    export = tmp_path / "result.json"
    _telegram_export(export)
    normalized = tmp_path / "messages.jsonl"
    write_messages(normalized, import_path(export, owner="user100", tz="UTC").messages)
    utc, shanghai = tmp_path / "utc", tmp_path / "shanghai"
    build_from_paths([normalized], utc, BuildOptions(owner=("user100",)))
    settings = settings_from_dict({"data": {"owner": ["user100"], "tz": "Asia/Shanghai"}}, env={})
    build_from_paths([normalized], shanghai, BuildOptions.from_settings(settings.data))
    pairs = list(zip(_stamps(utc), _stamps(shanghai), strict=True))
    assert pairs
    for in_utc, in_shanghai in pairs:
        shift = datetime.fromisoformat(in_shanghai) - datetime.fromisoformat(in_utc)
        assert shift == timedelta(hours=8), (in_utc, in_shanghai)


def test_an_unknown_owner_zone_is_one_line_naming_the_key():
    with pytest.raises(ConfigError, match=r"^test: data.tz = 'Mars/Olympus': unknown time zone 'Mars/Olympus'"):
        settings_from_dict({"data": {"tz": "Mars/Olympus"}}, source="test", env={})
    assert settings_from_dict({"data": {"tz": "Asia/Shanghai"}}, env={}).data.tz == "Asia/Shanghai"


def test_the_build_command_removes_the_owners_private_values_from_the_config(tmp_path):
    from types import SimpleNamespace

    export = tmp_path / "result.json"
    _telegram_export(export)
    secrets = tmp_path / "private.txt"
    secrets.write_text("# mine\nwhat should I bring\n", encoding="utf-8")
    settings = settings_from_dict({"privacy": {"private_values": str(secrets)}}, env={})
    out = tmp_path / "dataset"
    result = CliRunner().invoke(build_cmd, [str(export), "--owner", "user100", "--out", str(out)],
                                obj=SimpleNamespace(settings=settings))
    assert result.exit_code == 0, result.output + repr(result.exception)
    text = (out / "samples.jsonl").read_text(encoding="utf-8")
    assert "what should I bring" not in text and "yes!" in text
