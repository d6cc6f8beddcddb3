"""Cross-host propagation in a fleet: a container started under host B, routed at host A.

    python benchmarks/fleet_bench.py [--samples 8] [--poll-interval 1] [--store sqlite|dynamodb]
                                     [--json]

Two hosts are simulated on one engine (the one ``DOCKER_HOST`` names, or the sandbox's
``container-engine``, as the tests bring it up): two ``cosmonaut run`` processes, each with
its own HAProxy container, ``--keyword`` and ``--host-id``, report to one
``lambda-registry serve`` in this process (``runtime.server.RegistryServer``) over SQLite (the
default) or DynamoDB on moto's server (``--store dynamodb``). Cosmonauts run with their
defaults but ``--poll-interval``.

One sample: a new service's container is created under host B, then started; the time from
the ``start`` call to the first 200 that host A's HAProxy answers from that container (and,
for comparison, host B's). It takes B's event -> B's report -> A's next poll -> A's apply, so
the poll interval bounds the spread. A sample that never propagates (within
``--timeout``) fails the run: exit 1 with a message.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from benchmarks.cosmonaut_bench import (  # noqa: E402
    CosmonautRun,
    labels,
    percentile,
    routed_to,
    wait_for,
)
from benchmarks.measure import BenchmarkFailed  # noqa: E402
from tests.support.cosmonaut_e2e import DockerHost, ensure_engine  # noqa: E402


class NotPropagated(Exception):
    pass


def cosmonaut(
    host: DockerHost, haproxy: str, host_id: str, url: str, state: Path, poll: float
) -> CosmonautRun:
    """``cosmonaut run`` for one host; its metrics on a port it binds (named in its log)."""
    state.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "cosmonaut.cli",
        "run",
        "--haproxy-container",
        haproxy,
        "--keyword",
        host.prefix,
        "--table",
        "fleet-bench",
        "--host-id",
        host_id,
        "--registry-url",
        url,
        "--poll-interval",
        str(poll),
        "--state-dir",
        str(state),
        "--metrics-address",
        "127.0.0.1:0",
    ]
    return CosmonautRun(command, state / "cosmonaut.log")


def registry_app(store: str, state: Path) -> tuple[Any, Any]:
    """The registry's app, and moto's server when the store is DynamoDB (else None)."""
    from runtime.config import HandlerConfig
    from runtime.handler import RegistryApp

    if store == "dynamodb":
        from tests.support.aws import MotoServer

        moto = MotoServer().start()
        os.environ.update(
            AWS_ENDPOINT_URL_DYNAMODB=moto.endpoint,
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AWS_DEFAULT_REGION="us-east-1",
            AWS_REGION="us-east-1",
        )
        return RegistryApp(HandlerConfig.from_env({"LAMBDA_REGISTRY_STORE": "dynamodb"})), moto
    spec = f"sqlite:{state / 'registry.db'}"
    return RegistryApp(HandlerConfig.from_env({"LAMBDA_REGISTRY_STORE": spec})), None


def propagation(
    a_ip: str, b_ip: str, b: DockerHost, samples: int, timeout: float
) -> dict[str, Any]:
    at_a: list[float] = []
    at_b: list[float] = []
    for index in range(samples):
        service = f"hop{index}"
        container = b.service(service, labels=labels(service), start=False)
        started = time.monotonic()
        container.start()
        for ip, where, times in ((b_ip, "B", at_b), (a_ip, "A", at_a)):
            left = max(1.0, timeout - (time.monotonic() - started))
            try:
                wait_for(routed_to(ip, service, container), left, f"{service} routed at {ip}")
            except BenchmarkFailed:
                raise NotPropagated(
                    f"sample {index + 1}: {container.name}, started under host B, was not "
                    f"routed through host {where}'s HAProxy within {timeout} s"
                ) from None
            times.append(time.monotonic() - started)
    return {
        "samples": samples,
        "p50_s": round(statistics.median(at_a), 3),
        "p95_s": round(percentile(at_a, 0.95), 3),
        "min_s": round(min(at_a), 3),
        "max_s": round(max(at_a), 3),
        "own_host_p50_s": round(statistics.median(at_b), 3),
        "own_host_p95_s": round(percentile(at_b, 0.95), 3),
        "all_s": [round(t, 3) for t in at_a],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--poll-interval", type=float, default=1.0)
    parser.add_argument("--store", choices=["sqlite", "dynamodb"], default="sqlite")
    parser.add_argument("--timeout", type=float, default=30.0, help="per sample (default 30)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON only")
    args = parser.parse_args(argv)
    os.environ.setdefault("CI", "")
    ensure_engine()
    import docker

    from runtime.server import RegistryServer

    client = docker.from_env(timeout=120)
    tag = uuid.uuid4().hex[:6]
    a = DockerHost(client, f"fleeta{tag}-")
    b = DockerHost(client, f"fleetb{tag}-")
    state = Path(tempfile.mkdtemp(prefix="fleet-bench-"))
    # The registry logs one JSON line per request on stdout: into a file, not the figures.
    registry_log = (state / "registry.log").open("w")
    real_stdout, sys.stdout = sys.stdout, registry_log
    app, moto = registry_app(args.store, state)
    server = RegistryServer("127.0.0.1", 0, app).start()
    daemons: list[CosmonautRun] = []
    figures: dict[str, Any] = {"store": args.store, "poll_interval_s": args.poll_interval}
    try:
        haproxy_a, haproxy_b = a.haproxy(), b.haproxy()
        logs = []
        for host, haproxy, host_id in ((a, haproxy_a, "host-a"), (b, haproxy_b, "host-b")):
            daemon = cosmonaut(
                host, haproxy.name, host_id, server.url, state / host_id, args.poll_interval
            )
            daemons.append(daemon)
            logs.append(str(daemon.log_path))
            wait_for(
                lambda d=daemon: d.metrics().get("cosmonaut_reconciles_total", 0) >= 1,
                60,
                f"{host_id}'s first pass",
            )
        figures["logs"] = [*logs, registry_log.name]
        figures["propagation"] = propagation(
            haproxy_a.ip, haproxy_b.ip, b, args.samples, args.timeout
        )
    except NotPropagated as error:
        print(f"fleet_bench: FAILED: {error}", file=sys.stderr)
        return 1
    finally:
        for daemon in daemons:
            daemon.stop()
        server.stop()
        if moto is not None:
            moto.stop()
        a.cleanup()
        b.cleanup()
        sys.stdout = real_stdout
        registry_log.close()
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    p = figures["propagation"]
    print(
        f"cross-host propagation, start on B -> first 200 from it via A's HAProxy, "
        f"{p['samples']} samples, --poll-interval {args.poll_interval}, {args.store}: "
        f"p50 {p['p50_s']} s, p95 {p['p95_s']} s (min {p['min_s']}, max {p['max_s']})"
    )
    print(
        f"  the same container via B's own HAProxy: p50 {p['own_host_p50_s']} s, "
        f"p95 {p['own_host_p95_s']} s"
    )
    print(f"cosmonaut logs: {', '.join(figures['logs'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
