"""Parse + lint a large config and compare with ``haproxy -c`` on the same file, in one run.

The config: one frontend with, per backend, an ACL and a use_backend rule, then N backends of
5 servers each (with cookies and health checks): about 12 lines per backend, 120 000 lines for
the default 10 000 backends. Each command runs as its own process, measured the same way:
wall time, and peak resident memory from ``wait4``'s rusage. The lint runs include
interpreter start-up, reading, parsing, and every rule.

    python benchmarks/lint_bench.py [--backends 10000] [--repeat 3]

Two commands are timed: ``haproxy -c`` and ``lambda-registry lint`` (run as
``python -m runtime.cli lint``; the CLI imports only what the command needs). An in-process
breakdown (import, parse, lint) follows.

It fails (exit 1, with the reason on stderr) when ``haproxy -c`` or the lint run exits
non-zero, when a lint run does not report one file checked, or when the in-process parse does
not find every backend and server of the generated config.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.measure import BenchmarkFailed, best, run_benchmark  # noqa: E402
from runtime.haproxy_check import haproxy_binary  # noqa: E402


def make_config(backends: int, servers: int = 5) -> str:
    out = [
        "global\n    maxconn 200000\n\n",
        "defaults\n    mode http\n    timeout connect 5s\n    timeout client 30s\n",
        "    timeout server 30s\n\n",
        "frontend fe_main\n    bind 127.0.0.1:18080\n",
    ]
    for index in range(backends):
        out.append(f"    acl host_{index} hdr(host) -i app{index}.example.com\n")
        out.append(f"    use_backend be_{index} if host_{index}\n")
    out.append("    default_backend be_0\n")
    for index in range(backends):
        out.append(
            f"\nbackend be_{index}\n    balance roundrobin\n"
            "    cookie SRV insert indirect nocache\n    option httpchk GET /health\n"
        )
        for server in range(servers):
            address = f"10.{index // 250 % 256}.{index % 250}.{server + 1}:8080"
            out.append(f"    server s{server} {address} check cookie s{server} weight 10\n")
    return "".join(out)


def breakdown(path: str, backends: int, servers: int = 5) -> str:
    """Import, parse and lint times inside one fresh interpreter."""
    code = "\n".join(
        [
            "import sys, time",
            "t0 = time.perf_counter()",
            "from grammar.parser import parse",
            "from grammar.lint import lint_config",
            "t1 = time.perf_counter()",
            "text = open(sys.argv[1], encoding='utf-8').read()",
            "config = parse(text)",
            "t2 = time.perf_counter()",
            "findings = lint_config(config, text=text)",
            "t3 = time.perf_counter()",
            "sections = len(config.sections)",
            "found = sum(type(s).__name__ == 'Server' for x in config.sections for s in x.body)",
            "print(f'{sections} {found}')",
            "print(f'import {t1 - t0:.2f} s, read+parse {t2 - t1:.2f} s, '",
            "      f'lint {t3 - t2:.2f} s, {len(findings)} findings')",
        ]
    )
    result = subprocess.run(
        [sys.executable, "-c", code, path], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise BenchmarkFailed(
            f"the in-process breakdown exited {result.returncode}:\n{result.stderr.strip()[-2000:]}"
        )
    counts, figures = result.stdout.strip().splitlines()
    sections, found = map(int, counts.split())
    if sections != backends + 3 or found != backends * servers:
        raise BenchmarkFailed(
            f"the parse found {sections} sections and {found} servers; expected "
            f"{backends + 3} and {backends * servers}"
        )
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backends", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    haproxy = haproxy_binary()
    if haproxy is None:
        raise BenchmarkFailed("haproxy is not installed (set LAMBDA_REGISTRY_HAPROXY)")
    text = make_config(args.backends)
    with tempfile.TemporaryDirectory(prefix="lint-bench-") as directory:
        path = os.path.join(directory, "haproxy.cfg")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        lines = text.count("\n")
        python = sys.executable
        commands = {
            "haproxy -c": [haproxy, "-c", "-f", path],
            "lambda-registry lint": [python, "-m", "runtime.cli", "lint", path],
        }
        results = {}
        for name, argv in commands.items():
            cwd = str(ROOT) if argv[0] == python else directory
            seconds, memory, runs = best(argv, args.repeat, cwd)
            if name != "haproxy -c" and not all("1 file checked" in r.stderr for r in runs):
                raise BenchmarkFailed(f"{name} did not report 1 file checked:\n{runs[-1].stderr}")
            results[name] = (seconds, memory, runs[-1].exit_code)
        print(f"{args.backends} backends x 5 servers, {lines} lines, best of {args.repeat}")
        header = ("command", "seconds", "MiB", "exit", "time ratio", "mem ratio")
        print("{:<24} {:>8} {:>8} {:>5} {:>11} {:>10}".format(*header))
        base_time, base_memory, _ = results["haproxy -c"]
        for name, (seconds, memory, code) in results.items():
            print(
                f"{name:<24} {seconds:>8.2f} {memory / 1024:>8.1f} {code:>5} "
                f"{seconds / base_time:>11.2f} {memory / base_memory:>10.2f}"
            )
        print("in-process:", breakdown(path, args.backends))
    return 0


if __name__ == "__main__":
    sys.exit(run_benchmark("lint_bench", main))
