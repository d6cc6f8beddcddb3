"""Payload validation: every rule refuses what it must, says why, and names the JSON path."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from compiler.errors import PayloadError
from compiler.payload import load_payload, parse_payload_text


def candidate(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "serviceName": "web",
        "configMode": "host",
        "predicate": "web.example.com",
        "containers": [{"id": "c1", "ip": "10.0.0.1:80"}],
    }
    base.update(overrides)
    return base


def payload(*candidates: dict[str, Any], running: list[Any] | None = None) -> dict[str, Any]:
    return {"table": "astro", "running": running or [], "candidates": list(candidates)}


def test_valid_payload_has_no_diagnostics(seed_payload: dict[str, Any]) -> None:
    model, diagnostics = load_payload(seed_payload)
    assert diagnostics == ()
    assert [c.service_name for c in model.candidates] == ["app1", "app2"]
    assert model.candidates[1].containers[1].ip == "192.168.1.11:80"


# (field overrides, JSON path of the complaint, words the message must contain)
BAD_CANDIDATES = [
    pytest.param(
        {"serviceName": "we b"}, "$.candidates[0].serviceName", "letters, digits", id="name-space"
    ),
    pytest.param({"serviceName": ""}, "$.candidates[0].serviceName", "1 to 64", id="name-empty"),
    pytest.param(
        {"serviceName": "a" * 65}, "$.candidates[0].serviceName", "1 to 64", id="name-too-long"
    ),
    pytest.param(
        {"serviceName": "app\nbackend evil"},
        "$.candidates[0].serviceName",
        "letters, digits",
        id="name-newline",
    ),
    pytest.param(
        {"serviceName": "or"}, "$.candidates[0].serviceName", "reserved", id="name-reserved"
    ),
    pytest.param(
        {"serviceName": 7}, "$.candidates[0].serviceName", "expected a string", id="name-number"
    ),
    pytest.param(
        {"predicate": "a b.com"},
        "$.candidates[0].predicate",
        "not a valid host name",
        id="host-space",
    ),
    pytest.param(
        {"predicate": "-a.com"},
        "$.candidates[0].predicate",
        "not a valid host name",
        id="host-leading-hyphen",
    ),
    pytest.param(
        {"predicate": "ex\u0430mple.com"},
        "$.candidates[0].predicate",
        "IDNA",
        id="host-cyrillic-lookalike",
    ),
    pytest.param(
        {"predicate": "a.com#x"},
        "$.candidates[0].predicate",
        "not a valid host name",
        id="host-hash",
    ),
    pytest.param(
        {"predicate": "x" * 64 + ".com"},
        "$.candidates[0].predicate",
        "not a valid host name",
        id="host-label-too-long",
    ),
    pytest.param(
        {"configMode": "path", "predicate": "a b"},
        "$.candidates[0].predicate",
        "URL path",
        id="path-space",
    ),
    pytest.param(
        {"configMode": "path", "predicate": "a?x=1"},
        "$.candidates[0].predicate",
        "URL path",
        id="path-query",
    ),
    pytest.param(
        {"configMode": "path", "predicate": "a#b"},
        "$.candidates[0].predicate",
        "URL path",
        id="path-hash",
    ),
    pytest.param(
        {"configMode": "path", "predicate": "a'b"},
        "$.candidates[0].predicate",
        "URL path",
        id="path-quote",
    ),
    pytest.param(
        {"configMode": "path", "predicate": "a//b"},
        "$.candidates[0].predicate",
        "URL path",
        id="path-empty-segment",
    ),
    pytest.param(
        {"configMode": "path", "predicate": "a\x01"},
        "$.candidates[0].predicate",
        "URL path",
        id="path-control",
    ),
    pytest.param(
        {"configMode": "sideways"},
        "$.candidates[0].configMode",
        "'host' or 'path'",
        id="mode-unknown",
    ),
    pytest.param(
        {"cookie": "JSESSION ID"}, "$.candidates[0].cookie", "RFC 6265", id="cookie-space"
    ),
    pytest.param({"cookie": "a;b"}, "$.candidates[0].cookie", "RFC 6265", id="cookie-semicolon"),
    pytest.param(
        {"configmode": "path"},
        "$.candidates[0].configmode",
        "did you mean 'configMode'",
        id="unknown-field-typo",
    ),
    pytest.param(
        {"weight": 3}, "$.candidates[0].weight", "unknown field 'weight'", id="unknown-field"
    ),
    pytest.param(
        {"containers": "c1"},
        "$.candidates[0].containers",
        "expected an array",
        id="containers-not-list",
    ),
]


@pytest.mark.parametrize(("overrides", "path", "words"), BAD_CANDIDATES)
def test_bad_candidate_is_left_out_and_reported(
    overrides: dict[str, Any], path: str, words: str
) -> None:
    good = candidate(serviceName="good", predicate="good.example.com")
    model, diagnostics = load_payload(payload(candidate(**overrides), good))
    assert [c.service_name for c in model.candidates] == ["good"]
    assert any(d.path == path and words in d.message for d in diagnostics), diagnostics


def test_missing_predicate_is_reported() -> None:
    bad = candidate()
    del bad["predicate"]
    model, diagnostics = load_payload(payload(bad))
    assert model.candidates == []
    assert [(d.path, d.message) for d in diagnostics] == [
        ("$.candidates[0].predicate", "required field is missing")
    ]


BAD_ADDRESSES = [
    pytest.param("app.internal:80", "names a host, not an IP address", id="hostname"),
    pytest.param("10.0.0.1", "expected IP:PORT", id="no-port"),
    pytest.param("10.0.0.1:0", "1 to 65535", id="port-zero"),
    pytest.param("10.0.0.1:65536", "1 to 65535", id="port-too-big"),
    pytest.param("10.0.0.1:\uff18\uff10", "1 to 65535", id="port-fullwidth-digits"),
    pytest.param("10.0.0.256:80", "not a valid", id="ipv4-octet"),
    pytest.param("fd00::1:80", "in brackets", id="ipv6-unbracketed"),
    pytest.param("[fd00::zz]:80", "not a valid", id="ipv6-bad"),
    pytest.param("10.0.0.1:80 backup", "1 to 65535", id="injected-keyword"),
]


@pytest.mark.parametrize(("address", "words"), BAD_ADDRESSES)
def test_bad_container_address_leaves_out_only_that_container(address: str, words: str) -> None:
    containers = [{"id": "bad", "ip": address}, {"id": "ok", "ip": "10.0.0.2:80"}]
    model, diagnostics = load_payload(payload(candidate(containers=containers)))
    assert [c.id for c in model.candidates[0].containers] == ["ok"]
    assert len(diagnostics) == 1
    assert diagnostics[0].path == "$.candidates[0].containers[0].ip"
    assert words in diagnostics[0].message


def test_addresses_are_normalised() -> None:
    containers = [{"id": "v6", "ip": "[FD00:0::1]:8080"}, {"id": "v4", "ip": "10.0.0.2:80"}]
    model, _ = load_payload(payload(candidate(containers=containers)))
    assert [c.ip for c in model.candidates[0].containers] == ["[fd00::1]:8080", "10.0.0.2:80"]


def test_mode_is_case_insensitive_and_defaults_to_host() -> None:
    no_mode = candidate()
    del no_mode["configMode"]
    model, diagnostics = load_payload(
        payload(candidate(configMode="Path", predicate="/api/v1/", serviceName="api"), no_mode)
    )
    assert diagnostics == ()
    assert [(c.config_mode, c.predicate) for c in model.candidates] == [
        ("path", "/api/v1"),
        ("host", "web.example.com"),
    ]


def test_host_predicate_is_lower_cased() -> None:
    model, _ = load_payload(payload(candidate(predicate="WEB.Example.COM.")))
    assert model.candidates[0].predicate == "web.example.com"


def test_bad_running_entry_is_left_out() -> None:
    running = [
        {"serviceName": "web", "id": "c1", "ip": "10.0.0.1:80"},
        {"serviceName": "web", "id": "c2"},
        "c3",
    ]
    model, diagnostics = load_payload(payload(running=running))
    assert [r.id for r in model.running] == ["c1"]
    assert [d.path for d in diagnostics] == ["$.running[1].ip", "$.running[2]"]
    assert diagnostics[1].message == "expected an object, got a string"


@pytest.mark.parametrize(
    ("data", "words"),
    [
        pytest.param([], "must be a JSON object", id="array"),
        pytest.param({"running": []}, "$.table: required field is missing", id="no-table"),
        pytest.param(
            {"table": "t1", "running": {}}, "$.running: expected an array", id="running-object"
        ),
        pytest.param({"table": "astro"}, "$.running: required field is missing", id="no-running"),
        pytest.param({"table": "a b", "running": []}, "not a valid table name", id="table-name"),
        pytest.param({"table": "ab", "running": []}, "not a valid table name", id="table-short"),
        pytest.param(
            {"table": "astro", "running": [], "candidate": []},
            "did you mean 'candidates'",
            id="envelope-typo",
        ),
    ],
)
def test_malformed_envelope_is_an_error(data: Any, words: str) -> None:
    with pytest.raises(PayloadError) as caught:
        load_payload(copy.deepcopy(data))
    assert words in str(caught.value)


def test_invalid_json_is_located() -> None:
    with pytest.raises(PayloadError) as caught:
        parse_payload_text('{\n  "table": "astro",\n  "running": [,]\n}', file="p.json")
    assert str(caught.value).startswith("p.json:3:15: not valid JSON")


def test_long_values_are_shortened_in_messages() -> None:
    model, diagnostics = load_payload(payload(candidate(predicate="x" * 10_000_000)))
    assert model.candidates == []
    assert len(diagnostics[0].message) < 300
