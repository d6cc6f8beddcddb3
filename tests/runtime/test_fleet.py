"""Fleet mode: payloads with a ``host`` are that host's report; the config is the union of the
live hosts' containers. Every behaviour runs on all three stores (DynamoDB on moto's server
over real HTTP), and is read from the emitted config, which haproxy -c accepts (2.6 and 2.8)."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from compiler.errors import Diagnostic
from compiler.options import RenderOptions
from runtime.pipeline import CompileResult, compile_payload, render_table
from runtime.stores import Store, TableModeError
from runtime.stores.memory import MemoryStore
from runtime.stores.sqlite import SQLiteStore
from tests.support.aws import MotoServer, aws_env
from tests.support.fleet import Accepts, Clock, container, servers

TTL = 90.0
LONG_TTL = 3600.0


def report(
    table: str,
    host: str,
    services: dict[str, tuple[str, list[dict[str, Any]]]],
    *,
    cookie: str | None = None,
) -> dict[str, Any]:
    """A host's payload as Cosmonaut sends it: every container in running and candidates."""
    candidates = []
    for name, (predicate, containers) in services.items():
        candidate: dict[str, Any] = {
            "serviceName": name,
            "predicate": predicate,
            "containers": containers,
        }
        if cookie:
            candidate["cookie"] = cookie
        candidates.append(candidate)
    return {
        "table": table,
        "host": host,
        "running": [
            {"serviceName": name, "id": c["id"], "ip": c["ip"]}
            for name, (_, containers) in services.items()
            for c in containers
        ],
        "candidates": candidates,
    }


def compile_as(store: Store, clock: Clock) -> Callable[[dict[str, Any]], CompileResult]:
    def run(payload: dict[str, Any]) -> CompileResult:
        return compile_payload(payload, store=store, clock=clock, host_ttl=TTL)

    return run


def test_hosts_share_a_service_and_one_host_leaving_keeps_the_others(
    store: Store, table: str, assert_haproxy_accepts: Callable[[str], None]
) -> None:
    clock = Clock()
    run = compile_as(store, clock)
    run(report(table, "host-a", {"web": ("web.example.com", [container("a1", "10.0.1.1:80")])}))
    result = run(
        report(table, "host-b", {"web": ("web.example.com", [container("b1", "10.0.2.1:80")])})
    )
    assert servers(result.text) == {"web": ["a1 10.0.1.1:80", "b1 10.0.2.1:80"]}
    assert_haproxy_accepts(result.files)

    emptied = run(report(table, "host-a", {}))
    assert servers(emptied.text) == {"web": ["b1 10.0.2.1:80"]}
    assert "hdr(host)" in emptied.text and "use_backend web" in emptied.text


def test_a_report_never_changes_another_hosts_containers(store: Store, table: str) -> None:
    clock = Clock()
    run = compile_as(store, clock)
    run(report(table, "host-a", {"api": ("api.example.com", [container("a1", "10.0.1.1:80")])}))
    run(report(table, "host-b", {"web": ("web.example.com", [container("b1", "10.0.2.1:80")])}))
    for step in range(3):
        clock.now += 10
        ip = f"10.0.2.{step + 2}:80"
        result = run(
            report(table, "host-b", {"web": ("web.example.com", [container(f"b{step}", ip)])})
        )
        assert servers(result.text)["api"] == ["a1 10.0.1.1:80"]
    assert sorted(store.hosts(table)) == ["host-a", "host-b"]
    assert store.hosts(table)["host-a"].seq == 1
    assert store.hosts(table)["host-b"].seq == 4


def test_a_silent_host_expires_after_the_ttl(
    store: Store, table: str, assert_haproxy_accepts: Accepts
) -> None:
    clock = Clock()
    run = compile_as(store, clock)
    run(report(table, "host-a", {"api": ("api.example.com", [container("a1", "10.0.1.1:80")])}))
    run(report(table, "host-b", {"web": ("web.example.com", [container("b1", "10.0.2.1:80")])}))

    clock.now += TTL  # exactly the lease: still alive
    rendered = render_table(store, table, clock=clock, host_ttl=TTL)
    assert rendered is not None and set(servers(rendered.text)) == {"api", "web"}
    assert_haproxy_accepts(rendered.files)

    clock.now += 1  # host-a is now silent for longer than the lease; host-b reports again
    result = run(
        report(table, "host-b", {"web": ("web.example.com", [container("b1", "10.0.2.1:80")])})
    )
    assert set(servers(result.text)) == {"web"}
    assert sorted(store.hosts(table)) == ["host-b"]  # the expired record is removed
    assert_haproxy_accepts(result.files)


