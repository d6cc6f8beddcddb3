"""Hostile payloads: one bad candidate beside a good one, and what must still be routed."""

from __future__ import annotations

from typing import Any

import pytest

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
    # Per-service settings: each bad value leaves out its service (or container).
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
