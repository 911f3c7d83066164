"""``doppel data build``: normalized messages in, training samples and a report out.

The pipeline, in order: read (exports or the JSONL that ``doppel data import --out`` wrote, via
``training.importers.detect``; or ``Message`` objects from a caller) -> mark the owner -> clean
(``training.dataset.clean``) -> find private data once per message (``doppel.pii``) -> sessions and
bursts, minus blocklisted turns (``training.dataset.sessions``) -> samples, scrubbed per sample and
measured (``training.dataset.samples``) -> ``samples.jsonl`` + ``report.json`` + ``report.png``
(``training.dataset.report``).

``samples.jsonl`` is written to a temporary name and renamed at the end, so an interrupted or
failed build never leaves a partial dataset where training would pick it up.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from doppel.errors import InputError
from doppel.pii import Scrubber
from doppel.pii.findings import Finding
from doppel.pii.placeholders import render
from doppel.pii.private import load_private_values
from doppel.prompt import DEFAULT_PERSONA, owner_zone, persona_prompt
from doppel.settings_sections import DataSettings, PrivacySettings
from training.dataset.clean import Blocklist, CleanOptions, CleanStats, clean
from training.dataset.report import format_summary, make_report, write_report
from training.dataset.samples import SampleOptions, SampleStats, build_samples, length_counter
from training.dataset.sessions import SessionStats, split_sessions
from training.importers.messages import Message
from training.importers.wechat import OWNER_PLACEHOLDER, is_plain_id

SAMPLES_FILE = "samples.jsonl"
# What importers call the owner when an export has no name for them (WeChat's "我", ShareGPT's
# "assistant"): "You are 我" names nobody, so any real name, or an --owner name, comes first.
_NO_NAMES = frozenset({"me", OWNER_PLACEHOLDER, "assistant"})
PHRASE_MAX_CHARS = 40


@dataclass(frozen=True)
class BuildOptions:
    """What ``[data]`` in doppel.toml configures (see doppel.example.toml for each key)."""

    owner: tuple[str, ...] = ()
    owner_name: str = ""
    persona: str = ""
    merge_gap_s: float = 120.0
    session_gap_s: float = 3600.0
    context_turns: int = 10
    max_length: int = 2048
    length_model: str = ""
    include_chats: tuple[str, ...] = ()
    exclude_chats: tuple[str, ...] = ()
    include_contacts: tuple[str, ...] = ()
    exclude_contacts: tuple[str, ...] = ()
    blocklist: tuple[str, ...] = ()
    tz: str = ""                # the owner's zone ([data] tz); empty: this machine's
    private_values: str = ""    # the owner's file of values to remove ([privacy] private_values)

    @classmethod
    def from_settings(cls, data: DataSettings | None = None, privacy: PrivacySettings | None = None,
                      **overrides) -> BuildOptions:
        """The ``[data]`` (and ``[privacy]``) settings, with command-line ``overrides`` (``None``
        and ``()`` mean: not given)."""
        values = (data or DataSettings()).model_dump() | (privacy.model_dump() if privacy else {})
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        values.update({k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()
                       if v is not None and v != ()})
        return cls(**values)


@dataclass
class BuildResult:
    samples_path: Path
    report_path: Path
    chart_path: Path | None
    report: dict = field(repr=False)

    @property
    def samples(self) -> int:
        return self.report["samples"]["written"]

    def summary(self) -> str:
        return format_summary(self.report)


def load_inputs(paths: Sequence[str | Path], *, owner: Sequence[str] = (), tz: str | None = None,
                date_order: str | None = None) -> tuple[list[Message], Counter]:
    """Messages from export files, directories or normalized JSONL, and how many came from each file.

    Any file that cannot be read stops the build with the importer's one-line error: a dataset
    silently missing one of its sources would look complete.
    """
    from training.importers.detect import import_path

    messages: list[Message] = []
    sources: Counter = Counter()
    for path in paths:
        result = import_path(path, owner=list(owner) or None, tz=tz, errors="raise", date_order=date_order)
        for source in result.sources:
            sources[str(source.path)] += len(source.messages)
            messages.extend(source.messages)
    return messages, sources


def _source_of(message: Message) -> str:
    # "path/to/result.json:123" -> the file; messages made in code may have no source at all.
    return message.source.rsplit(":", 1)[0] if message.source else f"({message.platform})"


def _mark_owner(messages: Iterable[Message], owner: Sequence[str]) -> Iterable[Message]:
    names = frozenset(o.strip().casefold() for o in owner if o.strip())
    if not names:
        return messages
    return (replace(m, is_owner=True)
            if not m.is_owner and (m.sender_id.casefold() in names or m.sender_name.casefold() in names) else m
            for m in messages)


def _owner_name(messages: Sequence[Message], configured: str, owners: Sequence[str] = ()) -> str:
    """The persona's name: ``owner_name``, else the owner's most frequent real display name, else
    the first ``owner`` value that is a name rather than an id, else "me"."""
    if configured.strip():
        return configured.strip()
    names = Counter(m.sender_name for m in messages
                    if m.is_owner and m.sender_name and m.sender_name.casefold() not in _NO_NAMES)
    if names:
        return names.most_common(1)[0][0]
    return next((o.strip() for o in owners if o.strip() and not is_plain_id(o)), "") or "me"


def build_dataset(messages: Iterable[Message], out_dir: str | Path, options: BuildOptions | None = None, *,
                  sources: Counter | None = None, scrubber: Scrubber | None = None) -> BuildResult:
    """Run the whole pipeline on ``messages`` and write ``samples.jsonl`` and the report to ``out_dir``."""
    options = options or BuildOptions()
    out_dir = Path(out_dir)
    scrubber = scrubber or Scrubber(private_values=load_private_values(options.private_values))
    counter = length_counter(options.length_model or None)
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[stage] = round(now - clock, 3)
        clock = now

    read: list[Message] = []
    counted = Counter()
    senders: Counter = Counter()
    for message in _mark_owner(messages, options.owner):
        read.append(message)
        counted[_source_of(message)] += 1
        senders[message.sender_name or message.sender_id] += 1
    clean_stats = CleanStats()
    kept, _ = clean(read, CleanOptions.from_lists(
        include_chats=options.include_chats, exclude_chats=options.exclude_chats,
        include_contacts=options.include_contacts, exclude_contacts=options.exclude_contacts), clean_stats)
    lap("clean")

    # Find private data once per message; each sample renders the findings with its own numbering.
    found: dict[int, list[Finding]] = {}
    pii: Counter = Counter()
    phrases: Counter = Counter()
    hours = [0] * 24
    for message in kept:
        findings = scrubber.find(message.text)
        if findings:
            found[id(message)] = findings
            pii.update(f.type for f in findings)
        if message.is_owner:
            hours[message.timestamp.hour] += 1
            if len(message.text) <= PHRASE_MAX_CHARS:
                phrases[render([message.text], [findings])[0].casefold()] += 1
    lap("scrub")

    session_stats = SessionStats()
    sessions = split_sessions(kept, merge_gap_s=options.merge_gap_s, session_gap_s=options.session_gap_s,
                              blocklist=Blocklist(options.blocklist), stats=session_stats)
    lap("sessions")
    template = options.persona.strip() or DEFAULT_PERSONA
    system = persona_prompt(_owner_name(kept or read, options.owner_name, options.owner), template)
    sample_stats = SampleStats()
    samples = build_samples(sessions, SampleOptions(system, options.context_turns, options.max_length,
                                                    owner_zone(options.tz)),
                            counter=counter, findings=lambda m: found.get(id(m), ()), stats=sample_stats)

    samples_path = out_dir / SAMPLES_FILE
    _write_samples(samples, samples_path)
    lap("samples")
    settings = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(options).items()}
    settings.update(length_counter=counter.name, system=system)
    report = make_report(sources=sources if sources is not None else counted, clean=clean_stats,
                         sessions=session_stats, samples=sample_stats, pii=pii,
                         owner_phrases=Counter({k: v for k, v in phrases.items() if v >= 2}),
                         owner_hours=hours, senders=senders, settings=settings)
    report["files"] = {"samples": str(samples_path)}
    report["timings_s"] = timings
    report_path, chart_path = write_report(report, out_dir)
    timings["report"] = round(time.perf_counter() - clock, 3)
    return BuildResult(samples_path, report_path, chart_path, report)


def _write_samples(samples: Iterable[dict], path: Path) -> int:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{path.parent}: cannot create the output directory ({exc.strerror or exc})") from None
    partial = path.with_name(path.name + ".partial")
    count = 0
    try:
        with partial.open("w", encoding="utf-8") as handle:
            for sample in samples:
                handle.write(json.dumps(sample, ensure_ascii=False))
                handle.write("\n")
                count += 1
        os.replace(partial, path)
    finally:
        if partial.exists():
            partial.unlink()
    return count


def build_from_paths(paths: Sequence[str | Path], out_dir: str | Path, options: BuildOptions | None = None, *,
                     tz: str | None = None, date_order: str | None = None) -> BuildResult:
    """``build_dataset`` on exports or normalized JSONL files (what ``doppel data build`` runs)."""
    options = options or BuildOptions()
    if tz:
        options = replace(options, tz=tz)
    messages, sources = load_inputs(paths, owner=options.owner, tz=options.tz or None, date_order=date_order)
    return build_dataset(messages, out_dir, options, sources=sources)
