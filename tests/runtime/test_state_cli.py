"""The CLI and the registry: ``compile`` reconciles against the embedded store by default, and
``state show`` / ``state clear`` let an operator see and reset what a table remembers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from runtime.haproxy_check import HAPROXY_ENV
from runtime.stores.sqlite import SQLiteStore
from tests.support.haproxies import Oracle
from tests.support.paths import EXAMPLES, FIXTURES, run_cli
from tests.support.stores import SECOND_SERVERS, SEED_SERVERS, servers, statements

SEED = str(EXAMPLES / "seed.json")


def default_database(state_home: Path) -> Path:
    return state_home / "lambda-registry" / "state.db"


def test_compile_remembers_in_the_embedded_store_by_default(isolated_state: Path) -> None:
    first = run_cli("compile", SEED, "--compat", "seed")
    assert first.returncode == 0, first.stderr
    assert statements(first.stdout) == statements((FIXTURES / "seed_expected.cfg").read_text())
    stored = SQLiteStore(default_database(isolated_state)).services("astro")
    assert servers(sorted(stored.values(), key=lambda s: s.name)) == SEED_SERVERS

    second = run_cli("compile", SEED, "--compat", "seed")
    assert second.returncode == 0, second.stderr
    assert "server jk3243j54jl 192.168.1.8:80 check cookie JSESSIONID" in second.stdout
    stored = SQLiteStore(default_database(isolated_state)).services("astro")
    assert servers(sorted(stored.values(), key=lambda s: s.name)) == SECOND_SERVERS


def test_store_memory_remembers_nothing(isolated_state: Path) -> None:
    for _ in range(2):
        result = run_cli("compile", SEED, "--store", "memory")
        assert result.returncode == 0
        assert "jk3243j54jl" not in result.stdout
    assert not default_database(isolated_state).exists()


def test_store_path_from_the_flag_or_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated_state: Path
) -> None:
    flagged = tmp_path / "flag.db"
    assert run_cli("compile", SEED, "--store", f"sqlite:{flagged}").returncode == 0
    assert set(SQLiteStore(flagged).services("astro")) == {"app1", "app2"}

    from_env = tmp_path / "env.db"
    monkeypatch.setenv("LAMBDA_REGISTRY_STORE", f"sqlite:{from_env}")
    assert run_cli("compile", SEED).returncode == 0
    shown = run_cli("state", "show", "astro")
    assert str(from_env) in shown.stdout
    assert set(SQLiteStore(from_env).services("astro")) == {"app1", "app2"}
    assert not default_database(isolated_state).exists()


def test_state_show(isolated_state: Path) -> None:
    empty = run_cli("state", "show", "astro")
    assert empty.returncode == 0
    assert "holds no services" in empty.stdout
    run_cli("compile", SEED)
    shown = run_cli("state", "show", "astro")
    assert shown.returncode == 0, shown.stderr
    assert "2 service(s)" in shown.stdout
    assert "app1: host first.example.com, cookie JSESSIONID, 1 container(s)" in shown.stdout
    assert "    das843j3h3k 192.168.1.10:80" in shown.stdout

    document: dict[str, Any] = json.loads(
        run_cli("state", "show", "astro", "--format", "json").stdout
    )
    assert document["table"] == "astro"
    assert document["store"] == f"sqlite:{default_database(isolated_state)}"
    assert [s["name"] for s in document["services"]] == ["app1", "app2"]
    assert document["services"][1]["containers"] == [
        {"id": "das843j3h3k", "ip": "192.168.1.10:80"},
        {"id": "fds32k4354f", "ip": "192.168.1.11:80"},
    ]


def test_state_clear_needs_yes(isolated_state: Path) -> None:
    run_cli("compile", SEED)
    refused = run_cli("state", "clear", "astro")
    assert refused.returncode == 2
    assert "without --yes" in refused.stderr and "2 service(s)" in refused.stderr
    assert len(SQLiteStore(default_database(isolated_state)).services("astro")) == 2

    cleared = run_cli("state", "clear", "astro", "--yes")
    assert cleared.returncode == 0
    assert "2 service(s) forgotten" in cleared.stdout
    assert SQLiteStore(default_database(isolated_state)).services("astro") == {}
    # The next compile starts from an empty table again: the seed's first-call output.
    again = run_cli("compile", SEED)
    assert "jk3243j54jl" not in again.stdout


@pytest.mark.parametrize(
    ("args", "words"),
    [
        pytest.param(
            ("state", "show", "a b"), "TABLE: 'a b' is not a valid table name", id="table"
        ),
        pytest.param(("state", "show", "astro", "--store", "redis"), "unknown store", id="store"),
        pytest.param(("compile", SEED, "--store", "sqlite:"), "needs a path", id="no-path"),
    ],
)
def test_bad_store_or_table_exits_2_without_traceback(args: tuple[str, ...], words: str) -> None:
    result = run_cli(*args)
    assert result.returncode == 2
    assert words in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_state_is_in_the_help() -> None:
    result = run_cli("state", "--help")
    assert result.returncode == 0
    assert "show" in result.stdout and "clear" in result.stdout


def test_unwritable_store_location_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")
    result = run_cli("compile", SEED, "--store", f"sqlite:{not_a_directory}/state.db")
    assert result.returncode == 2
    assert "cannot create the state directory" in result.stderr
    assert "nothing was changed" in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""


def test_strict_or_a_failed_check_leaves_the_store_unchanged(
    tmp_path: Path, isolated_state: Path, haproxy_oracle: Oracle, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(HAPROXY_ENV, haproxy_oracle.binary)  # what --check runs
    payload: dict[str, Any] = json.loads((EXAMPLES / "seed.json").read_text())
    payload["candidates"][1]["predicate"] = "bad host"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(payload))
    strict = run_cli("compile", str(bad), "--strict")
    assert strict.returncode == 2
    assert "$.candidates[1].predicate" in strict.stderr
    assert SQLiteStore(default_database(isolated_state)).services("astro") == {}

    options = tmp_path / "options.json"
    options.write_text(json.dumps({"user": "no-such-user-here"}))
    checked = run_cli("compile", SEED, "--check", "--options", str(options))
    assert checked.returncode == 1
    assert "haproxy -c refused the config" in checked.stderr
    assert SQLiteStore(default_database(isolated_state)).services("astro") == {}
