"""What machine this is, in the words benchmark reports print: CPU model and memory.

Every benchmark states the machine beside its figures; one reader of /proc keeps them agreeing.

Not tested on its own: benchmark reports print it (``benchmarks/_harness.py``), read by eye.
"""

from __future__ import annotations

import contextlib
import platform
from pathlib import Path


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown"


def memory_gib() -> float | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    return None
