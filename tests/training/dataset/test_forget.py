"""``doppel data forget``: a chat or a contact taken out of built samples, imported messages and the
build report, with a report of what went from which file (training/dataset/forget.py)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from data_helpers import Chat

from doppel.errors import InputError
from training.cli.data import data
from training.dataset.build import build_dataset
from training.dataset.forget import Forget, forget_in


def _messages():
    ann, zoe, hikers = Chat("dm-ann", name="Ann"), Chat("dm-zoe", name="Zoë"), Chat("g1", name="Hikers", group=True)
    return [
        ann.say("Ann", "lunch?"), ann.say("Mia", "sure"),
        zoe.say("Zoë", "my new number is 13912345678"), zoe.say("Mia", "saved"),
        hikers.say("Bob", "saturday hike?"), hikers.say("Mia", "in"),
        hikers.say("Ann", "which trail", after=4000), hikers.say("Mia", "the ridge"),
    ]


@pytest.fixture
def datasets(tmp_path):
    root = tmp_path / "data"
    build_dataset(_messages(), root / "dataset")
    (root / "import").mkdir()
    (root / "import" / "telegram.jsonl").write_text("".join(m.to_json() + "\n" for m in _messages()),
                                                    encoding="utf-8")
    return root


def _samples(root):
    return [json.loads(line) for line in (root / "dataset" / "samples.jsonl").read_text().splitlines()]


def _messages_on_disk(root):
    return [json.loads(line) for line in (root / "import" / "telegram.jsonl").read_text().splitlines()]


def test_a_contact_leaves_samples_messages_and_the_report(datasets):
    assert {s["meta"]["chat"] for s in _samples(datasets)} == {"Ann", "Zoë", "Hikers"}
    report = forget_in([datasets], Forget(contacts=("zoë", "Bob")))
    assert {s["meta"]["chat"] for s in _samples(datasets)} == {"Ann", "Hikers"}, "Zoë's DM is gone"
    group = [s for s in _samples(datasets) if s["meta"]["chat"] == "Hikers"]
    assert group and not any("Bob:" in turn["value"] for s in group for turn in s["conversations"]), (
        "the group sample Bob speaks in is gone; the later one without him stays")
    left = _messages_on_disk(datasets)
    assert {m["sender_name"] for m in left} == {"Ann", "Mia"}
    assert not any(m["chat_id"] == "dm-zoe" for m in left), "Mia's own messages in the DM with Zoë go too"
    assert "13912345678" not in (datasets / "import" / "telegram.jsonl").read_text()
    senders = json.loads((datasets / "dataset" / "report.json").read_text())["top_senders"]
    assert [name for name, _ in senders if name in ("Zoë", "Bob")] == []
    by_file = {r.path.name: (r.kind, r.removed) for r in report.files}
    assert by_file["telegram.jsonl"] == ("messages", 3)
    assert by_file["samples.jsonl"][0] == "samples" and by_file["samples.jsonl"][1] == 2
    assert by_file["report.json"] == ("report", 2)
    assert not list(datasets.rglob("*.forget-partial"))


def test_a_chat_by_id_or_name_and_a_dry_run_changes_nothing(datasets):
    before = (datasets / "dataset" / "samples.jsonl").read_bytes()
    dry = forget_in([datasets], Forget(chats=("hikers",)), dry_run=True)
    assert dry.removed > 0 and (datasets / "dataset" / "samples.jsonl").read_bytes() == before
    forget_in([datasets / "dataset"], Forget(chats=("hikers",)))
    forget_in([datasets / "import" / "telegram.jsonl"], Forget(chats=("dm-ann",)))
    assert {s["meta"]["chat"] for s in _samples(datasets)} == {"Ann", "Zoë"}
    assert {m["chat_id"] for m in _messages_on_disk(datasets)} == {"dm-zoe", "g1"}


def test_nothing_to_forget_or_a_missing_path_is_one_line(tmp_path):
    with pytest.raises(InputError, match="--chat"):
        Forget()
    with pytest.raises(InputError, match="no such file"):
        forget_in([tmp_path / "nope"], Forget(chats=("x",)))


def test_the_command_reports_what_it_removed_from_which_file(datasets):
    result = CliRunner().invoke(data, ["forget", "--contact", "Zoë", str(datasets)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "samples.jsonl" in result.output and "telegram.jsonl" in result.output
    assert "removed 4 record(s) from 3 of 3 file(s)" in result.output
    assert "adapters trained on these samples" in result.output
    again = CliRunner().invoke(data, ["forget", "--contact", "Zoë", str(datasets)])
    assert "removed 0 record(s)" in again.output
