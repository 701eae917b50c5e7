"""The CPU a benchmark ran on, named the same way in every result file.

Speed depends on the CPU model and its instructions (AVX2, AVX-512, VNNI, BF16), so every figure is recorded
with the CPU's name; the benchmarks import this one helper so that their result files can be compared by it.
"""

from __future__ import annotations

import platform
from pathlib import Path


def cpu_name() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (Linux), else what ``platform`` knows (macOS, Windows, or
    arm64 Linux, whose cpuinfo often has no model name)."""
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"
