"""The compile command as a user runs it: exit codes, files, stderr."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from compiler.ast import Backend, Config, Statement
from compiler.errors import InternalError
from grammar.roundtrip import print_verified
from runtime.haproxy_check import HAPROXY_ENV
from tests.support.haproxies import Oracle
from tests.support.paths import EXAMPLES, FIXTURES, run_cli


def test_compile_prints_a_config_haproxy_accepts(
    assert_haproxy_accepts: Callable[[str], None],
) -> None:
    result = run_cli("compile", str(EXAMPLES / "seed.json"), "--check")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "backend app1\n" in result.stdout
    assert_haproxy_accepts(result.stdout)


def test_compat_seed_from_the_cli_matches_the_seed() -> None:
    result = run_cli("compile", str(EXAMPLES / "seed.json"), "--compat", "seed")
    expected = (FIXTURES / "seed_expected.cfg").read_text().split()
    assert result.stdout.split() == expected


def test_output_file_is_written_and_replaced_whole(tmp_path: Path) -> None:
    target = tmp_path / "haproxy.cfg"
    target.write_text("old\n")
    target.chmod(0o640)
    result = run_cli("compile", str(EXAMPLES / "mixed.json"), "-o", str(target))
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert target.read_text().startswith("global\n")
    assert target.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["haproxy.cfg"]  # no temp file left


def test_failed_check_writes_nothing(
    tmp_path: Path, haproxy_oracle: Oracle, monkeypatch: pytest.MonkeyPatch
) -> None:
    # --check runs the haproxy $LAMBDA_REGISTRY_HAPROXY names: each version refuses the user
    monkeypatch.setenv(HAPROXY_ENV, haproxy_oracle.binary)
    options = tmp_path / "options.json"
    options.write_text(json.dumps({"user": "no-such-user-here"}))
    target = tmp_path / "haproxy.cfg"
    target.write_text("previous config\n")
    result = run_cli(
        "compile",
        str(EXAMPLES / "seed.json"),
        "--options",
        str(options),
        "--check",
        "-o",
        str(target),
    )
    assert result.returncode == 1
    assert "haproxy -c refused the config" in result.stderr
    assert "no-such-user-here" in result.stderr
    assert target.read_text() == "previous config\n"


def test_strict_turns_diagnostics_into_exit_2(tmp_path: Path) -> None:
    payload = json.loads((EXAMPLES / "seed.json").read_text())
    payload["candidates"][1]["predicate"] = "second example.com"
    source = tmp_path / "payload.json"
    source.write_text(json.dumps(payload))

    lenient = run_cli("compile", str(source))
    assert lenient.returncode == 0
    assert lenient.stderr.startswith("error: $.candidates[1].predicate: 'second example.com'")
    assert "backend app1\n" in lenient.stdout and "app2" not in lenient.stdout

    strict = run_cli("compile", str(source), "--strict", "-o", str(tmp_path / "out.cfg"))
    assert strict.returncode == 2
    assert not (tmp_path / "out.cfg").exists()


def test_json_diagnostics(tmp_path: Path) -> None:
    payload = {"table": "astro", "running": [{"serviceName": "a", "id": "x"}]}
    result = run_cli("compile", "-", "--format", "json", stdin=json.dumps(payload))
    assert result.returncode == 0
    assert json.loads(result.stderr) == {
        "diagnostics": [
            {"path": "$.running[0].ip", "message": "required field is missing", "severity": "error"}
        ]
    }


@pytest.mark.parametrize(
    ("options", "words"),
    [
        pytest.param('{"bind_port": 0}', "options.json: $.bind_port:", id="port"),
        pytest.param(
            '{"timeouts": {"client": "5 s"}}',
            "options.json: $.timeouts.client: '5 s' is not an HAProxy duration",
            id="duration",
        ),
        pytest.param('{"user": "root\\ngroup x"}', "options.json: $.user:", id="injection"),
        pytest.param('{"balanse": "first"}', "options.json: $.balanse:", id="unknown"),
        pytest.param("{", "options.json", id="not-json"),
    ],
)
def test_bad_options_exit_2(tmp_path: Path, options: str, words: str) -> None:
    path = tmp_path / "options.json"
    path.write_text(options)
    result = run_cli("compile", str(EXAMPLES / "seed.json"), "--options", str(path))
    assert result.returncode == 2
    assert words in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("text", "words"),
    [
        pytest.param(
            '{"table": "web-eu-1", "running": [], "candidates": [{"name": "web", '
            '"mode": "host", "predicate": "a.example", "predicate": "b.example", '
            '"containers": []}]}',
            "error: $.candidates[0].predicate: this key appears more than once; keep one",
            id="repeated-key",
        ),
        pytest.param(
            '{"table": "web-eu-1", "running": [], "n": ' + "7" * 100_000 + "}",
            "payload.json: not valid JSON: a number has more than 4300 digits",
            id="huge-number",
        ),
    ],
)
def test_json_a_payload_cannot_mean_exits_2(tmp_path: Path, text: str, words: str) -> None:
    """A repeated key (``json.loads`` would keep the last, silently) and a number Python
    refuses to convert are the user's input, not an internal error (exit 3)."""
    path = tmp_path / "payload.json"
    path.write_text(text)
    result = run_cli("compile", str(path), "--store", "memory")
    assert result.returncode == 2, result.stderr
    assert words in result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    assert result.stdout == ""


def test_unreadable_payload_exits_2(tmp_path: Path) -> None:
    result = run_cli("compile", str(tmp_path / "missing.json"))
    assert result.returncode == 2
    assert "missing.json: cannot read: No such file or directory" in result.stderr


def test_round_trip_mismatch_is_an_internal_error() -> None:
    # A generic statement spelled like an `acl` reads back as a typed Acl: the check names it.
    config = Config((Backend("b", (Statement("acl", ("a", "path", "/x")),)),))
    with pytest.raises(InternalError) as caught:
        print_verified(config)
    assert "round trip mismatch: backend b, line 1" in str(caught.value)


def _report(host: str, services: dict[str, str]) -> str:
    """A fleet host's report: one container per service (name -> host name)."""
    containers = {name: {"id": f"{host}-{name}", "ip": "10.0.0.1:80"} for name in services}
    return json.dumps(
        {
            "table": "fleet-ttl",
            "host": host,
            "running": [{"serviceName": n, **c} for n, c in containers.items()],
            "candidates": [
                {"serviceName": n, "predicate": p, "containers": [containers[n]]}
                for n, p in services.items()
            ],
        }
    )


# How long compile, the handler, serve and state show keep a silent host (the lease):
# tests/runtime/test_fleet.py.


def test_a_bad_host_ttl_is_a_usage_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LAMBDA_REGISTRY_HOST_TTL", "soon")
    done = run_cli("compile", "-", "--store", "memory", stdin=_report("h", {"web": "w.example"}))
    assert done.returncode == 2
    assert "LAMBDA_REGISTRY_HOST_TTL" in done.stderr and "Traceback" not in done.stderr
