"""What every importer shares: the per-file context, owner matching, statistics and safe reading.

A format module exposes ``parse(src: Source) -> Iterator[Message]``. It reads ``src.path`` through
the helpers here (so encodings, line lengths and binary files are handled the same way everywhere),
counts what it skips with ``src.skip(reason)``, and raises ``src.error(where, why)``, an
``InputError`` whose one line names the file and the line or record. ``training.importers.detect`` wraps
each parser to count messages, owners, senders and out-of-order timestamps.

Tested in ``tests/training/importers/test_detect.py`` (owner matching, UTF-16 and binary files),
``tests/training/importers/test_qq.py`` and ``tests/training/importers/test_whatsapp.py``
(encodings, bad lines named, names and text cleaned; a chat read from inside a zip archive).
"""

from __future__ import annotations

import codecs
import io
import re
import time
import unicodedata
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import BinaryIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from doppel.errors import InputError
from training.importers.messages import Kind

SNIFF_BYTES = 64 * 1024
# A "line" longer than this is not chat text: a binary file or a file without line breaks. Reading
# it whole would put the entire file in memory, so stop and say so.
MAX_LINE_BYTES = 16 * 1024 * 1024
_BLOCK_BYTES = 1024 * 1024

# Direction marks and invisible separators that exports sprinkle into names and line starts
# (WhatsApp on iOS puts U+200E before media lines). ZWJ/ZWNJ stay: they build emoji and words.
_INVISIBLE = re.compile("[\ufeff\u200b\u200e\u200f\u202a-\u202e\u2066-\u2069]")

_EMOJI = (
    "\U0001f000-\U0001faff\u2600-\u27bf\u2b00-\u2bff\u2300-\u23ff\ufe0f\u200d\u20e3\u3030\u303d"
    "\u3297\u3299\u00a9\u00ae\u203c\u2049\u2122\u2139\u2194-\u21aa\U000e0020-\U000e007f"
)
# Only emoji and bracketed codes such as [捂脸] or [Facepalm] (WeChat, QQ): the owner's tone.
_EMOJI_ONLY = re.compile(rf"(?:[\s{_EMOJI}]|\[[^\[\]\s\d]{{1,10}}\])+")
_HAS_EMOJI_OR_CODE = re.compile(rf"[{_EMOJI}]|\[[^\[\]\s\d]{{1,10}}\]")


def clean_text(text: str) -> str:
    """Message text without invisible direction marks, with Unix newlines and no outer blanks."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if text.isascii():
        return text.strip()   # the marks are none of them ASCII: most chat lines need no pass of the regex
    return _INVISIBLE.sub("", text).strip()


def clean_name(name: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", _INVISIBLE.sub("", name)).split())


def text_kind(text: str) -> Kind:
    """EMOJI for a message made only of emoji or bracketed emoji codes, else TEXT."""
    if text.isascii() and "[" not in text:
        return Kind.TEXT   # no emoji is ASCII, and a code needs its bracket: most lines end here
    if _HAS_EMOJI_OR_CODE.search(text) and _EMOJI_ONLY.fullmatch(text):
        return Kind.EMOJI
    return Kind.TEXT


def resolve_tz(tz: tzinfo | str | None) -> tzinfo | None:
    """A tzinfo for exports that write local times; None means this machine's local zone."""
    if tz is None or isinstance(tz, tzinfo):
        return tz
    if tz.upper() in ("UTC", "Z"):
        return UTC
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise InputError(f"unknown time zone {tz!r} (use a name such as Asia/Shanghai or Europe/Berlin)") from None


def local_time(year: int, month: int, day: int, hour: int, minute: int, second: int,
               tz: tzinfo | None) -> datetime:
    """An aware datetime for a wall-clock time read from an export; ValueError if impossible."""
    if tz is not None:
        return datetime(year, month, day, hour, minute, second, tzinfo=tz)
    key = (year, month, day, hour)
    zone = _machine_zones().get(key, _UNKNOWN)
    if zone is _UNKNOWN:
        zone = _MACHINE_ZONES[key] = _steady(datetime(year, month, day, hour).astimezone(),
                                             datetime(year, month, day, hour, 59, 59).astimezone(), hour)
    if zone is None:
        return datetime(year, month, day, hour, minute, second).astimezone()
    return datetime(year, month, day, hour, minute, second, tzinfo=zone)