def test_reading_a_table_applies_leases_and_writes_nothing(
    store: Store, table: str, assert_haproxy_accepts: Accepts
) -> None:
    clock = Clock()
    run = compile_as(store, clock)
    run(report(table, "host-a", {"api": ("api.example.com", [container("a1", "10.0.1.1:80")])}))
    first = render_table(store, table, clock=clock, host_ttl=TTL)
    assert first is not None and first.hosts == 1
    assert first.etag == render_table(store, table, clock=clock, host_ttl=TTL).etag  # type: ignore[union-attr]
    clock.now += TTL + 1
    gone = render_table(store, table, clock=clock, host_ttl=TTL)
    assert gone is not None and servers(gone.text) == {} and gone.hosts == 0
    assert_haproxy_accepts(gone.files)  # no live host: a config without a backend
    assert gone.etag != first.etag
    assert sorted(store.hosts(table)) == ["host-a"]  # a read never removes anything
    assert render_table(store, f"{table}-unknown", clock=clock) is None


def test_host_and_host_less_payloads_never_share_a_table(store: Store, table: str) -> None:
    clock = Clock()
    run = compile_as(store, clock)
    run(report(table, "host-a", {"api": ("api.example.com", [container("a1", "10.0.1.1:80")])}))
    seedish = {
        "table": table,
        "running": [{"serviceName": "x", "id": "x1", "ip": "10.0.9.1:80"}],
        "candidates": [
            {
                "serviceName": "x",
                "predicate": "x.example.com",
                "containers": [container("x1", "10.0.9.1:80")],
            }
        ],
    }
    with pytest.raises(TableModeError, match=r"holds host reports.*nothing was changed"):
        run(seedish)
    assert sorted(store.hosts(table)) == ["host-a"] and store.services(table) == {}

    other = f"{table}-seed"
    run({**seedish, "table": other})
    with pytest.raises(TableModeError, match=r"host-less payloads.*nothing was changed"):
        run(report(other, "host-a", {}))
    assert store.hosts(other) == {} and sorted(store.services(other)) == ["x"]


def test_different_settings_across_hosts_give_one_stable_route(
    store: Store, table: str, assert_haproxy_accepts: Accepts
) -> None:
    """A rolling deployment changes the predicate: the newest containers win, however the
    hosts take turns, and the older containers are reported."""
    clock = Clock()
    run = compile_as(store, clock)
    old = report(
        table,
        "host-a",
        {"web": ("old.example.com", [container("a1", "10.0.1.1:80", "2026-11-30T10:00:00Z")])},
    )
    new = report(
        table,
        "host-b",
        {"web": ("new.example.com", [container("b1", "10.0.2.1:80", "2026-12-01T10:00:00Z")])},
    )
    texts = []
    diagnostics: list[Diagnostic] = []
    for payload in (old, new, old, new, old):
        clock.now += 5
        result = run(payload)
        texts.append(result.text)
        diagnostics.extend(result.diagnostics)
    assert len(set(texts[1:])) == 1  # from the moment both reported: one route, no flapping
    assert "new.example.com" in texts[-1] and "old.example.com" not in texts[-1]
    assert servers(texts[-1]) == {"web": ["b1 10.0.2.1:80"]}
    assert_haproxy_accepts(result.files)  # the last one
    assert any("newest deployment (host 'host-b')" in d.message for d in diagnostics)


