"""The DynamoDB store against moto in server mode, over real HTTP on a loopback port.

boto3 is pointed at the server the standard way (``AWS_ENDPOINT_URL_DYNAMODB``); nothing in
boto3 is patched. Faults are real: the server is stopped in the middle of a call, and
conditional writes fail because another writer really commits first.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import boto3  # type: ignore[import-untyped]
import pytest

from compiler.errors import InternalError
from compiler.models import Service
from compiler.options import RenderOptions
from runtime.merge import Reconciled
from runtime.pipeline import compile_payload
from runtime.stores import ConflictError, StoreError
from runtime.stores.dynamodb import VERSION_KEY, DynamoDBStore
from tests.support.aws import (
    MotoServer,
    aws_env,
)
from tests.support.paths import FIXTURES, ROOT
from tests.support.stores import (
    SECOND_SERVERS,
    SEED_SERVERS,
    assert_serialised,
    concurrent_payload,
    servers,
    statements,
)


@pytest.fixture
def own_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoServer]:
    """A server of this test's own, which the test may stop and start again."""
    server = MotoServer().start()
    aws_env(monkeypatch, server.endpoint)
    yield server
    server.stop()


@pytest.fixture
def table() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


def raw_client() -> Any:
    return boto3.client("dynamodb")


def with_table(payload: dict[str, Any], table: str) -> dict[str, Any]:
    return {**payload, "table": table}


# -- the seed, through the library and the CLI -----------------------------------------------


def test_seed_first_and_second_call(
    dynamodb: MotoServer, table: str, seed_payload: dict[str, Any]
) -> None:
    store = DynamoDBStore()
    payload = with_table(seed_payload, table)
    first = compile_payload(payload, store=store, options=RenderOptions(compat="seed"))
    expected = (FIXTURES / "seed_expected.cfg").read_text()
    assert statements(first.text) == statements(expected)

    second = compile_payload(payload, store=store)
    assert servers(second.services) == SECOND_SERVERS
    assert second.reconciled.delete == ("app2",)
    assert servers(sorted(store.services(table).values(), key=lambda s: s.name)) == (SECOND_SERVERS)


def test_items_one_per_service_plus_the_version_item(
    dynamodb: MotoServer, table: str, seed_payload: dict[str, Any]
) -> None:
    compile_payload(with_table(seed_payload, table), store=DynamoDBStore())
    client = raw_client()
    description = client.describe_table(TableName=table)["Table"]
    assert description["KeySchema"] == [{"AttributeName": "serviceName", "KeyType": "HASH"}]
    assert description["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    items = {i["serviceName"]["S"]: i for i in client.scan(TableName=table)["Items"]}
    assert set(items) == {"app1", "app2", VERSION_KEY}
    assert items[VERSION_KEY]["version"] == {"N": "1"}
    assert items["app1"]["configMode"] == {"S": "host"}
    assert items["app1"]["cookie"] == {"S": "JSESSIONID"}
    assert items["app2"]["containers"]["L"][0] == {
        "M": {"id": {"S": "das843j3h3k"}, "ip": {"S": "192.168.1.10:80"}}
    }


def test_cli_store_dynamodb(dynamodb: MotoServer, table: str, seed_payload: dict[str, Any]) -> None:
    payload = json.dumps(with_table(seed_payload, table))

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "runtime.cli", *args],
            input=payload,
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=False,
            timeout=120,
        )

    first = run("compile", "-", "--store", "dynamodb", "--compat", "seed")
    assert first.returncode == 0, first.stderr
    assert statements(first.stdout) == statements((FIXTURES / "seed_expected.cfg").read_text())
    second = run("compile", "-", "--store", "dynamodb")
    assert "server jk3243j54jl 192.168.1.8:80" in second.stdout
    shown = run("state", "show", table, "--store", "dynamodb", "--format", "json")
    assert [s["name"] for s in json.loads(shown.stdout)["services"]] == ["app1", "app2"]
    cleared = run("state", "clear", table, "--store", "dynamodb", "--yes")
    assert cleared.returncode == 0 and "2 service(s) forgotten" in cleared.stdout
    assert DynamoDBStore().services(table) == {}


