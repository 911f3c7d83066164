"""WhatsApp's "Export chat": the text file, or the ``.zip`` the phone shares (the chat plus media).

Lines come from Android (``31/12/20, 23:59 - Name: text``), iOS (``[31/12/20, 23:59:59] Name: text``)
and locales that write the year first, some with a dot after the time (``2023/05/14, 21:03. - ``) or
the half of the day before it (``下午9:03``), in 24-hour and 12-hour (``11:59 PM``) styles; one file
may mix them. Lines that do not start with a date continue the message before them.

A zip is read where it lies: its chat text (``_chat.txt`` or ``WhatsApp Chat with X.txt``) is
inflated line by line, and its media entries are counted in a note, never read.

A year-first date says its own order. Whether the others are day-first or month-first depends on
the phone's locale and is decided per file from all of them (``DateOrder``): a first number over 12
proves day-first, a second one month-first; without proof, the order that keeps the messages in
time order wins; when that cannot tell either, 12-hour files are taken as month-first (US) and
others as day-first, with a note. ``Source.date_order`` ("dmy", "mdy", "ymd") overrides it all.

Lines without ``Name:`` are SYSTEM, as are iOS lines whose text starts with U+200E;
``<Media omitted>`` and ``image omitted`` are MEDIA. The file has no user ids, so the owner is
matched by display name. Tested in ``tests/training/importers/test_whatsapp.py``.
"""

from __future__ import annotations

import re
import zipfile
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path, PurePosixPath

from doppel.errors import InputError
from training.importers.base import (
    Owner,
    Source,
    clean_name,
    clean_text,
    decode_head,
    detect_encoding,
    iter_lines,
    local_time,
    read_head,
    text_kind,
)
from training.importers.messages import Kind, Message

ORDERS = ("dmy", "mdy", "ymd")
_HALF = "上午|下午|午前|午後|오전|오후"   # written before the hour in Chinese, Japanese and Korean locales
_PM = frozenset({"下午", "午後", "오후"})
_DATE_TIME = (r"(?P<a>\d{1,4})[./-] ?(?P<b>\d{1,2})[./-] ?(?P<c>\d{1,4})\.?,?\s+"
              rf"(?:(?P<half>{_HALF}) ?)?(?P<h>\d{{1,2}})[:.](?P<m>\d{{2}})(?:[:.](?P<s>\d{{2}}))?\.?"
              r"\s*(?P<ampm>[AaPp]\.?\s?[Mm]\.?|上午|下午)?")
ANDROID = re.compile(rf"^{_DATE_TIME}\s+[-–]\s+(?P<rest>.*)$")
IOS = re.compile(rf"^\[{_DATE_TIME}\]\s*(?P<rest>.*)$")
_LEAD = "\u200e\u200f\ufeff\u202a\u202b\u202c "
# One pass over a message's first line sorts out media, stickers, deletions and call notices.
_SPECIAL = re.compile(
    r"^(?:(?P<media><Media omitted>|<attached: [^>]*>|(?:image|video|audio|GIF|document|Contact card) omitted"
    r"|.+ \(file attached\)|null)|(?P<sticker>sticker omitted)"
    r"|(?P<deleted>This message was deleted\.?|You deleted this message\.?)"
    r"|(?P<system>Missed (?:voice|video) call|Waiting for this message.*))$", re.I)
_EDITED = "<This message was edited>"
_CHAT_FILE = re.compile(r"^WhatsApp Chat (?:with|-) (.+)$", re.I)


def sniff(head: str) -> int:
    """How much ``head`` looks like a WhatsApp export (0: not at all)."""
    return sum(1 for line in head.splitlines()[:200]
               if ANDROID.match(line.lstrip(_LEAD)) or IOS.match(line.lstrip(_LEAD)))


