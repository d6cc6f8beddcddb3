"""Measuring a child process the same way for us and for ``haproxy -c``."""

from __future__ import annotations

import os
import subprocess
import time


def measure(argv: list[str], cwd: str | None = None) -> tuple[float, int, int]:
    """(wall seconds, peak RSS in KiB from ``wait4``, exit code) of one child process."""
    start = time.perf_counter()
    process = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    return time.perf_counter() - start, usage.ru_maxrss, os.waitstatus_to_exitcode(status)


def best(argv: list[str], repeat: int, cwd: str | None = None) -> tuple[float, int, int]:
    """Fastest time and largest peak memory over ``repeat`` runs, and the last exit code."""
    runs = [measure(argv, cwd) for _ in range(repeat)]
    return min(r[0] for r in runs), max(r[1] for r in runs), runs[-1][2]
