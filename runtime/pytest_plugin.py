"""pytest plugin: snapshot-test generated haproxy.cfg files as plain ``.cfg`` files.

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