def from_epoch(seconds: float, tz: tzinfo | None) -> datetime:
    if tz is not None:
        return datetime.fromtimestamp(seconds, UTC).astimezone(tz)
    key = int(seconds // 3600)
    zone = _machine_zones().get(key, _UNKNOWN)
    if zone is _UNKNOWN:
        zone = _MACHINE_ZONES[key] = _steady(datetime.fromtimestamp(key * 3600, UTC).astimezone(),
                                             datetime.fromtimestamp(key * 3600 + 3599, UTC).astimezone())
    if zone is None:
        return datetime.fromtimestamp(seconds, UTC).astimezone()
    return datetime.fromtimestamp(seconds, zone)


# This machine's zone (tz None) per hour, (y, m, d, h) of wall-clock time or hours of Unix time:
# astimezone() asks the C library (several localtime calls) each time. Kept for hours without a
# transition; None: ask each time. time.tzset() rebinds time.tzname: the cache then starts again.
_MACHINE_ZONES: dict[tuple[int, int, int, int] | int, tzinfo | None] = {}
_UNKNOWN = object()
_zone_names = time.tzname


def _machine_zones() -> dict:
    global _zone_names
    if time.tzname is not _zone_names or len(_MACHINE_ZONES) > 200_000:
        _MACHINE_ZONES.clear()
        _zone_names = time.tzname
    return _MACHINE_ZONES


def _steady(first: datetime, last: datetime, hour: int | None = None) -> tzinfo | None:
    """``first``'s zone if ``last`` (its hour's last second) agrees and astimezone() kept the ``hour``."""
    same = first.utcoffset() == last.utcoffset() and first.tzname() == last.tzname()
    return first.tzinfo if same and (hour is None or first.hour == last.hour == hour) else None


class Owner:
    """Who the owner is in a source: any of several ids or names, compared case-insensitively."""

    def __init__(self, owners: str | Iterable[str] | None = None):
        values = [owners] if isinstance(owners, str) else list(owners or [])
        self.names = [v.strip() for v in values if v and v.strip()]
        self._keys = {self._norm(v) for v in self.names}
        self._cache: dict[tuple[str, ...], bool] = {}

    @staticmethod
    def _norm(value: str) -> str:
        return clean_name(str(value)).casefold().removeprefix("@")

    def __bool__(self) -> bool:
        return bool(self._keys)

    def matches(self, *candidates: str) -> bool:
        """True if any candidate id or name is the owner; Telegram's "user123" also matches "123"."""
        hit = self._cache.get(candidates)
        if hit is None:
            keys = {self._norm(c) for c in candidates if c}
            keys |= {k[4:] for k in keys if k.startswith("user") and k[4:].isdigit()}
            hit = self._cache[candidates] = bool(keys & self._keys)
        return hit

    def describe(self) -> str:
        return ", ".join(repr(n) for n in self.names) or "(none given)"


@dataclass
class SourceStats:
    """What one source file gave: counts a user can check against what they expected."""

    source: str
    format: str
    records: int = 0                 # lines, rows or JSON records read
    messages: int = 0                # messages produced
    owner_messages: int = 0          # the owner's own words: not service notices, not forwards
    skipped: Counter = field(default_factory=Counter)   # reason -> count
    kinds: Counter = field(default_factory=Counter)     # kind value -> count
    senders: Counter = field(default_factory=Counter)   # display name -> messages
    chats: Counter = field(default_factory=Counter)     # chat name -> messages
    out_of_order: int = 0            # messages older than the one before them in the same chat
    first: datetime | None = None
    last: datetime | None = None
    owner_marked: bool = False       # the export itself says which messages are the owner's
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "source": self.source, "format": self.format, "records": self.records,
            "messages": self.messages, "owner_messages": self.owner_messages,
            "skipped": dict(self.skipped), "kinds": dict(self.kinds),
            "senders": dict(self.senders.most_common(50)), "chats": dict(self.chats),
            "out_of_order": self.out_of_order,
            "first": self.first.isoformat() if self.first else None,
            "last": self.last.isoformat() if self.last else None,
            "problems": list(self.problems), "notes": list(self.notes),
        }


