"""Find out what an export is and import it: one file, or every export in a directory.

``import_path`` is the entry point: it detects each file's format (extension plus a look at the
content), runs the format's parser, and returns the messages with per-source statistics. A source
where the owner never speaks, or that yields nothing, is reported in ``problems`` with the senders
that were seen, never returned silently empty. ``iter_messages`` streams one source for callers
that write as they read.

Formats (``FORMATS``): wechat (WeChatMsg/MemoTrace CSV), wechat-pywxdump (PyWxDump CSV),
wechat-json (WeChatMsg's JSON), qq, telegram, discord, whatsapp, sharegpt (ShareGPT, OpenAI
messages and Alpaca, JSONL or a JSON array), articles (Markdown/text posts) and doppel (the
normalized JSONL that ``doppel data import --out`` writes).
"""

from __future__ import annotations

import csv
import json
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from pathlib import Path

from doppel.errors import InputError
from training.importers import (
    articles,
    discord,
    imessage,
    line,
    memotrace_txt,
    meta,
    normalized,
    qq,
    sharegpt,
    signal,
    telegram,
    twitter,
    wechat,
    wechatexporter,
    weibo,
    whatsapp,
)
from training.importers.base import Owner, Source, SourceStats, decode_head, is_binary, resolve_tz, sniff
from training.importers.messages import Kind, Message


@dataclass(frozen=True)
class FormatSpec:
    name: str
    parser: Callable[[Source], Iterator[Message]]
    extensions: tuple[str, ...]
    description: str


FORMATS: tuple[FormatSpec, ...] = (
    FormatSpec("wechat", wechat.parse_memotrace, (".csv",), "WeChatMsg/MemoTrace CSV"),
    FormatSpec("wechat-pywxdump", wechat.parse_pywxdump, (".csv",), "PyWxDump CSV"),
    FormatSpec("wechat-json", wechat.parse_wechatmsg_json, (".json",), "WeChatMsg JSON"),
    FormatSpec("wechat-txt", memotrace_txt.parse, (".txt",), "WeChatMsg/MemoTrace TXT"),
    FormatSpec("wechatexporter", wechatexporter.parse, (".txt",), "WechatExporter (iPhone backup) text"),
    FormatSpec("qq", qq.parse, (".txt",), "QQ text export"),
    FormatSpec("telegram", telegram.parse, (".json",), "Telegram Desktop result.json"),
    FormatSpec("discord", discord.parse, (".json",), "DiscordChatExporter JSON"),
    FormatSpec("whatsapp", whatsapp.parse, (".txt", ".zip"), "WhatsApp chat export (text, or the phone's zip)"),
    FormatSpec("line", line.parse, (".txt",), "LINE chat history text"),
    FormatSpec("imessage", imessage.parse, (".txt",), "iMessage (imessage-exporter text)"),
    FormatSpec("signal", signal.parse, (".md",), "Signal (signal-export Markdown)"),
    FormatSpec("meta", meta.parse, (".json",), "Instagram/Messenger JSON (Meta download)"),
    FormatSpec("twitter", twitter.parse, (".js",), "X/Twitter archive tweets.js"),
    FormatSpec("weibo", weibo.parse, (".json", ".csv"), "Weibo backup (weibo-crawler, API, Weibo-archiver)"),
    FormatSpec("sharegpt", sharegpt.parse, (".jsonl", ".json"), "ShareGPT/OpenAI JSONL"),
    FormatSpec("articles", articles.parse, (".md", ".markdown", ".txt"), "blog posts"),
    FormatSpec("doppel", normalized.parse, (".jsonl",), "Doppel normalized messages"),
)
FORMAT_NAMES = tuple(spec.name for spec in FORMATS)
# Service notices and forwards are in the owner's name but not in the owner's words.
_NOT_SPOKEN = frozenset({Kind.SYSTEM, Kind.FORWARD})
CANDIDATE_EXTENSIONS = frozenset({".json", ".jsonl", ".csv", ".txt", ".md", ".markdown", ".js", ".zip"})

_TELEGRAM = re.compile(r'"personal_information"|"date_unixtime"|"from_id"\s*:\s*"(?:user|channel)|'
                       r'"type"\s*:\s*"(?:personal_chat|private_group|private_supergroup|public_supergroup|'
                       r'saved_messages|bot_chat|private_channel|public_channel)"')
