"""A progress display for long steps (import, evaluation, Q/A generation) that stays out of quick ones.

Tested in ``tests/training/importers/test_detect.py`` (shown only when the work is slow).
"""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn


class LazyProgress:
    """A rich progress display that only appears once the work has taken more than ``delay_s``."""

    def __init__(self, console: Console, description: str, total: int | None = None, delay_s: float = 1.0):
        self._console = console
        self._description = description
        self._total = total
        self._delay_s = delay_s
        self._started = 0.0
        self._progress: Progress | None = None
        self._task = None

    def __enter__(self) -> LazyProgress:
        self._started = time.monotonic()
        return self

    def update(self, completed: int, description: str | None = None) -> None:
        if description:
            self._description = description
        if self._progress is None:
            if time.monotonic() - self._started < self._delay_s:
                return
            counter = MofNCompleteColumn() if self._total else TextColumn("{task.completed} messages")
            self._progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), counter,
                                      TimeElapsedColumn(), console=self._console, transient=True)
            self._progress.start()
            self._task = self._progress.add_task(self._description, total=self._total)
        self._progress.update(self._task, completed=completed, description=self._description)

    def __exit__(self, *exc_info) -> None:
        if self._progress is not None:
            self._progress.stop()
