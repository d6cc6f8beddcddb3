"""A service haproxy refuses never freezes the fleet: the registry leaves it out of the output
(and says why, in haproxy's words) and every other host's services are compiled as usual.

The bad service comes from a stored report the validators never saw (a record an older
version wrote), put in the store directly; haproxy -c is the real one (2.6, the one
``compile --check`` runs), and what comes out is checked by both oracles."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pytest

from compiler.models import Candidate, HostReport, TimeoutSettings
from compiler.options import RenderOptions
from runtime.fleet import FleetResult
from runtime.haproxy_check import CheckResult, RefusedError, check_config
from runtime.pipeline import compile_payload
from runtime.stores.memory import MemoryStore

TABLE = "fleet"
NOW = 1_800_000_000.0
Accepts = Callable[[str | Mapping[str, str]], None]


def payload(host: str, service: str, ip: str) -> dict[str, object]:
    return {
        "table": TABLE,
        "host": host,
        "running": [],
        "candidates": [
            {
                "serviceName": service,
                "predicate": f"{service}.example.com",
                "containers": [{"id": f"{service}-1", "ip": ip}],
            }
        ],
    }


def store_with_a_bad_report() -> MemoryStore:
    """Host a's stored report holds service 'bad' with a timeout haproxy cannot read."""
    store = MemoryStore()
    compile_payload(payload("host-a", "bad", "10.0.1.1:80"), store=store, clock=lambda: NOW)
    stored = store.hosts(TABLE)["host-a"]
    # Written around the validators, as an older version's record would be.
    broken = TimeoutSettings.model_construct(server="10xyz")
    candidate: Candidate = stored.candidates[0].model_copy(update={"timeouts": broken})
    record = stored.model_copy(update={"candidates": (candidate,)})

    def write(_: Mapping[str, HostReport]) -> FleetResult:
        return FleetResult((), report=record)

    store.update_hosts(TABLE, write)
    return store


@pytest.mark.parametrize("routing", ["acl", "map"])
def test_a_service_haproxy_refuses_is_left_out_and_the_other_hosts_service_compiled(
    routing: str, assert_haproxy_accepts: Accepts
) -> None:
    store = store_with_a_bad_report()
    checks: list[bool] = []

    def check(files: Mapping[str, str]) -> CheckResult:
        result = check_config(files)
        checks.append(result.ok)
        return result

    result = compile_payload(
        payload("host-b", "good", "10.0.2.1:80"),
        options=RenderOptions(routing=routing),  # type: ignore[arg-type]
        store=store,
        clock=lambda: NOW + 1,
        check=check,
    )

    assert "backend good" in result.text
    assert "backend bad" not in result.text
    assert "bad" not in "".join(result.files.values())  # no route, no map entry either
    assert [s.name for s in result.services] == ["good"]
    assert checks == [False, True]  # refused with 'bad', accepted without it
    left_out = [d for d in result.diagnostics if d.path == "service 'bad'"]
    assert len(left_out) == 1, result.diagnostics
    assert "left out" in left_out[0].message
    assert "`timeout server 10xyz`" in left_out[0].message
    assert "unexpected character 'x' in 'timeout server'" in left_out[0].message  # haproxy's
    assert_haproxy_accepts(result.files)
    # The store keeps what the hosts said: host a's report is not rewritten, b's is stored.
    reports = store.hosts(TABLE)
    assert reports["host-a"].candidates[0].timeouts == TimeoutSettings.model_construct(
        server="10xyz"
    )
    assert reports["host-b"].candidates[0].service_name == "good"


def test_without_a_check_the_refused_service_is_still_compiled() -> None:
    """The bad line really is in the output when nobody runs haproxy: the test above is
    about the check, not about the lowering dropping it."""
    result = compile_payload(
        payload("host-b", "good", "10.0.2.1:80"),
        store=store_with_a_bad_report(),
        clock=lambda: NOW + 1,
    )
    assert "timeout server 10xyz" in result.text


def test_a_refusal_that_names_no_service_fails_and_stores_nothing() -> None:
    store = store_with_a_bad_report()
    before = store.hosts(TABLE)

    def refused_in_global(files: Mapping[str, str]) -> CheckResult:
        # haproxy's shape for a line of the global section (line 2): no service to blame.
        return CheckResult(False, "[ALERT]    (7) : config : parsing [<config>:2] : no way")

    with pytest.raises(RefusedError, match="no way"):
        compile_payload(
            payload("host-b", "good", "10.0.2.1:80"),
            store=store,
            clock=lambda: NOW + 1,
            check=refused_in_global,
        )
    assert store.hosts(TABLE) == before  # host b's report is not stored either
