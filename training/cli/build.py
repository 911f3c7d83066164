"""``doppel data build`` and ``doppel data pii-eval``: the sample builder and the scrubber's
evaluation from the command line. Attach both to the ``data`` group (``data.add_command``).

Defaults come from the ``[data]`` section of doppel.toml; every option overrides its key for
one run. Imports of the pipeline are deferred to the command bodies so ``doppel --help`` stays
fast.

Tested in ``tests/training/dataset/test_build.py`` (``build`` on a Telegram export, its failure reason)
and ``tests/doppel/test_pii.py`` (``pii-eval``'s figures and its failure below target).
"""

from __future__ import annotations

from pathlib import Path

import click

from doppel.config import settings_of
from doppel.errors import DoppelError, InputError


def _blocklist_file(path: Path | None) -> tuple[str, ...]:
    if path is None:
        return ()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the blocklist ({getattr(exc, 'strerror', None) or exc})") from None
    return tuple(line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#"))


@click.command("build")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--owner", "owners", multiple=True, metavar="ID_OR_NAME",
              help="You in the data, by sender id or display name (repeatable; adds to data.owner).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Output directory for samples.jsonl, report.json and report.png "
                   "(default: <data_dir>/dataset).")
@click.option("--owner-name", help="Your name in the persona (default: your most frequent display name).")
@click.option("--persona", help="System persona template; {owner} is replaced by your name.")
@click.option("--merge-gap", "merge_gap_s", type=click.FloatRange(min=0, min_open=True),
              help="Seconds between one sender's messages that still make one burst.")
@click.option("--session-gap", "session_gap_s", type=click.FloatRange(min=0, min_open=True),
              help="Seconds of silence that start a new session.")
@click.option("--context-turns", type=click.IntRange(min=1), help="Earlier turns given as context per reply.")
@click.option("--max-length", type=click.IntRange(min=16), help="Longest sample, in tokens.")
@click.option("--tokenizer", "length_model", metavar="DIR",
              help="Local Hugging Face model/tokenizer directory that measures length (default: an estimate).")
@click.option("--include-chat", "include_chats", multiple=True, help="Only these chats (id or name; repeatable).")
@click.option("--exclude-chat", "exclude_chats", multiple=True, help="Leave out this chat (id or name; repeatable).")
@click.option("--include-contact", "include_contacts", multiple=True,
              help="Only these people's messages (id or name; repeatable).")
@click.option("--exclude-contact", "exclude_contacts", multiple=True,
              help="Leave out this person, and direct chats with them (id or name; repeatable).")
@click.option("--block", "blocklist", multiple=True, metavar="WORD",
              help="A turn containing this word is removed (repeatable; adds to data.blocklist).")
@click.option("--blocklist-file", type=click.Path(dir_okay=False, path_type=Path),
              help="A file with one blocked word per line (# comments allowed).")
@click.option("--tz", help="Your time zone, e.g. Asia/Shanghai: exports with local times (QQ, WhatsApp) are "
                           "read in it, the samples' time stamps written in it (default: [data] tz, else this "
                           "computer's).")
@click.option("--date-order", type=click.Choice(["dmy", "mdy", "ymd"]),
              help="Order of numeric dates in WhatsApp/LINE exports (default: inferred per file from all its dates).")
@click.pass_obj
def build_cmd(obj, inputs: tuple[Path, ...], owners: tuple[str, ...], out_dir: Path | None,
              blocklist: tuple[str, ...], blocklist_file: Path | None, tz: str | None, date_order: str | None,
              **overrides) -> None:
    """Turn chat exports into training samples (ShareGPT JSONL) and a report.

    INPUTS are exports or directories of exports (any format `doppel data import` reads) or the
    normalized JSONL that `doppel data import --out` wrote. Private data is replaced with typed
    placeholders; the report says what was kept, dropped and why.
    """
    from training.dataset.build import BuildOptions, build_from_paths

    settings = settings_of(obj)
    data = settings.data
    options = BuildOptions.from_settings(
        data, settings.privacy, owner=tuple(data.owner) + owners,
        blocklist=tuple(data.blocklist) + blocklist + _blocklist_file(blocklist_file),
        **{k: (tuple(v) if isinstance(v, tuple) else v) for k, v in overrides.items()})
    out_dir = out_dir or Path(settings.data_dir) / "dataset"
    result = build_from_paths(inputs, out_dir, options, tz=tz, date_order=date_order)
    click.echo(result.summary())
    click.echo(f"samples: {result.samples_path}\nreport:  {result.report_path}"
               + (f"\nchart:   {result.chart_path}" if result.chart_path else f"\n({result.report['chart_note']})"))
    if result.samples == 0:
        raise DoppelError(f"no samples were built: {result.report['zero_samples_reason']}")


@click.command("pii-eval")
@click.argument("path", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--show", type=click.IntRange(min=0), default=10, show_default=True,
              help="Misses and false positives to print.")
@click.option("--min-recall", type=click.FloatRange(0, 1), default=None, help="Fail below this recall (default 0.98).")
@click.option("--min-precision", type=click.FloatRange(0, 1), default=None,
              help="Fail below this precision (default 0.97).")
def pii_eval_cmd(path: Path | None, show: int, min_recall: float | None, min_precision: float | None) -> None:
    """Recall and precision of the private-data scrubber on a labelled set.

    PATH is a JSONL evaluation file (default: the built-in set, the same as
    tests/fixtures/pii_eval.jsonl). Exits non-zero when a figure is below its target.
    """
    from training.pii_eval.score import TARGET_PRECISION, TARGET_RECALL, evaluate_scrubber, format_result

    result = evaluate_scrubber(path)
    click.echo(format_result(result))
    for label, rows in (("missed", result["misses"]), ("false positive", result["false_positives"])):
        for row in rows[:show]:
            click.echo(f"  {label}: {row['type']} {row['value']!r} in {row['text']!r} ({row['id']})")
    recall_target = TARGET_RECALL if min_recall is None else min_recall
    precision_target = TARGET_PRECISION if min_precision is None else min_precision
    if result["recall"] < recall_target or result["precision"] < precision_target:
        raise DoppelError(f"below target: recall {result['recall']:.3f} (target {recall_target}), "
                          f"precision {result['precision']:.3f} (target {precision_target})")
