"""lint reads the files a config refers to: a missing map is an error, a bad map line too."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.support.paths import run_cli

PAYLOAD = json.dumps(
    {
        "table": "lint",
        "running": [],
        "candidates": [
            {"serviceName": "a", "predicate": "a.test", "containers": []},
            {"serviceName": "p", "configMode": "path", "predicate": "/p", "containers": []},
        ],
    }
)


def _bundle(directory: Path) -> Path:
    config = directory / "haproxy.cfg"
    compiled = run_cli(
        "compile", "-", "--store", "memory", "--routing", "map", "-o", str(config), stdin=PAYLOAD
    )
    assert compiled.returncode == 0, compiled.stderr
    return config


def test_a_whole_bundle_lints_clean_from_any_directory(tmp_path: Path) -> None:
    config = _bundle(tmp_path)
    maps = sorted(str(p) for p in tmp_path.glob("*.map"))
    result = run_cli("lint", str(config), *maps, "--select", "HAP06", cwd=Path("/"))
    assert result.returncode == 0, result.stdout
    assert "4 files checked: 0 errors" in result.stderr


def test_a_missing_map_is_an_error_naming_it(tmp_path: Path, haproxies: dict[str, str]) -> None:
    config = _bundle(tmp_path)
    victim = sorted(tmp_path.glob("path_beg.*.map"))[0]
    content = victim.read_text()
    victim.unlink()
    result = run_cli("lint", str(config), "--format", "json")
    assert result.returncode == 1
    # An error finding means haproxy refuses it: so does each version, naming the map.
    for version, binary in haproxies.items():
        check = subprocess.run(
            [binary, "-c", "-f", str(config)], capture_output=True, text=True, check=False
        )
        said = check.stdout + check.stderr
        assert check.returncode != 0 and victim.name in said, f"haproxy {version}: {said}"
    (finding,) = [f for f in json.loads(result.stdout)["findings"] if f["code"] == "HAP060"]
    assert victim.name in finding["message"] and finding["severity"] == "error"
    line = config.read_text().splitlines()[finding["line"] - 1]
    assert line[finding["col"] - 1 :].startswith(f"path,map_beg({victim.name})")
    # Without default-path, HAProxy looks in its working directory: so does lint.
    victim.write_text(content)
    moved = tmp_path / "elsewhere.cfg"
    moved.write_text(config.read_text().replace("    default-path config\n", ""))
    assert run_cli("lint", str(moved), "--select", "HAP060", cwd=tmp_path).returncode == 0
    assert run_cli("lint", str(moved), "--select", "HAP060", cwd=Path("/")).returncode == 1


def test_acl_pattern_files_are_looked_for_too(tmp_path: Path) -> None:
    config = tmp_path / "acl.cfg"
    config.write_text(
        "global\n    default-path config\n\ndefaults\n    mode http\n\nfrontend f\n"
        "    bind :80\n    acl bad src -f blocked.lst\n    http-request deny if bad\n"
    )
    assert "HAP060" in run_cli("lint", str(config)).stdout
    (tmp_path / "blocked.lst").write_text("10.0.0.0/8\n")
    assert "HAP060" not in run_cli("lint", str(config)).stdout


def test_map_files_on_the_command_line_are_checked_line_by_line(tmp_path: Path) -> None:
    good = tmp_path / "good.map"
    good.write_text("# hosts\na.test a\n\n  b.test   b\n")
    bad = tmp_path / "bad.map"
    bad.write_text("a.test a\nkey-only\nc.test c\rd\n")
    assert run_cli("lint", str(good)).returncode == 0
    result = run_cli("lint", str(bad))
    assert result.returncode == 1
    assert f"{bad}:2:1: error HAP061" in result.stdout
    assert f"{bad}:3:" in result.stdout and "carriage return" in result.stdout