_DISCORD = re.compile(r'"guild"\s*:\s*\{.*"channel"\s*:\s*\{', re.S)
_WECHATMSG_JSON = re.compile(r'"conversations"\s*:\s*\[\s*\{\s*"role"')
_SAMPLES = re.compile(r'"(?:conversations|messages)"\s*:\s*\[|"instruction"\s*:')
# "[" alone is not enough: WhatsApp's iOS lines start with "[3/12/23, ...".
_JSON_START = re.compile(r'\{|\[\s*[\[{"\]]')
_NORMALIZED = re.compile(r'^\{"platform": "[^"]*", "chat_id": ')
_MEMOTRACE_COLUMNS = {"localId", "TalkerId", "Type", "SubType", "IsSender", "CreateTime", "StrContent", "StrTime"}
_PYWXDUMP_COLUMNS = {"MsgSvrID", "type_name", "is_sender", "talker", "room_name"}
_NOT_SUPPORTED = {
    ".html": "an HTML export: export as JSON instead (Telegram Desktop: Export chat history, Format "
             "'Machine-readable JSON'; Instagram/Facebook: Download your information, Format JSON; "
             "DiscordChatExporter: --format Json)",
    ".htm": "an HTML export: export as JSON instead",
    ".zip": "a zip archive: unpack it first",
}


def spec_for(fmt: str) -> FormatSpec:
    for spec in FORMATS:
        if spec.name == fmt:
            return spec
    raise InputError(f"unknown format {fmt!r}; one of: {', '.join(FORMAT_NAMES)}")


