"""Compile N services x 5 containers and compare with ``haproxy -c`` on the same output.

The payload is shaped as Cosmonaut sends it: every candidate's container is also listed in
``running`` (10 000 services x 5 containers: 50 000 running entries), so validating and
reconciling ``running`` is part of what is measured. A second row per size sends the same
candidates with ``running: []`` (labelled ``empty``), the shape earlier figures used.

Both commands run as separate processes, measured the same way: wall time, and peak resident
memory from ``wait4``'s rusage. The compile includes interpreter start-up, payload validation,
reconcile, lowering, printing and the full round trip (parse back + compare). Run:

    python benchmarks/compile_bench.py [--services 1000 10000] [--repeat 3] [--no-empty]

It fails (exit 1, with the reason on stderr) when any compile or any ``haproxy -c`` run exits
non-zero, when the compile prints diagnostics, or when the config does not hold exactly one
backend per service and one server per container.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.measure import BenchmarkFailed, best, run_benchmark  # noqa: E402
from runtime.haproxy_check import haproxy_binary  # noqa: E402

CONTAINERS = 5


def make_payload(
    services: int, containers: int = CONTAINERS, *, running: bool = True
) -> dict[str, Any]:
    """Services alternating host and path mode, every third with a cookie; with ``running``,
    every container is also in ``running``, as Cosmonaut's payloads have it."""
    candidates: list[dict[str, Any]] = []
    for n in range(services):
        path_mode = n % 2 == 1
        candidate: dict[str, Any] = {
            "serviceName": f"svc{n:05d}",
            "configMode": "path" if path_mode else "host",
            "predicate": f"svc{n:05d}/api" if path_mode else f"svc{n:05d}.example.com",
            "containers": [
                {"id": f"c{n:05d}x{k}", "ip": f"10.{n // 250 % 256}.{n % 250}.{k + 1}:8080"}
                for k in range(containers)
            ],
        }
        if n % 3 == 0:
            candidate["cookie"] = "SID"
        candidates.append(candidate)
    running_entries = [
        {"serviceName": c["serviceName"], "id": member["id"], "ip": member["ip"]}
        for c in candidates
        for member in c["containers"]
    ]
    return {
        "table": "bench",
        "running": running_entries if running else [],
        "candidates": candidates,
    }


def check_output(text: str, services: int, containers: int) -> None:
    lines = text.splitlines()
    backends = sum(1 for line in lines if line.startswith("backend "))
    # Free server slots (``disabled``, for the runtime API) are not containers.
    servers = sum(
        1
        for line in lines
        if line.lstrip().startswith("server ") and not line.endswith(" disabled")
    )
    if backends != services or servers != services * containers:
        raise BenchmarkFailed(
            f"the config has {backends} backends and {servers} servers; expected {services} "
            f"and {services * containers}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--no-empty", action="store_true", help="skip the secondary rows with running: []"
    )
    args = parser.parse_args()
    haproxy = haproxy_binary()
    if haproxy is None:
        raise BenchmarkFailed("haproxy is not installed (set LAMBDA_REGISTRY_HAPROXY)")
    shapes = ["filled"] if args.no_empty else ["filled", "empty"]
    print(f"best of {args.repeat}; running: filled = as Cosmonaut sends it, empty = running: []")
    print(
        f"{'services':>9} {'running':>8} {'lines':>8} {'compile s':>10} {'haproxy s':>10} "
        f"{'time ratio':>10} {'compile MiB':>11} {'haproxy MiB':>11} {'mem ratio':>9}"
    )
    with tempfile.TemporaryDirectory(prefix="compile-bench-") as directory:
        for count in args.services:
            configs: dict[str, str] = {}
            for shape in shapes:
                payload_data = make_payload(count, running=shape == "filled")
                entries = len(payload_data["running"])
                payload = Path(directory, f"payload-{count}-{shape}.json")
                payload.write_text(json.dumps(payload_data))
                output = Path(directory, f"haproxy-{count}-{shape}.cfg")
                compile_argv = [
                    sys.executable,
                    "-m",
                    "runtime.cli",
                    "compile",
                    str(payload),
                    "--store",
                    "memory",
                    "-o",
                    str(output),
                ]
                compile_s, compile_kib, runs = best(compile_argv, args.repeat, str(ROOT))
                if any(run.stderr.strip() for run in runs):
                    raise BenchmarkFailed(
                        f"the compile of {count} services printed diagnostics:\n"
                        f"{runs[-1].stderr.strip()}"
                    )
                if not output.is_file():
                    raise BenchmarkFailed(f"the compile exited 0 but wrote no {output}")
                text = output.read_text()
                check_output(text, count, CONTAINERS)
                configs[shape] = text
                # Not -q: a refusal then fails here with haproxy's alerts in the message.
                check_s, check_kib, _ = best(
                    [haproxy, "-c", "-f", str(output)], args.repeat, directory
                )
                print(
                    f"{count:>9} {entries if entries else 'empty':>8} {text.count(chr(10)):>8} "
                    f"{compile_s:>10.3f} {check_s:>10.3f} {compile_s / check_s:>10.2f} "
                    f"{compile_kib / 1024:>11.1f} {check_kib / 1024:>11.1f} "
                    f"{compile_kib / check_kib:>9.2f}",
                    flush=True,
                )
            if len(set(configs.values())) != 1:
                raise BenchmarkFailed(
                    f"{count} services: the two payload shapes compiled to different configs "
                    "(with the memory store, running entries of unknown services add nothing)"
                )
    return 0


if __name__ == "__main__":
    sys.exit(run_benchmark("compile_bench", main))
