"""What routing costs HAProxy: req/s through a real haproxy at 10, 1 000 and 10 000 services.

For each size and mode (host, path) the payload is compiled with ``lambda-registry compile
-o`` into a bundle, which ``haproxy -c`` must accept; a haproxy is started on it (loopback
only). Every service's one server is a second local haproxy that answers 200 itself
(``http-request return``), so the backend costs the same at any size. ``wrk`` (Debian's
``wrk``; ``scripts/bootstrap`` installs it) then drives requests for the first and for the
last service, each for ``--duration`` seconds over ``--connections`` connections on one
thread. Every response must be a 200 from the right backend (wrk's non-2xx count must be 0).

Printed per point: req/s, mean latency, and the ratio to 10 services in the same routing,
mode and position. Map routing is the subject (target: >= 0.9 at 10 000 services, both
modes); a few ACL-routing points (one ``acl`` + ``use_backend`` per service, what
``routing: acl`` and small ``auto`` configs give) show what maps save and where ``auto``'s
threshold sits. Run it alone on the machine (``flock /tmp/cpu.lock``):

    python benchmarks/routing_bench.py [--duration 3] [--connections 4] [--sizes 10 1000 10000]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.measure import BenchmarkFailed, run_benchmark  # noqa: E402
from runtime.haproxy_check import haproxy_binary  # noqa: E402
from tests.support.net import haproxy_serving, listening, port_of  # noqa: E402

BACKEND_CONFIG = """\
global
    maxconn 4000
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend ok
    bind 127.0.0.1:{port}
    http-request return status 200 content-type text/plain string ok
