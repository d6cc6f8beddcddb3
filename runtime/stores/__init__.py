"""Where the registry remembers services between calls.

A store applies one decision to one table as a unit: ``update`` hands the stored services to
``decide``, persists the ``Decision`` it returns (what to store, what to delete) or nothing at
all, and returns that decision. If ``decide`` raises (say the round trip fails), nothing is
stored.
Persistent stores make concurrent calls on one table serialisable, so no update is ever lost:

* ``MemoryStore`` (``runtime.stores.memory``): a dict behind a lock, for tests and stateless
  library use;
* ``SQLiteStore`` (``runtime.stores.sqlite``, the embedded default): one file, ``BEGIN
  IMMEDIATE`` transactions, so concurrent processes queue for the write lock;
* ``DynamoDBStore`` (``runtime.stores.dynamodb``): one item per service, a version item made
  the condition of every transaction; ``decide`` is run again when another writer got there
  first, a bounded number of times.

A store that fails raises ``StoreError`` (``ConflictError`` when concurrent writers kept
winning until the retries ran out); the table is then as it was before the call.

A consumer asks only for the role it uses: ``ServiceStore`` (services), ``ReportStore`` (host
reports), ``RecordStore`` (records), ``RegistryStore`` (a table of either kind); ``Store`` is
all of them, which every store implements.

Beside services and host reports, a store keeps *records*: small named documents of a table
(``record``, ``records``, ``swap_record``), each with a revision, written only by
compare-and-swap. Cosmonaut keeps its ACME account, leases and certificates in them, so that
every host of a fleet sees the same ones (``cosmonaut.acme.vault``).

Which store a caller gets (a spec such as ``sqlite:PATH``, the environment, the default) is
decided in one place: ``runtime.stores.select``. The SQLite and DynamoDB modules are imported
only when asked for, so a caller that never uses DynamoDB never imports boto3.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar

from compiler.errors import LocatedError

if TYPE_CHECKING:
    from compiler.models import HostReport, Service


class StoreError(LocatedError):
    """The state store failed. Unless the message says otherwise, nothing was changed."""


class ConflictError(StoreError):
    """Concurrent calls on the same table kept winning until the retries ran out."""


class TableModeError(StoreError):
    """A host-less payload on a table of host reports, or the reverse. Nothing was changed."""

    @classmethod
    def for_table(cls, table: str, *, has_hosts: bool, label: str) -> TableModeError:
        if has_hosts:
            message = (
                f"table {table!r} holds host reports (fleet mode): send payloads with a "
                "'host', or use another table"
            )
        else:
            message = (
                f"table {table!r} holds services from host-less payloads: a payload with a "
                "'host' needs a table of its own (or clear this one first)"
            )
        return cls(message + "; nothing was changed", file=label)


class Decision(Protocol):
    """What ``decide`` returns about one table: the services to store and the names to
    delete. A name both deleted and stored (cleansed, then re-created) is stored."""

    @property
    def store(self) -> Sequence[Service]: ...

    @property
    def delete(self) -> Sequence[str]: ...


D = TypeVar("D", bound=Decision)
Decide = Callable[[Mapping[str, "Service"]], D]


class HostDecision(Protocol):
    """What a fleet ``decide`` returns: the reporting host's new report (written only over the
    report it was given) and the expired hosts to remove."""

    @property
    def report(self) -> HostReport | None: ...

    @property
    def delete(self) -> Sequence[str]: ...


H = TypeVar("H", bound=HostDecision)
HostDecide = Callable[[Mapping[str, "HostReport"]], H]


@dataclass(frozen=True, slots=True)
class Record:
    """A named document of a table and its revision (1 for the first write, then +1)."""

    value: str
    revision: int


class ServiceStore(Protocol):
    """Services of host-less payloads, one decision per call; ``label`` names the store in
    messages (``sqlite:PATH``)."""

    @property
    def label(self) -> str: ...

    def update(self, table: str, decide: Decide[D]) -> D:
        """Apply ``decide``'s decision to ``table`` atomically. ``decide`` may be called
        more than once (after a conflict); only the last call's decision is persisted and
        returned."""
        ...

    def services(self, table: str) -> dict[str, Service]:
        """What the table holds now."""
        ...


class ReportStore(Protocol):
    """Host reports (fleet mode): each host writes only its own."""

    @property
    def label(self) -> str: ...

    def update_hosts(self, table: str, decide: HostDecide[H]) -> H:
        """Fleet mode: hand ``decide`` every host report of ``table`` and write the new report
        it returns, conditional on that host's report being the one ``decide`` saw (so
        reports of different hosts never conflict); remove ``delete``'s hosts."""
        ...

    def hosts(self, table: str) -> dict[str, HostReport]:
        """Every host report of ``table``, expired or not."""
        ...

    def forget_host(self, table: str, host: str) -> bool:
        """Remove one host's report at once; ``False`` when there was none."""
        ...


class RecordStore(Protocol):
    """Records: small named documents of a table, written only by compare-and-swap (ACME)."""

    @property
    def label(self) -> str: ...

    def record(self, table: str, key: str) -> Record | None:
        """The record ``key`` of ``table``, or None."""
        ...

    def records(self, table: str, prefix: str) -> dict[str, Record]:
        """Every record of ``table`` whose key starts with ``prefix``."""
        ...

    def swap_record(self, table: str, key: str, expected: int, value: str | None) -> bool:
        """Write ``value`` (None: delete) if the record's revision is still ``expected`` (0:
        the record must not exist); ``False``, changing nothing, when it is not."""
        ...


class RegistryStore(ServiceStore, ReportStore, Protocol):
    """A registry table of either kind, services or host reports: what compiling, rendering
    and ``lambda-registry state`` use."""

    def clear(self, table: str) -> int:
        """Forget every service (or host report) of ``table``; return how many there were."""
        ...


class Store(RegistryStore, RecordStore, Protocol):
    """Every role at once: what each store implements, and what ``select`` opens."""


@dataclass(frozen=True, slots=True)
class Changes:
    """The writes that carry out a decision: services to put and names to delete."""

    put: tuple[Service, ...]
    delete: tuple[str, ...]

    def __bool__(self) -> bool:
        return bool(self.put or self.delete)


def changes(current: Mapping[str, Service], decision: Decision) -> Changes:
    """The writes that turn ``current`` into ``current - delete + store``.

    Services equal to what is stored are not written again; a name deleted and stored in
    the same call is simply written.
    """
    stored_names = {service.name for service in decision.store}
    put = tuple(service for service in decision.store if current.get(service.name) != service)
    delete = tuple(
        sorted(
            name for name in set(decision.delete) if name in current and name not in stored_names
        )
    )
    return Changes(put, delete)


def apply(current: Mapping[str, Service], decision: Decision) -> dict[str, Service]:
    """The table after ``decision``: ``current - delete + store``."""
    table = {name: service for name, service in current.items() if name not in decision.delete}
    table.update((service.name, service) for service in decision.store)
    return table
