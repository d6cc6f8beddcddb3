"""Hostile payloads: each bad entry reported with its JSON path, the good ones still compiled,
and whatever is emitted accepted by haproxy with no statement the payload did not ask for."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from compiler.ast import Acl, AclRef, Backend, Frontend, Server, UseBackend
from grammar.maps import parse_map
from grammar.parser import parse
from runtime.bundle import parse_stream
from tests.support.hostile import (
    HOSTILE,
    with_bad,
)
from tests.support.paths import run_cli


def routing(output: str) -> dict[str, tuple[str, tuple[str, ...]]]:
    """What compile's output routes: per backend, the host its frontend rule (or its host
    map line) matches and its servers.

    Fails unless every ``use_backend`` names an ACL of its frontend and a backend that exists,
    and every backend is reached by exactly one rule (or map line).
    """
    files = parse_stream(output)
    config = files.pop("haproxy.cfg")
    if files:
        return _map_routing(config, files)
    parsed = parse(config)
    frontends = [s for s in parsed.sections if isinstance(s, Frontend)]
    assert len(frontends) == 1, config
    acls = {line.name: line for line in frontends[0].body if isinstance(line, Acl)}
    hosts: dict[str, str] = {}
    for line in frontends[0].body:
        if isinstance(line, UseBackend):
            assert line.condition is not None, f"unconditional route: {line}"
            (alternative,) = line.condition.alternatives
            (term,) = alternative.terms
            assert isinstance(term, AclRef) and term.name in acls, f"undefined ACL in {line}"
            acl = acls[term.name]
            assert acl.criterion.startswith("hdr(host)") and acl.args[0] == "-i", acl
            assert line.backend not in hosts, f"two rules for {line.backend}"
            hosts[line.backend] = acl.args[1]
    backends = {s.name: s for s in parsed.sections if isinstance(s, Backend)}
    assert set(hosts) == set(backends), f"rules for {sorted(hosts)}, backends {sorted(backends)}"
    return {
        name: (
            hosts[name],
            _servers(backend),
        )
        for name, backend in backends.items()
    }


def _servers(backend: Backend) -> tuple[str, ...]:
    """The backend's servers, without the free slots (``disabled``) the runtime API fills."""
    return tuple(
        f"{x.name} {x.address}"
        for x in backend.body
        if isinstance(x, Server) and "disabled" not in x.params
    )


def _map_routing(config: str, maps: dict[str, str]) -> dict[str, tuple[str, tuple[str, ...]]]:
    (name,) = maps  # only host services here: one host map
    parsed = parse(config)
    (frontend,) = [s for s in parsed.sections if isinstance(s, Frontend)]
    lookups = [line for line in frontend.body if getattr(line, "keyword", "") == "http-request"]
    assert [line.args for line in lookups] == [  # type: ignore[attr-defined]
        ("set-var(txn.host_backend)", f"hdr(host),field(1,:),lower,map({name})")
    ]
    entries = parse_map(maps[name], name).entries
    hosts = {entry.value: entry.key for entry in entries}
    assert len(hosts) == len(entries), "two map lines for one backend"
    backends = {s.name: s for s in parsed.sections if isinstance(s, Backend)}
    assert set(hosts) == set(backends), f"rules for {sorted(hosts)}, backends {sorted(backends)}"
    return {name: (hosts[name], _servers(backend)) for name, backend in backends.items()}


@pytest.mark.parametrize("mode", ["acl", "map"])
@pytest.mark.parametrize(("bad_candidate", "path", "routed"), HOSTILE)
def test_hostile_entry_is_reported_and_the_rest_compiles(
    bad_candidate: Any,
    path: str,
    routed: dict[str, tuple[str, tuple[str, ...]]],
    mode: str,
    assert_haproxy_accepts: Callable[[str], None],
) -> None:
    payload = json.dumps(with_bad(bad_candidate))
    lenient = run_cli("compile", "-", "--format", "json", "--routing", mode, stdin=payload)
    assert lenient.returncode == 0, lenient.stderr[:2000]
    report = json.loads(lenient.stderr)
    assert any(d["path"].startswith(path) for d in report["diagnostics"]), report
    assert len(lenient.stderr) < 5000  # a 10 MB value is never echoed back
    assert "hunter2" not in lenient.stderr  # nor a plain-text password
    config = lenient.stdout
    assert_haproxy_accepts(config)
    # Exactly what the payload asked for: one bad entry never blocks the good service (it is
    # routed: its ACL, its use_backend, its server), except where the two conflict; an entry
    # with a bad container keeps its backend without that server.
    assert routing(config) == routed
    assert "1.1.1.1" not in config and "always_true" not in config
    assert "backup" not in config and "server e" not in config
    if "evil" not in routed:
        assert "evil" not in config

    if mode == "map" and routed:
        assert "### lambda-registry file: " in config
    strict = run_cli("compile", "-", "--strict", "--routing", mode, stdin=payload)
    assert strict.returncode == 2
    assert strict.stdout == ""


def test_hundred_thousand_containers(assert_haproxy_accepts: Callable[[str], None]) -> None:
    # Spread over 1 000 services: haproxy -c itself is quadratic in servers per backend.
    candidates = [
        {
            "serviceName": f"svc{s}",
            "predicate": f"svc{s}.example.com",
            "containers": [
                {"id": f"c{s}x{k}", "ip": f"10.{s // 256}.{s % 256}.{k + 1}:80"} for k in range(100)
            ],
        }
        for s in range(1000)
    ]
    candidates[5]["containers"][50]["ip"] = "10.0.0.1:99999"
    payload = {"table": "astro", "running": [], "candidates": candidates}
    result = run_cli("compile", "-", "--format", "json", stdin=json.dumps(payload))
    assert result.returncode == 0, result.stderr[:2000]
    report = json.loads(result.stderr)
    assert [d["path"] for d in report["diagnostics"]] == ["$.candidates[5].containers[50].ip"]
    assert result.stdout.count("\n    server c") == 99_999
    assert "server c5x50 " not in result.stdout
    assert_haproxy_accepts(result.stdout)


@pytest.mark.parametrize(
    ("stdin", "words"),
    [
        pytest.param("{not json", "<stdin>:1:2: not valid JSON", id="not-json"),
        pytest.param('{"running": []}', "$.table: required field is missing", id="no-table"),
        pytest.param(
            '{"table": "astro", "running": 3}',
            "$.running: expected an array",
            id="running-not-list",
        ),
        pytest.param("[]", "must be a JSON object", id="array"),
        pytest.param(b"\xff\xfe", "not valid JSON", id="not-utf8"),
    ],
)
def test_malformed_envelope_exits_2_without_output(stdin: str | bytes, words: str) -> None:
    if isinstance(stdin, bytes):
        import subprocess
        import sys

        result = subprocess.run(
            [sys.executable, "-m", "runtime.cli", "compile", "-"],
            input=stdin,
            capture_output=True,
            check=False,
        )
        stderr, stdout = result.stderr.decode(), result.stdout.decode()
    else:
        completed = run_cli("compile", "-", stdin=stdin)
        result, stderr, stdout = completed, completed.stderr, completed.stdout
    assert result.returncode == 2
    assert words in stderr
    assert "Traceback" not in stderr
    assert stdout == ""