def chat_name_for(path: Path, member: str | None = None) -> str:
    """The chat's name from the export's file names: the text file's, the zip's, the folder's."""
    inner = PurePosixPath(member) if member else None
    for candidate in (inner.stem if inner else None, inner.parent.name if inner else None, path.stem,
                      path.parent.name):
        match = _CHAT_FILE.match(candidate) if candidate else None
        if match:
            return clean_name(match.group(1))
    if inner is not None and inner.stem != "_chat":
        return inner.stem
    return path.parent.name if path.stem == "_chat" and path.parent.name else path.stem


# -- zip archives --------------------------------------------------------------------------

def chat_in_zip(src: Source) -> tuple[str, list[str]]:
    """(the chat's entry, the other entries) of a WhatsApp zip; InputError if there is not one chat."""
    try:
        with zipfile.ZipFile(src.path) as archive:
            names = [info.filename for info in archive.infolist() if not info.is_dir()]
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise src.error(None, f"is a damaged zip archive ({exc})") from None
    # macOS adds __MACOSX/ and ._ resource forks when it zips: never part of the export.
    names = [n for n in names if not n.startswith("__MACOSX/") and not PurePosixPath(n).name.startswith("._")]
    texts = [n for n in names if n.lower().endswith(".txt")]
    chats = [n for n in texts if PurePosixPath(n).name == "_chat.txt" or _CHAT_FILE.match(PurePosixPath(n).stem)]
    chats = chats or texts
    if not chats:
        raise src.error(None, "is a zip archive without a chat text file (_chat.txt or "
                              "'WhatsApp Chat with ….txt'): not a WhatsApp export")
    if len(chats) > 1:
        listed = ", ".join(chats[:4]) + (", …" if len(chats) > 4 else "")
        raise src.error(None, f"is a zip archive with {len(chats)} chat text files ({listed}): "
                              "unpack it and import each chat")
    return chats[0], [n for n in names if n != chats[0]]


def open_zip(src: Source) -> None:
    """Point ``src`` at the chat inside its zip, and note the media entries that stay unread."""
    member, others = chat_in_zip(src)
    src.member = member
    if others:
        kinds = Counter(PurePosixPath(n).suffix.lower().lstrip(".") or "no extension" for n in others)
        listed = ", ".join(f"{count} {ext}" for ext, count in kinds.most_common(6))
        src.stats.notes.append(f"read {member} from the zip archive; {len(others)} media file(s) "
                               f"left unread ({listed})")
    else:
        src.stats.notes.append(f"read {member} from the zip archive")


def sniff_zip(path: Path) -> int:
    """``sniff`` of the chat inside a WhatsApp zip; 0 if it is no zip or holds no single chat.

    For detection: reads the archive's directory and the first 64 KB of the chat, nothing more.
    """
    src = Source(Path(path), "whatsapp", Owner(), None)
    try:
        if not zipfile.is_zipfile(src.path):
            return 0
        src.member = chat_in_zip(src)[0]
        return sniff(decode_head(read_head(src)))
    except InputError:
        return 0


# -- date order ----------------------------------------------------------------------------

