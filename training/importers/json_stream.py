"""Read a large JSON export one record at a time, with errors that name the line and the record.

Telegram's full-account ``result.json`` and DiscordChatExporter files reach hundreds of megabytes;
``json.load`` would hold the whole text and every object at once. ``JsonStream`` walks the outer
objects and arrays itself and hands each inner value to the C decoder (``raw_decode``), so memory
is one record plus a read buffer, and speed stays close to ``json.load``.

Tested through the importers: ``tests/training/importers/test_telegram.py`` (errors naming the
line and record, a damaged tail), ``tests/training/importers/test_detect.py`` (bounded memory)
and ``tests/training/importers/test_discord.py`` (truncated exports).
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from typing import Any, BinaryIO

from doppel.errors import InputError

_WS = re.compile(r"[ \t\n\r]*")
_MAX_VALUE_CHARS = 64 * 1024 * 1024


class JsonStream:
    """A pull reader over one JSON document. ``path`` names where the reader is, e.g. ``messages[41]``."""

    def __init__(self, handle: BinaryIO, name: str, *, chunk_bytes: int = 256 * 1024,
                 max_value_chars: int = _MAX_VALUE_CHARS):
        self._handle = handle
        self.name = name
        self._chunk = chunk_bytes
        self._max_value = max_value_chars
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self._json = json.JSONDecoder()
        self._buf = ""
        self._pos = 0
        self._eof = False
        self._lines_before = 0      # newlines in text already dropped from the buffer
        self._started = False
        self.path: list[str | int] = []

    # -- buffer -------------------------------------------------------------------------------

    def _fill(self, at_least: int = 0) -> bool:
        """Read more text into the buffer; False when the file is exhausted."""
        if self._eof:
            return False
        if self._pos:
            self._lines_before += self._buf.count("\n", 0, self._pos)
            self._buf = self._buf[self._pos:]
            self._pos = 0
        data = self._handle.read(max(self._chunk, at_least))
        try:
            text = self._decoder.decode(data, final=not data)
        except UnicodeDecodeError:
            raise self._error("is not valid UTF-8 text; re-save the file as UTF-8") from None
        if not data:
            self._eof = True
        if not self._started:
            text = text.lstrip("\ufeff")
            self._started = bool(text)
        self._buf += text
        return bool(text) or not self._eof

    def _peek(self) -> str:
        """The next non-blank character, or "" at the end of the file."""
        while True:
            self._pos = _WS.match(self._buf, self._pos).end()
            if self._pos < len(self._buf):
                return self._buf[self._pos]
            if not self._fill():
                return ""

    def line(self, pos: int | None = None) -> int:
        pos = self._pos if pos is None else pos
        return self._lines_before + self._buf.count("\n", 0, pos) + 1

    def where(self) -> str:
        out = ""
        for part in self.path:
            out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
        return out

    def _error(self, why: str, pos: int | None = None) -> InputError:
        where = self.where()
        return InputError(f"{self.name}: line {self.line(pos)}{': ' + where if where else ''}: {why}")

    def _truncated(self) -> InputError:
        where = self.where()
        return InputError(f"{self.name}: line {self.line()}: the file ends inside "
                          f"{where or 'the JSON document'}: truncated JSON (was the export interrupted?)")

    # -- values -------------------------------------------------------------------------------

    def value(self) -> Any:
        """Decode the next complete value (an object, array, string, number...)."""
        if not self._peek():
            raise self._truncated()
        while True:
            try:
                value, end = self._json.raw_decode(self._buf, self._pos)
            except json.JSONDecodeError as exc:
                pending = len(self._buf) - self._pos
                near_end = exc.pos >= len(self._buf) - 64 or exc.msg.startswith("Unterminated string")
                if near_end and not self._eof:
                    if pending > self._max_value:
                        raise self._error(f"one record is over {self._max_value // (1024 * 1024)} MB: "
                                          "not a chat export record") from None
                    # Double what is pending so a big value costs O(size), not O(size^2).
                    self._fill(pending)
                    continue
                if exc.msg.startswith("Unterminated string") or not self._buf[exc.pos:].strip():
                    raise self._truncated() from None
                raise self._error(f"not valid JSON ({exc.msg})", exc.pos) from None
            if end == len(self._buf) and not self._eof and self._buf[self._pos] in "-0123456789":
                if self._fill():
                    continue  # a number may continue in the next chunk: "12" of "123"
            self._pos = end
            return value

    def skip(self) -> None:
        self.value()

    def object_items(self) -> Iterator[str]:
        """Yield each key of the object that comes next; the caller must consume each value."""
        self._expect("{")
        if self._peek() == "}":
            self._pos += 1
            return
        self.path.append("")
        while True:
            if self._peek() != '"':
                raise self._expected("a property name")
            key = self.value()
            self.path[-1] = key
            if self._peek() != ":":
                raise self._expected("':'")
            self._pos += 1
            yield key
            char = self._peek()
            self._pos += 1
            if char == ",":
                continue
            if char == "}":
                break
            self._pos -= 1
            raise self._expected("',' or '}'")
        self.path.pop()

    def array_items(self) -> Iterator[int]:
        """Yield the index of each element of the array that comes next; the caller consumes it."""
        self._expect("[")
        if self._peek() == "]":
            self._pos += 1
            return
        self.path.append(0)
        index = 0
        while True:
            self.path[-1] = index
            yield index
            char = self._peek()
            self._pos += 1
            if char == ",":
                index += 1
                continue
            if char == "]":
                break
            self._pos -= 1
            raise self._expected("',' or ']'")
        self.path.pop()

    def peek_type(self) -> str:
        """"object", "array" or "scalar" for what comes next; "" at the end of the file."""
        char = self._peek()
        return {"{": "object", "[": "array", "": ""}.get(char, "scalar")

    def finish(self) -> None:
        """Check that nothing but blanks follows the document."""
        if self._peek():
            raise self._error("unexpected data after the end of the JSON document")

    def _expect(self, char: str) -> None:
        if self._peek() != char:
            raise self._expected(f"'{char}'")
        self._pos += 1

    def _expected(self, what: str) -> InputError:
        found = self._peek()
        if not found:
            return self._truncated()
        return self._error(f"not valid JSON (expected {what}, found {found!r})")
