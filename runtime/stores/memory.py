"""The in-process store: tables in a dict, for tests and stateless library use."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from runtime.stores import D, Decide, apply

if TYPE_CHECKING:
    from compiler.models import Service


class MemoryStore:
    """Keeps tables in a dict. ``ephemeral=True`` forgets everything after each call.

    Thread-safe: ``update`` holds a lock while ``decide`` runs, so concurrent threads never
    lose an update.
    """

    def __init__(self, *, ephemeral: bool = False) -> None:
        self._tables: dict[str, dict[str, Service]] = {}
        self._ephemeral = ephemeral
        self._lock = threading.Lock()

    @property
    def label(self) -> str:
        return "memory"

    def update(self, table: str, decide: Decide[D]) -> D:
        with self._lock:
            current = {} if self._ephemeral else self._tables.get(table, {})
            decision = decide(dict(current))
            if not self._ephemeral:
                self._tables[table] = apply(current, decision)
            return decision

    def services(self, table: str) -> dict[str, Service]:
        with self._lock:
            return dict(self._tables.get(table, {}))

    def clear(self, table: str) -> int:
        with self._lock:
            return len(self._tables.pop(table, {}))
