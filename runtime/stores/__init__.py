"""Where the registry remembers services between calls.

A store applies one reconcile to one table as a unit: ``update`` hands the stored services to
``decide`` and persists what it returns, or nothing at all. If ``decide`` raises (say the
round trip fails), nothing is stored. Persistent stores make concurrent calls on one table
serialisable, so no update is ever lost:

* ``MemoryStore``: a dict behind a lock, for tests and stateless library use;
* ``SQLiteStore`` (``runtime.sqlite_store``, the embedded default): one file, ``BEGIN
  IMMEDIATE`` transactions, so concurrent processes queue for the write lock;
* ``DynamoDBStore`` (``runtime.dynamodb_store``): one item per service, a version item made
  the condition of every transaction; ``decide`` is run again when another writer got there
  first, a bounded number of times.

A store that fails raises ``StoreError`` (``ConflictError`` when concurrent writers kept
winning until the retries ran out); the table is then as it was before the call.

``open_store`` turns a spec (``memory``, ``sqlite``, ``sqlite:PATH``, ``dynamodb``) into a
store. The SQLite and DynamoDB modules are imported only when asked for, so a caller that
never uses DynamoDB never imports boto3.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from compiler.errors import LocatedError, OptionsError

if TYPE_CHECKING:
    from compiler.models import Service
    from runtime.config import StoreSettings
    from runtime.reconcile import Reconciled

Decide = Callable[[Mapping[str, "Service"]], "Reconciled"]
StoreKind = Literal["memory", "sqlite", "dynamodb"]

STORE_ENV = "LAMBDA_REGISTRY_STORE"


class StoreError(LocatedError):
    """The state store failed. Unless the message says otherwise, nothing was changed."""


class ConflictError(StoreError):
    """Concurrent calls on the same table kept winning until the retries ran out."""


class Store(Protocol):
    """One small protocol for every store; ``label`` names it in messages (``sqlite:PATH``)."""

    @property
    def label(self) -> str: ...

    def update(self, table: str, decide: Decide) -> Reconciled:
        """Reconcile ``table`` atomically: delete ``result.delete``, then store
        ``result.store``. ``decide`` may be called more than once (after a conflict); only
        the last call's result is persisted and returned."""
        ...

    def services(self, table: str) -> dict[str, Service]:
        """What the table holds now."""
        ...

    def clear(self, table: str) -> int:
        """Forget every service of ``table``; return how many there were."""
        ...


@dataclass(frozen=True, slots=True)
class Changes:
    """What a reconcile changes in a table: the services to write and the names to delete."""

    put: tuple[Service, ...]
    delete: tuple[str, ...]

    def __bool__(self) -> bool:
        return bool(self.put or self.delete)


def changes(current: Mapping[str, Service], result: Reconciled) -> Changes:
    """The writes that turn ``current`` into ``current - result.delete + result.store``.

    Services equal to what is stored are not written again; a name deleted and stored in
    the same call (cleansed, then re-created from its candidate) is simply written.
    """
    stored_names = {service.name for service in result.store}
    put = tuple(service for service in result.store if current.get(service.name) != service)
    delete = tuple(
        sorted(name for name in set(result.delete) if name in current and name not in stored_names)
    )
    return Changes(put, delete)


def apply(current: Mapping[str, Service], result: Reconciled) -> dict[str, Service]:
    """The table after ``result``: ``current - result.delete + result.store``."""
    table = {name: service for name, service in current.items() if name not in result.delete}
    table.update((service.name, service) for service in result.store)
    return table


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

    def update(self, table: str, decide: Decide) -> Reconciled:
        with self._lock:
            current = {} if self._ephemeral else self._tables.get(table, {})
            result = decide(dict(current))
            if not self._ephemeral:
                self._tables[table] = apply(current, result)
            return result

    def services(self, table: str) -> dict[str, Service]:
        with self._lock:
            return dict(self._tables.get(table, {}))

    def clear(self, table: str) -> int:
        with self._lock:
            return len(self._tables.pop(table, {}))


@dataclass(frozen=True, slots=True)
class StoreSpec:
    """A parsed ``--store`` value."""

    kind: StoreKind
    path: Path | None = None  # SQLite only

    def __str__(self) -> str:
        return f"sqlite:{self.path}" if self.kind == "sqlite" else self.kind


def default_sqlite_path(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_STATE_HOME/lambda-registry/state.db``, by default under ``~/.local/state``.

    As the XDG spec says, an empty or relative ``XDG_STATE_HOME`` is ignored.
    """
    env = os.environ if environ is None else environ
    state_home = env.get("XDG_STATE_HOME", "")
    base = Path(state_home) if os.path.isabs(state_home) else Path.home() / ".local" / "state"
    return base / "lambda-registry" / "state.db"


def parse_store_spec(
    spec: str, *, source: str = "--store", environ: Mapping[str, str] | None = None
) -> StoreSpec:
    """``memory`` | ``sqlite`` (the default path) | ``sqlite:PATH`` | ``dynamodb``."""
    text = spec.strip()
    if text == "memory":
        return StoreSpec("memory")
    if text == "dynamodb":
        return StoreSpec("dynamodb")
    if text == "sqlite":
        return StoreSpec("sqlite", default_sqlite_path(environ))
    if text.startswith("sqlite:"):
        path = text.removeprefix("sqlite:")
        if not path:
            raise OptionsError(
                "'sqlite:' needs a path, e.g. sqlite:/var/lib/registry.db", file=source
            )
        return StoreSpec("sqlite", Path(path).expanduser())
    raise OptionsError(
        f"unknown store {spec!r}: expected memory, sqlite, sqlite:PATH or dynamodb", file=source
    )


def open_store(
    spec: str | StoreSpec,
    *,
    settings: StoreSettings | None = None,
    source: str = "--store",
) -> Store:
    """The store a spec names. ``memory`` remembers nothing between calls."""
    from runtime.config import StoreSettings

    parsed = parse_store_spec(spec, source=source) if isinstance(spec, str) else spec
    settings = settings or StoreSettings.from_env(os.environ)
    if parsed.kind == "memory":
        return MemoryStore(ephemeral=True)
    if parsed.kind == "sqlite":
        from runtime.sqlite_store import SQLiteStore

        assert parsed.path is not None
        return SQLiteStore(parsed.path, timeout=settings.sqlite_timeout)
    from runtime.dynamodb_store import DynamoDBStore

    return DynamoDBStore(create_tables=settings.create_tables, max_attempts=settings.max_attempts)
