"""``doppel data`` on the command line: what users and exports control is printed as text, never markup."""

from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner

from training.cli.data import data
from training.importers.messages import Message

CHAT = """12/03/2024, 09:15 - [/b]Ben: morning all
12/03/2024, 09:16 - [afk] Tom: [bold]not bold[/bold]
12/03/2024, 09:17 - [afk] Tom: see [link=https://x.test]this[/link]
"""


def test_names_that_look_like_markup_are_printed_as_they_are(tmp_path):
    export = tmp_path / "WhatsApp Chat with [red]Ben.txt"
    export.write_text(CHAT, encoding="utf-8")
    result = CliRunner().invoke(data, ["import", str(export), "--owner", "[afk] Tom"])
    assert result.exception is None, result.output
    assert "messages from 1 source(s)" in result.output
    assert "[red]Ben" in result.output  # the file name, as it is


def test_an_owner_who_never_speaks_is_reported_with_the_senders_as_written(tmp_path):
    export = tmp_path / "chat.txt"
    export.write_text(CHAT, encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "doppel", "data", "import", str(export), "--owner", "[/b]nobody"],
                            capture_output=True, text=True, timeout=120, env={"COLUMNS": "400", "PATH": "/usr/bin"})
    output = result.stdout + result.stderr
    assert result.returncode == 2 and "Traceback" not in output, output
    assert "[afk] Tom (2)" in output and "[/b]Ben (1)" in output and "doppel: error:" in output


def test_date_order_decides_dates_that_could_be_either(tmp_path):
    export = tmp_path / "chat.txt"
    export.write_text("03/04/2024, 09:15 - Tom: first\n05/06/2024, 10:00 - Ann: later\n", encoding="utf-8")
    months = {}
    for order in ("dmy", "mdy"):
        out = tmp_path / order
        result = CliRunner().invoke(data, ["import", str(export), "--owner", "Tom", "--date-order", order,
                                           "--out", str(out)])
        assert result.exit_code == 0, result.output
        [written] = [p for p in out.iterdir() if p.suffix == ".jsonl"]
        months[order] = [Message.from_json(line).timestamp.month for line in written.read_text().splitlines()]
    assert months == {"dmy": [4, 6], "mdy": [3, 5]}
