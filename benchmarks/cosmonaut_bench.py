"""Cosmonaut on the real container engine: reaction time, bursts, reloads under load.

    python benchmarks/cosmonaut_bench.py [--starts 20] [--burst 50] [--reloads 200] [--json]

Needs the engine named by ``DOCKER_HOST`` (or the sandbox's ``container-engine``, brought up
as the tests do) and the images localhost/haproxy:local and localhost/busybox:latest. It runs
``cosmonaut run`` as a subprocess against a fresh HAProxy container, exactly as deployed, and
measures from the outside:

1. reaction time: from ``start`` of a service container (created beforehand) to the first
   200 that HAProxy answers from it, over N starts one after the other (each a new service,
   so the first 200 for its host name is from that container); p50 and p95;
2. a burst: N containers started at once (16 threads); how many reloads Cosmonaut made and
   the time until HAProxy routes to all of them;
3. reloads under load: N reloads of HAProxy through Cosmonaut's apply path (two configs in
   turn) while two clients send requests continuously on fresh connections; failed requests.

Every container it starts is removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "e2e")]

from cosmonaut_e2e import (  # noqa: E402  (the tests' helpers: engine, containers, requests)
    DockerHost,
    ensure_engine,
    ip_of,
    request,
    short,
)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def wait_for(check: Callable[[], bool], timeout: float, interval: float = 0.005) -> float:
    """Seconds until ``check()`` holds (polled every ``interval``); raises on timeout."""
    started = time.monotonic()
    while True:
        try:
            if check():
                return time.monotonic() - started
        except OSError:
            pass
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"not within {timeout} s")
        time.sleep(interval)


def labels(service: str) -> dict[str, str]:
    return {
        "cosmonaut.service": service,
        "cosmonaut.predicate": f"{service}.bench",
        "cosmonaut.port": "8080",
    }


def metric(port: int, name: str) -> float:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(f"{name} "):
                return float(line.split()[1])
    return 0.0


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def routed_to(ip: str, service: str, container: Any) -> Callable[[], bool]:
    expected = short(container)

    def check() -> bool:
        reply = request(ip, host=f"{service}.bench", timeout=2)
        return reply.status == 200 and reply.body == expected

    return check


def reaction(host: DockerHost, haproxy_ip: str, starts: int) -> dict[str, Any]:
    times = []
    after_start = []  # from the moment the engine's start call returned (container running)
    for index in range(starts):
        service = f"react{index}"
        container = host.service(service, labels=labels(service), start=False)
        started = time.monotonic()
        container.start()
        running = time.monotonic()
        wait_for(routed_to(haproxy_ip, service, container), timeout=30)
        times.append(time.monotonic() - started)
        after_start.append(time.monotonic() - running)
    return {
        "starts": starts,
        "p50_s": round(statistics.median(times), 3),
        "p95_s": round(percentile(times, 0.95), 3),
        "min_s": round(min(times), 3),
        "max_s": round(max(times), 3),
        "from_running_p50_s": round(statistics.median(after_start), 3),
        "from_running_p95_s": round(percentile(after_start, 0.95), 3),
        "all_s": [round(t, 3) for t in times],
    }


def burst(host: DockerHost, haproxy_ip: str, count: int, metrics_port: int) -> dict[str, Any]:
    containers = [
        (f"burst{i}", host.service(f"burst{i}", labels=labels(f"burst{i}"), start=False))
        for i in range(count)
    ]
    before = metric(metrics_port, "cosmonaut_reloads_total")
    started = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda pair: pair[1].start(), containers))
    all_started = time.monotonic() - started
    pending = dict(containers)
    while pending:
        for service, container in list(pending.items()):
            try:
                if routed_to(haproxy_ip, service, container)():
                    del pending[service]
            except OSError:
                pass
        if time.monotonic() - started > 120:
            raise TimeoutError(f"{len(pending)} containers not routed after 120 s")
        time.sleep(0.01)
    routed = time.monotonic() - started
    # Let the last pass finish before reading the counter.
    time.sleep(1.0)
    reloads = metric(metrics_port, "cosmonaut_reloads_total") - before
    return {
        "containers": count,
        "engine_start_all_s": round(all_started, 2),
        "all_routed_s": round(routed, 2),
        "reloads": int(reloads),
    }


def reloads_under_load(host: DockerHost, haproxy_name: str, count: int) -> dict[str, Any]:
    from cosmonaut.apply import Applier
    from cosmonaut.discovery import Discoverer
    from cosmonaut.engine import Engine
    from cosmonaut.haproxy import HaproxyTarget
    from runtime.pipeline import compile_payload

    a = host.service("load-a", labels=labels("load"))
    b = host.service("load-b", labels=labels("load"))
    configs = []
    for members in ([a], [a, b]):
        containers = [{"id": short(c), "ip": f"{ip_of(c)}:8080"} for c in members]
        payload = {
            "table": "bench",
            "running": [],
            "candidates": [
                {"serviceName": "load", "predicate": "load.bench", "containers": containers}
            ],
        }
        configs.append(compile_payload(payload).text)
    engine = Engine()
    discoverer = Discoverer(engine, haproxy_container=haproxy_name)
    applier = Applier(HaproxyTarget(engine, discoverer))
    haproxy_ip = ip_of(host.client.containers.get(haproxy_name))
    applier.apply(configs[0])
    wait_for(lambda: request(haproxy_ip, host="load.bench").status == 200, timeout=30)

    stop = threading.Event()
    results: list[str] = []

    def client() -> None:
        while not stop.is_set():
            try:
                reply = request(haproxy_ip, host="load.bench", timeout=5)
                results.append("ok" if reply.status == 200 else f"HTTP {reply.status}")
            except Exception as error:
                results.append(f"{type(error).__name__}: {error}")

    clients = [threading.Thread(target=client) for _ in range(2)]
    for thread in clients:
        thread.start()
    durations = []
    outcomes: dict[str, int] = {}
    try:
        for index in range(count):
            result = applier.apply(configs[(index + 1) % 2])
            outcomes[result.outcome] = outcomes.get(result.outcome, 0) + 1
            durations.append(result.seconds)
    finally:
        stop.set()
        for thread in clients:
            thread.join()
    failures = [r for r in results if r != "ok"]
    return {
        "reloads": count,
        "outcomes": outcomes,
        "requests": len(results),
        "failed_requests": len(failures),
        "failure_samples": sorted(set(failures))[:5],
        "apply_p50_s": round(statistics.median(durations), 3),
        "apply_p95_s": round(percentile(durations, 0.95), 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--starts", type=int, default=20)
    parser.add_argument("--burst", type=int, default=50)
    parser.add_argument("--reloads", type=int, default=200)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON only")
    parser.add_argument(
        "--cosmonaut-arg",
        action="append",
        default=[],
        help="extra argument for 'cosmonaut run' (e.g. --cosmonaut-arg=--debounce-min=0.1)",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("CI", "")
    ensure_engine()
    import docker

    host = DockerHost(docker.from_env(timeout=120), f"bench{uuid.uuid4().hex[:6]}-")
    figures: dict[str, Any] = {}
    process = None
    try:
        haproxy = host.haproxy()
        metrics_port = free_port()
        state = tempfile.mkdtemp(prefix="cosmonaut-bench-")
        log = open(Path(state) / "cosmonaut.log", "w")  # noqa: SIM115
        command = [
            sys.executable,
            "-m",
            "cosmonaut.cli",
            "run",
            "--haproxy-container",
            haproxy.name,
            "--keyword",
            host.prefix,
            "--table",
            "bench",
            "--state-dir",
            state,
            "--metrics-address",
            f"127.0.0.1:{metrics_port}",
            *args.cosmonaut_arg,
        ]
        process = subprocess.Popen(command, stderr=log, cwd=ROOT)
        wait_for(lambda: metric(metrics_port, "cosmonaut_reconciles_total") >= 1, timeout=60)
        if args.starts:
            figures["reaction"] = reaction(host, haproxy.ip, args.starts)
        if args.burst:
            figures["burst"] = burst(host, haproxy.ip, args.burst, metrics_port)
        process.terminate()
        process.wait(timeout=30)
        process = None
        if args.reloads:
            figures["reloads_under_load"] = reloads_under_load(host, haproxy.name, args.reloads)
        figures["log"] = log.name
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=30)
        host.cleanup()
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    if "reaction" in figures:
        r = figures["reaction"]
        print(
            f"reaction, start -> first 200 via HAProxy, {r['starts']} starts: "
            f"p50 {r['p50_s']} s, p95 {r['p95_s']} s (min {r['min_s']}, max {r['max_s']}); "
            "target p50 <= 0.5 s, p95 <= 1 s"
        )
        print(
            f"  from the start call's return (container running): p50 "
            f"{r['from_running_p50_s']} s, p95 {r['from_running_p95_s']} s"
        )
    if "burst" in figures:
        b = figures["burst"]
        print(
            f"burst of {b['containers']} starts: {b['reloads']} reloads, all routed after "
            f"{b['all_routed_s']} s (the engine took {b['engine_start_all_s']} s to start them)"
        )
    if "reloads_under_load" in figures:
        u = figures["reloads_under_load"]
        print(
            f"{u['reloads']} reloads under load: {u['failed_requests']} failed of "
            f"{u['requests']} requests (target 0); apply p50 {u['apply_p50_s']} s, "
            f"p95 {u['apply_p95_s']} s; outcomes {u['outcomes']}"
        )
        for sample in u["failure_samples"]:
            print(f"  failure: {sample}")
    print(f"cosmonaut log: {figures.get('log')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
