"""Any sequence of payloads, against a model of reference/semantics.md, gives the same stored
state and the same output, on every store.

The model below is written from the semantics file alone (not from ``runtime.merge``):

1. cleanse: a stored service whose name is nowhere in ``running`` is deleted; a survivor keeps
   only the containers whose id is in ``running``;
2. merge: a candidate of a survivor adds its containers and its settings replace the stored
   ones; a candidate of any other service becomes a new service with exactly its own
   containers; every running container of a survivor is added; containers are de-duplicated;
3. the project's decision for candidates of one service that disagree on settings: all of
   them are left out;
4. everything that survives is stored and rendered.

Payloads draw from a few names and container ids so that calls interact: services come and
go, containers move, settings change, spellings vary (``Host``/``host``, trailing slashes,
upper-case host names). Each service's route is its own, so no route conflict arises (those
rules are tested in ``test_reconcile.py``).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)

from compiler.models import Service
from runtime.pipeline import compile_payload
from runtime.stores import Store
from runtime.stores.memory import MemoryStore
from runtime.stores.sqlite import SQLiteStore
from tests.support.aws import MotoServer, aws_env

TABLE = "model"
NAMES = ["app1", "app2", "web", "api"]
IDS = [f"c{n}" for n in range(1, 7)]

# name -> (mode, predicate, cookie, container ids)
ModelService = tuple[str, str, str | None, frozenset[str]]
ModelTable = dict[str, ModelService]


def address(container_id: str) -> str:
    return f"10.0.0.{int(container_id[1:])}:80"


@st.composite
def candidates(draw: st.DrawFn) -> dict[str, Any]:
    name = draw(st.sampled_from(NAMES))
    mode = draw(st.sampled_from(["host", "path", "Host", "PATH", None]))
    if mode is None or mode.lower() == "host":
        predicate = draw(st.sampled_from([f"{name}.example.com", f"{name.upper()}.Example.COM"]))
    else:
        predicate = draw(st.sampled_from([f"/{name}", f"{name}/", f"/{name}/", f"{name}/v1"]))
    entry: dict[str, Any] = {"serviceName": name, "predicate": predicate}
    if mode is not None:
        entry["configMode"] = mode
    cookie = draw(st.sampled_from([None, None, "SID", "JSESSIONID"]))
    if cookie is not None:
        entry["cookie"] = cookie
    ids = draw(st.lists(st.sampled_from(IDS), max_size=3))
    entry["containers"] = [{"id": i, "ip": address(i)} for i in ids]
    return entry


running_entries = st.lists(
    st.builds(
        lambda name, container_id: {
            "serviceName": name,
            "id": container_id,
            "ip": address(container_id),
        },
        st.sampled_from(NAMES),
        st.sampled_from(IDS),
    ),
    max_size=7,
)
payloads = st.builds(
    lambda running, cands: {"table": TABLE, "running": running, "candidates": cands},
    running_entries,
    st.lists(candidates(), max_size=3),
)


def settings_of(candidate: dict[str, Any]) -> tuple[str, str, str | None]:
    mode = str(candidate.get("configMode", "host")).lower()
    predicate = candidate["predicate"]
    predicate = predicate.lower() if mode == "host" else "/" + predicate.strip("/")
    return (mode, predicate, candidate.get("cookie"))


def model_call(table: ModelTable, payload: dict[str, Any]) -> ModelTable:
    """One invocation of the semantics: the new table, which is also what is rendered."""
    running_ids = {entry["id"] for entry in payload["running"]}
    running_names = {entry["serviceName"] for entry in payload["running"]}
    # 1. cleanse
    survivors = {
        name: (mode, predicate, cookie, ids & running_ids)
        for name, (mode, predicate, cookie, ids) in table.items()
        if name in running_names
    }
    result = dict(survivors)
    # 2. merge candidates (3. several candidates of one service must agree)
    by_name: dict[str, list[dict[str, Any]]] = {}
    for candidate in payload["candidates"]:
        by_name.setdefault(candidate["serviceName"], []).append(candidate)
    for name, group in by_name.items():
        if len({settings_of(c) for c in group}) > 1:
            continue
        mode, predicate, cookie = settings_of(group[0])
        ids = frozenset(c["id"] for candidate in group for c in candidate["containers"])
        kept = survivors[name][3] if name in survivors else frozenset()
        result[name] = (mode, predicate, cookie, kept | ids)
    # ... and running containers of stored services only
    for entry in payload["running"]:
        name = entry["serviceName"]
        if name in survivors:
            mode, predicate, cookie, ids = result[name]
            result[name] = (mode, predicate, cookie, ids | {entry["id"]})
    return result


def observed(services: Any) -> ModelTable:
    found: ModelTable = {}
    for service in services:
        assert isinstance(service, Service)
        assert all(c.ip == address(c.id) for c in service.containers)
        ids = [c.id for c in service.containers]
        assert len(ids) == len(set(ids)), f"duplicate containers in {service.name}"
        assert ids == sorted(ids), "containers come out in a deterministic order"
        found[service.name] = (service.mode, service.predicate, service.cookie, frozenset(ids))
    return found


class RegistryMachine(RuleBasedStateMachine):
    """Every store receives the same calls and must agree with the model after each one."""

    make_stores: Callable[[Path], list[Store]] = staticmethod(
        lambda directory: [MemoryStore(), SQLiteStore(directory / "state.db")]
    )

    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="registry-model-"))
        self.stores = type(self).make_stores(self.directory)
        self.model: ModelTable = {}
        for store in self.stores:
            store.clear(TABLE)

    @rule(payload=payloads)
    def call(self, payload: dict[str, Any]) -> None:
        expected = model_call(self.model, payload)
        for store in self.stores:
            result = compile_payload(payload, store=store)
            assert observed(result.services) == expected, store.label
            assert [s.name for s in result.services] == sorted(expected), "sorted by name"
            backends = [line for line in result.text.splitlines() if line.startswith("backend ")]
            assert backends == [f"backend {name}" for name in sorted(expected)]
        self.model = expected

    @rule()
    def clear(self) -> None:
        for store in self.stores:
            assert store.clear(TABLE) == len(self.model)
        self.model = {}

    @invariant()
    def stored_state_matches_the_model(self) -> None:
        for store in self.stores:
            assert observed(store.services(TABLE).values()) == self.model, store.label

    def teardown(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


LOCAL = settings(
    max_examples=60,
    stateful_step_count=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def test_memory_and_sqlite_agree_with_the_model() -> None:
    run_state_machine_as_test(RegistryMachine, settings=LOCAL)


def test_dynamodb_agrees_with_the_model(
    moto_server: MotoServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from runtime.stores.dynamodb import DynamoDBStore

    aws_env(monkeypatch, moto_server.endpoint)

    class DynamoDBMachine(RegistryMachine):
        make_stores = staticmethod(lambda directory: [MemoryStore(), DynamoDBStore()])

    run_state_machine_as_test(
        DynamoDBMachine,
        settings=settings(LOCAL, max_examples=15, stateful_step_count=8),
    )


def test_the_model_reproduces_the_worked_examples(seed_payload: dict[str, Any]) -> None:
    first = model_call({}, seed_payload)
    assert {name: sorted(ids) for name, (*_, ids) in first.items()} == {
        "app1": ["a23nj53h3j4"],
        "app2": ["das843j3h3k", "fds32k4354f"],
    }
    second = model_call(first, seed_payload)
    assert {name: sorted(ids) for name, (*_, ids) in second.items()} == {
        "app1": ["a23nj53h3j4", "jk3243j54jl"],
        "app2": ["das843j3h3k", "fds32k4354f"],
    }
