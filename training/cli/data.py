"""``doppel data import``, ``articles-to-qa`` and ``forget``: the importers from the command line, and
taking a chat or a contact back out of what they wrote.

``import`` reads exports (files or directories, mixed formats), writes the normalized messages as
JSONL, one file per source, plus ``import-summary.json``, and prints a table of what each source
gave. Problems (a source where the owner never speaks, a file that failed) are printed, never
hidden; the command fails when a file could not be read or when no source has the owner in it.
Progress appears on stderr when the work takes more than a second.

``forget`` removes a chat or a contact from the datasets on disk (``training/dataset/forget.py``)
and prints what it removed from which file.

Tested in ``tests/training/importers/test_detect.py`` (``import``: outputs, summary, missing owner, bad
files, dry run), ``tests/training/importers/test_articles.py`` (``articles-to-qa``) and
``tests/training/dataset/test_forget.py`` (``forget``).
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from doppel.config import settings_of
from doppel.errors import InputError
from doppel.progress import LazyProgress
from training.importers.detect import FORMAT_NAMES, ImportResult, import_path, stats_json
from training.importers.normalized import write_messages

API_KEY_ENV = "DOPPEL_QA_API_KEY"
_GENERIC_STEMS = frozenset({"result", "_chat", "messages", "chat", "export", "data"})


@click.group(name="data")
def data() -> None:
    """Import chat exports (WeChat, QQ, Telegram, Discord, WhatsApp, ShareGPT, blog posts), scrub
    private data and build training samples."""


@data.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--owner", "owners", multiple=True, metavar="ID_OR_NAME",
              help="Who you are in the exports: a user id or display name, case-insensitive. Repeat for "
                   "several (e.g. your Telegram id and your WhatsApp name). WeChat CSVs, Telegram "
                   "full-account exports and ShareGPT files mark the owner themselves.")
@click.option("--format", "fmt", type=click.Choice(FORMAT_NAMES), help="Skip detection: every file is this format.")
@click.option("--tz", help="Your time zone, for exports that write local times (QQ, WhatsApp), e.g. "
                           "Asia/Shanghai. Default: [data] tz, else this computer's.")
@click.option("--date-order", type=click.Choice(["dmy", "mdy", "ymd"]),
              help="Order of numeric dates in WhatsApp/LINE exports (default: inferred per file from all its dates).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write normalized messages here: one JSONL file per source and import-summary.json. "
                   "Without it, nothing is written (a dry run).")
@click.pass_obj
def import_cmd(obj, paths: tuple[Path, ...], owners: tuple[str, ...], fmt: str | None, tz: str | None,
               date_order: str | None, out_dir: Path | None) -> None:
    """Read chat exports and normalize them to one message format.

    PATHS are export files or directories (every export in a directory is read, whatever its
    format). Formats are detected from the extension and the content.
    """
    console = Console(highlight=False)
    err = Console(stderr=True, highlight=False)
    tz = tz or settings_of(obj).data.tz or None
    for path in paths:
        if not path.exists():
            raise InputError(f"{path}: no such file or directory")
    combined = ImportResult([])
    with LazyProgress(err, "importing") as progress:
        for path in paths:
            result = import_path(path, owner=list(owners), fmt=fmt, tz=tz, errors="collect", date_order=date_order,
                                 progress=lambda file, count: progress.update(count, f"importing {file.name}"))
            combined.sources += result.sources
            combined.ignored += result.ignored
    written = _write(combined, out_dir) if out_dir else {}
    _print_summary(console, combined, written)
    failed = [s for s in combined.sources if s.error]
    if failed:
        raise InputError(f"{len(failed)} of {len(combined.sources)} source(s) could not be imported; first: "
                         f"{failed[0].error}")
    if not any(s.stats.owner_messages for s in combined.sources):
        raise InputError("none of the sources has a message from the owner: check --owner "
                         "(the senders seen are listed above)")
    total = sum(written.values()) if out_dir else len(combined.messages)
    where = f"written to {out_dir}" if out_dir else "not written (no --out)"
    console.print(f"{total} messages from {len(combined.sources)} source(s) {escape(where)}", soft_wrap=True)


def _output_name(path: Path, fmt: str, used: set[str]) -> str:
    stem = path.stem
    if stem.lower() in _GENERIC_STEMS and path.parent.name:
        stem = f"{path.parent.name}-{stem.strip('_')}"
    base = re.sub(r"[^\w.-]+", "_", f"{fmt}-{stem}").strip("._") or fmt
    name, number = f"{base}.jsonl", 1
    while name in used:
        number += 1
        name = f"{base}-{number}.jsonl"
    used.add(name)
    return name


def _write(result: ImportResult, out_dir: Path) -> dict[str, int]:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{out_dir}: cannot create the output directory ({exc.strerror or exc})") from None
    written: dict[str, int] = {}
    used: set[str] = set()
    for source in result.sources:
        if source.error:
            continue
        name = _output_name(source.path, source.format, used)
        written[source.stats.source] = write_messages(out_dir / name, source.messages)
        source.stats.notes.append(f"written to {name}")
    (out_dir / "import-summary.json").write_text(stats_json(result), encoding="utf-8")
    return written


def _print_summary(console: Console, result: ImportResult, written: dict[str, int]) -> None:
    table = Table(title="imported", title_justify="left")
    for column, justify in (("source", "left"), ("format", "left"), ("chats", "right"), ("read", "right"),
                            ("messages", "right"), ("owner", "right"), ("skipped", "left")):
        table.add_column(column, justify=justify, overflow="fold")
    for source in result.sources:
        stats = source.stats
        # The folder and the file name tell sources apart; full paths are in the problems and the JSON.
        label = "/".join(source.path.parts[-2:])
        if source.error:
            table.add_row(escape(label), source.format, "", "", "", "", "[red]failed[/]")
            continue
        skipped = escape(", ".join(f"{reason} {n}" for reason, n in stats.skipped.most_common(3)) or "-")
        owner = str(stats.owner_messages) if stats.owner_messages else "[yellow]0[/]"
        table.add_row(escape(label), stats.format, str(len(stats.chats)), str(stats.records),
                      str(stats.messages), owner, skipped)
    console.print(table)
    if result.ignored:
        reasons = Counter(why for _, why in result.ignored)
        console.print(f"ignored {len(result.ignored)} file(s): "
                      + escape("; ".join(f"{n} × {why}" for why, n in reasons.most_common(5))))
    for source in result.sources:
        for note in source.stats.notes:
            if not note.startswith("written to"):
                console.print(escape(f"note: {source.stats.source}: {note}"))
    for problem in result.problems:
        console.print(f"[yellow]problem:[/] {escape(problem)}")


@data.command("articles-to-qa")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--endpoint", required=True, help="An OpenAI-compatible server: http://host:8000, its /v1 base or "
                                                "the full /v1/chat/completions URL (vLLM, llama.cpp, OpenAI...).")
@click.option("--model", required=True, help="The model name the endpoint serves.")
@click.option("--out", "out_file", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="ShareGPT JSONL to write; import it with `doppel data import`.")
@click.option("--owner", default="", help="The author's name, used in the prompt.")
@click.option("--pairs", type=click.IntRange(1, 20), default=3, show_default=True, help="Pairs asked per chunk.")
@click.option("--chunk-chars", type=click.IntRange(100, 5000), default=500, show_default=True)
@click.option("--concurrency", type=click.IntRange(1, 64), default=4, show_default=True)
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=1), default=120.0, show_default=True)
def articles_to_qa_cmd(paths: tuple[Path, ...], endpoint: str, model: str, out_file: Path, owner: str,
                       pairs: int, chunk_chars: int, concurrency: int, timeout_s: float) -> None:
    """Turn blog posts (Markdown or text) into question/answer pairs in the author's voice.

    Posts are cut into chunks of about --chunk-chars characters; each chunk is sent to the
    endpoint. Replies that are not valid JSON are repaired where possible and skipped (with a
    count) where not. An API key, if the endpoint needs one, comes from $DOPPEL_QA_API_KEY.
    """
    from training.importers.articles import articles_to_qa, read_chunks

    console = Console(highlight=False)
    chunks = read_chunks(paths, target=chunk_chars)
    if not chunks:
        raise InputError(f"no text found in {', '.join(map(str, paths))} (looked for .md, .markdown and .txt)")
    with LazyProgress(Console(stderr=True), "asking for Q/A pairs", total=len(chunks)) as progress:
        result = articles_to_qa(chunks, endpoint, model, api_key=os.environ.get(API_KEY_ENV) or None, author=owner,
                                pairs_per_chunk=pairs, timeout_s=timeout_s, concurrency=concurrency,
                                progress=progress.update)
    skipped = ", ".join(f"{reason}: {n}" for reason, n in result.skipped.most_common()) or "none"
    if not result.pairs:
        raise InputError(f"no question/answer pairs from {result.chunks} chunk(s); skipped: {skipped}")
    try:
        out_file.parent.mkdir(parents=True, exist_ok=True)
        with out_file.open("w", encoding="utf-8") as handle:
            for record in result.records(owner):
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    except OSError as exc:
        raise InputError(f"{out_file}: cannot write ({exc.strerror or exc})") from None
    console.print(f"{len(result.pairs)} pairs from {result.chunks} chunk(s) written to {out_file}; "
                  f"repaired replies: {result.repaired}; skipped chunks: {skipped}")


@data.command("forget")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--chat", "chats", multiple=True, metavar="ID_OR_NAME",
              help="A chat to forget, by id or name (repeatable).")
@click.option("--contact", "contacts", multiple=True, metavar="ID_OR_NAME",
              help="A person to forget, by id or display name (repeatable): their messages, their DMs with "
                   "you, and every sample they speak in.")
@click.option("--dry-run", is_flag=True, help="Say what would be removed; change nothing.")
@click.pass_obj
def forget_cmd(obj, paths: tuple[Path, ...], chats: tuple[str, ...], contacts: tuple[str, ...],
               dry_run: bool) -> None:
    """Remove a chat or a contact from the datasets on disk.

    PATHS are files or directories holding what `doppel data build` and `doppel data import --out`
    wrote (default: <data_dir>/dataset): training samples, normalized messages, build reports.
    """
    from training.dataset.forget import Forget, forget_in

    roots = list(paths) or [Path(settings_of(obj).data_dir) / "dataset"]
    report = forget_in(roots, Forget(chats, contacts), dry_run=dry_run)
    console = Console(highlight=False, soft_wrap=True)  # whole paths, however long
    verb = "would remove" if dry_run else "removed"
    for result in report.files:
        if result.kind != "other":
            console.print(f"{result.path}: {verb} {result.removed} {result.kind} entr"
                          f"{'y' if result.removed == 1 else 'ies'}, kept {result.kept}", markup=False)
    touched = sum(1 for result in report.files if result.removed)
    console.print(f"{verb} {report.removed} record(s) from {touched} of {len(report.files)} file(s) under "
                  f"{', '.join(escape(str(root)) for root in roots)}")
    console.print("Not touched: the exports themselves; adapters trained on these samples, which keep what they "
                  "learned until trained again (doppel train run); what a running bot remembers of a chat "
                  "(/clone forget in that chat).")


def _add_build_commands() -> None:
    # `build` and `pii-eval` live with the pipeline they drive (training/cli/build.py).
    from training.cli.build import build_cmd, pii_eval_cmd

    data.add_command(build_cmd)
    data.add_command(pii_eval_cmd)


_add_build_commands()
