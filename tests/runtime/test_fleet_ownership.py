"""Fleet mode: who may change what. A host that joins the fleet cannot drop a service's basic
auth or allow list, take its route or a path under it, or win a route by stating an old
``created``; the render option ``fleet_owners`` binds services and routes to hosts. Read from
the emitted config (haproxy -c accepts it) on all three stores."""

from __future__ import annotations

from typing import Any

from compiler.options import OwnerRule, RenderOptions
from runtime.pipeline import CompileResult, compile_payload
from runtime.stores import Store
from tests.support.fleet import Accepts, Clock, container, servers

TTL = 90.0

HASH = "$6$examplesalt$" + "a" * 86
AUTH = {"realm": "staff", "users": [{"name": "admin", "hash": HASH}]}
OFFICE = ["192.0.2.0/24"]


def candidate(
    name: str, predicate: str, boxes: list[dict[str, Any]], **settings: Any
) -> dict[str, Any]:
    mode = "path" if predicate.startswith("/") else "host"
    return {
        "serviceName": name,
        "configMode": mode,
        "predicate": predicate,
        "containers": boxes,
        **settings,
    }


def payload(table: str, host: str, *candidates: dict[str, Any]) -> dict[str, Any]:
    return {
        "table": table,
        "host": host,
        "running": [
            {"serviceName": c["serviceName"], "id": box["id"], "ip": box["ip"]}
            for c in candidates
            for box in c["containers"]
        ],
        "candidates": list(candidates),
    }


class Fleet:
    def __init__(self, store: Store, options: RenderOptions | None = None) -> None:
        self.store, self.clock, self.options = store, Clock(), options

    def send(self, data: dict[str, Any]) -> CompileResult:
        self.clock.now += 5
        return compile_payload(
            data, store=self.store, clock=self.clock, host_ttl=TTL, options=self.options
        )


def protected_api(table: str) -> dict[str, Any]:
    return payload(
        table,
        "host-a",
        candidate(
            "api",
            "api.example.com",
            [container("a1", "10.0.1.1:80", "2026-11-30T10:00:00Z")],
            auth=AUTH,
            allow=OFFICE,
        ),
    )


def api_from_host_b(
    table: str, predicate: str = "api.example.com", **settings: Any
) -> dict[str, Any]:
    """A later deployment of ``api`` on host-b (created 2026-12-01, after host-a's)."""
    return payload(
        table,
        "host-b",
        candidate(
            "api", predicate, [container("b1", "10.0.2.1:80", "2026-12-01T10:00:00Z")], **settings
        ),
    )


def test_a_newcomer_cannot_drop_a_services_auth_or_allow_list(
    store: Store, table: str, assert_haproxy_accepts: Accepts
) -> None:
    fleet = Fleet(store)
    fleet.send(protected_api(table))
    for settings in ({}, {"auth": AUTH}, {"allow": OFFICE}, {"allow": ["0.0.0.0/0"]}):
        newcomer = api_from_host_b(table, **settings)
        result = fleet.send(newcomer)
        assert servers(result.text) == {"api": ["a1 10.0.1.1:80"]}, settings
        assert "userlist" in result.text and "http_auth" in result.text
        assert "192.0.2.0/24" in result.text and "0.0.0.0/0" not in result.text
        (diagnostic,) = result.diagnostics
        assert diagnostic.path == "$.candidates[0]"
        assert "keeps the route, basic auth and allow list" in diagnostic.message
        assert "since host 'host-a'" in diagnostic.message
    assert_haproxy_accepts(result.files)


def test_a_newcomer_keeping_the_protections_joins_and_its_other_settings_win(
    store: Store, table: str
) -> None:
    fleet = Fleet(store)
    fleet.send(protected_api(table))
    redeployed = api_from_host_b(table, auth=AUTH, allow=OFFICE, maxconn=77)
    result = fleet.send(redeployed)
    assert servers(result.text) == {"api": ["b1 10.0.2.1:80"]}  # the newest deployment
    assert "maxconn 77" in result.text and "userlist" in result.text


