"""PNG charts for training and evaluation: line charts (loss, checkpoint scores) and grouped bars.

matplotlib draws them when it is installed; otherwise Pillow (a transformers dependency) draws a
plainer version, so a chart is always written where either exists. Each function returns ``None``
when the file was written, or a one-line note saying why not.

Tested in ``tests/training/likeness/test_evaluate.py`` (line and bar charts with and without matplotlib).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

COLOURS = ((76, 114, 176), (221, 132, 82), (85, 168, 104), (196, 78, 82), (129, 114, 179))
Series = dict[str, Sequence[tuple[float, float]]]


def line_chart(path: Path, title: str, panels: Sequence[tuple[str, Series]]) -> str | None:
    """One panel per ``(y label, {series name: [(x, y), ...]})``, side by side, sharing ``title``."""
    panels = [(label, {k: list(v) for k, v in series.items() if v}) for label, series in panels]
    panels = [(label, series) for label, series in panels if series]
    if not panels:
        return "no chart: nothing to plot"
    try:
        _mpl_lines(Path(path), title, panels)
        return None
    except ImportError:
        pass
    try:
        _pil_lines(Path(path), title, panels)
        return None
    except ImportError:
        return "no chart: neither matplotlib nor Pillow is installed (pip install matplotlib)"


def bar_chart(path: Path, title: str, groups: Sequence[str], series: dict[str, Sequence[float]]) -> str | None:
    """Grouped bars: one group per metric in ``groups``, one bar per series (e.g. owner/adapter/base)."""
    if not groups or not series:
        return "no chart: nothing to plot"
    try:
        _mpl_bars(Path(path), title, groups, series)
        return None
    except ImportError:
        pass
    try:
        _pil_bars(Path(path), title, groups, series)
        return None
    except ImportError:
        return "no chart: neither matplotlib nor Pillow is installed (pip install matplotlib)"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _mpl_lines(path: Path, title: str, panels) -> None:
    plt = _pyplot()
    figure, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for axis, (label, series) in zip(axes[0], panels, strict=True):
        for name, points in series.items():
            axis.plot([x for x, _ in points], [y for _, y in points], label=name,
                      marker="." if len(points) < 40 else None)
        axis.set_xlabel("step")
        axis.set_ylabel(label)
        axis.legend()
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _mpl_bars(path: Path, title: str, groups, series) -> None:
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(max(6, 1.4 * len(groups)), 4))
    width = 0.8 / len(series)
    for index, (name, values) in enumerate(series.items()):
        axis.bar([g + index * width for g in range(len(groups))], values, width, label=name)
    axis.set_xticks([g + 0.4 - width / 2 for g in range(len(groups))], groups, rotation=20, ha="right")
    axis.set_title(title)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _pil_lines(path: Path, title: str, panels) -> None:
    from PIL import Image, ImageDraw

    pad, panel_w, height = 50, 520, 400
    image = Image.new("RGB", (pad + len(panels) * (panel_w + pad), height), "white")
    draw = ImageDraw.Draw(image)
    draw.text((pad, 8), title, fill="black")
    for number, (label, series) in enumerate(panels):
        x0, top, bottom = pad + number * (panel_w + pad), 40, height - 40
        points = [p for values in series.values() for p in values]
        xs, ys = [x for x, _ in points], [y for _, y in points]
        x_lo, x_hi = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
        y_lo, y_hi = min(ys), max(ys) if max(ys) > min(ys) else min(ys) + 1
        draw.rectangle((x0, top, x0 + panel_w, bottom), outline="black")
        draw.text((x0, bottom + 6), f"step {x_lo:g} .. {x_hi:g}", fill="black")
        draw.text((x0, 24), f"{label}: {y_lo:.3g} .. {y_hi:.3g}", fill="black")

        def at(x: float, y: float, x0=x0, top=top, bottom=bottom, x_lo=x_lo, x_hi=x_hi, y_lo=y_lo, y_hi=y_hi):
            return (x0 + (x - x_lo) / (x_hi - x_lo) * panel_w, bottom - (y - y_lo) / (y_hi - y_lo) * (bottom - top))

        for index, (name, values) in enumerate(series.items()):
            colour = COLOURS[index % len(COLOURS)]
            line = [at(x, y) for x, y in values]
            if len(line) > 1:
                draw.line(line, fill=colour, width=2)
            for x, y in line:
                draw.ellipse((x - 2, y - 2, x + 2, y + 2), fill=colour)
            draw.text((x0 + panel_w - 150, top + 6 + 14 * index), name, fill=colour)
    image.save(path, format="PNG")


def _pil_bars(path: Path, title: str, groups, series) -> None:
    from PIL import Image, ImageDraw

    pad, group_w, height = 50, 130, 420
    image = Image.new("RGB", (2 * pad + group_w * len(groups), height), "white")
    draw = ImageDraw.Draw(image)
    draw.text((pad, 8), title, fill="black")
    top, bottom = 50, height - 60
    peak = max((abs(v) for values in series.values() for v in values), default=0) or 1.0
    bar_w = (group_w - 20) / len(series)
    for index, (name, values) in enumerate(series.items()):
        colour = COLOURS[index % len(COLOURS)]
        draw.text((pad + 120 * index, 26), name, fill=colour)
        for g, value in enumerate(values):
            left = pad + g * group_w + index * bar_w
            draw.rectangle((left, bottom - (bottom - top) * abs(value) / peak, left + bar_w - 3, bottom), fill=colour)
    for g, group in enumerate(groups):
        draw.text((pad + g * group_w, bottom + 8), group[:20], fill="black")
    draw.line((pad, bottom, pad + group_w * len(groups), bottom), fill="black")
    image.save(path, format="PNG")