class DateOrder:
    """Evidence, over every date of a file whose year comes last, for day-first against month-first.

    ``add`` each date's first two numbers; ``decide`` then names the order. Also used by importers
    of other formats that write ``05/14/2023``-style dates.
    """

    def __init__(self) -> None:
        self.proof = {"dmy": 0, "mdy": 0}            # dates that only one order can read
        self.first_proof: dict[str, int] = {}        # order -> line of its first proof
        self.inversions = {"dmy": 0, "mdy": 0}       # steps back in time, under each order
        self._last: dict[str, tuple[int, int, int]] = {}
        self._previous: tuple[int, int, int] | None = None
        self._previous_proves: str | None = None
        self.dates = 0

    def add(self, line: int, first: int, second: int, year: int) -> None:
        self.dates += 1
        if (first, second, year) == self._previous:
            # Most lines repeat the date before them: same evidence, and no step in time.
            if self._previous_proves:
                self.proof[self._previous_proves] += 1
            return
        self._previous, self._previous_proves = (first, second, year), None
        if first > 12 or second > 12:
            if first <= 31 and second <= 12:
                self._prove("dmy", line)
            elif second <= 31 and first <= 12:
                self._prove("mdy", line)
            return  # over 12 twice, or over 31: not a date at all
        # Both readings work: remember which one keeps the chat running forward in time.
        for order, key in (("dmy", (year, second, first)), ("mdy", (year, first, second))):
            last = self._last.get(order)
            if last is not None and key < last:
                self.inversions[order] += 1
            self._last[order] = key

    def _prove(self, order: str, line: int) -> None:
        self.proof[order] += 1
        self._previous_proves = order
        self.first_proof.setdefault(order, line)

    def decide(self, src: Source, override: str | None = None, *, default: str = "dmy", why: str = "") -> str:
        """The order for the file's year-last dates; notes in ``src.stats.notes`` say how it was found.

        ``default`` (with ``why``, shown in the note) is the locale's guess for when nothing tells.
        """
        if override:
            if override not in ORDERS:
                raise src.error(None, f"unknown date order {override!r}; one of: {', '.join(ORDERS)}")
            return override
        day, month = self.proof["dmy"], self.proof["mdy"]
        if day and month:
            major, minor = ("dmy", "mdy") if day >= month else ("mdy", "dmy")
            if self.proof[minor] * 10 > self.proof[major]:
                raise src.error(self.first_proof[minor], f"dates are neither consistently day-first nor "
                                f"month-first ({_label(minor)} here, {_label(major)} on line "
                                f"{self.first_proof[major]}): is this several exports pasted together? "
                                "Pass the date order (dmy, mdy or ymd)")
            # A few lines of the other order are quoted or pasted text: they stay message text.
            src.stats.notes.append(f"dates are {_label(major)}; {self.proof[minor]} line(s) that read only "
                                   f"{_label(minor)} (first: line {self.first_proof[minor]}) are kept as text")
            return major
        if day or month:
            return "dmy" if day else "mdy"
        if not self.dates:
            return default
        if self.inversions["dmy"] != self.inversions["mdy"]:
            order = min(self.inversions, key=self.inversions.get)
            src.stats.notes.append(f"every date could be day-first or month-first; read as {_label(order)}, "
                                   "the order that keeps the messages in time order")
            return order
        src.stats.notes.append(f"every date could be day-first or month-first; assumed {_label(default)}{why}: "
                               "pass the date order (dmy or mdy) if that is wrong")
        return default


def _label(order: str) -> str:
    return {"dmy": "day-first", "mdy": "month-first", "ymd": "year-first"}[order]


# -- parsing -------------------------------------------------------------------------------

def parse(src: Source) -> Iterator[Message]:
    if src.member is None and zipfile.is_zipfile(src.path):
        open_zip(src)
    encoding = detect_encoding(src, ("utf-8",))
    order, senders = _survey(src, iter_lines(src, encoding))
    yield from parse_lines(src, iter_lines(src, encoding), order=order, group=len(senders) > 2)


def _survey(src: Source, lines: Iterable[tuple[int, str]]) -> tuple[str, set[str]]:
    """First pass: the order of year-last dates ("dmy", "mdy" or "ymd") and up to three sender names."""
    evidence = DateOrder()
    twelve_hour = False
    senders: set[str] = set()
    seen: set[str] = set()   # raw names already cleaned: a chat has few, on every line
    for number, raw in lines:
        line = raw.lstrip(_LEAD)
        match = ANDROID.match(line) or IOS.match(line)
        if not match:
            continue
        a, b, c, half, ampm, rest = match.group("a", "b", "c", "half", "ampm", "rest")
        if len(a) < 4:  # a year-first date says its own order
            evidence.add(number, int(a), int(b), int(c))
        twelve_hour = twelve_hour or bool(ampm or half)
        if len(senders) < 3:
            name, sep, _ = rest.partition(": ")
            if sep and name not in seen:
                seen.add(name)
                senders.add(clean_name(name))
    if twelve_hour:
        return evidence.decide(src, src.date_order, default="mdy", why=" (12-hour clock)"), senders
    return evidence.decide(src, src.date_order), senders