def detect_format(path: str | Path) -> str:
    """The format name of an export file, from its extension and its first 64 KB."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a directory (import_path imports every export in it)")
    if not path.exists():
        raise InputError(f"{path}: no such file")
    raw = sniff(path)
    if not raw.replace(b"\xef\xbb\xbf", b"").strip():
        raise InputError(f"{path}: the file is empty")
    ext = path.suffix.lower()
    if zipfile.is_zipfile(path):
        # The phone's WhatsApp export is a zip with the chat and its media: read in place.
        if whatsapp.sniff_zip(path):
            return "whatsapp"
        raise InputError(f"{path}: cannot tell which export this is (a zip archive without a WhatsApp chat "
                         "inside: unpack it first); pass --format ({', '.join(FORMAT_NAMES)})")
    if is_binary(raw):
        raise InputError(f"{path}: is a binary file, not a chat export")
    head = decode_head(raw)
    fmt = _detect_from_content(head, ext)
    if fmt:
        return fmt
    hint = _NOT_SUPPORTED.get(ext) or f"{_looks_like(head)}, not a format Doppel recognizes"
    raise InputError(f"{path}: cannot tell which export this is ({hint}); "
                     f"pass --format ({', '.join(FORMAT_NAMES)})")


def _detect_from_content(head: str, ext: str) -> str | None:
    """Content decides; the extension only breaks ties (a renamed file still imports)."""
    body = head.lstrip()
    if twitter.sniff(head):
        return "twitter"
    if _JSON_START.match(body):
        return _detect_json(head, body)
    if body.split("\n", 1)[0].count(",") >= 4 or ext == ".csv":
        return _detect_csv(body)
    # Chat logs written as text: the line layout with the most evidence wins.
    scores = {"qq": qq.sniff(head), "whatsapp": whatsapp.sniff(head), "line": line.sniff(head),
              "imessage": imessage.sniff(head), "wechatexporter": wechatexporter.sniff(head),
              "wechat-txt": memotrace_txt.sniff(head), "signal": signal.sniff(head)}
    if scores["wechat-txt"] and scores["wechat-txt"] == scores["qq"]:
        scores["wechat-txt"] -= 1  # MemoTrace's TXT without its marks reads like QQ's: QQ it is
    best = max(scores, key=scores.get)
    # signal-export's lines also read as WhatsApp's ISO style: its own marks (trailing spaces,
    # reaction lines, ./media links, "Me") must add to them for Signal to win.
    if scores[best] > 0 and (best != "signal" or scores["signal"] > scores["whatsapp"]):
        return best
    if ext in (".md", ".markdown"):
        return "articles"
    return None


def _detect_json(head: str, body: str) -> str | None:
    if _NORMALIZED.match(body):
        return "doppel"
    if _DISCORD.search(head):
        return "discord"
    if _TELEGRAM.search(head):
        return "telegram"
    if meta.sniff(head):
        return "meta"
    if weibo.sniff(head):
        return "weibo"
    if _WECHATMSG_JSON.search(head):
        return "wechat-json"
    if _SAMPLES.search(head):
        return "sharegpt"
    return None


def _looks_like(head: str) -> str:
    """What an unrecognized file looks like, in a few words, for the one-line error."""
    body = head.lstrip()
    if _JSON_START.match(body):
        keys = sorted(set(re.findall(r'"([A-Za-z_][\w]{0,30})"\s*:', body[:4000])))[:6]
        return f"JSON with the keys {', '.join(keys)}" if keys else "JSON"
    first = body.split("\n", 1)[0]
    if first.count(",") >= 2:
        return f"a CSV whose header is {first[:80]!r}"
    lines = [line for line in body.splitlines()[:50] if line.strip()]
    return f"text whose first line is {lines[0][:60]!r}" if lines else "text"


def _detect_csv(body: str) -> str | None:
    try:
        header = {name.strip().lstrip("\ufeff") for name in next(csv.reader([body.split("\n", 1)[0]]))}
    except (csv.Error, StopIteration):
        return None
    # Three distinctive columns are enough to name the format: the parser then reports any
    # missing column by name instead of "unknown format".
    if len(header & _MEMOTRACE_COLUMNS) >= 3:
        return "wechat"
    if len(header & _PYWXDUMP_COLUMNS) >= 3:
        return "wechat-pywxdump"
    if weibo.sniff(body) >= 3:
        return "weibo"
    return None


# -- importing --------------------------------------------------------------------------------

@dataclass
class SourceResult:
    """One imported file: its messages (oldest first within each chat) and what happened."""

    path: Path
    format: str
    messages: list[Message]
    stats: SourceStats
    error: str = ""            # set instead of raising when import_path(errors="collect")


@dataclass
class ImportResult:
    sources: list[SourceResult]
    ignored: list[tuple[Path, str]] = field(default_factory=list)   # files in a directory left out, and why

    @property
    def messages(self) -> list[Message]:
        return [m for source in self.sources for m in source.messages]

    @property
    def problems(self) -> list[str]:
        """One line per source that failed, yielded nothing, or where the owner never speaks."""
        out = []
        for source in self.sources:
            out.extend([source.error] if source.error else source.stats.problems)
        return out


def iter_messages(src: Source) -> Iterator[Message]:
    """Stream one source's messages in file order, keeping ``src.stats`` up to date."""
    parser = spec_for(src.stats.format).parser
    stats = src.stats
    last_seen: dict[str, datetime] = {}
    for message in parser(src):
        stats.messages += 1
        stats.kinds[message.kind.value] += 1
        stats.chats[message.chat_name] += 1
        stats.senders[message.sender_name] += 1
        if message.is_owner and message.kind not in _NOT_SPOKEN:
            stats.owner_messages += 1
        stamp = message.timestamp
        previous = last_seen.get(message.chat_id)
        if previous is not None and stamp < previous:
            stats.out_of_order += 1
        else:
            last_seen[message.chat_id] = stamp
        if stats.first is None or stamp < stats.first:
            stats.first = stamp
        if stats.last is None or stamp > stats.last:
            stats.last = stamp
        yield message
    _check_owner(src)


def _check_owner(src: Source) -> None:
    stats = src.stats
    senders = ", ".join(f"{name} ({count})" for name, count in stats.senders.most_common(8)) or "none"
    if not stats.messages:
        skipped = ", ".join(f"{reason}: {n}" for reason, n in stats.skipped.most_common()) or "nothing skipped"
        stats.problems.append(f"{src.name}: no messages found ({stats.records} records read; {skipped})")
    elif not stats.owner_messages:
        if src.owner or stats.owner_marked:
            stats.problems.append(f"{src.name}: the owner ({src.owner.describe()}) never speaks here; "
                                  f"senders seen: {senders}")
        else:
            stats.problems.append(f"{src.name}: this export does not say who the owner is: pass --owner "
                                  f"(id or name); senders seen: {senders}")


