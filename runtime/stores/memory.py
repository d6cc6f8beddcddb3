"""The in-process store: tables in a dict, for tests and stateless library use."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from runtime.stores import D, Decide, H, HostDecide, Record, TableModeError, apply

if TYPE_CHECKING:
    from compiler.models import HostReport, Service


class MemoryStore:
    """Keeps tables in a dict. ``ephemeral=True`` forgets everything after each call.

    Thread-safe: ``update`` holds a lock while ``decide`` runs, so concurrent threads never
    lose an update.
    """

    def __init__(self, *, ephemeral: bool = False) -> None:
        self._tables: dict[str, dict[str, Service]] = {}
        self._hosts: dict[str, dict[str, HostReport]] = {}
        self._records: dict[tuple[str, str], Record] = {}
        self._ephemeral = ephemeral
        self._lock = threading.Lock()

    @property
    def label(self) -> str:
        return "memory"

    def update(self, table: str, decide: Decide[D]) -> D:
        with self._lock:
            if self._hosts.get(table):
                raise TableModeError.for_table(table, has_hosts=True, label=self.label)
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
            return len(self._tables.pop(table, {})) + len(self._hosts.pop(table, {}))

    def update_hosts(self, table: str, decide: HostDecide[H]) -> H:
        with self._lock:
            if self._tables.get(table):
                raise TableModeError.for_table(table, has_hosts=False, label=self.label)
            current = {} if self._ephemeral else self._hosts.get(table, {})
            decision = decide(dict(current))
            if not self._ephemeral:
                hosts = {h: r for h, r in current.items() if h not in decision.delete}
                if decision.report is not None:
                    hosts[decision.report.host] = decision.report
                self._hosts[table] = hosts
            return decision

    def hosts(self, table: str) -> dict[str, HostReport]:
        with self._lock:
            return dict(self._hosts.get(table, {}))

    def forget_host(self, table: str, host: str) -> bool:
        with self._lock:
            return self._hosts.get(table, {}).pop(host, None) is not None

    def record(self, table: str, key: str) -> Record | None:
        with self._lock:
            return self._records.get((table, key))

    def records(self, table: str, prefix: str) -> dict[str, Record]:
        with self._lock:
            return {
                k: r for (t, k), r in self._records.items() if t == table and k.startswith(prefix)
            }

    def swap_record(self, table: str, key: str, expected: int, value: str | None) -> bool:
        with self._lock:
            current = self._records.get((table, key))
            if (current.revision if current else 0) != expected:
                return False
            if value is None:
                self._records.pop((table, key), None)
            else:
                self._records[(table, key)] = Record(value, expected + 1)
            return True
