"""Payloads and checks the store tests share."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from compiler.models import Service

SEED_SERVERS = [("app1", ["a23nj53h3j4"]), ("app2", ["das843j3h3k", "fds32k4354f"])]


SECOND_SERVERS = [
    ("app1", ["a23nj53h3j4", "jk3243j54jl"]),
    ("app2", ["das843j3h3k", "fds32k4354f"]),
]


def statements(text: str) -> list[str]:
    """Non-blank lines without indentation: the seed's rendering lost its indentation."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def servers(services: Sequence[Service]) -> list[tuple[str, list[str]]]:
    return [(s.name, [c.id for c in s.containers]) for s in services]


def concurrent_payload(index: int, count: int = 16, table: str = "busy") -> dict[str, Any]:
    """Call ``index`` of ``count`` from one host: the same full running list, one candidate."""
    return {
        "table": table,
        "running": [
            {"serviceName": f"svc{n:02d}", "id": f"c{n:02d}", "ip": f"10.0.1.{n + 1}:80"}
            for n in range(count)
        ],
        "candidates": [
            {
                "serviceName": f"svc{index:02d}",
                "predicate": f"svc{index:02d}.example.com",
                "containers": [{"id": f"c{index:02d}", "ip": f"10.0.1.{index + 1}:80"}],
            }
        ],
    }


def assert_serialised(outputs: Sequence[str], count: int = 16) -> None:
    """Each call added one service to what the one before it left: 1, 2, ..., count backends."""
    backends = sorted(text.count("\nbackend ") for text in outputs)
    assert backends == list(range(1, count + 1))
    final = max(outputs, key=lambda text: text.count("\nbackend "))
    for n in range(count):
        assert f"\nbackend svc{n:02d}\n" in final
        assert f"server c{n:02d} 10.0.1.{n + 1}:80" in final


@contextlib.contextmanager
def lock_held_by_another_process(database: Path) -> Iterator[None]:
    """Another process holds an exclusive lock on ``database`` until the block ends."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys\n"
            f"c = sqlite3.connect({str(database)!r}, isolation_level=None)\n"
            "c.execute('BEGIN EXCLUSIVE')\n"
            "print('locked', flush=True)\n"
            "sys.stdin.read()\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        yield
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)
