"""HAP062 (a bind's certificate is missing) against the real haproxy, through the CLI."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from grammar.lint import lint_text
from tests.support.haproxies import check_each
from tests.support.paths import run_cli
from tests.support.tls_certs import write_pem

CONFIG = """\
defaults
    mode http
    timeout client 5s
    timeout connect 5s
    timeout server 5s
frontend fe
    bind 127.0.0.1:18443 ssl crt {crt} alpn h2,http/1.1
    default_backend be
backend be
    server s1 127.0.0.1:8080
"""


def test_missing_certificate_is_an_error_haproxy_agrees_with(
    tmp_path: Path, haproxies: dict[str, str], assert_haproxy_accepts: Callable[[str], None]
) -> None:
    config = tmp_path / "haproxy.cfg"
    config.write_text(CONFIG.format(crt=tmp_path / "certs"))
    verdicts = check_each(haproxies, config.read_text())
    assert [version for version, verdict in verdicts.items() if verdict.ok] == []
    result = run_cli("lint", str(config))
    assert result.returncode == 1
    assert f"{config}:7:" in result.stdout and "HAP062" in result.stdout
    assert "no such file or folder" in result.stdout

    (tmp_path / "certs").mkdir()
    write_pem(tmp_path / "certs", "site.pem", "site.example.test")
    assert_haproxy_accepts(config.read_text())
    result = run_cli("lint", str(config))
    assert result.returncode == 0, result.stdout
    assert "HAP062" not in result.stdout


def test_relative_paths_are_looked_up_where_haproxy_would(tmp_path: Path) -> None:
    # As for HAP060's map files: the working directory, or the config's with default-path.
    config = tmp_path / "haproxy.cfg"
    config.write_text(CONFIG.format(crt="certs/site.pem"))
    assert "HAP062" in run_cli("lint", str(config), cwd=tmp_path).stdout
    (tmp_path / "certs").mkdir()
    write_pem(tmp_path / "certs", "site.pem", "site.example.test")
    assert "HAP062" not in run_cli("lint", str(config), cwd=tmp_path).stdout
    assert "HAP062" in run_cli("lint", str(config), cwd=Path("/")).stdout
    config.write_text("global\n    default-path config\n" + CONFIG.format(crt="certs/site.pem"))
    assert "HAP062" not in run_cli("lint", str(config), cwd=Path("/")).stdout


def test_unknown_folder_checks_nothing() -> None:
    # stdin or the library without a path check: nothing to compare with, so no finding.
    text = CONFIG.format(crt="/nonexistent/certs")
    assert [f.code for f in lint_text(text)] == []
    assert "HAP062" not in run_cli("lint", "-", stdin=text).stdout
