"""Where the registry remembers services between calls.

A store applies one reconcile to one table as a unit: ``update`` hands the stored services to
``decide`` and persists what it returns, or nothing at all. Persistent stores (SQLite,
DynamoDB) retry ``decide`` when another writer got there first.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

from compiler.models import Service
from runtime.reconcile import Reconciled

Decide = Callable[[Mapping[str, Service]], Reconciled]


class Store(Protocol):
    def update(self, table: str, decide: Decide) -> Reconciled:
        """Reconcile ``table`` atomically: store ``result.store``, delete ``result.delete``."""
        ...

    def services(self, table: str) -> dict[str, Service]:
        """What the table holds now."""
        ...

    def clear(self, table: str) -> int:
        """Forget every service of ``table``; return how many there were."""
        ...


class MemoryStore:
    """Keeps tables in a dict. ``ephemeral=True`` forgets everything after each call."""

    def __init__(self, *, ephemeral: bool = False) -> None:
        self._tables: dict[str, dict[str, Service]] = {}
        self._ephemeral = ephemeral

    def update(self, table: str, decide: Decide) -> Reconciled:
        current = {} if self._ephemeral else self._tables.get(table, {})
        result = decide(dict(current))
        if not self._ephemeral:
            kept = {name: s for name, s in current.items() if name not in result.delete}
            kept.update((service.name, service) for service in result.store)
            self._tables[table] = kept
        return result

    def services(self, table: str) -> dict[str, Service]:
        return dict(self._tables.get(table, {}))

    def clear(self, table: str) -> int:
        return len(self._tables.pop(table, {}))