class Source:
    """One file being imported: its path and display name, the owner, the zone, the stats."""

    def __init__(self, path: Path, fmt: str, owner: Owner, tz: tzinfo | None, name: str | None = None, *,
                 date_order: str | None = None):
        self.path = path
        self.name = name or str(path)
        self.owner = owner
        self.tz = tz
        # "dmy", "mdy" or "ymd" for exports whose numeric dates could be read either way; None: infer.
        self.date_order = date_order
        # The text file to read inside a zip archive (a phone's WhatsApp export); None: read ``path``.
        # A parser that accepts archives picks it; the reading helpers below then read only that entry.
        self.member: str | None = None
        self.stats = SourceStats(self.name, fmt)
        self._people: dict[str, str] = {}

    def person(self, raw: str) -> str:
        """``clean_name`` of a sender, memoized: the same few names recur on every line."""
        name = self._people.get(raw)
        if name is None:
            name = self._people[raw] = clean_name(raw)
        return name

    def where(self, location: str | int) -> str:
        """The ``source`` of a message: ``file:line`` or ``file:record``."""
        return f"{self.name}:{location}"

    def error(self, location: str | int | None, why: str) -> InputError:
        place = f"{self.name}: line {location}" if isinstance(location, int) else \
            f"{self.name}: {location}" if location else self.name
        return InputError(f"{place}: {' '.join(str(why).split())}")

    def skip(self, reason: str, count: int = 1) -> None:
        self.stats.skipped[reason] += count


def sniff(path: Path) -> bytes:
    """The first bytes of a file, for format detection; errors name the file."""
    try:
        with path.open("rb") as handle:
            return handle.read(SNIFF_BYTES)
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None


def decode_head(head: bytes) -> str:
    """Best-effort text of a sniffed head (for detection only)."""
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return head.decode("utf-16", errors="ignore")
    text = head.decode("utf-8", errors="ignore")
    if text.count("\ufffd") or not _looks_utf8(head):
        text = head.decode("gb18030", errors="ignore")
    return text.lstrip("\ufeff")


def _looks_utf8(head: bytes) -> bool:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut by the sniff limit is still UTF-8.
        return exc.start >= len(head) - 3 and len(head) >= SNIFF_BYTES - 3
    return True


def is_binary(head: bytes) -> bool:
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return False
    return b"\x00" in head


# What a damaged or unusual zip raises while an entry is opened or inflated.
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, KeyError)


def open_source(src: Source) -> BinaryIO:
    """The bytes of ``src``: its file, or the entry ``src.member`` of its zip archive, inflated as it is read."""
    try:
        if src.member is None:
            return src.path.open("rb")
        with zipfile.ZipFile(src.path) as archive:
            # The entry stays readable after the archive object closes.
            return io.BufferedReader(archive.open(src.member), SNIFF_BYTES)
    except OSError as exc:
        raise src.error(None, f"cannot read: {exc.strerror or exc}") from None
    except _ZIP_ERRORS as exc:
        raise src.error(None, f"cannot read {src.member!r} in the zip archive: {exc}") from None


def read_head(src: Source) -> bytes:
    """The first bytes of ``src`` (of its zip entry, if it has one), for encodings and detection."""
    if src.member is None:
        return sniff(src.path)
    with open_source(src) as handle:
        try:
            return handle.read(SNIFF_BYTES)
        except _ZIP_ERRORS as exc:
            raise src.error(None, f"cannot read {src.member!r} in the zip archive: {exc}") from None


