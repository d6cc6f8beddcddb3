"""The embedded store: every table in one SQLite file (stdlib ``sqlite3``).

Schema (version 1, in ``PRAGMA user_version``)::

    CREATE TABLE services (
        tbl     TEXT NOT NULL,  -- the payload's table: a key column, never an SQL identifier
        name    TEXT NOT NULL,  -- the service name
        service TEXT NOT NULL,  -- the service as JSON: {name, mode, predicate, cookie, containers}
        PRIMARY KEY (tbl, name)
    ) WITHOUT ROWID

Version 2 added ``host_reports`` (fleet mode), version 3 ``records`` (Cosmonaut's ACME
account, leases and certificates). The file is owner-only (0600, its folder 0700 when this
store creates it; a looser file is tightened at its next write): it holds password hashes,
header values and maybe keys.

Concurrency: ``update`` opens ``BEGIN IMMEDIATE`` before it reads, which takes the database's
write lock. A second process (or thread) waits for it (up to ``timeout`` seconds, SQLite's
busy timeout), then reads what the first one committed. No update is lost, and ``decide``
runs exactly once per call. A lock still held when the timeout expires is a
``ConflictError``. Any error (``decide`` raising included) rolls the transaction back.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from pydantic import ValidationError

from compiler.models import HostReport, Service
from runtime.stores import (
    ConflictError,
    D,
    Decide,
    H,
    HostDecide,
    Record,
    StoreError,
    TableModeError,
    changes,
)
from runtime.stores.reports import dump_report, load_report

SCHEMA_VERSION = 3  # 2: host reports (fleet mode); 3: records
_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS services (
    tbl TEXT NOT NULL,
    name TEXT NOT NULL,
    service TEXT NOT NULL,
    PRIMARY KEY (tbl, name)
) WITHOUT ROWID
""",
    """
CREATE TABLE IF NOT EXISTS host_reports (
    tbl TEXT NOT NULL,
    host TEXT NOT NULL,
    report TEXT NOT NULL,
    PRIMARY KEY (tbl, host)
) WITHOUT ROWID
""",
    """
CREATE TABLE IF NOT EXISTS records (
    tbl TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    revision INTEGER NOT NULL,
    PRIMARY KEY (tbl, key)
) WITHOUT ROWID
""",
)


