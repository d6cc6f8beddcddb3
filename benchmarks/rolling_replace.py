"""Rolling replace under load, several runs: failed and total requests per app and client kind.

    python benchmarks/rolling_replace.py [--runs 3] [--json]

Runs the end-to-end test ``test_rolling_replace_under_load_fails_no_request`` (both app kinds:
one that finishes its in-flight work on SIGTERM, one that exits at once) ``--runs`` times on
the engine ``DOCKER_HOST`` names, with the default render options on the Docker Engine (on
Podman, the test sets a 1 s connect timeout and says why). Each run replaces the 3 containers
of a service one by one (start the new one, ``docker stop`` the old one with a 10 s grace
period) while two clients send requests back to back: one opens a connection per request,
the other keeps one connection alive; neither ever retries. The figures come from the test's
own summary line; a failing run is reported, never dropped.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEST = "tests/e2e/test_cosmonaut_runtime.py::test_rolling_replace_under_load_fails_no_request"
_SUMMARY = re.compile(r"rolling replace under load \[([a-z-]+)\]: (\{.*?\}) \[")
_CASE = re.compile(r"test_rolling_replace_under_load_fails_no_request\[([a-z-]+)\] (PASSED|FAILED)")


def one_run() -> list[dict[str, object]]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            TEST,
            "-rP",
            "-v",
            "-p",
            "no:randomly",
            "-p",
            "no:cacheprovider",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    outcomes = dict(_CASE.findall(done.stdout))
    rows: list[dict[str, object]] = []
    for app, summary in sorted(_SUMMARY.findall(done.stdout)):
        rows.append({"app": app, "outcome": outcomes.get(app, "?"), **json.loads(summary)})
    if not rows:
        raise SystemExit(f"no figures from pytest (exit {done.returncode}):\n{done.stdout[-3000:]}")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON only")
    args = parser.parse_args()
    runs = [one_run() for _ in range(args.runs)]
    engine = os.environ.get("DOCKER_HOST", "unset")
    if args.json:
        print(json.dumps({"docker_host": engine, "runs": runs}))
        return 0
    print(f"rolling replace under load, {args.runs} runs, DOCKER_HOST={engine}")
    print("| run | app | test | fresh: failed/total | kept-alive: failed/total |")
    print("| --- | --- | --- | --- | --- |")
    totals: dict[tuple[str, str], list[int]] = {}
    for index, rows in enumerate(runs, 1):
        for row in rows:
            cells = []
            for client in ("fresh", "kept"):
                figures = row[client]
                assert isinstance(figures, dict)
                cells.append(f"{figures['failed']}/{figures['requests']}")
                total = totals.setdefault((str(row["app"]), client), [0, 0])
                total[0] += int(figures["failed"])
                total[1] += int(figures["requests"])
            print(f"| {index} | {row['app']} | {row['outcome']} | {cells[0]} | {cells[1]} |")
    for (app, client), (failed, requests) in sorted(totals.items()):
        print(f"total {app} {client}: {failed} failed of {requests}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
