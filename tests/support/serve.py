"""``lambda-registry serve`` as a command: started on a free loopback port, stopped cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

SERVE = (sys.executable, "-m", "runtime.cli", "serve")


def serve_process(store: str, *options: str, sigint_ignored: bool = False) -> subprocess.Popen[str]:
    """``lambda-registry serve`` on a free loopback port, its log on a pipe (the first line
    names its URL), with PYTHONFAULTHANDLER for ``stopped``."""
    env = {**os.environ, "LAMBDA_REGISTRY_STORE": store, "PYTHONFAULTHANDLER": "1"}
    env.pop("LAMBDA_REGISTRY_TOKEN", None)

    def ignore_sigint() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    return subprocess.Popen(
        [*SERVE, "--listen", "127.0.0.1:0", *options],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=env,
        preexec_fn=ignore_sigint if sigint_ignored else None,
    )


def stopped(process: subprocess.Popen[str]) -> None:
    """Wait 10 s for ``process`` to exit; else fail with the stack of each of its threads
    (serve runs with PYTHONFAULTHANDLER, which prints them at SIGABRT)."""
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGABRT)
        _, stderr = process.communicate(timeout=10)
        pytest.fail(f"serve did not stop within 10 s of its signal; its threads:\n{stderr[-6000:]}")