def test_a_created_time_in_the_future_wins_once_and_never_again(store: Store, table: str) -> None:
    """``created`` counts on the registry's clock: a forged year 9999 is a deployment of the
    moment it was first reported, and a later real deployment wins over it."""
    clock = Clock()  # 2027-01-15
    run = compile_as(store, clock)
    legit = report(
        table,
        "host-a",
        {"web": ("web.example.com", [container("a1", "10.0.1.1:80", "2026-11-30T10:00:00Z")])},
    )
    forged = report(
        table,
        "host-b",
        {"web": ("evil.example.com", [container("b1", "10.0.2.1:80", "9999-12-31T23:59:59Z")])},
    )
    run(legit)
    clock.now += 5
    assert servers(run(forged).text) == {"web": ["b1 10.0.2.1:80"]}  # the newest, for now
    clock.now += 60
    run(forged)  # reported again: still the moment it was first seen
    redeployed = report(
        table,
        "host-a",
        {"web": ("web.example.com", [container("a2", "10.0.1.2:80", "2027-01-15T08:01:00Z")])},
    )
    clock.now += 5
    result = run(redeployed)
    assert servers(result.text) == {"web": ["a2 10.0.1.2:80"]}
    assert "web.example.com" in result.text and "evil.example.com" not in result.text


def test_a_created_time_in_the_first_millennium_leaves_the_fleet_readable(
    store: Store, table: str
) -> None:
    """A host that backdates its containers to the year 1 (to look deployed first) is
    stored as it is read back: the next report, any host's, still compiles. A time the
    conversion to UTC takes out of the calendar is refused with its path, not a 500."""
    clock = Clock()
    run = compile_as(store, clock)
    run(report(table, "host-a", {"api": ("api.example.com", [container("a1", "10.0.1.1:80")])}))
    backdated = report(
        table,
        "host-b",
        {"old": ("old.example.com", [container("b1", "10.0.2.1:80", "0001-01-01T00:00:00Z")])},
    )
    clock.now += 5
    assert servers(run(backdated).text)["old"] == ["b1 10.0.2.1:80"]
    clock.now += 5
    again = run(
        report(table, "host-a", {"api": ("api.example.com", [container("a1", "10.0.1.1:80")])})
    )
    assert servers(again.text) == {"api": ["a1 10.0.1.1:80"], "old": ["b1 10.0.2.1:80"]}

    for index, created in enumerate(("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00")):
        edge = report(
            table,
            "host-c",
            {f"edge{index}": ("edge.example.com", [container("c1", "10.0.3.1:80", created)])},
        )
        clock.now += 5
        result = run(edge)
        assert f"edge{index}" not in servers(result.text)
        paths = [d.path for d in result.diagnostics]
        assert "$.candidates[0].containers[0].created" in paths, result.diagnostics


LOCAL_ADDRESSES = {
    "127.0.0.1:2375": "loopback",  # another host's Docker API, on each host
    "169.254.169.254:80": "link-local",  # the cloud's metadata service
    "[::1]:80": "loopback",
    "[::ffff:127.0.0.1]:80": "loopback",
    "[fe80::1]:80": "link-local",
    "0.0.0.0:80": "unspecified",
    "224.0.0.1:80": "multicast",
    "255.255.255.255:80": "broadcast",
}


def test_a_host_cannot_route_the_fleet_to_addresses_local_to_each_host(
    store: Store, table: str
) -> None:
    clock = Clock()
    boxes = [container(f"x{i}", ip) for i, ip in enumerate(LOCAL_ADDRESSES)]
    hostile = report(
        table, "host-a", {"web": ("web.example.com", [container("ok", "10.0.1.1:80"), *boxes])}
    )
    result = compile_payload(hostile, store=store, clock=clock, host_ttl=TTL)
    assert servers(result.text) == {"web": ["ok 10.0.1.1:80"]}
    said = {d.path: d.message for d in result.diagnostics}
    for position, (ip, kind) in enumerate(LOCAL_ADDRESSES.items(), start=1):
        message = said[f"$.candidates[0].containers[{position}].ip"]
        assert f":{ip.rpartition(':')[2]} is a {kind} address: " in message, message
    # Not stored either: another host's config never routes to them.
    other = report(table, "host-b", {"api": ("api.example.com", [container("b", "10.0.2.1:80")])})
    text = compile_payload(other, store=store, clock=clock, host_ttl=TTL).text
    assert servers(text) == {"api": ["b 10.0.2.1:80"], "web": ["ok 10.0.1.1:80"]}


