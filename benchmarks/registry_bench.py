"""Registry call latency in fleet mode: 100 hosts x 50 services, on DynamoDB and on SQLite.

The table is first filled with one report per host (each host its own 50 services, one
container each, so the config has 5 000 backends). Then, per store, it measures:

* ``report``: one host's report (``compile_payload`` with ``host``: read the live reports,
  merge, lower, print, round trip, write that host's item), cycling through the hosts;
* ``read``: ``render_table`` (read the live reports, merge, lower, print, round trip; nothing
  written);
* ``hosts``: the store's read of every host report alone, to tell store time from compile
  time.

DynamoDB is moto's server on a loopback port (port 0), reached over real HTTP through
``AWS_ENDPOINT_URL_DYNAMODB``, as in ``tests/runtime/test_dynamodb.py``; the server handles one
request at a time, as that test's server does. Every call is checked: a call that fails, or a
config that lacks any of the 5 000 services, ends the run with exit code 1. Run:

    python benchmarks/registry_bench.py [--hosts 100] [--services 50] [--repeat 20]
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from compiler.models import Payload  # noqa: E402
from runtime.fleet import FleetResult, new_report  # noqa: E402
from runtime.pipeline import compile_payload, render_table  # noqa: E402
from runtime.stores import Store  # noqa: E402
from runtime.stores.sqlite import SQLiteStore  # noqa: E402

TABLE = "registry-bench"
TTL = 24 * 3600.0  # this is about latency, not expiry


class Failure(Exception):
    """The benchmark cannot go on: a call failed or a config is wrong."""


def start_moto() -> tuple[str, Callable[[], None]]:
    """moto's DynamoDB on 127.0.0.1 (a free port): its endpoint, and how to stop it."""
    from moto.moto_server.werkzeug_app import (  # type: ignore[import-untyped]
        DomainDispatcherApplication,
        create_backend_app,
    )
    from werkzeug.serving import WSGIRequestHandler, make_server

    app = DomainDispatcherApplication(create_backend_app)
    lock = threading.Lock()

    def serialised(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        with lock:  # moto's backend does not lock; DynamoDB applies each request atomically
            return [b"".join(app(environ, start_response))]

    class Quiet(WSGIRequestHandler):
        def log_request(self, *args: Any, **kwargs: Any) -> None:
            pass

    server = make_server("127.0.0.1", 0, serialised, threaded=True, request_handler=Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)

    return f"http://127.0.0.1:{server.server_port}", stop


def point_boto3_at(endpoint: str) -> None:
    os.environ.update(
        AWS_ENDPOINT_URL_DYNAMODB=endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_REGION="us-east-1",
    )
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        os.environ.pop(name, None)


def service_name(host: int, service: int) -> str:
    return f"h{host:03d}s{service:02d}"


def host_payload(host: int, services: int) -> dict[str, Any]:
    """What host ``host``'s Cosmonaut sends: its services, one container each."""
    candidates = []
    running = []
    for s in range(services):
        name = service_name(host, s)
        cid = f"{name}c0"
        ip = f"10.{host // 250}.{host % 250}.{s + 1}:8080"
        path_mode = s % 2 == 1
        candidates.append(
            {
                "serviceName": name,
                "configMode": "path" if path_mode else "host",
                "predicate": f"{name}/api" if path_mode else f"{name}.example.com",
                "containers": [{"id": cid, "ip": ip, "created": "2026-12-01T10:00:00Z"}],
            }
        )
        running.append({"serviceName": name, "id": cid, "ip": ip})
    return {"table": TABLE, "host": f"host{host:03d}", "running": running, "candidates": candidates}


def fill(store: Store, hosts: int, services: int) -> None:
    """One report per host, written straight through the store (rendering 100 growing
    configs on the way would only slow the set-up down)."""
    for host in range(hosts):
        model = Payload.model_validate(host_payload(host, services))
        now = time.time()

        def decide(reports: Any, model: Payload = model, now: float = now) -> FleetResult:
            return FleetResult((), new_report(model, reports.get(model.host), now))

        store.update_hosts(TABLE, decide)


def check(text: str, expected: set[str], what: str) -> None:
    backends = {line.split()[1] for line in text.splitlines() if line.startswith("backend ")}
    missing = expected - backends
    if missing:
        raise Failure(f"{what}: the config lacks {len(missing)} service(s), e.g. {min(missing)}")


def timed(call: Callable[[], Any], what: str) -> tuple[float, Any]:
    start = time.perf_counter()
    try:
        result = call()
    except Exception as error:  # any failure ends the benchmark, loudly
        raise Failure(f"{what} failed: {type(error).__name__}: {error}") from error
    return time.perf_counter() - start, result


def run(store: Store, hosts: int, services: int, repeat: int) -> dict[str, list[float]]:
    expected = {service_name(h, s) for h in range(hosts) for s in range(services)}
    start = time.perf_counter()
    fill(store, hosts, services)
    fill_s = time.perf_counter() - start
    found = store.hosts(TABLE)
    if len(found) != hosts:
        raise Failure(f"{store.label}: {len(found)} host reports stored, {hosts} expected")
    print(f"  {store.label}: filled with {hosts} host reports in {fill_s:.1f} s", flush=True)

    samples: dict[str, list[float]] = {"report": [], "read": [], "hosts": []}
    retries = 0
    for i in range(repeat):
        payload = host_payload(i * 37 % hosts, services)
        seconds, result = timed(
            functools.partial(compile_payload, payload, store=store, host_ttl=TTL),
            f"{store.label}: report of {payload['host']}",
        )
        if result.diagnostics:
            raise Failure(f"{store.label}: report: {result.diagnostics[0]}")
        check(result.text, expected, f"{store.label}: report of {payload['host']}")
        retries += result.attempts - 1
        samples["report"].append(seconds)

        seconds, rendered = timed(
            lambda: render_table(store, TABLE, host_ttl=TTL), f"{store.label}: read"
        )
        if rendered is None or rendered.hosts != hosts:
            raise Failure(f"{store.label}: read: {rendered and rendered.hosts} live hosts")
        check(rendered.text, expected, f"{store.label}: read")
        samples["read"].append(seconds)

        seconds, _ = timed(lambda: store.hosts(TABLE), f"{store.label}: hosts")
        samples["hosts"].append(seconds)
    if retries:
        raise Failure(f"{store.label}: {retries} retried write(s) with a single writer")
    return samples


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--services", type=int, default=50, help="per host")
    parser.add_argument("--repeat", type=int, default=20, help="calls measured per operation")
    args = parser.parse_args()

    endpoint, stop = start_moto()
    point_boto3_at(endpoint)
    from runtime.stores.dynamodb import DynamoDBStore

    print(
        f"{args.hosts} hosts x {args.services} services = {args.hosts * args.services} "
        f"services, 1 container each; {args.repeat} calls per operation",
        flush=True,
    )
    results: dict[str, dict[str, list[float]]] = {}
    try:
        with tempfile.TemporaryDirectory() as directory:
            stores: list[tuple[str, Store]] = [
                ("dynamodb (moto, HTTP)", DynamoDBStore()),
                ("sqlite", SQLiteStore(Path(directory) / "state.db")),
            ]
            for label, store in stores:
                results[label] = run(store, args.hosts, args.services, args.repeat)
    except Failure as failure:
        print(f"FAILED: {failure}", file=sys.stderr)
        return 1
    finally:
        stop()

    print(f"\n{'store':<22} {'call':<8} {'p50 ms':>9} {'p95 ms':>9} {'min ms':>9} {'max ms':>9}")
    for label, samples in results.items():
        for call, values in samples.items():
            print(
                f"{label:<22} {call:<8} {statistics.median(values) * 1e3:>9.1f} "
                f"{percentile(values, 0.95) * 1e3:>9.1f} {min(values) * 1e3:>9.1f} "
                f"{max(values) * 1e3:>9.1f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
