"""Per-service settings through stored state: every store keeps them (and the containers'
weights), rows written before settings existed still load, a candidate replaces a service's
settings, fleet mode takes the newest deployment's, and compat=seed reports what it ignores."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from compiler.models import Candidate, HostReport, Payload, Service
from compiler.options import RenderOptions
from runtime.fleet import render
from runtime.pipeline import compile_payload
from runtime.stores import Store
from runtime.stores.dynamodb_items import service_from_item, service_item
from runtime.stores.memory import MemoryStore
from runtime.stores.reports import dump_report, load_report
from runtime.stores.sqlite import SQLiteStore
from tests.support.paths import load_example, run_cli


def running_of(payload: dict[str, Any]) -> dict[str, Any]:
    """The same containers, now only running: what the store remembers decides the output."""
    running = [
        {"serviceName": c["serviceName"], "id": k["id"], "ip": k["ip"]}
        for c in payload["candidates"]
        for k in c["containers"]
    ]
    return {"table": payload["table"], "running": running}


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "memory":
        return MemoryStore()
    return SQLiteStore(tmp_path / "state.db")


def test_settings_survive_the_store(store: Store) -> None:
    example = load_example("settings.json")
    first = compile_payload(example, store=store)
    again = compile_payload(running_of(example), store=store)
    assert again.text == first.text
    assert "weight 3" in again.text and "userlist auth_shop" in again.text


def test_a_candidate_replaces_the_settings(store: Store) -> None:
    example = load_example("settings.json")
    compile_payload(example, store=store)
    plain = json.loads(json.dumps(example))
    for candidate in plain["candidates"]:
        for name in ("balance", "maxconn", "health", "timeouts", "auth", "allow", "headers"):
            candidate.pop(name, None)
        for container in candidate["containers"]:
            container.pop("weight", None)
    result = compile_payload(plain, store=store)
    assert result.text == compile_payload(plain).text
    assert "userlist" not in result.text and "weight" not in result.text


def test_sqlite_rows_without_settings_load_and_are_written_as_before(tmp_path: Path) -> None:
    database = tmp_path / "state.db"
    seed = load_example("seed.json")
    compile_payload(seed, store=SQLiteStore(database))
    with sqlite3.connect(database) as connection:
        texts = [row[0] for row in connection.execute("SELECT service FROM services")]
    rows = [json.loads(text) for text in texts]
    assert len(rows) == 2
    for row in rows:
        assert set(row) == {"name", "mode", "predicate", "cookie", "containers"}
        assert all(set(c) == {"id", "ip"} for c in row["containers"])
    assert compile_payload(running_of(seed), store=SQLiteStore(database)).services


def test_dynamodb_items_keep_settings_and_old_items_load() -> None:
    example = load_example("settings.json")
    services = compile_payload(example).services
    for service in services:
        assert service_from_item(service_item(service, 3), "t") == service
    old = {
        "serviceName": {"S": "app"},
        "configMode": {"S": "host"},
        "predicate": {"S": "app.example.com"},
        "containers": {"L": [{"M": {"id": {"S": "a1"}, "ip": {"S": "10.0.0.1:80"}}}]},
        "version": {"N": "1"},
    }
    loaded = service_from_item(old, "t")
    assert loaded.health is None and loaded.containers[0].weight is None
    plain = Service(name="app", mode="host", predicate="app.example.com")
    assert set(service_item(plain, 1)) == {
        "serviceName",
        "configMode",
        "predicate",
        "containers",
        "version",
    }


def test_host_reports_keep_settings_and_old_reports_load() -> None:
    payload = Payload.model_validate({**load_example("settings.json"), "host": "h1"})
    report = HostReport(host="h1", reported_at=1.0, seq=1, candidates=tuple(payload.candidates))
    text = dump_report(report)
    assert load_report(text, table="t", host="h1", label="x") == report
    old = json.dumps(
        {
            "host": "h1",
            "reported_at": 1.0,
            "seq": 1,
            "running": [],
            "candidates": [
                {
                    "serviceName": "a",
                    "configMode": "host",
                    "predicate": "a.com",
                    "cookie": None,
                    "containers": [{"id": "a1", "ip": "10.0.0.1:80", "created": None}],
                }
            ],
        }
    )
    assert load_report(old, table="t", host="h1", label="x").candidates[0].health is None


def candidate(created: str, maxconn: int) -> Candidate:
    return Candidate.model_validate(
        {
            "serviceName": "web",
            "predicate": "web.example.com",
            "maxconn": maxconn,
            "containers": [{"id": f"w{maxconn}", "ip": f"10.0.0.{maxconn}:80", "created": created}],
        }
    )


def test_fleet_newest_deployment_settings_win() -> None:
    old = HostReport(
        host="a", reported_at=1.0, seq=1, candidates=(candidate("2026-01-01T00:00:00Z", 10),)
    )
    new = HostReport(
        host="b", reported_at=1.0, seq=1, candidates=(candidate("2026-02-01T00:00:00Z", 20),)
    )
    result = render({"a": old, "b": new})
    (service,) = result.render
    assert service.maxconn == 20
    assert [c.id for c in service.containers] == ["w20"]
    assert [d.path for d in result.diagnostics] == ["host 'a': $.candidates[0]"]


def test_compat_seed_reports_each_ignored_setting() -> None:
    result = run_cli(
        "compile", "-", "--format", "json", stdin=json.dumps(load_example("settings.json"))
    )
    assert result.returncode == 0 and "userlist auth_shop" in result.stdout
    seed = compile_payload(load_example("settings.json"), options=RenderOptions(compat="seed"))
    assert "userlist" not in seed.text and "weight" not in seed.text
    paths = {d.path for d in seed.diagnostics if d.severity == "warning"}
    assert {
        "$.candidates[0].balance",
        "$.candidates[0].maxconn",
        "$.candidates[0].health",
        "$.candidates[0].timeouts",
        "$.candidates[0].auth",
        "$.candidates[0].allow",
        "$.candidates[0].headers",
        "$.candidates[0].containers[0].weight",
        "$.candidates[0].containers[1].weight",
        "$.candidates[1].health",
        "$.candidates[1].containers[1].weight",
    } == paths
    assert all("compat=seed" in d.message for d in seed.diagnostics)
