"""Compile N services x 5 containers and compare with ``haproxy -c`` on the same output.

Both run as separate processes, measured the same way: wall time, and peak resident memory
from ``wait4``'s rusage. The compile includes interpreter start-up, payload validation,
lowering, printing and the full round trip (parse back + compare). Run:

    python benchmarks/compile_bench.py [--services 1000 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.measure import best  # noqa: E402
from runtime.haproxy_check import haproxy_binary  # noqa: E402


def make_payload(services: int, containers: int = 5) -> dict[str, object]:
    candidates = []
    for n in range(services):
        path_mode = n % 2 == 1
        candidates.append(
            {
                "serviceName": f"svc{n:05d}",
                "configMode": "path" if path_mode else "host",
                "predicate": f"svc{n:05d}/api" if path_mode else f"svc{n:05d}.example.com",
                "cookie": "SID" if n % 3 == 0 else None,
                "containers": [
                    {"id": f"c{n:05d}x{k}", "ip": f"10.{n // 250 % 256}.{n % 250}.{k + 1}:8080"}
                    for k in range(containers)
                ],
            }
        )
    for candidate in candidates:
        if candidate["cookie"] is None:
            del candidate["cookie"]
    return {"table": "bench", "running": [], "candidates": candidates}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--services", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    haproxy = haproxy_binary()
    if haproxy is None:
        print("haproxy is not installed", file=sys.stderr)
        return 2
    print(
        f"{'services':>9} {'lines':>8} {'compile s':>10} {'haproxy s':>10} {'time ratio':>10} "
        f"{'compile MiB':>11} {'haproxy MiB':>11} {'mem ratio':>9}"
    )
    with tempfile.TemporaryDirectory() as directory:
        for count in args.services:
            payload = Path(directory, f"payload-{count}.json")
            payload.write_text(json.dumps(make_payload(count)))
            output = Path(directory, f"haproxy-{count}.cfg")
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
            compile_s, compile_kib, compile_exit = best(compile_argv, args.repeat, str(ROOT))
            check_s, check_kib, _ = best([haproxy, "-c", "-q", "-f", str(output)], args.repeat)
            if compile_exit != 0:
                print(f"compile exited {compile_exit}", file=sys.stderr)
                return 1
            lines = output.read_text().count("\n")
            print(
                f"{count:>9} {lines:>8} {compile_s:>10.3f} {check_s:>10.3f} "
                f"{compile_s / check_s:>10.2f} {compile_kib / 1024:>11.1f} "
                f"{check_kib / 1024:>11.1f} {compile_kib / check_kib:>9.2f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