def test_the_protected_route_stays_and_a_stated_old_created_takes_no_route(
    store: Store, table: str
) -> None:
    fleet = Fleet(store)
    fleet.send(protected_api(table))
    moved = api_from_host_b(table, "evil.example.com", auth=AUTH, allow=OFFICE)
    result = fleet.send(moved)
    assert "evil.example.com" not in result.text and "api.example.com" in result.text

    shop = payload(
        table, "host-c", candidate("shop", "shop.example.com", [container("c1", "10.0.3.1:80")])
    )
    fleet.send(shop)
    backdated = payload(
        table,
        "host-b",
        candidate(
            "evil", "shop.example.com", [container("b2", "10.0.2.2:80", "0001-01-01T00:00:00Z")]
        ),
    )
    result = fleet.send(backdated)
    assert servers(result.text) == {"api": ["a1 10.0.1.1:80"], "shop": ["c1 10.0.3.1:80"]}
    assert any("service 'shop' already routes it" in d.message for d in result.diagnostics)


def test_a_path_under_a_protected_path_needs_its_protection(
    store: Store, table: str, assert_haproxy_accepts: Accepts
) -> None:
    fleet = Fleet(store)
    fleet.send(
        payload(
            table,
            "host-a",
            candidate("api", "/api", [container("a1", "10.0.1.1:80")], auth=AUTH),
        )
    )
    result = fleet.send(
        payload(
            table,
            "host-b",
            candidate("admin", "/api/admin", [container("b1", "10.0.2.1:80")]),
            candidate("apiary", "/apiary", [container("b2", "10.0.2.2:80")]),  # not under it
            candidate("tools", "/api/tools", [container("b3", "10.0.2.3:80")], auth=AUTH),
        )
    )
    assert servers(result.text) == {
        "api": ["a1 10.0.1.1:80"],
        "apiary": ["b2 10.0.2.2:80"],
        "tools": ["b3 10.0.2.3:80"],
    }
    (diagnostic,) = result.diagnostics
    assert diagnostic.path == "$.candidates[0].predicate"
    assert "lies under '/api' of service 'api'" in diagnostic.message
    assert_haproxy_accepts(result.files)


def test_owners_bind_services_and_routes_to_hosts(store: Store, table: str) -> None:
    owners = (
        OwnerRule(services="billing*", hosts=("pay-*",)),
        OwnerRule(routes="*.pay.example.com", hosts=("pay-*",)),
    )
    fleet = Fleet(store, RenderOptions(fleet_owners=owners))
    fleet.send(
        payload(
            table,
            "pay-1",
            candidate("billing", "billing.example.com", [container("p1", "10.0.5.1:80")]),
        )
    )
    intruder = payload(
        table,
        "web-1",
        candidate("billing", "billing.example.com", [container("w1", "10.0.6.1:80")]),
        candidate("checkout", "checkout.pay.example.com", [container("w2", "10.0.6.2:80")]),
        candidate("blog", "blog.example.com", [container("w3", "10.0.6.3:80")]),
    )
    intruder["running"].append({"serviceName": "billing", "id": "w9", "ip": "10.0.6.9:80"})
    result = fleet.send(intruder)
    assert servers(result.text) == {"billing": ["p1 10.0.5.1:80"], "blog": ["w3 10.0.6.3:80"]}
    messages = sorted(d.message for d in result.diagnostics)
    assert len(messages) == 2
    assert "may not claim host 'checkout.pay.example.com'" in messages[0]
    assert "may not deploy service 'billing'" in messages[1]


def test_owners_may_change_their_services_protections(store: Store, table: str) -> None:
    owners = (OwnerRule(services="api", hosts=("host-a", "host-b")),)
    fleet = Fleet(store, RenderOptions(fleet_owners=owners))
    fleet.send(protected_api(table))
    rotated = {"realm": "staff", "users": [{"name": "admin", "hash": "$6$othersalt$" + "b" * 86}]}
    result = fleet.send(api_from_host_b(table, auth=rotated, allow=OFFICE))
    assert servers(result.text) == {"api": ["b1 10.0.2.1:80"]}
    assert "othersalt" in result.text and "examplesalt" not in result.text
