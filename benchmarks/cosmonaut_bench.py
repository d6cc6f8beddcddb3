"""Cosmonaut on the real container engine: reaction time, bursts, reloads under load.

    python benchmarks/cosmonaut_bench.py [--starts 20] [--burst 50] [--reloads 200] [--json]

Needs the engine named by ``DOCKER_HOST`` (or the sandbox's ``container-engine``, brought up
as the tests do) and the images localhost/haproxy:local and localhost/busybox:latest. It runs
``cosmonaut run`` as a subprocess against a fresh HAProxy container, exactly as deployed, for
the whole run, and measures from the outside:

1. reaction time: from ``start`` of a service container (created beforehand) to the first
   200 that HAProxy answers from it, over N starts one after the other (each a new service,
   so the first 200 for its host name is from that container); p50 and p95;
2. a burst: N containers started at once (16 threads); how many reloads Cosmonaut made and
   the time until HAProxy routes to all of them;
3. the runtime path (``--joins N``, with ``--runtime-socket`` on a folder shared with the
   HAProxy container): from ``start`` of a container of a service that already runs to the
   first 200 from it, N times (each joined container is stopped again, which frees its slot,
   so every join fills a slot without a reload); p50 and p95 beside the reaction time above,
   which is the reload path (each start is a new service), in the same run; and how much of
   it passed before the daemon's pass began (the engine's event latency plus the debounce);
4. reloads under load: N reloads made by the daemon, each caused by starting or stopping a
   container of another service (one change at a time, the next once the daemon has recorded
   the reload), while two clients send requests continuously, each on a fresh connection, to
   a service of two containers that stays up; failed requests, and the apply time of each
   reload as the daemon logged it.

What happened is read from the daemon itself: its ``/metrics`` (served on a port it binds,
``--metrics-address 127.0.0.1:0``, named in its ``metrics`` log line) and its JSON log lines.
The benchmark fails (exit 1, with the reason on stderr) when the daemon exits, records a
failed pass or a rollback, does not reload as expected within a deadline, or when HAProxy
does not route what the phase needs. Every container it starts is removed at the end.
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
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, TypeVar

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

import pytest  # noqa: E402  (the e2e helpers report an unavailable engine as pytest outcomes)

from benchmarks.measure import BenchmarkFailed, run_benchmark  # noqa: E402
from tests.support.cosmonaut_e2e import (  # noqa: E402  (the tests' helpers: engine, containers, requests)
    DockerHost,
    ensure_engine,
    request,
    short,
)

T = TypeVar("T")
COUNTERS = ("cosmonaut_reloads_total", "cosmonaut_rollbacks_total", "cosmonaut_failures_total")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def wait_for(
    check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.005
) -> T:
    """The first truthy ``check()``, polled every ``interval``; ``BenchmarkFailed`` after
    ``timeout`` seconds. ``OSError`` counts as not yet (HAProxy not listening, say)."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = check()
        except OSError as error:
            last = error
        else:
            if value:
                return value
            last = value
        if time.monotonic() > deadline:
            raise BenchmarkFailed(
                f"timed out after {timeout} s waiting for {what} (last: {last!r})"
            )
        time.sleep(interval)


def labels(service: str) -> dict[str, str]:
    return {
        "cosmonaut.service": service,
        "cosmonaut.predicate": f"{service}.bench",
        "cosmonaut.port": "8080",
    }


