"""Shared fixtures: the real haproxy binary as the oracle, example payloads, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from runtime.haproxy_check import check_config, haproxy_binary

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SHARED = ROOT.parent / "shared"


@pytest.fixture(scope="session")
def haproxy() -> str:
    """Path of the haproxy binary; in CI its absence is a failure, elsewhere a skip."""
    binary = haproxy_binary()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("haproxy is not installed; .ci/run installs Debian's haproxy")
        pytest.skip("haproxy is not installed (apt-get install haproxy)")
    return binary


@pytest.fixture(scope="session")
def assert_haproxy_accepts(haproxy: str) -> Callable[[str], None]:
    def check(text: str) -> None:
        result = check_config(text, binary=haproxy)
        assert result.ok, f"haproxy -c refused the config:\n{result.output}\n---\n{text[:4000]}"

    return check


def load_example(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EXAMPLES / name).read_text())
    return data


@pytest.fixture
def seed_payload() -> dict[str, Any]:
    return load_example("seed.json")


def run_cli(
    *args: str, stdin: str | bytes | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``lambda-registry`` in a real subprocess, as a user would."""
    data = stdin.decode() if isinstance(stdin, bytes) else stdin
    return subprocess.run(
        [sys.executable, "-m", "runtime.cli", *args],
        input=data,
        capture_output=True,
        text=True,
        cwd=cwd,
        check=False,
        timeout=300,
    )


@pytest.fixture(autouse=True)
def isolated_state(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Keep the embedded store (the CLI's default) out of the real ~/.local/state.

    Every test gets its own fresh ``XDG_STATE_HOME``; store settings from the environment
    that runs the tests are ignored.
    """
    state_home = tmp_path_factory.mktemp("xdg-state")
    monkeypatch.setenv("XDG_STATE_HOME", str(state_home))
    for name in (
        "LAMBDA_REGISTRY_STORE",
        "LAMBDA_REGISTRY_CREATE_TABLES",
        "LAMBDA_REGISTRY_MAX_ATTEMPTS",
        "LAMBDA_REGISTRY_SQLITE_TIMEOUT",
        "LAMBDA_REGISTRY_OPTIONS",
        "LAMBDA_REGISTRY_OPTIONS_FILE",
        "AWS_LAMBDA_FUNCTION_NAME",
    ):
        monkeypatch.delenv(name, raising=False)
    return state_home
