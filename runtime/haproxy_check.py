"""Run the real ``haproxy -c`` on a config: HAProxy itself is the final judge."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

HAPROXY_ENV = "LAMBDA_REGISTRY_HAPROXY"


@dataclass(frozen=True, slots=True)
class CheckResult:
    ok: bool
    output: str


def haproxy_binary() -> str | None:
    """``$LAMBDA_REGISTRY_HAPROXY`` or ``haproxy`` on PATH (or /usr/sbin), else None."""
    configured = os.environ.get(HAPROXY_ENV)
    if configured:
        return configured
    return shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/usr/local/sbin")


def check_config(text: str, *, binary: str | None = None, timeout: float = 120) -> CheckResult:
    """``haproxy -c`` on ``text``. Raises FileNotFoundError when no haproxy is installed."""
    binary = binary or haproxy_binary()
    if binary is None:
        raise FileNotFoundError("haproxy is not installed (set LAMBDA_REGISTRY_HAPROXY)")
    with tempfile.TemporaryDirectory(prefix="lambda-registry-check-") as directory:
        path = os.path.join(directory, "haproxy.cfg")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        completed = subprocess.run(
            [binary, "-c", "-f", path],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=directory,
        )
    output = (completed.stdout + completed.stderr).replace(path, "<config>")
    return CheckResult(completed.returncode == 0, output.strip())
