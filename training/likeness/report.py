"""The likeness report of ``doppel eval``: ``eval.json`` and its chart ``eval.png``, the tables on the
terminal, and the summary of the scores that goes into an adapter's card.

A report is the dict ``training.likeness.evaluate.Evaluator.score`` returns; a run's checkpoint
comparison is the dict of ``evaluate_run``.

Tested in ``tests/training/likeness/test_evaluate.py`` (eval.json, the tables, the chart).
"""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

EVAL_FILE = "eval.json"


def summary(report: dict) -> dict:
    """The scores that go into an adapter's card."""
    keep = {"perplexity": report["perplexity"], "likeness": report["likeness"], "publishable": report["publishable"],
            "heldout_samples": report["data"]["heldout_samples"], "evaluated_at": report["evaluated_at"]}
    if "style" in report:
        distance = report["style"]["distance"]
        keep["style_distance"] = {"adapter": distance["adapter"]["style_distance"],
                                  "base": distance["base"]["style_distance"]}
        keep["phrase_rate"] = {k: report["style"][k]["phrase_rate"] for k in ("owner", "adapter", "base")}
        keep["ai_ism_rate"] = report["style"]["adapter"]["ai_ism_rate"]
    return keep


def write_report(report: dict, out_dir: Path, chart: bool = True) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / EVAL_FILE).write_text(json.dumps(report, indent=2, ensure_ascii=False))
    if chart and "style" in report:
        from training.sft.charts import bar_chart

        style = report["style"]
        mean = style["owner"]["chars_per_message"].get("mean") or 1.0
        groups = ["length / owner's", "messages per burst", "emoji rate", "top-phrase rate", "lowercase start",
                  "AI-isms"]
        series = {who: [style[who]["chars_per_message"].get("mean", 0) / mean, style[who]["messages_per_burst"],
                        style[who]["emoji_rate"], style[who]["phrase_rate"], style[who]["lowercase_start"],
                        style[who]["ai_ism_rate"]] for who in ("owner", "adapter", "base")}
        ppl = report["perplexity"]
        bar_chart(out_dir / "eval.png", f"held-out style; perplexity base {ppl['base']:.2f} -> adapter "
                                        f"{ppl['adapter']:.2f} (ratio {ppl['ratio']:.3f})", groups, series)


def render(report: dict, console: Console) -> None:
    ppl = report["perplexity"]
    table = Table(title=f"held-out evaluation ({report['data']['heldout_samples']} replies, "
                        f"{report['data']['heldout_sessions']} sessions)", title_justify="left")
    for column in ("measure", "owner", "adapter", "base"):
        table.add_column(column, justify="right" if column != "measure" else "left")
    table.add_row("perplexity of owner's replies", "", f"{ppl['adapter']:.3f}", f"{ppl['base']:.3f}")
    if "style" in report:
        s = report["style"]
        rows = [("chars per message (mean)", lambda p: f"{p['chars_per_message'].get('mean', 0):.1f}"),
                ("messages per burst", lambda p: f"{p['messages_per_burst']:.2f}"),
                ("emoji/sticker rate", lambda p: f"{p['emoji_rate']:.2f}"),
                ("ends with a period", lambda p: f"{p['ends_with_period']:.2f}"),
                ("lowercase start", lambda p: f"{p['lowercase_start']:.2f}"),
                ("owner's top phrases", lambda p: f"{p['phrase_rate']:.2f}"),
                ("AI-isms", lambda p: f"{p['ai_ism_rate']:.2f}")]
        for label, fmt in rows:
            table.add_row(label, fmt(s["owner"]), fmt(s["adapter"]), fmt(s["base"]))
        d = s["distance"]
        table.add_row("style distance to owner", "0", f"{d['adapter']['style_distance']:.3f}",
                      f"{d['base']['style_distance']:.3f}")
    console.print(table)
    verdict = "[green]publishable[/]" if report["publishable"] else "[red]not publishable[/]"
    console.print(f"perplexity ratio adapter/base {ppl['ratio']:.3f} -> {verdict}; top phrases: "
                  f"{', '.join(report['phrases'][:5]) or '-'}")
    if report["data"]["trained_on_heldout_sessions"]:
        console.print(f"[yellow]{report['data']['trained_on_heldout_sessions']} held-out session(s) were in this "
                      "adapter's training data: the scores are optimistic[/]")


def render_checkpoints(result: dict, console: Console) -> None:
    table = Table(title="checkpoints (lower is better)", title_justify="left")
    for column in ("step", "ppl ratio", "style distance", "top-phrase rate", "AI-isms", "likeness"):
        table.add_column(column, justify="right")
    for row in result["checkpoints"]:
        mark = " *" if row["step"] == result["best"]["step"] else ""
        table.add_row(f"{row['step']}{mark}", f"{row['perplexity']['ratio']:.3f}",
                      f"{row.get('style_distance', {}).get('adapter', float('nan')):.3f}",
                      f"{row.get('phrase_rate', {}).get('adapter', float('nan')):.2f}",
                      f"{row.get('ai_ism_rate', float('nan')):.2f}", f"{row['likeness']:.3f}")
    console.print(table)
    console.print(f"best: step {result['best']['step']} ({result['best']['adapter']})")
