"""Measuring a child process the same way for us and for ``haproxy -c``, and failing loudly.

A benchmark must never print a figure for something that did not happen: every run's exit code
is checked (``best``), and a benchmark reports any broken expectation by raising
``BenchmarkFailed``, which ``run_benchmark`` turns into a message on stderr and exit code 1.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass


class BenchmarkFailed(Exception):
    """What the benchmark measures did not happen; the message says what instead."""


@dataclass(frozen=True, slots=True)
class Run:
    seconds: float  # wall clock
    peak_kib: int  # peak resident memory, from wait4's rusage
    exit_code: int
    stderr: str  # the child's stderr (its last 2 000 characters)


def measure(argv: Sequence[str], cwd: str | None = None) -> Run:
    """One child process: wall time, peak RSS from ``wait4``, exit code and stderr.

    stderr goes to a temporary file (no pipe to drain while timing), stdout is discarded."""
    with tempfile.TemporaryFile() as errors:
        start = time.perf_counter()
        process = subprocess.Popen(list(argv), cwd=cwd, stdout=subprocess.DEVNULL, stderr=errors)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        errors.seek(0)
        text = errors.read().decode("utf-8", "replace")
    return Run(seconds, usage.ru_maxrss, process.returncode, text[-2000:])


def best(
    argv: Sequence[str], repeat: int, cwd: str | None = None, *, expect_exit: int = 0
) -> tuple[float, int, list[Run]]:
    """Fastest time and largest peak memory over ``repeat`` runs, and the runs.

    Raises ``BenchmarkFailed`` unless every run exited with ``expect_exit``."""
    if repeat < 1:
        raise BenchmarkFailed(f"--repeat must be at least 1, not {repeat}")
    runs = [measure(argv, cwd) for _ in range(repeat)]
    for index, run in enumerate(runs, 1):
        if run.exit_code != expect_exit:
            raise BenchmarkFailed(
                f"{' '.join(argv)}\n  run {index} of {repeat} exited {run.exit_code} "
                f"(expected {expect_exit}); its stderr:\n{_indent(run.stderr) or '    (empty)'}"
            )
    return min(r.seconds for r in runs), max(r.peak_kib for r in runs), runs


def run_benchmark(name: str, main: Callable[[], int]) -> int:
    """``main()``'s exit code; a ``BenchmarkFailed`` becomes ``FAILED: ...`` and exit 1."""
    try:
        return main()
    except BenchmarkFailed as failure:
        print(f"{name}: FAILED: {failure}", file=sys.stderr)
        return 1


def _indent(text: str) -> str:
    return "\n".join(f"    {line}" for line in text.strip().splitlines())
