"""pytest plugin: snapshot-test generated haproxy.cfg files as plain ``.cfg`` files, and
whole bundles (config + map files) as folders of plain files (``haproxy_bundle_snapshot``).

Installed with the package (entry point ``pytest11``), it adds the ``haproxy_snapshot``
fixture: ``assert text == haproxy_snapshot`` stores ``text`` at
``<rootdir>/snapshots/<test dir relative to tests/>/<module>/<test name>.cfg`` (both folders
configurable with the ini options ``haproxy_snapshot_dir`` and ``haproxy_tests_dir``).
It needs syrupy (``pip install 'lambda-registry[snapshot]'``); without it the fixture
skips with a message instead of breaking the test run.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "haproxy_snapshot_dir", "where haproxy_snapshot stores .cfg files", default="snapshots"
    )
    parser.addini("haproxy_tests_dir", "test root that snapshot folders mirror", default="tests")


@cache
def cfg_snapshot_extension(snapshot_root: Path, tests_root: Path) -> type[Any]:
    """A syrupy extension writing one ``.cfg`` file per snapshot under ``snapshot_root``.

    Overriding ``dirname`` alone is a trap with snapshots outside the test tree: running one
    test reports its siblings' snapshots as unused and ``--snapshot-update`` deletes them.
    ``matches_test_location`` limits each test to its own files.
    """
    from syrupy.extensions.single_file import SingleFileSnapshotExtension, WriteMode

    class CfgSnapshotExtension(SingleFileSnapshotExtension):
        file_extension = "cfg"
        _write_mode = WriteMode.TEXT

        @classmethod
        def dirname(cls, *, test_location: Any) -> str:
            module = Path(test_location.filepath).resolve()
            try:
                relative = module.parent.relative_to(tests_root)
            except ValueError:
                relative = Path(module.parent.name)
            return str(snapshot_root / relative / module.stem)

        @classmethod
        def matches_test_location(cls, *, test_location: Any, snapshot_location: str) -> bool:
            matches: bool = super().matches_test_location(
                test_location=test_location, snapshot_location=snapshot_location
            ) and test_location.matches_snapshot_name(Path(snapshot_location).stem)
            return matches

    return CfgSnapshotExtension


@pytest.fixture
def haproxy_snapshot(request: pytest.FixtureRequest, pytestconfig: pytest.Config) -> Any:
    """syrupy's ``snapshot``, storing plain ``.cfg`` files in the top-level snapshot folder."""
    pytest.importorskip("syrupy", reason="haproxy_snapshot needs syrupy")
    snapshot = request.getfixturevalue("snapshot")
    root = pytestconfig.rootpath.resolve()
    extension = cfg_snapshot_extension(
        root / str(pytestconfig.getini("haproxy_snapshot_dir")),
        root / str(pytestconfig.getini("haproxy_tests_dir")),
    )
    return snapshot.use_extension(extension)


# --- bundles (haproxy.cfg + map files) ----------------------------------------------------


class BundleSnapshot:
    """A bundle stored as plain files, one folder per test; compare with ``==``.

    ``assert result.files == haproxy_bundle_snapshot`` compares every file by name; a failure
    says which files changed, appeared or went missing, with a diff of each. With syrupy's
    ``--snapshot-update`` the folder is rewritten to hold exactly the bundle.
    """

    def __init__(self, folder: Path, update: bool) -> None:
        self.folder = folder
        self.update = update
        self.stored: dict[str, str] | None = None
        self.changes: list[tuple[str, str]] = []  # (file name, "changed" | "new" | "missing")

    def _read(self) -> dict[str, str] | None:
        if not self.folder.is_dir():
            return None
        return {
            path.name: path.read_text(encoding="utf-8")
            for path in sorted(self.folder.iterdir())
            if path.is_file()
        }

    def __eq__(self, other: object) -> bool:
        from collections.abc import Mapping

        if not isinstance(other, Mapping):
            return NotImplemented
        files = {str(name): str(text) for name, text in other.items()}
        if self.update:
            self.folder.mkdir(parents=True, exist_ok=True)
            for stale in set(self._read() or {}) - files.keys():
                (self.folder / stale).unlink()
            for name, text in files.items():
                (self.folder / name).write_text(text, encoding="utf-8", newline="")
        self.stored = self._read()
        stored = self.stored or {}
        self.changes = [
            (name, "new" if name not in stored else "missing" if name not in files else "changed")
            for name in sorted(files.keys() | stored.keys())
            if files.get(name) != stored.get(name)
        ]
        return self.stored is not None and not self.changes

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        if self.stored is None:
            return f"<no bundle snapshot at {self.folder} (run with --snapshot-update)>"
        listed = ", ".join(f"{name} ({kind})" for name, kind in self.changes) or "none"
        return f"<bundle snapshot {self.folder.name}: files that differ: {listed}>"

    def explain(self, files: dict[str, str]) -> list[str]:
        """What differs, file by file, for pytest's assertion report."""
        import difflib

        if self.stored is None:
            return [f"no bundle snapshot at {self.folder}: run with --snapshot-update"]
        listed = ", ".join(f"{name} ({kind})" for name, kind in self.changes)
        lines = [f"bundle snapshot {self.folder.name} differs in: {listed}"]
        for name, kind in self.changes:
            lines.append(f"  {name}: {kind}")
            if kind == "changed":
                diff = difflib.unified_diff(
                    self.stored[name].splitlines(),
                    files[name].splitlines(),
                    f"snapshot/{name}",
                    f"now/{name}",
                    lineterm="",
                )
                lines.extend(f"    {line}" for line in list(diff)[:60])
        return lines


def pytest_assertrepr_compare(op: str, left: object, right: object) -> list[str] | None:
    from collections.abc import Mapping

    if op == "==" and isinstance(right, BundleSnapshot) and isinstance(left, Mapping):
        return right.explain({str(k): str(v) for k, v in left.items()})
    return None


@pytest.fixture
def haproxy_bundle_snapshot(request: pytest.FixtureRequest, pytestconfig: pytest.Config) -> Any:
    """A bundle snapshot in ``<snapshot dir>/<test dir>/<module>.bundles/<test name>/``
    (beside, not inside, the folder syrupy owns for the module's ``.cfg`` snapshots)."""
    root = pytestconfig.rootpath.resolve()
    snapshot_root = root / str(pytestconfig.getini("haproxy_snapshot_dir"))
    tests_root = root / str(pytestconfig.getini("haproxy_tests_dir"))
    module = Path(str(request.node.path)).resolve()
    try:
        relative = module.parent.relative_to(tests_root)
    except ValueError:
        relative = Path(module.parent.name)
    name = request.node.name.replace("/", "_")
    try:
        update = bool(pytestconfig.getoption("update_snapshots"))
    except ValueError:  # syrupy not installed: no --snapshot-update option
        update = False
    return BundleSnapshot(snapshot_root / relative / f"{module.stem}.bundles" / name, update)
