"""The shipped ``haproxy_snapshot`` fixture, used the way a user's CI would use it."""

from __future__ import annotations

import os
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


# What the outer pytest run may carry in the environment and must not reach the inner one: an
# outer ``PYTEST_ADDOPTS=--snapshot-update`` would make every inner run rewrite its snapshots.
OUTER_SETTINGS = ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD")


def pytest_in(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """A user's ``pytest`` in ``project``, with exactly ``args`` and the project's own ini."""
    environment = {k: v for k, v in os.environ.items() if k not in OUTER_SETTINGS}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-c",
            str(project / "pytest.ini"),
            "--rootdir",
            str(project),
            "-p",
            "no:cacheprovider",
            "-p",
            "no:hypothesispytest",  # not needed here, and seconds to import
            *args,
        ],
        cwd=project,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def user_project(root: Path, name: str = "shop") -> Path:
    """A user's project: one test module under tests/edge/, its snapshots not yet written."""
    (root / "tests" / "edge").mkdir(parents=True)
    (root / "pytest.ini").write_text("[pytest]\n")
    test_file = root / "tests" / "edge" / "test_configs.py"
    test_file.write_text(USER_TEST.replace("NAME", name))
    return test_file


def contents(folder: Path) -> dict[str, str]:
    return {path.name: path.read_text() for path in sorted(folder.iterdir())}


def test_user_project_snapshots(tmp_path: Path) -> None:
    test_file = user_project(tmp_path)
    stored = tmp_path / "snapshots" / "edge" / "test_configs"

    missing = pytest_in(tmp_path)
    assert missing.returncode == 1, missing.stdout  # no snapshot yet: plain pytest fails
    assert not stored.exists()

    created = pytest_in(tmp_path, "--snapshot-update")
    assert created.returncode == 0, created.stdout
    assert sorted(p.name for p in stored.iterdir()) == ["test_first.cfg", "test_second.cfg"]
    assert "backend shop\n" in (stored / "test_first.cfg").read_text()
    assert "backend" not in (stored / "test_second.cfg").read_text().replace("# Define", "")
    written = contents(stored)

    # One test alone: its sibling's snapshot is neither reported unused nor deleted.
    single = pytest_in(tmp_path, "tests/edge/test_configs.py::test_first", "--snapshot-update")
    assert single.returncode == 0, single.stdout
    assert "unused" not in single.stdout
    assert contents(stored) == written

    # A changed config fails plain pytest, says which snapshot, and rewrites nothing.
    test_file.write_text(USER_TEST.replace("NAME", "blog"))
    changed = pytest_in(tmp_path)
    assert changed.returncode == 1, changed.stdout
    summary = changed.stdout.split("short test summary")[-1]
    assert "test_first" in summary and "test_second" not in summary, changed.stdout
    assert contents(stored) == written

    # Only --snapshot-update writes the new config.
    updated = pytest_in(tmp_path, "--snapshot-update")
    assert updated.returncode == 0, updated.stdout
    assert "backend blog\n" in (stored / "test_first.cfg").read_text()
    assert contents(stored)["test_second.cfg"] == written["test_second.cfg"]


def test_an_orphaned_snapshot_fails_pytest(tmp_path: Path) -> None:
    user_project(tmp_path)
    stored = tmp_path / "snapshots" / "edge" / "test_configs"
    assert pytest_in(tmp_path, "--snapshot-update").returncode == 0
    # A snapshot no test uses any more (its test was renamed or deleted).
    (stored / "test_gone.cfg").write_text((stored / "test_first.cfg").read_text())

    orphaned = pytest_in(tmp_path, "--snapshot-details")
    assert orphaned.returncode == 1, orphaned.stdout
    assert "2 passed" in orphaned.stdout and "1 snapshot unused" in orphaned.stdout
    assert "Unused test_gone (snapshots/edge/test_configs/test_gone.cfg)" in orphaned.stdout

    # Running one test alone does not blame the orphan on it.
    single = pytest_in(tmp_path, "tests/edge/test_configs.py::test_first")
    assert single.returncode == 0, single.stdout

    # --snapshot-update deletes the orphan and only it.
    assert pytest_in(tmp_path, "--snapshot-update").returncode == 0
    assert sorted(p.name for p in stored.iterdir()) == ["test_first.cfg", "test_second.cfg"]


BUNDLE_TEST = """
from compiler.options import RenderOptions
from runtime.pipeline import compile_payload

PAYLOAD = {"table": "users", "running": [], "candidates": [
    {"serviceName": "web", "predicate": "HOST",
     "containers": [{"id": "c1", "ip": "10.0.0.1:80"}]}]}

def test_bundle(haproxy_bundle_snapshot):
    result = compile_payload(PAYLOAD, options=RenderOptions(routing="map"))
    assert result.files == haproxy_bundle_snapshot
"""


def test_bundle_snapshots_are_plain_files_and_name_the_changed_file(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    test_file = tmp_path / "tests" / "test_bundles.py"
    test_file.write_text(BUNDLE_TEST.replace("HOST", "a.example.com"))
    stored = tmp_path / "snapshots" / "test_bundles.bundles" / "test_bundle"

    assert pytest_in(tmp_path).returncode == 1  # no snapshot yet
    created = pytest_in(tmp_path, "--snapshot-update")
    assert created.returncode == 0, created.stdout
    files = contents(stored)
    assert sorted(files)[0] == "haproxy.cfg" and len(files) == 2
    (map_name,) = [name for name in files if name.endswith(".map")]
    assert files[map_name] == "a.example.com web\n"
    assert pytest_in(tmp_path).returncode == 0

    # Another host: the config (which names the map) and the map file itself change.
    test_file.write_text(BUNDLE_TEST.replace("HOST", "b.example.com"))
    changed = pytest_in(tmp_path)
    assert changed.returncode == 1
    assert "haproxy.cfg (changed)" in changed.stdout, changed.stdout
    assert f"{map_name} (missing)" in changed.stdout
    assert ".map (new)" in changed.stdout
    assert contents(stored) == files  # plain pytest rewrites nothing

    assert pytest_in(tmp_path, "--snapshot-update").returncode == 0
    updated = contents(stored)
    assert map_name not in updated and "b.example.com web\n" in updated.values()
    assert len(updated) == 2
