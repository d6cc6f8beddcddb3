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
from tests.conftest import run_cli

GOOD = {
    "serviceName": "good",
    "predicate": "good.example.com",
    "containers": [{"id": "g1", "ip": "10.0.0.1:80"}],
}


def with_bad(bad_candidate: Any) -> dict[str, Any]:
    return {"table": "astro", "running": [], "candidates": [bad_candidate, GOOD]}


def bad(**overrides: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "serviceName": "evil",
        "predicate": "evil.example.com",
        "containers": [{"id": "e1", "ip": "10.0.0.9:80"}],
    }
    entry.update(overrides)
    return entry


# What the compiled config must route once the bad entry is dropped.
GOOD_ONLY = {"good": ("good.example.com", ("g1 10.0.0.1:80",))}
# The good service conflicts with the bad entry: both are left out, nothing is routed.
NOTHING: dict[str, tuple[str, tuple[str, ...]]] = {}
# The bad entry is a container: its service keeps its backend and route, without the server.
EVIL_WITHOUT_SERVER = {"evil": ("evil.example.com", ()), **GOOD_ONLY}

HOSTILE = [
    pytest.param(
        bad(predicate="a.com\nbackend x\n  server s 1.1.1.1:80"),
        "$.candidates[0].predicate",
        GOOD_ONLY,
        id="newline-injection",
    ),
    pytest.param(
        bad(predicate="a.com if TRUE"), "$.candidates[0].predicate", GOOD_ONLY, id="space"
    ),
    pytest.param(bad(predicate="a.com#"), "$.candidates[0].predicate", GOOD_ONLY, id="hash"),
    pytest.param(
        bad(predicate='a.com"'), "$.candidates[0].predicate", GOOD_ONLY, id="double-quote"
    ),
    pytest.param(
        bad(configMode="path", predicate="a'b"),
        "$.candidates[0].predicate",
        GOOD_ONLY,
        id="single-quote",
    ),
    pytest.param(
        bad(configMode="path", predicate="{ always_true }"),
        "$.candidates[0].predicate",
        GOOD_ONLY,
        id="braces",
    ),
    pytest.param(bad(predicate="a.com\x00"), "$.candidates[0].predicate", GOOD_ONLY, id="nul"),
    pytest.param(
        bad(predicate="\u0430pple.com"),
        "$.candidates[0].predicate",
        GOOD_ONLY,
        id="unicode-lookalike",
    ),
    pytest.param(
        bad(serviceName="x" * 10_000_000),
        "$.candidates[0].serviceName",
        GOOD_ONLY,
        id="10MB-string",
    ),
    pytest.param(
        bad(serviceName=["app"]), "$.candidates[0].serviceName", GOOD_ONLY, id="wrong-type"
    ),
    pytest.param(
        bad(cookie="SID\r\nSet-Cookie: x"), "$.candidates[0].cookie", GOOD_ONLY, id="crlf-cookie"
    ),
    pytest.param(
        {k: v for k, v in bad().items() if k != "serviceName"},
        "$.candidates[0].serviceName",
        GOOD_ONLY,
        id="missing-field",
    ),
    pytest.param(bad(extra="1"), "$.candidates[0].extra", GOOD_ONLY, id="unknown-field"),
    pytest.param(
        bad(containers=[{"id": "e1", "ip": "10.0.0.9:80 backup"}]),
        "$.candidates[0].containers[0].ip",
        EVIL_WITHOUT_SERVER,
        id="address-injection",
    ),
    pytest.param(
        bad(containers=[{"id": "e 1", "ip": "10.0.0.9:80"}]),
        "$.candidates[0].containers[0].id",
        EVIL_WITHOUT_SERVER,
        id="server-id-space",
    ),
    pytest.param(
        bad(serviceName="good"), "$.candidates[0]", NOTHING, id="same-service-other-settings"
    ),
    pytest.param(
        bad(predicate="GOOD.example.com"), "$.candidates[0].predicate", NOTHING, id="host-conflict"
    ),
    pytest.param(7, "$.candidates[0]", GOOD_ONLY, id="not-an-object"),
    # Per-service settings (issue 13): each bad value leaves out its service (or container).
    *[
        pytest.param(bad(**{field: value}), f"$.candidates[0].{where}", GOOD_ONLY, id=name)
        for name, field, value, where in [
            (
                "health-newline",
                "health",
                {"path": "/h\nbackend x\n  server s 1.1.1.1:80"},
                "health.path",
            ),
            ("health-hash", "health", {"path": "/h#x"}, "health.path"),
            ("health-quote", "health", {"path": "/h'x"}, "health.path"),
            ("health-status-type", "health", {"path": "/h", "status": "200"}, "health.status"),
            ("health-status-huge", "health", {"path": "/h", "status": 10**30}, "health.status"),
            (
                "health-interval",
                "health",
                {"path": "/h", "interval": "2s\n server s 1.1.1.1:80"},
                "health.interval",
            ),
            ("health-rise", "health", {"path": "/h", "rise": -1}, "health.rise"),
            ("health-fall-bool", "health", {"path": "/h", "fall": True}, "health.fall"),
            ("health-type", "health", "/h", "health"),
            ("health-unknown", "health", {"path": "/h", "uri": "/x"}, "health.uri"),
            ("balance-newline", "balance", "roundrobin\nbackend x", "balance"),
            ("balance-type", "balance", ["roundrobin"], "balance"),
            ("balance-unknown", "balance", "uri whole", "balance"),
            ("maxconn-huge", "maxconn", 10**100, "maxconn"),
            ("maxconn-string", "maxconn", "100", "maxconn"),
            ("maxconn-zero", "maxconn", 0, "maxconn"),
            ("timeout-hash", "timeouts", {"connect": "5s #x"}, "timeouts.connect"),
            (
                "timeout-newline",
                "timeouts",
                {"tunnel": "1h\n server s 1.1.1.1:80"},
                "timeouts.tunnel",
            ),
            ("timeout-type", "timeouts", {"queue": 10}, "timeouts.queue"),
            ("timeout-huge", "timeouts", {"server": "9" * 10_000_000}, "timeouts.server"),
            ("timeout-unknown", "timeouts", {"client": "5s"}, "timeouts.client"),
            (
                "auth-plain-text",
                "auth",
                {"users": [{"name": "a", "hash": "hunter2"}]},
                "auth.users[0].hash",
            ),
            (
                "auth-hash-newline",
                "auth",
                {"users": [{"name": "a", "hash": "$6$ab$\nuser b password x"}]},
                "auth.users[0].hash",
            ),
            (
                "auth-hash-quote",
                "auth",
                {"users": [{"name": "a", "hash": "$6$a'b$" + "x" * 86}]},
                "auth.users[0].hash",
            ),
            (
                "auth-user-space",
                "auth",
                {"users": [{"name": "a b", "hash": "$6$ab$" + "x" * 86}]},
                "auth.users[0].name",
            ),
            (
                "auth-user-hash",
                "auth",
                {"users": [{"name": "a#b", "hash": "$6$ab$" + "x" * 86}]},
                "auth.users[0].name",
            ),
            (
                "auth-twice",
                "auth",
                {"users": [{"name": "a", "hash": "$6$ab$" + "x" * 86}] * 2},
                "auth.users",
            ),
            (
                "auth-realm-quote",
                "auth",
                {"realm": 'x" if TRUE', "users": [{"name": "a", "hash": "$6$ab$" + "x" * 86}]},
                "auth.realm",
            ),
            ("auth-no-users", "auth", {"users": []}, "auth.users"),
            (
                "auth-huge-hash",
                "auth",
                {"users": [{"name": "a", "hash": "$6$" + "x" * 10_000_000}]},
                "auth.users[0].hash",
            ),
            ("auth-type", "auth", ["a:b"], "auth"),
            ("allow-newline", "allow", ["10.0.0.0/8\n server s 1.1.1.1:80"], "allow[0]"),
            ("allow-hash", "allow", ["0.0.0.0/0 #"], "allow[0]"),
            ("allow-word", "allow", ["any"], "allow[0]"),
            ("allow-prefix", "allow", ["10.0.0.0/33"], "allow[0]"),
            ("allow-string", "allow", "10.0.0.0/8", "allow"),
            ("allow-number", "allow", [10], "allow[0]"),
            ("allow-empty", "allow", [], "allow"),
            ("header-name-crlf", "headers", {"request": {"X-A\r\nX-B": "v"}}, "headers.request"),
            ("header-name-space", "headers", {"request": {"X A": "v"}}, "headers.request"),
            (
                "header-name-framing",
                "headers",
                {"request": {"Content-Length": "0"}},
                "headers.request",
            ),
            (
                "header-value-crlf",
                "headers",
                {"response": {"X-A": "v\r\nSet-Cookie: x"}},
                "headers.response",
            ),
            (
                "header-value-newline",
                "headers",
                {"request": {"X-A": "v\n server s 1.1.1.1:80"}},
                "headers.request",
            ),
            (
                "header-value-huge",
                "headers",
                {"request": {"X-A": "x" * 10_000_000}},
                "headers.request",
            ),
            ("header-value-type", "headers", {"request": {"X-A": 5}}, "headers.request"),
            ("header-type", "headers", [["X-A", "v"]], "headers"),
        ]
    ],
    *[
        pytest.param(
            bad(containers=[{"id": "e1", "ip": "10.0.0.9:80", "weight": value}]),
            "$.candidates[0].containers[0].weight",
            EVIL_WITHOUT_SERVER,
            id=name,
        )
        for name, value in [
            ("weight-huge", 257),
            ("weight-negative", -1),
            ("weight-string", "3"),
            ("weight-injection", "3 backup"),
            ("weight-float", 1.5),
        ]
    ],
]


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
