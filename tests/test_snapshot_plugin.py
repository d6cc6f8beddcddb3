"""The shipped ``haproxy_snapshot`` fixture, used the way a user's CI would use it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

USER_TEST = """
from runtime.pipeline import compile_payload

PAYLOAD = {"table": "users", "running": [], "candidates": [
    {"serviceName": "NAME", "predicate": "NAME.example.com",
     "containers": [{"id": "c1", "ip": "10.0.0.1:80"}]}]}

def test_first(haproxy_snapshot):
    assert compile_payload(PAYLOAD).text == haproxy_snapshot

def test_second(haproxy_snapshot):
    assert compile_payload({**PAYLOAD, "candidates": []}).text == haproxy_snapshot
"""


def pytest_in(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def test_user_project_snapshots(tmp_path: Path) -> None:
    (tmp_path / "tests" / "edge").mkdir(parents=True)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    test_file = tmp_path / "tests" / "edge" / "test_configs.py"
    test_file.write_text(USER_TEST.replace("NAME", "shop"))

    created = pytest_in(tmp_path, "--snapshot-update")
    assert created.returncode == 0, created.stdout
    stored = tmp_path / "snapshots" / "edge" / "test_configs"
    assert sorted(p.name for p in stored.iterdir()) == ["test_first.cfg", "test_second.cfg"]
    assert "backend shop\n" in (stored / "test_first.cfg").read_text()

    # One test alone: its sibling's snapshot is neither reported unused nor deleted.
    single = pytest_in(tmp_path, "tests/edge/test_configs.py::test_first", "--snapshot-update")
    assert single.returncode == 0, single.stdout
    assert "unused" not in single.stdout
    assert (stored / "test_second.cfg").exists()

    # A changed config fails plain pytest, and says which snapshot.
    test_file.write_text(USER_TEST.replace("NAME", "blog"))
    changed = pytest_in(tmp_path)
    assert changed.returncode == 1
    assert (
        "test_first" in changed.stdout
        and "test_second" not in changed.stdout.split("short test summary")[-1]
    )