class CosmonautRun:
    """``cosmonaut run`` as a subprocess: its JSON log lines and its ``/metrics``."""

    def __init__(self, command: list[str], log_path: Path) -> None:
        self.log_path = log_path
        self._log: IO[str] = open(log_path, "w")  # noqa: SIM115  (closed in stop())
        self.process = subprocess.Popen(command, stderr=self._log, cwd=ROOT)
        line = wait_for(lambda: self._line("metrics"), 60, "the daemon's 'metrics' log line")
        self.metrics_url = str(line["address"])
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def lines(self, since: int = 0) -> list[dict[str, Any]]:
        """The complete log lines from index ``since`` on."""
        text = self.log_path.read_text(encoding="utf-8")
        complete = text[: text.rfind("\n") + 1].splitlines()
        return [json.loads(line) for line in complete[since:] if line.startswith("{")]

    def mark(self) -> int:
        return len(self.lines())

    def _line(self, event: str) -> dict[str, Any] | None:
        self.alive()
        return next((line for line in self.lines() if line.get("event") == event), None)

    def alive(self) -> None:
        code = self.process.poll()
        if code is not None:
            raise BenchmarkFailed(f"cosmonaut run exited {code}; log:\n{self.tail()}")

    def tail(self, count: int = 15) -> str:
        lines = self.log_path.read_text(encoding="utf-8").splitlines()[-count:]
        return "\n".join(f"    {line[:400]}" for line in lines)

    def metrics(self) -> dict[str, float]:
        """Every sample by name; samples with labels are summed under their name."""
        self.alive()
        with self._opener.open(self.metrics_url, timeout=5) as response:
            text = response.read().decode()
        values: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                name = name.split("{", 1)[0]
                values[name] = values.get(name, 0.0) + float(value)
        return values

    def counters(self) -> dict[str, float]:
        values = self.metrics()
        return {name: values.get(name, 0.0) for name in COUNTERS}

    def require_clean(self, before: dict[str, float], phase: str) -> dict[str, float]:
        """The counters now; fails when a rollback or a failed pass happened since ``before``."""
        now = self.counters()
        for name in ("cosmonaut_rollbacks_total", "cosmonaut_failures_total"):
            if now[name] != before[name]:
                failed = [
                    f"    {line.get('failure')}: {str(line.get('error'))[:300]}"
                    for line in self.lines()
                    if line.get("event") == "reconcile failed"
                ][-5:]
                raise BenchmarkFailed(
                    f"{phase}: {name} went from {before[name]:g} to {now[name]:g}; the last "
                    "failed passes:\n" + "\n".join(failed)
                )
        return now

    def applied(self, since: int) -> list[dict[str, Any]]:
        """The 'reconciled' lines from ``since`` on whose pass applied a new config."""
        return [
            line
            for line in self.lines(since)
            if line.get("event") == "reconciled" and line.get("outcome") == "applied"
        ]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
        self._log.close()


def routed_to(ip: str, service: str, container: Any) -> Callable[[], bool]:
    expected = short(container)

    def check() -> bool:
        reply = request(ip, host=f"{service}.bench", timeout=2)
        return bool(reply.status == 200 and reply.body == expected)

    return check


def reaction(
    host: DockerHost, haproxy_ip: str, starts: int, daemon: CosmonautRun
) -> dict[str, Any]:
    before = daemon.counters()
    times = []
    after_start = []  # from the moment the engine's start call returned (container running)
    for index in range(starts):
        service = f"react{index}"
        container = host.service(service, labels=labels(service), start=False)
        started = time.monotonic()
        container.start()
        running = time.monotonic()
        wait_for(routed_to(haproxy_ip, service, container), 30, f"HAProxy to route {service}")
        times.append(time.monotonic() - started)
        after_start.append(time.monotonic() - running)
    # Each start is a new service, so each needs its own reload; all are routed, so all are
    # recorded or about to be.
    wait_for(
        lambda: daemon.counters()["cosmonaut_reloads_total"] >= before[COUNTERS[0]] + starts,
        30,
        f"the daemon to record {starts} reloads",
    )
    daemon.require_clean(before, "reaction")
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


def joins(host: DockerHost, haproxy_ip: str, count: int, daemon: CosmonautRun) -> dict[str, Any]:
    """Containers joining a running service: the runtime path (no reload)."""
    service = "joined"
    first = host.service(f"{service}-base", labels=labels(service))
    wait_for(routed_to(haproxy_ip, service, first), 30, f"HAProxy to route {service}")
    before = daemon.counters()
    times, after_start, before_pass = [], [], []
    for index in range(count):
        container = host.service(f"{service}{index}", labels=labels(service), start=False)
        mark = daemon.mark()
        started = time.monotonic()
        container.start()
        running, running_wall = time.monotonic(), time.time()
        wait_for(routed_to(haproxy_ip, service, container), 30, f"HAProxy to route join {index}")
        times.append(time.monotonic() - started)
        after_start.append(time.monotonic() - running)
        name = container.name

        def its_pass(name: str = name, mark: int = mark) -> dict[str, Any] | None:
            # The pass logs once the file is rewritten, a little after HAProxy routes.
            return next(
                (
                    line
                    for line in daemon.lines(mark)
                    if line.get("event") == "reconciled"
                    and any(r.startswith(f"start {name}") for r in line.get("reasons", []))
                ),
                None,
            )

        found = wait_for(its_pass, 10, f"the pass of join {index}")
        began = _wall(found["time"]) - float(found["seconds"])
        before_pass.append(max(0.0, began - running_wall))
        container.stop(timeout=1)
        gone = short(container)
        wait_for(
            lambda gone=gone: all(
                request(haproxy_ip, host=f"{service}.bench", timeout=2).body != gone
                for _ in range(3)
            ),
            30,
            f"join {index} to leave",
        )
    after = daemon.require_clean(before, "joins")
    reloads = after["cosmonaut_reloads_total"] - before["cosmonaut_reloads_total"]
    metrics = daemon.metrics()
    return {
        "joins": count,
        "reloads": reloads,
        "runtime_updates": metrics.get("cosmonaut_runtime_updates_total", 0.0),
        "p50_s": round(statistics.median(times), 3),
        "p95_s": round(percentile(times, 0.95), 3),
        "from_running_p50_s": round(statistics.median(after_start), 3),
        "from_running_p95_s": round(percentile(after_start, 0.95), 3),
        "before_pass_p50_s": round(statistics.median(before_pass), 3) if before_pass else None,
        "all_s": [round(t, 3) for t in times],
    }