def test_the_operator_allows_local_addresses_by_network(table: str) -> None:
    options = RenderOptions.model_validate({"fleet_allow": ["127.0.0.0/8"]})
    payload = report(
        table,
        "host-a",
        {
            "web": (
                "web.example.com",
                [container("lo", "127.0.0.1:8080"), container("md", "169.254.169.254:80")],
            )
        },
    )
    result = compile_payload(payload, options=options, host_ttl=TTL)
    assert servers(result.text) == {"web": ["lo 127.0.0.1:8080"]}
    assert [d.path for d in result.diagnostics] == ["$.candidates[0].containers[1].ip"]


def test_host_less_payloads_keep_loopback_addresses(table: str) -> None:
    """One host, one HAProxy: a loopback address means the same host it is routed from."""
    payload = report(table, "x", {"web": ("web.example.com", [container("lo", "127.0.0.1:80")])})
    del payload["host"]
    assert servers(compile_payload(payload).text) == {"web": ["lo 127.0.0.1:80"]}


def test_route_conflicts_between_services_go_to_the_first_deployed(
    store: Store, table: str, assert_haproxy_accepts: Accepts
) -> None:
    clock = Clock()
    run = compile_as(store, clock)
    first = {
        "api": ("shared.example.com", [container("a1", "10.0.1.1:80", "2026-01-01T00:00:00Z")])
    }
    run(report(table, "host-a", first))
    later = {
        "web": ("shared.example.com", [container("b1", "10.0.2.1:80", "2026-06-01T00:00:00Z")])
    }
    result = run(report(table, "host-b", later))
    assert servers(result.text) == {"api": ["a1 10.0.1.1:80"]}
    assert_haproxy_accepts(result.files)
    (diagnostic,) = result.diagnostics
    assert diagnostic.path == "$.candidates[0].predicate"
    assert "service 'api' already routes it" in diagnostic.message


def test_a_candidate_without_containers_deploys_nothing(
    store: Store, table: str, assert_haproxy_accepts: Accepts
) -> None:
    """Found by tests/runtime/test_fleet_model.py: a host that runs no container of a service (an
    empty candidate) kept an empty backend alive, decided the service's route over the hosts
    that run it (on a tie, by the settings' text), and knocked a service that shares its
    route out of the config."""
    clock = Clock()
    run = compile_as(store, clock)
    run(report(table, "host-a", {"web": ("z.example.com", []), "api": ("a.example.com", [])}))
    result = run(
        report(table, "host-b", {"web": ("a.example.com", [container("b1", "10.0.2.1:80")])})
    )
    assert servers(result.text) == {"web": ["b1 10.0.2.1:80"]}
    assert "a.example.com" in result.text and "z.example.com" not in result.text
    assert result.diagnostics == ()
    assert_haproxy_accepts(result.files)
    assert run(report(table, "host-b", {})).services == ()  # no live host runs anything


def test_rendering_reads_each_hosts_running_list_once() -> None:
    """benchmarks/registry_bench.py found reads of 100 hosts x 50 services taking ~5 s:
    rendering went through every host's running list once per service (quadratic). Counted,
    not timed: each list is now read once, however many services there are."""
    from compiler.models import Payload
    from runtime.fleet import new_report, render

    reads: dict[str, int] = {}

    class Counted(tuple):  # type: ignore[type-arg]
        host = ""

        def __iter__(self) -> Iterator[Any]:
            reads[self.host] = reads.get(self.host, 0) + 1
            return super().__iter__()

    reports = {}
    for number in range(3):
        host = f"host-{number}"
        services = {
            f"h{number}s{s}": (
                f"h{number}s{s}.example.com",
                [container(f"{host}-{s}", "10.0.0.1:80")],
            )
            for s in range(20)
        }
        payload = report("t-count", host, services)
        payload["running"].append({"serviceName": "h0s0", "id": f"{host}-x", "ip": "10.0.9.9:80"})
        plain = new_report(Payload.model_validate(payload), None, 1.0)
        running = Counted(plain.running)
        running.host = host
        reports[host] = plain.model_copy(update={"running": running})
    services = render(reports).render
    assert len(services) == 60
    assert {c.id for c in services[0].containers} == {
        "host-0-0",
        "host-0-x",
        "host-1-x",
        "host-2-x",
    }
    assert reads == {"host-0": 1, "host-1": 1, "host-2": 1}


