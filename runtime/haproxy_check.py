"""Run the real ``haproxy -c`` on a config: HAProxy itself is the final judge."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass

from compiler.errors import LocatedError
from compiler.printer import CONFIG_NAME

HAPROXY_ENV = "LAMBDA_REGISTRY_HAPROXY"


@dataclass(frozen=True, slots=True)
class CheckResult:
    ok: bool
    output: str


class RefusedError(LocatedError):
    """``haproxy -c`` refused a config and named no service to leave out (or still refused it
    without them); ``message`` holds what it said."""


# How many times a refused config is checked again without the services haproxy named: it
# may name only the first of several errors (a map file's, say) before it stops.
PRUNE_ROUNDS = 4


def haproxy_binary() -> str | None:
    """``$LAMBDA_REGISTRY_HAPROXY`` or ``haproxy`` on PATH (or /usr/sbin), else None."""
    configured = os.environ.get(HAPROXY_ENV)
    if configured:
        return configured
    return shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/usr/local/sbin")


def check_config(
    text: str | Mapping[str, str], *, binary: str | None = None, timeout: float = 120
) -> CheckResult:
    """``haproxy -c`` on a config, or on a bundle (files by name, the config first, its maps
    beside it). Raises FileNotFoundError when no haproxy is installed."""
    binary = binary or haproxy_binary()
    if binary is None:
        raise FileNotFoundError("haproxy is not installed (set LAMBDA_REGISTRY_HAPROXY)")
    files = {CONFIG_NAME: text} if isinstance(text, str) else dict(text)
    with tempfile.TemporaryDirectory(prefix="lambda-registry-check-") as directory:
        path = ""
        for name, content in files.items():
            target = os.path.join(directory, os.path.basename(name))
            path = path or target  # the first file is the config
            with open(target, "w", encoding="utf-8", newline="") as handle:
                handle.write(content)
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
