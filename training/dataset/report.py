"""The build report: what went in, what came out, what was dropped and why, in JSON and a chart.

``make_report`` gathers the counts of every stage into one JSON-ready dict; ``explain_zero``
says, with the numbers, why a build produced no samples (owner not found, everything filtered by
a named reason, the owner never answering anyone, every sample too long); ``write_report`` saves
``report.json`` and ``report.png`` (reply length histogram and the owner's activity by hour).

The chart uses matplotlib when it is installed; otherwise it is drawn with Pillow; with neither,
the report says so in ``chart_note`` and the JSON still has every figure. Top phrases are taken
from scrubbed text, so the report never shows a private value either.

Tested in ``tests/training/dataset/test_build.py`` (the report's figures, the chart, every
zero-samples reason).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from training.dataset.clean import CleanStats
from training.dataset.samples import NO_PROMPT, OVER_LENGTH, SampleStats
from training.dataset.sessions import SessionStats

LENGTH_BUCKETS = (5, 10, 20, 50, 100, 200, 500)


def _percentiles(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {"min": ordered[0], "p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "max": ordered[-1],
            "mean": round(sum(ordered) / len(ordered), 2)}


def _histogram(values: Sequence[int]) -> dict[str, int]:
    labels = [f"<={b}" for b in LENGTH_BUCKETS] + [f">{LENGTH_BUCKETS[-1]}"]
    counts = dict.fromkeys(labels, 0)
    for value in values:
        index = next((i for i, b in enumerate(LENGTH_BUCKETS) if value <= b), len(LENGTH_BUCKETS))
        counts[labels[index]] += 1
    return counts


def make_report(*, sources: Counter, clean: CleanStats, sessions: SessionStats, samples: SampleStats,
                pii: Counter, owner_phrases: Counter, owner_hours: Sequence[int], senders: Counter,
                settings: dict) -> dict:
    """Every stage's figures as one JSON-ready dict (see the module docstring)."""
    report = {
        "sources": dict(sorted(sources.items())),
        "messages": {
            "read": clean.read, "kept": clean.kept, "dropped": dict(clean.dropped.most_common()),
            "owner_read": clean.owner_read, "owner_kept": clean.owner_kept,
            "owner_dropped": dict(clean.owner_dropped.most_common()),
            "owner_share": round(clean.owner_kept / clean.kept, 4) if clean.kept else 0.0,
        },
        "turns": {
            "chats": sessions.chats, "turns": sessions.bursts, "owner_turns": sessions.owner_bursts,
            "dropped_by_blocklist": sessions.blocked_turns, "messages_dropped_by_blocklist": sessions.blocked_messages,
            "messages_per_owner_turn": {str(k): v for k, v in sorted(sessions.owner_burst_sizes.items())},
            "seconds_between_owner_burst_messages": _percentiles(sessions.owner_gaps),
        },
        "sessions": sessions.sessions,
        "samples": {
            "candidates": samples.candidates, "written": samples.written,
            "dropped": dict(samples.dropped.most_common()), "context_trimmed": samples.trimmed,
            "length": _percentiles(samples.lengths),
        },
        "reply_length_chars": {"stats": _percentiles(samples.reply_chars),
                               "histogram": _histogram(samples.reply_chars)},
        "top_owner_phrases": [[phrase, count] for phrase, count in owner_phrases.most_common(20)],
        "owner_activity_by_hour": list(owner_hours),
        "pii_found": dict(sorted(pii.items())),
        "top_senders": [[name, count] for name, count in senders.most_common(10)],
        "settings": settings,
    }
    report["zero_samples_reason"] = explain_zero(report) if samples.written == 0 else None
    return report


def explain_zero(report: dict) -> str:
    """Why a build produced no samples, with the counts that show it."""
    messages, turns, samples = report["messages"], report["turns"], report["samples"]
    settings = report["settings"]
    if messages["read"] == 0:
        files = ", ".join(report["sources"]) or "no input"
        return f"no messages were read ({files}): the inputs are empty"
    if messages["owner_read"] == 0:
        seen = ", ".join(f"{name} ({count})" for name, count in report["top_senders"][:5])
        owner = ", ".join(settings.get("owner") or []) or "none given"
        return (f"owner not found: none of the {messages['read']} messages is marked as the owner's "
                f"(--owner: {owner}); most frequent senders: {seen}")
    if messages["owner_kept"] == 0:
        reasons = ", ".join(f"{reason} {count}" for reason, count in messages["owner_dropped"].items())
        return f"all {messages['owner_read']} owner messages were filtered out by cleaning: {reasons}"
    if messages["kept"] - messages["owner_kept"] == 0:
        reasons = ", ".join(f"{reason} {count}" for reason, count in messages["dropped"].items()) or "none dropped"
        return (f"too few messages: only the owner's {messages['owner_kept']} messages are left, nobody else's "
                f"({messages['read'] - messages['owner_read']} read from others; dropped: {reasons})")
    if turns["owner_turns"] == 0:
        return (f"all owner turns were removed by the blocklist ({turns['dropped_by_blocklist']} turns, "
                f"{turns['messages_dropped_by_blocklist']} messages)")
    dropped = samples["dropped"]
    if dropped.get(NO_PROMPT, 0) == samples["candidates"]:
        return (f"the owner never answers anyone: all {samples['candidates']} times the owner speaks, nobody else "
                f"spoke before in that conversation (sessions split at session_gap_s={settings.get('session_gap_s')})")
    if dropped.get(OVER_LENGTH, 0) and dropped.get(OVER_LENGTH, 0) + dropped.get(NO_PROMPT, 0) == samples["candidates"]:
        return (f"every sample is longer than max_length={settings.get('max_length')} tokens even with one "
                f"context turn ({dropped[OVER_LENGTH]} of {samples['candidates']} owner replies)")
    parts = ", ".join(f"{reason} {count}" for reason, count in dropped.items())
    return f"all {samples['candidates']} candidate samples were dropped: {parts}"