def parse_header(line: str, order: str, src: Source) -> tuple[datetime, str] | None:
    """(timestamp, rest of line) for a message's first line, or None for a continuation line."""
    match = ANDROID.match(line) or IOS.match(line)
    if not match:
        return None
    a, b, c, hour_text, minute, second, ampm, half, rest = match.group("a", "b", "c", "h", "m", "s", "ampm", "half",
                                                                        "rest")
    b, c = int(b), int(c)
    if len(a) == 4 or order == "ymd":
        year, month, day = int(a), b, c
    elif order == "mdy":
        month, day, year = int(a), b, c
    else:
        day, month, year = int(a), b, c
    if year < 100:
        year += 2000
    hour = int(hour_text)
    half = ampm or half
    if half:
        pm = half[0] in "Pp" or half in _PM
        if pm and hour < 12:
            hour += 12
        elif not pm and hour == 12:
            hour = 0
    try:
        stamp = local_time(year, month, day, hour, int(minute), int(second or 0), src.tz)
    except (ValueError, OverflowError, OSError):
        return None  # not a real date: message text that happens to look like a header
    return stamp, rest


def parse_lines(src: Source, lines: Iterable[tuple[int, str]], *, order: str = "dmy",
                group: bool = False) -> Iterator[Message]:
    """Messages from numbered lines; split out so property tests can feed any text."""
    chat_name = chat_name_for(src.path, src.member)
    pending: tuple | None = None
    body: list[str] = []
    for number, raw in lines:
        line = raw.lstrip(_LEAD) if raw[:1] in _LEAD else raw
        header = parse_header(line, order, src) if line[:1].isdigit() or line[:1] == "[" else None
        if header is None:
            if pending is not None:
                body.append(raw)
            elif raw.strip():
                src.stats.records += 1
                src.skip("text before the first message")
            continue
        if pending is not None:
            yield _message(src, pending, body, chat_name, group)
        src.stats.records += 1
        pending, body = (number, header), []
    if pending is not None:
        yield _message(src, pending, body, chat_name, group)


def _message(src: Source, pending: tuple, body: list[str], chat_name: str, group: bool) -> Message:
    number, (timestamp, rest) = pending
    name, sep, first = rest.partition(": ")
    extra: dict = {}
    if not sep:
        # "Messages and calls are end-to-end encrypted", "Ann added Bob": no speaker.
        sender, text, kind = "", clean_text("\n".join([rest, *body])), Kind.SYSTEM
    else:
        sender = src.person(name)
        system_mark = first.startswith("\u200e")
        text = clean_text("\n".join([first, *body]))
        if text.endswith(_EDITED):
            text = text[: -len(_EDITED)].rstrip()
            extra["edited"] = True
        first_line = text.partition("\n")[0]
        special = _SPECIAL.match(first_line) if len(first_line) < 300 else None
        what = special.lastgroup if special else None
        if what == "media":
            kind, text = Kind.MEDIA, text.partition("\n")[2].strip()
        elif what == "sticker" and "\n" not in text:
            kind, text = Kind.STICKER, "[sticker]"
        elif what == "deleted":
            kind = Kind.SYSTEM
            extra["recalled"] = True
        elif system_mark or what == "system":
            kind = Kind.SYSTEM
            if sender == chat_name:
                sender = ""  # iOS writes group notices as said by the group itself
        else:
            kind = text_kind(text)
    return Message(platform="whatsapp", chat_id=chat_name, chat_name=chat_name, chat_type="group" if group else "dm",
                   sender_id=sender or "system", sender_name=sender or "system",
                   is_owner=bool(sender) and bool(src.owner) and src.owner.matches(sender),
                   timestamp=timestamp, text=text, kind=kind, message_id=str(number), source=src.where(number),
                   extra=extra)