def detect_encoding(src: Source, allowed: tuple[str, ...] = ("utf-8",)) -> str:
    """The encoding of a text export from its first bytes: BOMs first, then ``allowed`` in order."""
    head = read_head(src)
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if is_binary(head):
        raise src.error(None, "is a binary file, not a text chat export")
    for encoding in allowed:
        if encoding.startswith("utf-8") and _looks_utf8(head):
            return encoding
        if not encoding.startswith("utf-8"):
            try:
                head.decode(encoding)
                return encoding
            except UnicodeDecodeError as exc:
                if exc.start >= len(head) - 4 and len(head) >= SNIFF_BYTES - 4:
                    return encoding
    names = " or ".join(_label(a) for a in allowed)
    line = head[: _first_bad_byte(head)].count(b"\n") + 1
    raise src.error(line, f"is not {names} text; re-save the file as UTF-8")


def _label(encoding: str) -> str:
    return "UTF-8" if encoding.startswith("utf-8") else encoding.upper()


def _first_bad_byte(head: bytes) -> int:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start
    return 0


def iter_lines(src: Source, encoding: str, *, keepends: bool = False) -> Iterator[tuple[int, str]]:
    """(line number, text) for each line; an error names its line.

    Streams: read, decoded and split a block of whole lines at a time (several times faster than a
    readline and a decode per line); memory is one block, never the file.
    """
    if encoding == "utf-16":
        yield from _iter_utf16_lines(src, keepends)
        return
    codec = "utf-8" if encoding == "utf-8-sig" else encoding
    number, tail, first = 0, b"", True
    with open_source(src) as handle:
        while True:
            try:
                block = handle.read(_BLOCK_BYTES)
            except (OSError, *_ZIP_ERRORS) as exc:
                raise src.error(number + 1, f"cannot be read: {exc}") from None
            data = tail + (block[3:] if first and block.startswith(codecs.BOM_UTF8) else block)
            first, newline = False, data.find(b"\n")   # where the line read so far (maybe many blocks) ends
            if newline >= MAX_LINE_BYTES or (newline < 0 and len(data) >= MAX_LINE_BYTES):
                raise src.error(number + 1, f"is longer than {MAX_LINE_BYTES // (1024 * 1024)} MB: "
                                            "not a text chat export (binary or damaged file?)")
            cut = data.rfind(b"\n") + 1 if block else len(data)   # whole lines now, the rest with the next block
            number = yield from _block_lines(src, data[:cut], codec, encoding, number, keepends)
            tail = data[cut:]
            if not block:
                return


def _block_lines(src: Source, data: bytes, codec: str, encoding: str, number: int, keepends: bool):
    """The lines of ``data`` numbered from ``number + 1``; returns the last number. Errors as line by line."""
    try:
        text = data.decode(codec)
    except UnicodeDecodeError as exc:
        good = data[:data.rfind(b"\n", 0, exc.start) + 1]   # the lines before the bad one: a NUL there comes first
        number = yield from _block_lines(src, good, codec, encoding, number, keepends)
        raise src.error(number + 1, f"is not valid {_label(encoding)} text (byte 0x{data[exc.start]:02x}); "
                                    "re-save the file as UTF-8") from None
    bad = text.find("\x00")
    if bad >= 0:
        text = text[:text.rfind("\n", 0, bad) + 1]
    lines = text.split("\n")
    last = lines.pop()                 # after the last newline: "" unless the file ends without one
    if keepends:
        lines = [line + "\n" for line in lines]
    elif "\r" in text:
        lines = [line.rstrip("\r") for line in lines]
    if last:
        lines.append(last if keepends else last.rstrip("\r"))
    yield from enumerate(lines, number + 1)
    if bad >= 0:
        raise src.error(number + len(lines) + 1, "contains NUL bytes: a binary or damaged file, not a text export")
    return number + len(lines)


def _iter_utf16_lines(src: Source, keepends: bool) -> Iterator[tuple[int, str]]:
    number = 0
    try:
        with io.TextIOWrapper(open_source(src), encoding="utf-16", newline="") as handle:
            for number, line in enumerate(handle, 1):
                yield number, line if keepends else line.rstrip("\r\n")
    except UnicodeDecodeError:
        raise src.error(number + 1, "is not valid UTF-16 text; re-save the file as UTF-8") from None
    except (OSError, *_ZIP_ERRORS) as exc:
        raise src.error(number + 1, f"cannot be read: {exc}") from None
