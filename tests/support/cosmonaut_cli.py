"""``cosmonaut`` run in a real subprocess, as a user runs it."""

from __future__ import annotations

import subprocess
import sys


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cosmonaut.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