# -- concurrency -----------------------------------------------------------------------------


def test_sixteen_concurrent_threads_lose_no_update(dynamodb: MotoServer, table: str) -> None:
    """16 calls read the same table version before any of them writes: one commits, 15
    conditional writes really fail, and each of those reads again and retries until it
    commits. No update is lost."""
    attempts: dict[int, int] = {}
    everyone_has_read = threading.Barrier(16, timeout=60)  # a hang guard, not a measure

    class Contended(DynamoDBStore):
        def update(self, table_name: str, decide: Any) -> Reconciled:
            index = threading.get_ident()

            def counted(stored: Any) -> Reconciled:
                attempts[index] = attempts.get(index, 0) + 1
                if attempts[index] == 1:  # nobody commits before all 16 have read
                    try:
                        everyone_has_read.wait()
                    except threading.BrokenBarrierError:
                        raise AssertionError("the 16 calls never all ran at once") from None
                return decide(stored)

            return super().update(table_name, counted)

    # One store, one client, shared by all threads (as in Lambda). 16 attempts are always
    # enough: an attempt fails only when another call commits, and each commits once.
    store = Contended(max_attempts=16)
    outputs: list[str] = []
    errors: list[BaseException] = []

    def call(index: int) -> None:
        try:
            outputs.append(
                compile_payload(concurrent_payload(index, table=table), store=store).text
            )
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=call, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(store.services(table)) == [f"svc{n:02d}" for n in range(16)]
    assert_serialised(outputs)
    # Exactly one call won the first round; each of the 15 others retried at least once.
    counts = sorted(attempts.values())
    assert len(counts) == 16 and counts[0] == 1 and counts[1] >= 2, counts


def test_concurrent_write_between_read_and_write_is_retried(
    dynamodb: MotoServer, table: str, seed_payload: dict[str, Any]
) -> None:
    """Another writer commits while this call is deciding: its conditional write fails, it
    reads again and decides again, and the result holds both calls' services."""
    store = DynamoDBStore()
    other = DynamoDBStore()
    compile_payload(concurrent_payload(0, count=2, table=table), store=store)
    calls = 0

    class Interfering(DynamoDBStore):
        def update(self, table_name: str, decide: Any) -> Reconciled:
            def decide_once_interrupted(stored: Any) -> Reconciled:
                nonlocal calls
                calls += 1
                if calls == 1:
                    compile_payload(concurrent_payload(1, count=2, table=table), store=other)
                return decide(stored)

            return super().update(table_name, decide_once_interrupted)

    result = compile_payload(concurrent_payload(0, count=2, table=table), store=Interfering())
    assert calls == 2
    assert [s.name for s in result.services] == ["svc00", "svc01"]
    assert sorted(store.services(table)) == ["svc00", "svc01"]


def test_conflicts_until_retries_run_out_change_nothing(dynamodb: MotoServer, table: str) -> None:
    other = DynamoDBStore()
    attempts = 0

    def always_interrupted(stored: Any) -> Reconciled:
        # Every attempt, someone else commits first: a real conditional-write failure.
        nonlocal attempts
        attempts += 1
        newcomer = {"serviceName": f"other{attempts}", "predicate": f"o{attempts}.example.com"}
        compile_payload({"table": table, "running": [], "candidates": [newcomer]}, store=other)
        service = Service(name="mine", mode="host", predicate="mine.example.com")
        return Reconciled((service,), (service,), ())

    store = DynamoDBStore(max_attempts=3, backoff=0.01)
    with pytest.raises(ConflictError, match=r"gave up after 3 attempts; nothing was changed"):
        store.update(table, always_interrupted)
    assert attempts == 3
    assert sorted(store.services(table)) == ["other3"]  # the other writer's state, not ours


# -- faults ----------------------------------------------------------------------------------


