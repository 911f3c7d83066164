"""Scoring the private-data scrubber on a labelled set: recall and precision, per type and overall.

A planted value counts as found when one finding of its type covers it entirely (a partly
scrubbed phone number still leaks); a finding counts as correct when it overlaps a planted value
of its type, so a look-alike scrubbed by mistake, or a value scrubbed as the wrong type, costs
precision. recall = found / planted, precision = correct / findings. Targets (issue 14, raised from
issue 3's 0.95 precision): recall >= 0.98 and precision >= 0.97 on each set: the tuning set
``tests/fixtures/pii_eval.jsonl`` (``training.pii_eval.evalset``) and the adversarial one
``tests/fixtures/pii_adversarial.jsonl`` (``training.pii_eval.adversarial``).

Tested in ``tests/doppel/test_pii.py`` and ``tests/doppel/test_pii_spellings.py`` (each set meets
the targets).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from doppel.pii import Scrubber
from doppel.pii.findings import TYPES

TARGET_RECALL = 0.98
TARGET_PRECISION = 0.97


def evaluate_scrubber(source: Path | str | Iterable[dict] | None = None, scrubber: Scrubber | None = None) -> dict:
    """Recall and precision of ``scrubber`` on an evaluation file (or records; default: ``generate()``).

    Returns ``{"recall", "precision", "planted", "findings", "lookalikes_kept", "per_type": {TYPE:
    {"planted", "found", "findings", "correct", "recall", "precision"}}, "misses", "false_positives"}``.
    """
    from training.pii_eval.evalset import generate, read

    if source is None:
        records = generate()
    elif isinstance(source, str | Path):
        records = read(Path(source))
    else:
        records = list(source)
    scrubber = scrubber or Scrubber()
    stats = {t: {"planted": 0, "found": 0, "findings": 0, "correct": 0} for t in TYPES}
    misses, false_positives, looks_total, looks_kept = [], [], 0, 0
    for record in records:
        findings = scrubber.find(record["text"])
        for item in record["pii"]:
            stats[item["type"]]["planted"] += 1
            if any(f.type == item["type"] and f.start <= item["start"] and f.end >= item["end"] for f in findings):
                stats[item["type"]]["found"] += 1
            else:
                misses.append({"id": record["id"], "type": item["type"], "value": item["value"],
                               "text": record["text"]})
        for finding in findings:
            stats.setdefault(finding.type, {"planted": 0, "found": 0, "findings": 0, "correct": 0})
            stats[finding.type]["findings"] += 1
            if any(i["type"] == finding.type and finding.start < i["end"] and finding.end > i["start"]
                   for i in record["pii"]):
                stats[finding.type]["correct"] += 1
            else:
                false_positives.append({"id": record["id"], "type": finding.type, "value": finding.value,
                                        "text": record["text"]})
        for look in record["lookalikes"]:
            looks_total += 1
            looks_kept += not any(f.start < look["end"] and f.end > look["start"] for f in findings)
    for row in stats.values():
        row["recall"] = row["found"] / row["planted"] if row["planted"] else 1.0
        row["precision"] = row["correct"] / row["findings"] if row["findings"] else 1.0
    planted = sum(r["planted"] for r in stats.values())
    found = sum(r["found"] for r in stats.values())
    total_findings = sum(r["findings"] for r in stats.values())
    correct = sum(r["correct"] for r in stats.values())
    return {
        "records": len(records), "planted": planted, "findings": total_findings,
        "recall": found / planted if planted else 1.0,
        "precision": correct / total_findings if total_findings else 1.0,
        "lookalikes": looks_total, "lookalikes_kept": looks_kept,
        "per_type": stats, "misses": misses, "false_positives": false_positives,
    }


def format_result(result: dict) -> str:
    lines = [f"{'type':<8} {'planted':>7} {'found':>6} {'recall':>7} {'findings':>8} {'precision':>9}"]
    for name, row in result["per_type"].items():
        lines.append(f"{name:<8} {row['planted']:>7} {row['found']:>6} {row['recall']:>7.3f} {row['findings']:>8} "
                     f"{row['precision']:>9.3f}")
    lines.append(f"{'all':<8} {result['planted']:>7} {round(result['recall'] * result['planted']):>6} "
                 f"{result['recall']:>7.3f} {result['findings']:>8} {result['precision']:>9.3f}")
    lines.append(f"look-alikes left alone: {result['lookalikes_kept']}/{result['lookalikes']}; "
                 f"records: {result['records']}")
    return "\n".join(lines)
