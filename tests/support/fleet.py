"""Fleet-mode reports and what the emitted config routes, for the registry's fleet tests."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any


class Clock:
    """The registry's clock, set by the test."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def container(cid: str, ip: str, created: str | None = None) -> dict[str, Any]:
    entry = {"id": cid, "ip": ip}
    if created:
        entry["created"] = created
    return entry


def servers(text: str) -> dict[str, list[str]]:
    """backend -> its 'server' lines' names and addresses, from the emitted config."""
    found: dict[str, list[str]] = {}
    backend = None
    for line in text.splitlines():
        if line.startswith("backend "):
            backend = line.split()[1]
            found[backend] = []
        elif backend and line.strip().startswith("server ") and not line.endswith(" disabled"):
            words = line.split()  # a free slot (``disabled``) routes nothing
            found[backend].append(f"{words[1]} {words[2]}")
    return found


Accepts = Callable[[str | Mapping[str, str]], None]