def test_endpoint_down_in_the_middle_of_a_call_changes_nothing(
    own_server: MotoServer, table: str, seed_payload: dict[str, Any]
) -> None:
    store = DynamoDBStore()
    payload = with_table(seed_payload, table)
    compile_payload(payload, store=store)
    before = store.services(table)

    class StopsTheServer(DynamoDBStore):
        def update(self, table_name: str, decide: Any) -> Reconciled:
            def decide_then_fail(stored: Any) -> Reconciled:
                result = decide(stored)
                own_server.stop()  # after the read, before the write
                return result

            return super().update(table_name, decide_then_fail)

    with pytest.raises(StoreError, match=r"cannot reach DynamoDB at .*; nothing was changed"):
        compile_payload(payload, store=StopsTheServer())
    with pytest.raises(StoreError, match="cannot reach DynamoDB"):
        compile_payload(payload, store=store)  # down before the call, too

    own_server.start()  # same port; moto keeps its data in this process
    assert store.services(table) == before
    assert servers(sorted(before.values(), key=lambda s: s.name)) == SEED_SERVERS


def test_failure_inside_decide_writes_nothing(
    dynamodb: MotoServer, table: str, seed_payload: dict[str, Any]
) -> None:
    store = DynamoDBStore()
    compile_payload(with_table(seed_payload, table), store=store)
    before = raw_client().scan(TableName=table)["Items"]

    def failing(stored: Any) -> Reconciled:
        raise InternalError("round trip failed (injected)")

    with pytest.raises(InternalError):
        store.update(table, failing)
    assert raw_client().scan(TableName=table)["Items"] == before


def test_missing_table_without_creation_is_a_clear_error(
    dynamodb: MotoServer, table: str, seed_payload: dict[str, Any]
) -> None:
    store = DynamoDBStore(create_tables=False)
    with pytest.raises(StoreError, match="does not exist and table creation is off"):
        compile_payload(with_table(seed_payload, table), store=store)
    assert table not in raw_client().list_tables()["TableNames"]
    assert store.services(table) == {}


def test_foreign_table_is_refused(dynamodb: MotoServer, table: str, seed_payload: Any) -> None:
    raw_client().create_table(
        TableName=table,
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    with pytest.raises(StoreError, match="not a registry table"):
        compile_payload(with_table(seed_payload, table), store=DynamoDBStore())


def test_more_changes_than_one_transaction_holds_is_refused(
    dynamodb: MotoServer, table: str
) -> None:
    payload = {
        "table": table,
        "running": [],
        "candidates": [
            {"serviceName": f"s{n}", "predicate": f"s{n}.example.com"} for n in range(100)
        ],
    }
    store = DynamoDBStore()
    with pytest.raises(StoreError, match=r"changes 100 services .* at most 99"):
        compile_payload(payload, store=store)
    assert store.services(table) == {}
    payload["candidates"] = payload["candidates"][:99]
    assert len(compile_payload(payload, store=store).services) == 99


def test_clear_deletes_in_chunks(dynamodb: MotoServer, table: str) -> None:
    store = DynamoDBStore()
    for start in (0, 99):
        payload = {
            "table": table,
            "running": [
                {"serviceName": f"s{n}", "id": f"c{n}", "ip": "10.0.0.1:80"} for n in range(start)
            ],
            "candidates": [
                {
                    "serviceName": f"s{n}",
                    "predicate": f"s{n}.example.com",
                    "containers": [{"id": f"c{n}", "ip": "10.0.0.1:80"}],
                }
                for n in range(start, start + 99)
            ],
        }
        compile_payload(payload, store=store)
    assert len(store.services(table)) == 198
    assert store.clear(table) == 198
    assert store.services(table) == {}


def test_unreadable_item_is_a_clear_error(
    dynamodb: MotoServer, table: str, seed_payload: dict[str, Any]
) -> None:
    store = DynamoDBStore()
    compile_payload(with_table(seed_payload, table), store=store)
    raw_client().put_item(TableName=table, Item={"serviceName": {"S": "junk"}})
    with pytest.raises(StoreError, match=r"item 'junk' .* is not a registry service"):
        store.services(table)


def test_client_is_created_once(dynamodb: MotoServer) -> None:
    from runtime.stores.dynamodb_client import dynamodb_client

    assert dynamodb_client() is dynamodb_client()
    assert DynamoDBStore().client is DynamoDBStore().client