def _wall(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp()


def burst(
    host: DockerHost, haproxy_ip: str, count: int, daemon: CosmonautRun, routed_before: int
) -> dict[str, Any]:
    containers = [
        (f"burst{i}", host.service(f"burst{i}", labels=labels(f"burst{i}"), start=False))
        for i in range(count)
    ]
    before = daemon.counters()
    mark = daemon.mark()
    started = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda pair: pair[1].start(), containers))
    all_started = time.monotonic() - started
    pending = dict(containers)

    def all_routed() -> bool:
        for service, container in list(pending.items()):
            try:
                if routed_to(haproxy_ip, service, container)():
                    del pending[service]
            except OSError:
                pass
        return not pending

    wait_for(all_routed, 120, f"HAProxy to route all {count} burst containers", interval=0.01)
    routed = time.monotonic() - started
    # The pass that routed the last container is recorded (its counters counted) before it
    # logs 'reconciled' with every container routed: wait for that line, then read.
    expected = routed_before + count
    wait_for(
        lambda: any(
            line.get("event") == "reconciled" and line.get("routed") == expected
            for line in daemon.lines(mark)
        ),
        30,
        f"the daemon to log a pass routing {expected} containers",
    )
    after = daemon.require_clean(before, "burst")
    reloads = after["cosmonaut_reloads_total"] - before["cosmonaut_reloads_total"]
    if reloads < 1:
        raise BenchmarkFailed(f"burst: all {count} routed, yet the daemon counted no reload")
    return {
        "containers": count,
        "engine_start_all_s": round(all_started, 2),
        "all_routed_s": round(routed, 2),
        "reloads": int(reloads),
    }


@contextmanager
def clients(ip: str, host_name: str, bodies: set[str], count: int = 2) -> Iterator[list[str]]:
    """``count`` threads sending requests on fresh connections; each result is ``ok`` (a 200
    from one of ``bodies``) or what went wrong."""
    stop = threading.Event()
    results: list[str] = []

    def client() -> None:
        while not stop.is_set():
            try:
                reply = request(ip, host=host_name, timeout=5)
                if reply.status != 200:
                    results.append(f"HTTP {reply.status}")
                elif reply.body not in bodies:
                    results.append(f"answered by {reply.body[:40]!r}")
                else:
                    results.append("ok")
            except Exception as error:
                results.append(f"{type(error).__name__}: {error}")

    threads = [threading.Thread(target=client) for _ in range(count)]
    for thread in threads:
        thread.start()
    try:
        yield results
    finally:
        stop.set()
        for thread in threads:
            thread.join()


