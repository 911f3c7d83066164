"""Every importer against damaged input: random text, and its own fixtures cut short and mangled.

Whatever the bytes, an import either gives messages or stops with one ``InputError`` line that
starts with the file's name: never a traceback, never another exception.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from doppel.errors import InputError
from training.importers.detect import FORMAT_NAMES, import_file

EXPORTS = Path(__file__).parents[2] / "fixtures" / "exports"
FIXTURE_DIRS = {"wechat": "wechat", "wechat-pywxdump": "wechat/pywxdump", "wechat-json": "wechat",
                "wechat-txt": "wechat", "wechatexporter": "wechatexporter", "qq": "qq", "telegram": "telegram",
                "discord": "discord", "whatsapp": "whatsapp", "line": "line", "imessage": "imessage",
                "signal": "signal", "meta": "meta", "twitter": "twitter", "weibo": "weibo",
                "sharegpt": "sharegpt", "articles": "articles", "doppel": None}
SUFFIX = {"wechat": ".csv", "wechat-pywxdump": ".csv", "telegram": ".json", "discord": ".json", "meta": ".json",
          "wechat-json": ".json", "weibo": ".json", "twitter": ".js", "sharegpt": ".jsonl", "doppel": ".jsonl",
          "signal": ".md", "articles": ".md"}


def _samples(fmt: str) -> list[bytes]:
    folder = FIXTURE_DIRS[fmt]
    if folder is None:
        return [b'{"platform": "telegram", "chat_id": "1", "text": "hi"}\n']
    files = sorted(p for p in (EXPORTS / folder).rglob("*") if p.is_file() and p.suffix != ".zip")
    return [p.read_bytes()[:20_000] for p in files[:3]]


def _check(tmp_path: Path, fmt: str, content: bytes) -> None:
    path = tmp_path / f"export{SUFFIX.get(fmt, '.txt')}"
    path.write_bytes(content)
    try:
        import_file(path, fmt=fmt, owner="Mia", tz="UTC")
    except InputError as exc:
        message = str(exc)
        assert message.startswith(str(path)) and "\n" not in message, message


def test_every_format_is_fuzzed():
    assert set(FIXTURE_DIRS) == set(FORMAT_NAMES)


@pytest.mark.parametrize("fmt", FORMAT_NAMES)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_damaged_exports_import_or_fail_in_one_line(tmp_path, fmt, data):
    samples = _samples(fmt)
    base = data.draw(st.sampled_from(samples))
    cut = data.draw(st.integers(min_value=0, max_value=len(base)))
    flips = data.draw(st.lists(st.tuples(st.integers(0, max(0, cut - 1)), st.integers(0, 255)), max_size=8))
    content = bytearray(base[:cut])
    for index, value in flips:
        if content:
            content[index % len(content)] = value
    _check(tmp_path, fmt, bytes(content))


@pytest.mark.parametrize("fmt", FORMAT_NAMES)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=400))
def test_random_text_imports_or_fails_in_one_line(tmp_path, fmt, text):
    _check(tmp_path, fmt, text.encode("utf-8", "surrogatepass"))
