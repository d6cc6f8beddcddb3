"""Managed containers -> registry payload (pure)."""

from __future__ import annotations

from compiler.errors import Diagnostic
from cosmonaut.discovery.containers import ManagedContainer
from cosmonaut.discovery.labels import ServiceSettings
from cosmonaut.discovery.payload import build_payload
from runtime.pipeline import compile_payload

WEB = ServiceSettings("web", "host", "web.example", "SID", 8080)
DOCS = ServiceSettings("docs", "path", "/docs", None, 80)


def container(
    name: str, settings: ServiceSettings, ip: str, created: float = 0.0
) -> ManagedContainer:
    return ManagedContainer(f"{name:0<12}{'f' * 52}", name, created, settings, "podman", ip)


def test_every_container_is_running_and_a_candidate() -> None:
    plan = build_payload(
        "host-1",
        [
            container("web2", WEB, "10.88.0.3"),
            container("docs1", DOCS, "fd00::5"),
            container("web1", WEB, "10.88.0.2"),
        ],
    )
    assert plan.payload == {
        "table": "host-1",
        "running": [
            {"serviceName": "docs", "id": "docs10000000", "ip": "[fd00::5]:80"},
            {"serviceName": "web", "id": "web100000000", "ip": "10.88.0.2:8080"},
            {"serviceName": "web", "id": "web200000000", "ip": "10.88.0.3:8080"},
        ],
        "candidates": [
            {
                "serviceName": "docs",
                "configMode": "path",
                "predicate": "/docs",
                "containers": [{"id": "docs10000000", "ip": "[fd00::5]:80"}],
            },
            {
                "serviceName": "web",
                "configMode": "host",
                "predicate": "web.example",
                "cookie": "SID",
                "containers": [
                    {"id": "web100000000", "ip": "10.88.0.2:8080"},
                    {"id": "web200000000", "ip": "10.88.0.3:8080"},
                ],
            },
        ],
    }
    result = compile_payload(plan.payload)
    assert result.diagnostics == ()
    assert [s.name for s in result.services] == ["docs", "web"]


def test_newest_settings_win_and_the_others_are_reported() -> None:
    moved = ServiceSettings("web", "host", "new.example", "SID", 8080)
    old = container("old", WEB, "10.88.0.2", created=100.0)
    new = container("new", moved, "10.88.0.3", created=200.0)
    plan = build_payload("host-1", [old, new])
    assert [c.name for c in plan.routed] == ["new"]
    assert [(p.container, p.setting) for p in plan.problems] == [("old", "cosmonaut.predicate")]
    assert "newest container of service 'web' (new)" in plan.problems[0].reason
    assert plan.payload["candidates"][0]["predicate"] == "new.example"


def test_diagnostics_map_back_to_container_names() -> None:
    plan = build_payload(
        "host-1", [container("docs1", DOCS, "10.88.0.9"), container("web1", WEB, "10.88.0.2")]
    )
    assert plan.containers_of(Diagnostic("$.candidates[1].predicate", "x")) == ("web1",)
    assert plan.containers_of(Diagnostic("$.candidates[0].containers[0].ip", "x")) == ("docs1",)
    assert plan.containers_of(Diagnostic("$.running[1]", "x")) == ("web1",)
    assert plan.containers_of(Diagnostic("$.table", "x")) == ()


def test_empty_host() -> None:
    plan = build_payload("host-1", [])
    assert plan.payload == {"table": "host-1", "running": [], "candidates": []}
    assert "frontend http" in compile_payload(plan.payload).text


def test_tls_goes_into_the_candidate_only_when_set() -> None:
    from dataclasses import replace

    secure = container("w1", replace(WEB, options='{"tls":"redirect"}'), "10.0.0.1")
    plain = container("d1", DOCS, "10.0.0.2")
    plan = build_payload("tbl", [secure, plain])
    by_name = {c["serviceName"]: c for c in plan.payload["candidates"]}
    assert by_name["web"]["tls"] == "redirect"
    assert "tls" not in by_name["docs"]
