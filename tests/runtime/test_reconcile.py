"""Reconcile: the worked examples of reference/semantics.md and the conflict rules."""

from __future__ import annotations

from typing import Any

from compiler.models import ContainerRef, Payload, Service
from runtime.merge import reconcile


def servers(service: Service) -> list[str]:
    return [c.id for c in service.containers]


def test_first_call_on_empty_table(seed_payload: dict[str, Any]) -> None:
    result = reconcile({}, Payload.model_validate(seed_payload))
    assert [(s.name, servers(s)) for s in result.render] == [
        ("app1", ["a23nj53h3j4"]),  # jk3243j54jl runs, but app1 was never registered
        ("app2", ["das843j3h3k", "fds32k4354f"]),
    ]
    assert result.store == result.render
    assert result.delete == ()
    assert result.diagnostics == ()


def test_second_call_with_the_same_payload(seed_payload: dict[str, Any]) -> None:
    payload = Payload.model_validate(seed_payload)
    first = reconcile({}, payload)
    second = reconcile(first.store, payload)
    # app1 is stored and running: it gains jk3243j54jl from `running`. app2 has nothing in
    # `running`: deleted by the cleanse, then re-created from its candidate.
    assert [(s.name, servers(s)) for s in second.render] == [
        ("app1", ["a23nj53h3j4", "jk3243j54jl"]),
        ("app2", ["das843j3h3k", "fds32k4354f"]),
    ]
    assert second.delete == ("app2",)


def stored(name: str, predicate: str, *ids: str, mode: str = "host") -> Service:
    return Service.model_validate(
        {
            "name": name,
            "mode": mode,
            "predicate": predicate,
            "containers": [ContainerRef(id=i, ip=f"10.0.0.{n + 1}:80") for n, i in enumerate(ids)],
        }
    )


def test_cleanse_keeps_only_running_containers_and_deletes_absent_services() -> None:
    table = {"a": stored("a", "a.com", "a1", "a2"), "gone": stored("gone", "g.com", "g1")}
    payload = Payload.model_validate(
        {"table": "t01", "running": [{"serviceName": "a", "id": "a2", "ip": "10.0.0.2:80"}]}
    )
    result = reconcile(table, payload)
    assert [(s.name, servers(s)) for s in result.render] == [("a", ["a2"])]
    assert result.delete == ("gone",)


def test_candidate_settings_replace_stored_ones() -> None:
    table = {"a": stored("a", "old.com", "a1")}
    payload = Payload.model_validate(
        {
            "table": "t01",
            "running": [{"serviceName": "a", "id": "a1", "ip": "10.0.0.1:80"}],
            "candidates": [
                {
                    "serviceName": "a",
                    "configMode": "path",
                    "predicate": "api",
                    "cookie": "SID",
                    "containers": [{"id": "a9", "ip": "10.0.0.9:80"}],
                }
            ],
        }
    )
    (service,) = reconcile(table, payload).render
    assert (service.mode, service.predicate, service.cookie) == ("path", "/api", "SID")
    assert servers(service) == ["a1", "a9"]


def test_newcomer_claiming_a_routed_host_is_left_out() -> None:
    table = {"old": stored("old", "shop.com", "o1")}
    payload = Payload.model_validate(
        {
            "table": "t01",
            "running": [{"serviceName": "old", "id": "o1", "ip": "10.0.0.1:80"}],
            "candidates": [
                {
                    "serviceName": "new",
                    "predicate": "SHOP.com",
                    "containers": [{"id": "n1", "ip": "10.0.0.5:80"}],
                }
            ],
        }
    )
    result = reconcile(table, payload)
    assert [s.name for s in result.render] == ["old"]
    (diagnostic,) = result.diagnostics
    assert diagnostic.path == "$.candidates[0].predicate"
    assert "'new'" in diagnostic.message and "'old' already routes it" in diagnostic.message


def test_two_new_services_claiming_one_path_are_both_left_out() -> None:
    payload = Payload.model_validate(
        {
            "table": "t01",
            "running": [],
            "candidates": [
                {"serviceName": "x", "configMode": "path", "predicate": "/api"},
                {"serviceName": "y", "configMode": "path", "predicate": "api/"},
                {"serviceName": "z", "configMode": "path", "predicate": "api/v2"},
            ],
        }
    )
    result = reconcile({}, payload)
    assert [s.name for s in result.render] == ["z"]
    assert [d.path for d in result.diagnostics] == [
        "$.candidates[0].predicate",
        "$.candidates[1].predicate",
    ]


def test_duplicate_containers_are_merged_and_conflicting_addresses_reported() -> None:
    payload = Payload.model_validate(
        {
            "table": "t01",
            "running": [],
            "candidates": [
                {
                    "serviceName": "x",
                    "predicate": "x.com",
                    "containers": [
                        {"id": "c1", "ip": "10.0.0.1:80"},
                        {"id": "c1", "ip": "10.0.0.1:80"},
                        {"id": "c1", "ip": "10.0.0.2:80"},
                    ],
                },
            ],
        }
    )
    result = reconcile({}, payload)
    assert [(c.id, c.ip) for c in result.render[0].containers] == [("c1", "10.0.0.1:80")]
    (diagnostic,) = result.diagnostics
    assert diagnostic.path == "$.candidates[0].containers[2]"


def test_fast_container_refs_are_model_construct_refs() -> None:
    """The merge builds its refs through pydantic's pickling protocol, not model_construct:
    they must be the same models, field for field (a field added to ContainerRef fails here)."""
    from compiler.models import ContainerRef
    from runtime.merge import _container_ref

    for weight in (None, 3):
        fast = _container_ref("c1", "10.0.0.1:80", weight)
        given = {} if weight is None else {"weight": weight}
        slow = ContainerRef.model_construct(id="c1", ip="10.0.0.1:80", **given)
        assert type(fast) is ContainerRef
        assert fast == slow
        assert fast.__dict__ == slow.__dict__
        assert list(fast.__dict__) == list(ContainerRef.model_fields)
        assert fast.model_fields_set == slow.model_fields_set
        assert fast.model_dump() == slow.model_dump() and repr(fast) == repr(slow)
        assert hash(fast) == hash(slow)


def test_a_running_container_at_a_new_address_replaces_the_stored_one() -> None:
    """Podman gives a restarted container a new address, and the Docker Engine may: the
    container keeps its id, and the payload's address is where it answers now."""
    table = {"a": stored("a", "a.com", "a1", "a2")}
    before = {c.id: c.ip for c in table["a"].containers}
    moved = "10.9.9.9:80"
    assert moved not in before.values()
    running = [
        {"serviceName": "a", "id": "a1", "ip": moved},
        {"serviceName": "a", "id": "a2", "ip": before["a2"]},
    ]
    result = reconcile(table, Payload.model_validate({"table": "t01", "running": running}))
    assert [(c.id, c.ip) for c in result.render[0].containers] == [
        ("a1", moved),
        ("a2", before["a2"]),
    ]
    assert result.diagnostics == ()