def reloads_under_load(
    host: DockerHost, haproxy_ip: str, count: int, daemon: CosmonautRun, routed_before: int
) -> dict[str, Any]:
    load = [host.service(f"load-{x}", labels=labels("load")) for x in "ab"]
    bodies = {short(c) for c in load}
    flip = host.service("flip", labels=labels("flip"), start=False)
    for container in load:
        wait_for(routed_to(haproxy_ip, "load", container), 30, "HAProxy to route load-a and -b")
    settled = routed_before + len(load)
    wait_for(
        lambda: any(
            line.get("event") == "reconciled" and line.get("routed") == settled
            for line in daemon.lines()
        ),
        30,
        f"the daemon to log a pass routing {settled} containers",
    )
    before = daemon.counters()
    mark = daemon.mark()
    toggles: list[float] = []  # from the start/stop call to the reload counted
    with clients(haproxy_ip, "load.bench", bodies) as results:
        started = time.monotonic()
        for index in range(count):
            begun = time.monotonic()
            if index % 2 == 0:
                flip.start()
            else:
                flip.stop(timeout=10)
            target = before["cosmonaut_reloads_total"] + index + 1

            def reloaded(target: float = target) -> bool:
                return daemon.require_clean(before, "reloads")[COUNTERS[0]] >= target

            wait_for(reloaded, 30, f"reload {index + 1} of {count}", interval=0.02)
            toggles.append(time.monotonic() - begun)
        elapsed = time.monotonic() - started
        after = daemon.require_clean(before, "reloads")
    reloads = int(after["cosmonaut_reloads_total"] - before["cosmonaut_reloads_total"])
    applied = daemon.applied(mark)
    if len(applied) != reloads:
        raise BenchmarkFailed(
            f"reloads: /metrics counted {reloads} reloads, the log {len(applied)} applied passes"
        )
    if not results:
        raise BenchmarkFailed("reloads: the clients sent no request")
    durations = [float(line["apply"]["seconds"]) for line in applied]
    failures = [r for r in results if r != "ok"]
    return {
        "reloads": reloads,
        "changes": count,
        "routed_containers": settled,
        "seconds": round(elapsed, 1),
        "requests": len(results),
        "failed_requests": len(failures),
        "failure_samples": sorted(set(failures))[:5],
        "apply_p50_s": round(statistics.median(durations), 3),
        "apply_p95_s": round(percentile(durations, 0.95), 3),
        "change_to_reload_p50_s": round(statistics.median(toggles), 3),
        "change_to_reload_p95_s": round(percentile(toggles, 0.95), 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--starts", type=int, default=20)
    parser.add_argument("--burst", type=int, default=50)
    parser.add_argument("--reloads", type=int, default=200)
    parser.add_argument("--joins", type=int, default=20, help="runtime-path samples (0: off)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON only")
    parser.add_argument(
        "--cosmonaut-arg",
        action="append",
        default=[],
        help="extra argument for 'cosmonaut run' (e.g. --cosmonaut-arg=--debounce-min=0.1)",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("CI", "")
    try:
        figures = measure_all(args)
    except (pytest.skip.Exception, pytest.fail.Exception) as outcome:
        raise BenchmarkFailed(str(outcome)) from None
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    report(figures)
    return 0


def measure_all(args: argparse.Namespace) -> dict[str, Any]:
    ensure_engine()
    import docker

    host = DockerHost(docker.from_env(timeout=120), f"bench{uuid.uuid4().hex[:6]}-")
    figures: dict[str, Any] = {}
    daemon = None
    try:
        state = tempfile.mkdtemp(prefix="cosmonaut-bench-")
        runtime_dir = Path(state) / "haproxy-lib"
        runtime_dir.mkdir()
        haproxy = host.haproxy(runtime_dir=runtime_dir)
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
            "127.0.0.1:0",
            "--runtime-socket",
            str(runtime_dir / "admin.sock"),
            *args.cosmonaut_arg,
        ]
        daemon = CosmonautRun(command, Path(state) / "cosmonaut.log")
        figures["log"] = str(daemon.log_path)
        wait_for(lambda: daemon.metrics()["cosmonaut_reconciles_total"] >= 1, 60, "the first pass")
        daemon.require_clean(dict.fromkeys(COUNTERS, 0.0), "start-up")
        routed = 0
        if args.starts:
            figures["reaction"] = reaction(host, haproxy.ip, args.starts, daemon)
            routed += args.starts
        if args.joins:
            figures["joins"] = joins(host, haproxy.ip, args.joins, daemon)
            routed += 1  # the joined service's first container stays
        if args.burst:
            figures["burst"] = burst(host, haproxy.ip, args.burst, daemon, routed)
            routed += args.burst
        if args.reloads:
            figures["reloads_under_load"] = reloads_under_load(
                host, haproxy.ip, args.reloads, daemon, routed
            )
    finally:
        if daemon is not None:
            daemon.stop()
        host.cleanup()
    return figures


def report(figures: dict[str, Any]) -> None:
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
    if "joins" in figures:
        j = figures["joins"]
        print(
            f"runtime path, start -> first 200 of a container joining a running service, "
            f"{j['joins']} joins: p50 {j['p50_s']} s, p95 {j['p95_s']} s, with {j['reloads']:g} "
            f"reloads and {j['runtime_updates']:g} runtime updates; target p50 <= 0.3 s"
        )
        print(
            f"  from the start call's return: p50 {j['from_running_p50_s']} s, p95 "
            f"{j['from_running_p95_s']} s; of which before the daemon's pass began (the "
            f"engine's event latency + debounce): p50 {j['before_pass_p50_s']} s"
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
            f"{u['reloads']} reloads by the daemon ({u['changes']} container starts/stops, "
            f"{u['routed_containers']} more containers routed) in {u['seconds']} s under load: "
            f"{u['failed_requests']} failed of {u['requests']} requests (target 0)"
        )
        print(
            f"  apply p50 {u['apply_p50_s']} s, p95 {u['apply_p95_s']} s (daemon's log); "
            f"start/stop call -> reload counted p50 {u['change_to_reload_p50_s']} s, "
            f"p95 {u['change_to_reload_p95_s']} s"
        )
        for sample in u["failure_samples"]:
            print(f"  failure: {sample}")
    print(f"cosmonaut log: {figures.get('log')}")


if __name__ == "__main__":
    sys.exit(run_benchmark("cosmonaut_bench", main))