class SQLiteStore:
    """Services of every table in the SQLite file at ``path`` (created on first write)."""

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.timeout = timeout

    @property
    def label(self) -> str:
        return f"sqlite:{self.path}"

    def update(self, table: str, decide: Decide[D]) -> D:
        with self._transaction("cannot update table " + repr(table)) as connection:
            if self._load_hosts(connection, table):
                raise TableModeError.for_table(table, has_hosts=True, label=self.label)
            current = self._load(connection, table)
            result = decide(dict(current))
            todo = changes(current, result)
            connection.executemany(
                "DELETE FROM services WHERE tbl = ? AND name = ?",
                [(table, name) for name in todo.delete],
            )
            connection.executemany(
                "INSERT OR REPLACE INTO services (tbl, name, service) VALUES (?, ?, ?)",
                [(table, service.name, _dump(service)) for service in todo.put],
            )
        return result

    @contextlib.contextmanager
    def _transaction(self, doing: str) -> Iterator[sqlite3.Connection]:
        """A write transaction: ``BEGIN IMMEDIATE`` (the database's write lock, so concurrent
        calls queue), the schema made current, ``COMMIT`` at the end, ``ROLLBACK`` on any
        error (``decide`` raising included)."""
        connection = self._connect(create=True)
        try:
            self._begin(connection)
            try:
                self._ensure_schema(connection)
                yield connection
                connection.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    connection.execute("ROLLBACK")
                raise
        except sqlite3.Error as error:
            raise self._error(error, doing) from None
        finally:
            connection.close()

    def services(self, table: str) -> dict[str, Service]:
        if not self.path.exists():
            return {}
        connection = self._connect(create=False)
        try:
            if not self._has_schema(connection):
                return {}
            return self._load(connection, table)
        except sqlite3.Error as error:
            raise self._error(error, "cannot read table " + repr(table)) from None
        finally:
            connection.close()

    def clear(self, table: str) -> int:
        if not self.path.exists():
            return 0
        connection = self._connect(create=False, read_only=False)
        try:
            self._begin(connection)
            try:
                if not self._has_schema(connection):
                    connection.execute("ROLLBACK")
                    return 0
                cursor = connection.execute("DELETE FROM services WHERE tbl = ?", (table,))
                removed = cursor.rowcount
                if self._has_hosts_table(connection):
                    cursor = connection.execute("DELETE FROM host_reports WHERE tbl = ?", (table,))
                    removed += cursor.rowcount
                connection.execute("COMMIT")
                return removed
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    connection.execute("ROLLBACK")
                raise
        except sqlite3.Error as error:
            raise self._error(error, "cannot clear table " + repr(table)) from None
        finally:
            connection.close()

    # -- fleet mode --------------------------------------------------------------------------

    def update_hosts(self, table: str, decide: HostDecide[H]) -> H:
        # The write lock serialises the reports of one table; each writes its own row.
        with self._transaction("cannot update table " + repr(table)) as connection:
            if self._load(connection, table):
                raise TableModeError.for_table(table, has_hosts=False, label=self.label)
            decision = decide(self._load_hosts(connection, table))
            connection.executemany(
                "DELETE FROM host_reports WHERE tbl = ? AND host = ?",
                [(table, host) for host in decision.delete],
            )
            if decision.report is not None:
                connection.execute(
                    "INSERT OR REPLACE INTO host_reports (tbl, host, report) VALUES (?, ?, ?)",
                    (table, decision.report.host, dump_report(decision.report)),
                )
        return decision

    def hosts(self, table: str) -> dict[str, HostReport]:
        if not self.path.exists():
            return {}
        connection = self._connect(create=False)
        try:
            return self._load_hosts(connection, table)
        except sqlite3.Error as error:
            raise self._error(error, "cannot read table " + repr(table)) from None
        finally:
            connection.close()

    def forget_host(self, table: str, host: str) -> bool:
        if not self.path.exists():
            return False
        connection = self._connect(create=False, read_only=False)
        try:
            if not self._has_hosts_table(connection):
                return False
            cursor = connection.execute(
                "DELETE FROM host_reports WHERE tbl = ? AND host = ?", (table, host)
            )
            return cursor.rowcount > 0
        except sqlite3.Error as error:
            raise self._error(error, "cannot forget a host of table " + repr(table)) from None
        finally:
            connection.close()

    def _has_hosts_table(self, connection: sqlite3.Connection) -> bool:
        row = connection.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'host_reports'"
        ).fetchone()
        return row is not None

    def _load_hosts(self, connection: sqlite3.Connection, table: str) -> dict[str, HostReport]:
        if not self._has_hosts_table(connection):
            return {}
        rows = connection.execute(
            "SELECT host, report FROM host_reports WHERE tbl = ? ORDER BY host", (table,)
        ).fetchall()
        return {
            host: load_report(text, table=table, host=host, label=self.label) for host, text in rows
        }

    # -- records -----------------------------------------------------------------------------

    def record(self, table: str, key: str) -> Record | None:
        if not self.path.exists():
            return None
        connection = self._connect(create=False)
        try:
            if not self._has_records_table(connection):
                return None
            row = connection.execute(
                "SELECT value, revision FROM records WHERE tbl = ? AND key = ?", (table, key)
            ).fetchone()
        except sqlite3.Error as error:
            raise self._error(error, f"cannot read record {key!r} of table {table!r}") from None
        finally:
            connection.close()
        return Record(str(row[0]), int(row[1])) if row else None

    def records(self, table: str, prefix: str) -> dict[str, Record]:
        if not self.path.exists():
            return {}
        connection = self._connect(create=False)
        try:
            if not self._has_records_table(connection):
                return {}
            rows = connection.execute(
                "SELECT key, value, revision FROM records WHERE tbl = ? AND substr(key, 1, ?) = ?",
                (table, len(prefix), prefix),
            ).fetchall()
        except sqlite3.Error as error:
            raise self._error(error, f"cannot read the records of table {table!r}") from None
        finally:
            connection.close()
        return {str(key): Record(str(value), int(revision)) for key, value, revision in rows}

    def swap_record(self, table: str, key: str, expected: int, value: str | None) -> bool:
        with self._transaction(f"cannot write record {key!r} of table {table!r}") as connection:
            row = connection.execute(
                "SELECT revision FROM records WHERE tbl = ? AND key = ?", (table, key)
            ).fetchone()
            if (int(row[0]) if row else 0) != expected:
                return False
            if value is None:
                connection.execute("DELETE FROM records WHERE tbl = ? AND key = ?", (table, key))
            else:
                connection.execute(
                    "INSERT OR REPLACE INTO records (tbl, key, value, revision) "
                    "VALUES (?, ?, ?, ?)",
                    (table, key, value, expected + 1),
                )
        return True

    def _private(self) -> None:
        """Owner-only, also for a file made looser (before it held records, say)."""
        with contextlib.suppress(OSError):
            mode = self.path.stat().st_mode & 0o777
            if mode & 0o077:
                self.path.chmod(mode & 0o700)  # the owner's own bits stay (read-only, say)

    def _has_records_table(self, connection: sqlite3.Connection) -> bool:
        row = connection.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'records'"
        ).fetchone()
        return row is not None

    # -- internals ---------------------------------------------------------------------------

    def _connect(self, *, create: bool, read_only: bool = True) -> sqlite3.Connection:
        if create:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            except OSError as error:
                raise StoreError(
                    f"cannot create the state directory: {error.strerror or error}; "
                    "nothing was changed",
                    file=self.label,
                ) from None
            with contextlib.suppress(FileExistsError, OSError):
                # Owner-only from the start: records may hold private keys.
                os.close(os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            # Services hold password hashes and header values: a file an older release made
            # 0644 is tightened at its next write.
            self._private()
        try:
            if create or not read_only:
                # isolation_level=None: we issue BEGIN/COMMIT/ROLLBACK ourselves.
                connection = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
            else:
                uri = self.path.resolve().as_uri() + "?mode=ro"
                connection = sqlite3.connect(
                    uri, timeout=self.timeout, isolation_level=None, uri=True
                )
        except sqlite3.Error as error:
            raise self._error(error, "cannot open the state database") from None
        return connection

    def _begin(self, connection: sqlite3.Connection) -> None:
        connection.execute("BEGIN IMMEDIATE")

    def _ensure_schema(self, connection: sqlite3.Connection) -> None:
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"the state database has schema version {version}; this program knows "
                f"version {SCHEMA_VERSION} at most (was it written by a newer release?)",
                file=self.label,
            )
        if version < SCHEMA_VERSION:
            for statement in _SCHEMA:
                connection.execute(statement)
            connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _has_schema(self, connection: sqlite3.Connection) -> bool:
        row = connection.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'services'"
        ).fetchone()
        return row is not None

    def _load(self, connection: sqlite3.Connection, table: str) -> dict[str, Service]:
        rows = connection.execute(
            "SELECT name, service FROM services WHERE tbl = ? ORDER BY name", (table,)
        ).fetchall()
        services: dict[str, Service] = {}
        for name, text in rows:
            try:
                service = Service.model_validate(json.loads(text))
            except (ValueError, ValidationError) as error:
                raise StoreError(
                    f"stored service {name!r} of table {table!r} is unreadable: "
                    f"{_first_line(error)}; repair or clear the table "
                    f"(lambda-registry state clear {table} --yes)",
                    file=self.label,
                ) from None
            services[service.name] = service
        return services

    def _error(self, error: sqlite3.Error, doing: str) -> StoreError:
        message = str(error)
        busy = isinstance(error, sqlite3.OperationalError) and (
            "locked" in message or "busy" in message
        )
        if busy:
            return ConflictError(
                f"{doing}: the database stayed locked by another process for "
                f"{self.timeout:g} s; nothing was changed",
                file=self.label,
            )
        if "readonly" in message or "read-only" in message:
            reason = "the database or its directory is read-only"
        elif "unable to open" in message:
            reason = "the database file cannot be opened (missing directory or no permission)"
        else:
            reason = f"SQLite said: {message}"
        return StoreError(f"{doing}: {reason}; nothing was changed", file=self.label)


def _dump(service: Service) -> str:
    return json.dumps(service.stored_form(), separators=(",", ":"), sort_keys=True)


def _first_line(error: Exception) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__