def format_summary(report: dict) -> str:
    """A few lines for the terminal."""
    messages, samples = report["messages"], report["samples"]
    dropped = ", ".join(f"{k} {v}" for k, v in messages["dropped"].items()) or "none"
    lines = [
        f"messages: {messages['read']} read from {len(report['sources'])} source(s), {messages['kept']} kept "
        f"(owner {messages['owner_kept']}, share {messages['owner_share']:.0%}); dropped: {dropped}",
        f"sessions: {report['sessions']}, turns: {report['turns']['turns']} "
        f"(blocklist removed {report['turns']['dropped_by_blocklist']})",
        f"samples: {samples['written']} written of {samples['candidates']} owner replies"
        + (f"; dropped: {', '.join(f'{k} {v}' for k, v in samples['dropped'].items())}" if samples["dropped"] else "")
        + (f"; {samples['context_trimmed']} shortened to fit" if samples["context_trimmed"] else ""),
        "private data replaced: " + (", ".join(f"{k} {v}" for k, v in report["pii_found"].items()) or "none found"),
    ]
    if report.get("zero_samples_reason"):
        lines.append(f"no samples: {report['zero_samples_reason']}")
    return "\n".join(lines)


def write_report(report: dict, out_dir: Path) -> tuple[Path, Path | None]:
    """``report.json`` and, when a plotting library is there, ``report.png``; returns both paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    chart_path = out_dir / "report.png"
    note = write_chart(report, chart_path)
    report["chart"] = str(chart_path) if note is None else None
    report["chart_note"] = note
    json_path = out_dir / "report.json"
    json_path.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return json_path, (chart_path if note is None else None)


def write_chart(report: dict, path: Path) -> str | None:
    """Draw the chart; ``None`` when written, else a note saying why not."""
    histogram = report["reply_length_chars"]["histogram"]
    hours = report["owner_activity_by_hour"]
    try:
        _matplotlib_chart(histogram, hours, path)
        return None
    except ImportError:
        pass
    try:
        _pillow_chart(histogram, hours, path)
        return None
    except ImportError:
        return "no chart: neither matplotlib nor Pillow is installed (pip install matplotlib)"


def _matplotlib_chart(histogram: dict[str, int], hours: Sequence[int], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.bar(list(histogram), list(histogram.values()), color="#4c72b0")
    left.set_title("owner reply length (characters)")
    left.set_ylabel("samples")
    right.bar(range(24), hours, color="#dd8452")
    right.set_title("owner messages by hour of day")
    right.set_xticks(range(0, 24, 3))
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _pillow_chart(histogram: dict[str, int], hours: Sequence[int], path: Path) -> None:
    from PIL import Image, ImageDraw

    width, height, pad = 1100, 400, 40
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    panels = (("owner reply length (characters)", list(histogram.items()), (76, 114, 176)),
              ("owner messages by hour of day", [(str(h), n) for h, n in enumerate(hours)], (221, 132, 82)))
    panel_width = (width - 3 * pad) // 2
    for number, (title, bars, colour) in enumerate(panels):
        x0 = pad + number * (panel_width + pad)
        top, bottom = pad, height - pad
        draw.text((x0, 10), title, fill="black")
        draw.line((x0, bottom, x0 + panel_width, bottom), fill="black")
        peak = max((n for _, n in bars), default=0) or 1
        step = panel_width / max(1, len(bars))
        for index, (label, count) in enumerate(bars):
            left = x0 + index * step + 2
            bar_top = bottom - (bottom - top - 20) * count / peak
            draw.rectangle((left, bar_top, left + step - 4, bottom), fill=colour)
            if len(bars) <= 8 or index % 3 == 0:
                draw.text((left, bottom + 5), label, fill="black")
            if count and len(bars) <= 8:
                draw.text((left, bar_top - 12), str(count), fill="black")
    image.save(path, format="PNG")