def import_file(path: str | Path, *, owner: str | list[str] | None = None, fmt: str | None = None,
                tz: tzinfo | str | None = None, name: str | None = None, date_order: str | None = None,
                progress: Callable[[int], None] | None = None) -> SourceResult:
    """Import one export file; ``progress(count)`` is called every few thousand messages.

    ``date_order`` ("dmy", "mdy", "ymd") overrides the order that exports with numeric dates
    (WhatsApp, LINE) otherwise infer from all of the file's dates.
    """
    path = Path(path)
    fmt = fmt or detect_format(path)
    spec_for(fmt)
    src = Source(path, fmt, Owner(owner), resolve_tz(tz), name, date_order=date_order)
    messages: list[Message] = []
    for message in iter_messages(src):
        messages.append(message)
        if progress is not None and not len(messages) % 5000:
            progress(len(messages))
    if src.stats.out_of_order:
        # Sessions are cut by time gaps, so each chat must run forward in time; exports built from
        # databases (WeChat, QQ, merged pages) are right about times and may be wrong about order.
        first_seen: dict[str, int] = {}
        for message in messages:
            first_seen.setdefault(message.chat_id, len(first_seen))
        messages.sort(key=lambda m: (first_seen[m.chat_id], m.timestamp))
        src.stats.notes.append(f"{src.stats.out_of_order} message(s) were out of time order; sorted by time")
    return SourceResult(path, fmt, messages, src.stats)


def discover(directory: Path, fmt: str | None = None) -> tuple[list[tuple[Path, str]], list[tuple[Path, str]]]:
    """(file, format) for each export under ``directory``, and (file, reason) for each left out."""
    found: list[tuple[Path, str]] = []
    ignored: list[tuple[Path, str]] = []
    extensions = spec_for(fmt).extensions if fmt else CANDIDATE_EXTENSIONS
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        relative = path.relative_to(directory).parts
        if any(part.startswith(".") for part in relative):
            continue  # .DS_Store, .git: never exports
        ext = path.suffix.lower()
        if ext not in extensions:
            ignored.append((path, f"not an export ({ext or 'no extension'})"))
            continue
        try:
            file_fmt = fmt or detect_format(path)
        except InputError as exc:
            why = str(exc).split(": ", 1)[-1].split("; pass --format")[0]
            ignored.append((path, _NOT_TWEETS if ext == ".js" else why))
            continue
        if file_fmt == "twitter" and not _is_tweets(path):
            ignored.append((path, _NOT_TWEETS))
            continue
        first_page = meta.continuation_of(path) if file_fmt == "meta" else None
        if first_page is not None:
            ignored.append((path, f"page of the chat in {first_page.name} (read with it)"))
            continue
        found.append((path, file_fmt))
    return found, ignored


_NOT_TWEETS = "not a tweets file of an X/Twitter archive (account.js, like.js, ...)"


def _is_tweets(path: Path) -> bool:
    return bool(twitter.sniff(decode_head(sniff(path))))


def import_path(path: str | Path, *, owner: str | list[str] | None = None, fmt: str | None = None,
                tz: tzinfo | str | None = None, errors: str = "raise", date_order: str | None = None,
                progress: Callable[[Path, int], None] | None = None) -> ImportResult:
    """Import a file, or every export in a directory (mixed formats, one result per file).

    ``owner`` is one or more ids or names (case-insensitive). ``tz`` is the zone of exports that
    write local wall-clock times (QQ, WhatsApp, WeChat's text times); default: this machine's.
    With ``errors="collect"`` a file that fails becomes a result with ``error`` set instead of
    stopping the rest of a directory.
    """
    path = Path(path)
    if errors not in ("raise", "collect"):
        raise ValueError(f"errors must be 'raise' or 'collect', not {errors!r}")
    if fmt is not None:
        spec_for(fmt)
    resolve_tz(tz)
    if not path.exists():
        raise InputError(f"{path}: no such file or directory")
    files: list[tuple[Path, str | None]]
    if path.is_dir():
        files, ignored = discover(path, fmt)
        if not files:
            raise InputError(f"{path}: no chat exports found in this directory ({len(ignored)} other file(s))")
    else:
        files, ignored = [(path, fmt)], []
    results = []
    for file, file_fmt in files:
        def report(count: int, file: Path = file) -> None:
            if progress is not None:
                progress(file, count)
        report(0)
        try:
            results.append(import_file(file, owner=owner, fmt=file_fmt, tz=tz, date_order=date_order,
                                       progress=report))
        except InputError as exc:
            if errors == "raise":
                raise
            label = file_fmt or "?"
            results.append(SourceResult(file, label, [], SourceStats(str(file), label), error=str(exc)))
    return ImportResult(results, ignored)


def stats_json(result: ImportResult) -> str:
    return json.dumps({"sources": [dict(s.stats.to_dict(), error=s.error) for s in result.sources],
                       "ignored": [[str(p), why] for p, why in result.ignored]}, ensure_ascii=False, indent=2)