def test_forget_host_removes_it_at_once(store: Store, table: str) -> None:
    assert store.forget_host(table, "host-a") is False  # a table nothing was written to yet
    clock = Clock()
    run = compile_as(store, clock)
    run(report(table, "host-a", {"api": ("api.example.com", [container("a1", "10.0.1.1:80")])}))
    assert store.forget_host(table, "host-a") is True
    assert store.forget_host(table, "host-a") is False
    assert render_table(store, table, clock=clock) is None


def test_a_host_with_2000_containers_fits(
    store: Store, table: str, assert_haproxy_accepts: Accepts
) -> None:
    """DynamoDB items hold 400 KB; the report is compressed (and split if needed)."""
    clock = Clock()
    services = {
        f"svc{s}": (
            f"svc{s}.example.com",
            [
                container(
                    f"c{s}x{i}", f"10.{s}.{i // 250}.{i % 250 + 1}:8080", "2026-12-01T10:00:00Z"
                )
                for i in range(20)
            ],
        )
        for s in range(100)
    }
    result = compile_payload(report(table, "big", services), store=store, clock=clock)
    assert sum(len(v) for v in servers(result.text).values()) == 2000
    assert store.hosts(table)["big"].container_count == 2000
    assert_haproxy_accepts(result.files)


def _host_payload(table: str, host_number: int) -> dict[str, Any]:
    """One simulated host's report: 20 services of one container each."""
    host = f"host{host_number:03d}"
    services = {
        f"h{host_number}s{s}": (
            f"h{host_number}s{s}.example.com",
            [container(f"{host}-{s}", f"10.{host_number}.{s}.1:80")],
        )
        for s in range(20)
    }
    return report(table, host, services)


def _report_at_once(table: str, host_number: int, barrier: threading.Barrier) -> tuple[int, int]:
    """One simulated host's report to DynamoDB, once every host is ready: (attempts, servers)."""
    from runtime.stores.dynamodb import DynamoDBStore

    payload, store = _host_payload(table, host_number), DynamoDBStore()
    barrier.wait(timeout=120)
    # A long lease: this test is about concurrency, not expiry (it takes a while on 2 cores).
    result = compile_payload(payload, store=store, host_ttl=LONG_TTL)
    return result.attempts, sum(len(v) for v in servers(result.text).values())


def _final_config(store: Store, table: str) -> Mapping[str, str]:
    """The table's bundle: the config first, then its map files."""
    rendered = render_table(store, table, host_ttl=LONG_TTL)
    assert rendered is not None
    return rendered.files


HOSTS = 100
PROCESSES = 10  # the 100 hosts' reports: 10 processes of 10 threads each


# The 100 writers take SQLite's write lock one after another, each rendering up to 2 000
# servers while holding it: the last waits for all the others, about 25 s on a quiet 2-core
# machine and longer under load, which the default 30 s wait does not always cover. This
# test is about what each writer sees, not how long the queue takes.
QUEUE_WAIT = 600.0


