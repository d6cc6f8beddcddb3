"""``compile -o`` writes a bundle as a set; stdout carries it in a form that splits back."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from runtime import bundle
from runtime.bundle import parse_stream, referenced_maps, write_bundle
from runtime.files import InputError
from runtime.haproxy_check import HAPROXY_ENV
from tests.support.haproxies import Oracle
from tests.support.paths import run_cli


def _payload(*hosts: str) -> str:
    return json.dumps(
        {
            "table": "bundle",
            "running": [],
            "candidates": [
                {"serviceName": host.split(".")[0], "predicate": host, "containers": []}
                for host in hosts
            ]
            + [{"serviceName": "p", "configMode": "path", "predicate": "/p", "containers": []}],
        }
    )


def _compile_to(directory: Path, *hosts: str) -> None:
    result = run_cli(
        "compile", "-", "--store", "memory", "--routing", "map", "-o",
        str(directory / "haproxy.cfg"), stdin=_payload(*hosts),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def _bundle_on_disk(directory: Path) -> dict[str, str]:
    config = (directory / "haproxy.cfg").read_text()
    files = {"haproxy.cfg": config}
    for name in sorted(referenced_maps(config)):
        files[name] = (directory / name).read_text()  # fails if a referenced map is missing
    return files


def test_o_writes_config_and_maps_and_cleans_old_maps(
    tmp_path: Path, assert_haproxy_accepts: Callable[[Any], None]
) -> None:
    _compile_to(tmp_path, "a.test", "b.test")
    first = _bundle_on_disk(tmp_path)
    assert len(first) == 4 and "a.test a\nb.test b\n" in first.values()
    assert_haproxy_accepts(first)
    _compile_to(tmp_path, "a.test", "c.test")
    second = _bundle_on_disk(tmp_path)
    assert "a.test a\nc.test c\n" in second.values()
    # The host map changed name with its content; the path maps kept theirs; the old host map
    # is gone; nothing else is left behind (no temporary files).
    assert sorted(os.listdir(tmp_path)) == sorted(second)
    assert len(set(first) & set(second)) == 3


def _failing_replace(stop: int, real: Callable[[str, str], None]) -> Callable[[str, str], None]:
    """``os.replace`` that fails (disk full) at its ``stop``-th call."""
    calls = [0]

    def replace(src: str, dst: str) -> None:
        if calls[0] == stop:
            raise OSError(28, "No space left on device")
        calls[0] += 1
        real(src, dst)

    return replace


def test_an_interrupted_write_leaves_the_old_bundle_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _compile_to(tmp_path, "a.test", "b.test")
    before = _bundle_on_disk(tmp_path)
    listing = sorted(os.listdir(tmp_path))
    from compiler.options import RenderOptions
    from runtime.pipeline import compile_payload

    new = compile_payload(_payload("a.test", "z.test"), options=RenderOptions(routing="map"))
    for stop_after in range(len(new.files)):  # fail the 1st, 2nd, ... rename of the set
        monkeypatch.setattr(bundle.os, "replace", _failing_replace(stop_after, os.replace))
        with pytest.raises(InputError, match="cannot write"):
            write_bundle(str(tmp_path / "haproxy.cfg"), new.files)
        monkeypatch.undo()
        assert _bundle_on_disk(tmp_path) == before
        assert sorted(os.listdir(tmp_path)) == listing  # new maps written so far removed
    write_bundle(str(tmp_path / "haproxy.cfg"), new.files)
    assert _bundle_on_disk(tmp_path) == dict(new.files)


def test_stdout_carries_every_file_in_order(assert_haproxy_accepts: Callable[[Any], None]) -> None:
    result = run_cli(
        "compile", "-", "--store", "memory", "--routing", "map", stdin=_payload("a.test")
    )
    assert result.returncode == 0, result.stderr
    files = parse_stream(result.stdout)
    assert [name.split(".")[0] for name in files] == ["haproxy", "host", "path", "path_beg"]
    assert result.stdout.startswith("### lambda-registry file: haproxy.cfg\nglobal\n")
    assert files[list(files)[1]] == "a.test a\n"
    assert_haproxy_accepts(files)
    # ACL routing: the config alone, exactly as before.
    plain = run_cli(
        "compile", "-", "--store", "memory", "--routing", "acl", stdin=_payload("a.test")
    )
    assert plain.stdout.startswith("global\n") and parse_stream(plain.stdout) == {
        "haproxy.cfg": plain.stdout
    }


def test_check_runs_haproxy_on_the_whole_bundle(
    tmp_path: Path, haproxy_oracle: Oracle, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(HAPROXY_ENV, haproxy_oracle.binary)  # the haproxy --check runs
    result = run_cli(
        "compile", "-", "--store", "memory", "--routing", "map", "--check", "-o",
        str(tmp_path / "haproxy.cfg"), stdin=_payload("a.test"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert len(os.listdir(tmp_path)) == 4