"""
ACL_POINTS = (10, 20, 50, 200, 1000)  # ACL routing, host mode, last service


@dataclass(frozen=True, slots=True)
class Point:
    routing: str
    mode: str
    services: int
    position: str
    requests_per_second: float
    latency_ms: float


@contextmanager
def serving(haproxy: str, config: Path, front: socket.socket, what: str) -> Iterator[None]:
    """haproxy on ``config``, serving on ``front`` (bound here and handed over)."""
    try:
        # From another directory: a map bundle finds its files itself (default-path config).
        with haproxy_serving(haproxy, config, front, cwd="/", deadline=60):
            yield
    except AssertionError as failure:
        raise BenchmarkFailed(f"{what}: {failure}") from None


def payload(count: int, mode: str, backend: int) -> dict[str, Any]:
    def predicate(index: int) -> str:
        return f"svc{index}.example.com" if mode == "host" else f"/svc{index}"

    return {
        "table": "routing-bench",
        "running": [],
        "candidates": [
            {
                "serviceName": f"svc{index}",
                "configMode": mode,
                "predicate": predicate(index),
                "containers": [{"id": f"c{index}", "ip": f"127.0.0.1:{backend}"}],
            }
            for index in range(count)
        ],
    }


def compile_bundle(
    directory: Path, count: int, mode: str, routing: str, port: int, backend: int
) -> Path:
    options = {
        "routing": routing,
        "bind_address": "127.0.0.1",
        "bind_port": port,
        "user": None,
        "group": None,
        "daemon": False,
        "log_targets": [],
        "maxconn": 4000,
        "health_check": {"enabled": False},
    }
    options_file = directory / "options.json"
    options_file.write_text(json.dumps(options))
    config = directory / "haproxy.cfg"
    completed = subprocess.run(
        [
            sys.executable, "-m", "runtime.cli", "compile", "-", "--store", "memory",
            "--options", str(options_file), "--check", "-o", str(config),
        ],
        input=json.dumps(payload(count, mode, backend)),
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )  # fmt: skip
    if completed.returncode != 0 or completed.stderr.strip():
        raise BenchmarkFailed(
            f"compile of {count} {mode} services exited {completed.returncode}: "
            f"{completed.stderr[-1000:]}"
        )
    maps = list(directory.glob("*.map"))
    if (routing == "map") != bool(maps):
        raise BenchmarkFailed(f"{routing} routing gave {len(maps)} map files")
    return config


_REQUESTS = re.compile(r"Requests/sec:\s+([0-9.]+)")
_LATENCY = re.compile(r"Latency\s+([0-9.]+)(us|ms|s)\b")
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+([0-9]+)")
_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def drive(wrk: str, url: str, host: str, duration: int, connections: int) -> tuple[float, float]:
    completed = subprocess.run(
        [
            wrk, "-t1", f"-c{connections}", f"-d{duration}s", "--latency",
            "-H", f"Host: {host}", url,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=duration + 30,
    )  # fmt: skip
    out = completed.stdout
    requests = _REQUESTS.search(out)
    latency = _LATENCY.search(out)
    bad = _NON_2XX.search(out)
    if completed.returncode != 0 or requests is None or latency is None:
        raise BenchmarkFailed(f"wrk failed on {url} (Host {host}):\n{out}{completed.stderr}")
    if bad is not None or "Socket errors" in out:
        raise BenchmarkFailed(f"wrk saw failed requests on {url} (Host {host}):\n{out}")
    return float(requests.group(1)), float(latency.group(1)) * _UNIT_MS[latency.group(2)]


def measure_point(
    haproxy: str, wrk: str, backend: int, args: argparse.Namespace,
    routing: str, mode: str, count: int, positions: tuple[str, ...],
) -> list[Point]:  # fmt: skip
    points: list[Point] = []
    with tempfile.TemporaryDirectory(prefix="routing-bench-") as name:
        directory = Path(name)
        with listening() as front:
            port = port_of(front)
            config = compile_bundle(directory, count, mode, routing, port, backend)
            with serving(haproxy, config, front, f"haproxy on {count} {mode} services"):
                for position in positions:
                    index = 0 if position == "first" else count - 1
                    host = f"svc{index}.example.com" if mode == "host" else "unknown.test"
                    path = "/" if mode == "host" else f"/svc{index}/x"
                    url = f"http://127.0.0.1:{port}{path}"
                    rps, latency = drive(wrk, url, host, args.duration, args.connections)
                    points.append(Point(routing, mode, count, position, rps, latency))
    return points


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 1000, 10000])
    parser.add_argument("--duration", type=int, default=3, help="seconds per point (1-30)")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--no-acl", action="store_true", help="skip the ACL reference points")
    args = parser.parse_args()
    if not 1 <= args.duration <= 30:
        raise BenchmarkFailed("--duration must be between 1 and 30 seconds")
    haproxy = haproxy_binary()
    wrk = shutil.which("wrk")
    if haproxy is None or wrk is None:
        raise BenchmarkFailed("needs haproxy and wrk (scripts/bootstrap installs both)")
    sizes = sorted(set(args.sizes) | {10})
    with (
        tempfile.TemporaryDirectory(prefix="routing-bench-backend-") as name,
        listening() as front,
    ):
        backend = port_of(front)
        config = Path(name, "backend.cfg")
        config.write_text(BACKEND_CONFIG.format(port=backend))
        with serving(haproxy, config, front, "the backend haproxy"):
            points: list[Point] = []
            for mode in ("host", "path"):
                for count in sizes:
                    points += measure_point(
                        haproxy, wrk, backend, args, "map", mode, count, ("first", "last")
                    )
            if not args.no_acl:
                for count in ACL_POINTS:
                    points += measure_point(
                        haproxy, wrk, backend, args, "acl", "host", count, ("last",)
                    )
    report(points, args)
    return 0


def report(points: list[Point], args: argparse.Namespace) -> None:
    print(
        f"routing_bench: wrk -t1 -c{args.connections} -d{args.duration}s, loopback, "
        "haproxy on the compiled bundle, one backend haproxy answering 200"
    )
    print(f"{'routing':7} {'mode':4} {'services':>8} {'service':7} {'req/s':>9} "
          f"{'latency':>10} {'vs 10':>6}")  # fmt: skip
    reference = {
        (p.routing, p.mode, p.position): p.requests_per_second for p in points if p.services == 10
    }
    for point in points:
        base = reference.get((point.routing, point.mode, point.position))
        ratio = f"{point.requests_per_second / base:6.2f}" if base else "     -"
        print(
            f"{point.routing:7} {point.mode:4} {point.services:8d} {point.position:7} "
            f"{point.requests_per_second:9.0f} {point.latency_ms:8.3f}ms {ratio}"
        )
    worst = min(
        (
            (p.requests_per_second / reference[(p.routing, p.mode, p.position)], p)
            for p in points
            if p.routing == "map" and p.services == max(q.services for q in points)
        ),
        key=lambda pair: pair[0],  # ratios tie (all 1.0 with --sizes 10): never compare points
    )
    print(
        f"map routing, worst ratio at {worst[1].services} services: {worst[0]:.2f} "
        f"({worst[1].mode}, {worst[1].position}); target >= 0.90"
    )


if __name__ == "__main__":
    sys.exit(run_benchmark("routing_bench", main))