def _hosts_of_a_process(
    path: str, table: str, numbers: list[int], barrier: Any, results: Any
) -> None:
    """A thread per host; each waits at ``barrier`` (every host of every process) with its
    payload built, then reports: the 100 reports reach the store at once."""

    def one(number: int) -> None:
        try:
            payload = _host_payload(table, number)
            store = SQLiteStore(path, timeout=QUEUE_WAIT)
            barrier.wait(timeout=120)
            result = compile_payload(payload, store=store, host_ttl=LONG_TTL)
            total = sum(len(v) for v in servers(result.text).values())
            results.put((number, result.attempts, total, None))
        except BaseException as error:
            results.put((number, 0, 0, f"{type(error).__name__}: {error}"))

    threads = [threading.Thread(target=one, args=(number,)) for number in numbers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def count(files: Mapping[str, str]) -> int:
    return sum(len(v) for v in servers(next(iter(files.values()))).values())


def test_100_hosts_report_at_once_on_sqlite_processes(
    tmp_path: Path, table: str, assert_haproxy_accepts: Accepts
) -> None:
    """100 writers released together (10 processes of 10 threads) queue on SQLite's write
    lock. Each report's answer holds the servers of every report committed before it and its
    own, so the answers' sizes are exactly 20, 40, ..., 2000: no report saw another's state
    half-written or lost it, in whatever order the lock went round."""
    path = str(tmp_path / "state.db")
    SQLiteStore(path).update_hosts(table, lambda reports: _Nothing())  # create the schema
    context = multiprocessing.get_context("fork")  # the test's imports, without importing again
    barrier, results = context.Barrier(HOSTS), context.Queue()
    processes = [
        context.Process(
            target=_hosts_of_a_process,
            args=(path, table, list(range(p, HOSTS, PROCESSES)), barrier, results),
        )
        for p in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    try:
        outcomes = [results.get(timeout=600) for _ in range(HOSTS)]
    finally:
        for process in processes:
            process.join(timeout=60)
            if process.is_alive():
                process.kill()
    assert [o[3] for o in outcomes if o[3] is not None] == []
    assert sorted(o[0] for o in outcomes) == list(range(HOSTS))
    assert all(attempts == 1 for _, attempts, _, _ in outcomes)
    assert sorted(total for _, _, total, _ in outcomes) == [20 * k for k in range(1, HOSTS + 1)]
    final = _final_config(SQLiteStore(path), table)
    assert count(final) == HOSTS * 20
    assert_haproxy_accepts(final)


def test_100_hosts_report_at_once_on_dynamodb_threads(
    moto_server: MotoServer,
    monkeypatch: pytest.MonkeyPatch,
    table: str,
    assert_haproxy_accepts: Accepts,
) -> None:
    aws_env(monkeypatch, moto_server.endpoint)
    from runtime.stores.dynamodb import DynamoDBStore

    DynamoDBStore().hosts(table)  # nothing yet
    barrier = threading.Barrier(HOSTS)
    with concurrent.futures.ThreadPoolExecutor(max_workers=HOSTS) as pool:
        futures = [pool.submit(_report_at_once, table, n, barrier) for n in range(HOSTS)]
        outcomes = [future.result() for future in futures]
    retries = sum(attempts - 1 for attempts, _ in outcomes)
    assert retries == 0, f"{retries} retries: hosts must never conflict with each other"
    final = _final_config(DynamoDBStore(), table)
    assert count(final) == 100 * 20
    assert_haproxy_accepts(final)


class _Nothing:
    report = None
    delete: tuple[str, ...] = ()


def test_created_must_be_an_rfc3339_time(table: str) -> None:
    payload = report(
        table, "h1", {"web": ("web.example.com", [container("a1", "10.0.0.1:80", "yesterday")])}
    )
    result = compile_payload(payload)
    (diagnostic,) = result.diagnostics
    assert diagnostic.path == "$.candidates[0].containers[0].created"
    assert re.search(r"'yesterday' is not an RFC 3339 time", diagnostic.message)


@pytest.fixture(autouse=True)
def _no_stray_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("LAMBDA_REGISTRY_HOST_TTL", raising=False)
    yield


# -- reading over HTTP, and the operator's commands -----------------------------------------


def _get(app: Any, table: str, **headers: str) -> dict[str, Any]:
    event = {
        "version": "2.0",
        "rawPath": "/",
        "rawQueryString": f"table={table}",
        "headers": headers,
        "requestContext": {"http": {"method": "GET", "path": "/"}, "requestId": "r-get"},
    }
    response: dict[str, Any] = app.handle(event)
    return response


def test_get_answers_the_config_with_an_etag_and_304_when_unchanged(table: str) -> None:
    from runtime.config import HandlerConfig
    from runtime.handler import RegistryApp
    from runtime.stores.select import StoreSpec

    clock = Clock()
    store = MemoryStore()
    app = RegistryApp(HandlerConfig(store=StoreSpec("memory")), store=store, clock=clock)
    compile_payload(
        report(table, "host-a", {"web": ("web.example.com", [container("a1", "10.0.1.1:80")])}),
        store=store,
        clock=clock,
    )
    first = _get(app, table)
    assert first["statusCode"] == 200
    assert servers(first["body"]) == {"web": ["a1 10.0.1.1:80"]}
    etag = first["headers"]["ETag"]
    again = _get(app, table, **{"if-none-match": etag})
    assert again["statusCode"] == 304 and again["body"] == ""
    assert store.hosts(table)["host-a"].seq == 1  # nothing was written

    clock.now += TTL + 1  # the only host expires: the config changes, so does the tag
    expired = _get(app, table, **{"if-none-match": etag})
    assert expired["statusCode"] == 200 and expired["headers"]["ETag"] != etag
    assert servers(expired["body"]) == {}

    unknown = _get(app, f"{table}-nope")
    assert unknown["statusCode"] == 404
    assert "unknown-table" in unknown["body"]
    assert _get(app, "x")["statusCode"] == 400


def test_a_payload_for_the_wrong_kind_of_table_is_a_400_problem(table: str) -> None:
    import json

    from runtime.config import HandlerConfig
    from runtime.handler import RegistryApp
    from runtime.stores.select import StoreSpec

    store = MemoryStore()
    app = RegistryApp(HandlerConfig(store=StoreSpec("memory")), store=store)
    compile_payload(report(table, "host-a", {}), store=store)
    event = {
        "version": "2.0",
        "headers": {},
        "requestContext": {"http": {"method": "POST", "path": "/"}, "requestId": "r-post"},
        "body": json.dumps({"table": table, "running": []}),
    }
    response = app.handle(event)
    assert response["statusCode"] == 400
    assert json.loads(response["body"])["type"].endswith(":table-mode")


def test_state_show_lists_hosts_and_forget_host_removes_one(tmp_path: Path, table: str) -> None:
    import json

    from tests.support.paths import run_cli

    spec = f"sqlite:{tmp_path / 'state.db'}"
    store = SQLiteStore(tmp_path / "state.db")
    for host, ip in (("host-a", "10.0.1.1:80"), ("host-b", "10.0.2.1:80")):
        compile_payload(
            report(table, host, {"web": ("web.example.com", [container(host, ip)])}), store=store
        )
    shown = run_cli("state", "show", table, "--store", spec, "--format", "json")
    assert shown.returncode == 0, shown.stderr
    document = json.loads(shown.stdout)
    assert [(h["host"], h["containers"], h["expired"]) for h in document["hosts"]] == [
        ("host-a", 1, False),
        ("host-b", 1, False),
    ]
    assert "host-a: 1 container(s)" in run_cli("state", "show", table, "--store", spec).stdout

    refused = run_cli("state", "forget-host", table, "host-a", "--store", spec)
    assert refused.returncode == 2 and "without --yes" in refused.stderr
    done = run_cli("state", "forget-host", table, "host-a", "--yes", "--store", spec)
    assert done.returncode == 0, done.stderr
    assert sorted(store.hosts(table)) == ["host-b"]
    missing = run_cli("state", "forget-host", table, "host-a", "--yes", "--store", spec)
    assert missing.returncode == 2 and "no host 'host-a'" in missing.stderr


# -- the lease from LAMBDA_REGISTRY_HOST_TTL, at every entry point --------------------------------

# Two hosts reported before the test: "early" 120 s ago (older than the default lease of 90 s,
# younger than an hour), "late" 30 s ago (younger than the default, older than 10 s). The
# margins (30 s and more) are far above what a slow run adds to their ages.
EARLY_AGE, LATE_AGE = 120.0, 30.0
LEASES = [
    pytest.param(None, {"late"}, id="default-90s"),
    pytest.param("3600", {"early", "late"}, id="an-hour"),
    pytest.param("10", set(), id="10s"),
]


@pytest.fixture
def aged(tmp_path: Path, table: str) -> str:
    """A SQLite store (its spec) holding the two aged hosts' reports."""
    import time

    store = SQLiteStore(tmp_path / "state.db")
    now = time.time()
    for host, age, ip in (("early", EARLY_AGE, "10.0.1.1:80"), ("late", LATE_AGE, "10.0.2.1:80")):
        payload = report(table, host, {host: (f"{host}.example.com", [container(host, ip)])})
        compile_payload(payload, store=store, clock=lambda age=age: now - age, host_ttl=LONG_TTL)
    return f"sqlite:{tmp_path / 'state.db'}"


def lease_env(store: str, ttl: str | None) -> dict[str, str]:
    env = {**os.environ, "LAMBDA_REGISTRY_STORE": store}
    env.pop("LAMBDA_REGISTRY_HOST_TTL", None)
    if ttl is not None:
        env["LAMBDA_REGISTRY_HOST_TTL"] = ttl
    return env


def routed(config: str) -> set[str]:
    return {backend for backend, members in servers(config).items() if members}


@pytest.mark.parametrize(("ttl", "live"), LEASES)
def test_compile_keeps_the_hosts_the_environments_lease_keeps(
    aged: str, table: str, ttl: str | None, live: set[str]
) -> None:
    import json
    import subprocess
    import sys

    payload = report(table, "now", {"now": ("now.example.com", [container("now", "10.0.3.1:80")])})
    done = subprocess.run(
        [sys.executable, "-m", "runtime.cli", "compile", "-"],
        input=json.dumps(payload),
        env=lease_env(aged, ttl),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert routed(done.stdout) == live | {"now"}


@pytest.mark.parametrize(("ttl", "live"), LEASES)
def test_the_handler_keeps_the_hosts_the_environments_lease_keeps(
    aged: str, table: str, ttl: str | None, live: set[str]
) -> None:
    from runtime.config import HandlerConfig
    from runtime.handler import RegistryApp

    # The configuration a Lambda reads from its environment, given here as a mapping.
    app = RegistryApp(HandlerConfig.from_env(lease_env(aged, ttl)))
    answer = _get(app, table)
    assert answer["statusCode"] == 200
    assert routed(answer["body"]) == live


@pytest.mark.parametrize(("ttl", "live"), LEASES)
def test_serve_keeps_the_hosts_the_environments_lease_keeps(
    aged: str, table: str, ttl: str | None, live: set[str]
) -> None:
    import json
    import signal
    import subprocess
    import sys
    import urllib.request

    serve = subprocess.Popen(
        [sys.executable, "-m", "runtime.cli", "serve", "--listen", "127.0.0.1:0"],
        env=lease_env(aged, ttl),
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert serve.stderr is not None
        url = json.loads(serve.stderr.readline())["url"]
        with urllib.request.urlopen(f"{url}?table={table}", timeout=30) as answer:
            config = answer.read().decode()
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.communicate(timeout=30)
    assert routed(config) == live


@pytest.mark.parametrize(("ttl", "live"), LEASES)
def test_state_show_expires_the_hosts_the_environments_lease_expires(
    aged: str, table: str, ttl: str | None, live: set[str]
) -> None:
    import json
    import subprocess
    import sys

    shown = subprocess.run(
        [sys.executable, "-m", "runtime.cli", "state", "show", table, "--format", "json"],
        env=lease_env(aged, ttl),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    hosts = json.loads(shown.stdout)["hosts"]
    assert {h["host"] for h in hosts if not h["expired"]} == live


def test_a_container_listed_twice_with_two_times_keeps_one_route(store: Store, table: str) -> None:
    """A report listing one container under two deployments, with two ``created`` times:
    the container counts at the earliest, so the same report again renders the same config
    (the later time, clamped to the earlier one only at the second report, made it flap)."""
    clock = Clock()
    run = compile_as(store, clock)
    payload = report(table, "host-a", {})
    payload["candidates"] = [
        {
            "serviceName": "web",
            "predicate": "web.example.com",
            "containers": [container("a1", "10.0.1.1:80", "2026-03-01T12:00:00Z")],
        },
        {
            "serviceName": "web",
            "predicate": "web.example.com",
            "cookie": "SID",
            "containers": [
                container("a1", "10.0.1.1:80", "2026-01-01T00:00:00Z"),
                container("a2", "10.0.1.2:80"),
            ],
        },
    ]
    texts = []
    for _ in range(3):
        clock.now += 5
        texts.append(run(payload).text)
    assert texts[1:] == texts[:-1]
