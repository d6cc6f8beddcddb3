"""The rule for required parts (tests/support/required.py), run on a small project in a real
pytest."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import ROOT

CONFTEST = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
from tests.conftest import pytest_runtest_setup, pytest_terminal_summary
"""

TESTS = """
from tests.support.required import require, requirement

@requirement("a missing tool", False, "not installed (apt-get install tool)")
def test_marked():
    pass

def test_called():
    require("the corpus", "no ../shared/corpus")

@requirement("a present tool", True, "never shown")
def test_present():
    pass
"""


def run(project: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    requires: needs a part\n")
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_parts.py").write_text(TESTS)
    return tmp_path


@pytest.mark.parametrize("ci", ["true", "YES"])
def test_under_ci_a_missing_part_fails_and_is_named(project: Path, ci: str) -> None:
    done = run(project, ci)
    assert done.returncode == 1, done.stdout
    assert "1 failed, 1 passed, 1 error" in done.stdout
    summary = done.stdout.split("required parts")[1]
    assert "missing, so tests failed:" in summary
    assert "a missing tool: 1 test(s); not installed (apt-get install tool)" in summary
    assert "the corpus: 1 test(s); no ../shared/corpus" in summary
    assert "a present tool" not in done.stdout


@pytest.mark.parametrize("ci", [None, "false"])
def test_elsewhere_it_skips_and_the_summary_lists_it(project: Path, ci: str | None) -> None:
    done = run(project, ci)
    assert done.returncode == 0, done.stdout
    assert "1 passed, 2 skipped" in done.stdout
    summary = done.stdout.split("required parts")[1]
    assert "missing, so tests skipped:" in summary
    assert "a missing tool: 1 test(s); not installed (apt-get install tool)" in summary
    assert "the corpus: 1 test(s); no ../shared/corpus" in summary
    assert "under CI=true" in summary


def test_a_run_that_misses_nothing_says_so(project: Path) -> None:
    (project / "test_parts.py").write_text("def test_ok():\n    pass\n")
    done = run(project, None)
    assert done.returncode == 0, done.stdout
    assert "none missing" in done.stdout.split("required parts")[1]
