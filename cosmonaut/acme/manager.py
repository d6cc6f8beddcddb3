"""When to order, renew or wait for each name's certificate, and what each host installs.

``CertificateManager`` runs on its own thread (``run``), so an order that takes seconds never
delays routing. Each round (``tick``), for every name the last pass wants:

* a stored certificate with more than a third of its lifetime left is *valid*: nothing to do,
  except telling the loop when it differs from what this host installed (another host of the
  fleet renewed it), so that a pass installs it;
* otherwise the host takes the name's lease (``Vault.take_lease``); if another host holds
  it, this one *waits* (and picks the certificate up from the vault when it appears);
* with the lease, it orders (``Orderer.order``). A failure is recorded with the CA's words
  and retried later: exponential backoff from ``retry_min`` to ``retry_max``, never sooner
  than the CA's ``Retry-After``; the host keeps the lease until then, so the fleet shares
  one backoff. Orders run one at a time; a failure for one name only costs the others the
  time that order took.

A service whose first certificate has not arrived stays on HTTP: ``hold_back`` turns its
``tls`` off in the payload until ``ready`` says the certificate is there (no redirect to a
certificate that does not exist). ``clock`` is the wall clock (unix time); tests pass their
own to make renewal due.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from compiler.errors import LocatedError
from cosmonaut import logs
from cosmonaut.acme.vault import DamagedRecord, Issued, Vault
from cosmonaut.metrics import Metrics
from runtime.backoff import Backoff
from runtime.stores import StoreError

NameState = Literal["ordering", "valid", "waiting", "failed"]
LEASE_SECONDS = 600.0  # longer than any order takes (client.ORDER_SECONDS)
WAIT_SECONDS = 2.0  # how often a host waiting for another's lease looks again (an order
# takes seconds; the sooner this host sees the certificate, the sooner every host of the fleet
# reports the service's tls alike)


class Orderer(Protocol):
    def order(self, name: str) -> Issued: ...


@dataclass(slots=True)
class NameStatus:
    name: str
    state: NameState = "ordering"
    not_after: float | None = None
    renew_at: float | None = None
    last_error: str | None = None
    next_attempt: float | None = None
    failures: int = 0
    holder: str | None = None  # who holds the lease while this host waits
    digest: str | None = None  # of the stored certificate

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state,
            "not_after": _iso(self.not_after),
            "renew_at": _iso(self.renew_at),
            "last_error": self.last_error,
            "next_attempt": _iso(self.next_attempt),
            "failures": self.failures,
            "lease_holder": self.holder,
        }


class CertificateManager:
    def __init__(
        self,
        vault: Vault,
        orderer: Orderer,
        *,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
        retry_min: float = 60.0,
        retry_max: float = 3600.0,
        notify: Callable[[str], None] | None = None,
    ) -> None:
        self.vault = vault
        self.orderer = orderer
        self.metrics = metrics or Metrics()
        self.clock = clock
        self.retry_min = retry_min
        self.retry_max = max(retry_max, retry_min)
        self.notify = notify  # (reason): ask the loop for a pass
        self._lock = threading.Lock()
        self._wanted: frozenset[str] = frozenset()
        self._status: dict[str, NameStatus] = {}
        self._backoff: dict[str, Backoff] = {}
        self._wake = threading.Event()
        self._installed: dict[str, str] = {}  # name -> digest this host's HAProxy has
        self._last_all: list[Issued] = []  # what ``ready_all`` last read
        self._order_failed_with: Issued | None = None  # the certificate an order raised over

    # -- what the passes ask ---------------------------------------------------------------

    def want(self, names: Iterable[str]) -> None:
        """The names the last pass routes with ACME; new ones are looked at at once."""
        wanted = frozenset(names)
        with self._lock:
            new = wanted - self._wanted
            self._wanted = wanted
            # A name that leaves and comes back (a container restarting in a loop) keeps its
            # status, hence its backoff: statuses are only shown for wanted names.
        if new:
            self._wake.set()

    def ready(self, name: str) -> Issued | None:
        """The stored certificate for ``name`` while it is valid (see ``ready_all``)."""
        return next((issued for issued in self.ready_all() if issued.name == name), None)

    def ready_all(self) -> list[Issued]:
        """Every valid (unexpired) certificate of the table, in one read: what this host's
        HAProxy installs (in a fleet it routes services whose containers run on other hosts
        too), and what a pass lets out of HTTP. A store down for a moment keeps the last
        list (a pass must not take HTTPS away because one read failed); a damaged record is
        left out (``Vault.certificates``). A wanted name whose status said valid but has no
        usable certificate now (deleted, damaged, expired) is ordered at once, not at a
        renewal time weeks away."""
        try:
            stored = self.vault.certificates()
        except StoreError as error:
            logs.warning("acme certificates unreadable", error=str(error))
            with self._lock:
                stored = list(self._last_all)
        with self._lock:
            self._last_all = list(stored)
            now = self.clock()
            usable = [issued for issued in stored if issued.not_after > now]
            for name in self._wanted - {issued.name for issued in usable}:
                status = self._status.get(name)
                if status is not None and status.state == "valid":
                    status.state = "ordering"
                    status.next_attempt = None
                    self._wake.set()
        return usable

    def is_installed(self, issued: Issued) -> bool:
        """Whether this host's HAProxy serves ``issued`` (as ``installed`` last said)."""
        with self._lock:
            return self._installed.get(issued.name) == issued.digest

    def installed(self, issued: Iterable[Issued]) -> None:
        """This host's HAProxy now serves ``issued`` (called after a successful apply)."""
        with self._lock:
            self._installed.update((i.name, i.digest) for i in issued)

    def status(self) -> list[dict[str, Any]]:
        with self._lock:
            return [self._status[n].as_dict() for n in sorted(self._status) if n in self._wanted]

    # -- the thread ------------------------------------------------------------------------

    def run(self, stop: threading.Event, interval: float = 10.0) -> None:
        """Tick until ``stop`` is set: every ``interval`` seconds, sooner when a name is new
        or an attempt is due."""
        while not stop.is_set():
            try:
                self.tick()
            except Exception:  # a bug must not end certificate management for every name
                logs.LOGGER.exception("acme round failed", extra={"cosmonaut_fields": {}})
            wait = interval
            due = self.next_due()
            if due is not None:
                wait = max(0.05, min(interval, due - self.clock()))
            self._wake.wait(wait)
            self._wake.clear()

    def wake(self) -> None:
        self._wake.set()

    def next_due(self) -> float | None:
        with self._lock:
            times = [
                s.next_attempt
                for s in self._status.values()
                if s.next_attempt is not None and s.name in self._wanted
            ]
        return min(times) if times else None

    def tick(self) -> None:
        """One round over the wanted names (see the module's docstring)."""
        with self._lock:
            names = sorted(self._wanted)
        for name in names:
            try:
                self._tick_name(name)
            except Exception as error:  # a bug or a surprise for one name: the others go on
                logs.LOGGER.exception(
                    "acme round failed", extra={"cosmonaut_fields": {"name": name}}
                )
                status = self._status_of(name)
                if status is not None:
                    issued, self._order_failed_with = self._order_failed_with, None
                    why = f"internal error: {type(error).__name__}: {error}"
                    self._failed(status, why, None, issued)
                    self._lease_until(name, status.next_attempt)
        self._export()

    def _tick_name(self, name: str) -> None:
        now = self.clock()
        status = self._status_of(name)
        if status is None:
            return
        if status.next_attempt is not None and now < status.next_attempt:
            return
        try:
            issued = self.vault.certificate(name)
        except DamagedRecord as error:
            logs.warning("acme certificate damaged: ordering it again", name=name, error=str(error))
            issued = None
        except StoreError as error:
            self._failed(status, f"cannot read the certificate: {error}", None)
            return
        if issued is not None and now < issued.renew_at:
            self._valid(status, issued)
            return
        try:
            busy = self.vault.take_lease(name, LEASE_SECONDS)
        except StoreError as error:
            self._failed(status, f"cannot take the lease: {error}", None)
            return
        if busy is not None:
            with self._lock:
                if busy.holder != self.vault.holder:
                    status.state = "valid" if issued is not None else "waiting"
                    status.holder = busy.holder
                # A backoff hold: nobody orders before it ends. An order under way: look for
                # its certificate again soon.
                wait = busy.until - now if busy.backoff else WAIT_SECONDS
                status.next_attempt = now + max(WAIT_SECONDS, min(wait, LEASE_SECONDS))
            return
        with self._lock:
            if issued is None and status.failures == 0:
                status.state = "ordering"  # else it stays "failed" until an order succeeds
            status.holder = None
        renewal = issued is not None
        logs.info("acme ordering", name=name, renewal=renewal)
        try:
            new = self.orderer.order(name)
            self.vault.put_certificate(new)
        except LocatedError as error:
            self.metrics.inc("cosmonaut_acme_failures_total")
            retry_after = getattr(error, "retry_after", None)
            self._failed(status, str(error.message), retry_after, issued)
            self._lease_until(name, status.next_attempt)
            return
        except (KeyboardInterrupt, SystemExit):
            self._lease_until(name, None)
            raise
        except Exception:
            # ``tick`` records the failure with a backoff; the lease is held through it, as
            # after any failed order.
            self._order_failed_with = issued
            raise
        self._lease_until(name, None)
        self.metrics.inc("cosmonaut_acme_certificates_issued_total")
        self._backoff.pop(name, None)
        logs.info(
            "acme certificate issued",
            name=name,
            renewal=renewal,
            not_after=_iso(new.not_after),
            digest=new.digest,
        )
        with self._lock:
            status.failures = 0
            status.last_error = None
        self._valid(status, new)

    def _lease_until(self, name: str, until: float | None) -> None:
        """After an order: free the lease (``None``), or hold it until this host's next
        attempt, so that no other host of the fleet orders before the backoff is over."""
        try:
            if until is None:
                self.vault.release_lease(name)
            else:
                self.vault.hold_lease(name, until)
        except StoreError as error:
            logs.warning("acme lease not updated", name=name, error=str(error))

    def _status_of(self, name: str) -> NameStatus | None:
        with self._lock:
            if name not in self._wanted:
                return None
            return self._status.setdefault(name, NameStatus(name))

    def _valid(self, status: NameStatus, issued: Issued) -> None:
        with self._lock:
            status.state = "valid"
            status.not_after, status.renew_at = issued.not_after, issued.renew_at
            status.next_attempt = issued.renew_at
            status.holder = None
            status.digest = issued.digest
            stale = self._installed.get(issued.name) != issued.digest
        if stale and self.notify is not None:
            self.notify(f"certificate {issued.name}")

    def _failed(
        self,
        status: NameStatus,
        error: str,
        retry_after: float | None,
        issued: Issued | None = None,
    ) -> None:
        backoff = self._backoff.setdefault(
            name := status.name, Backoff(self.retry_min, self.retry_max)
        )
        delay = max(backoff.next(), retry_after or 0.0)
        with self._lock:
            # A certificate that still works keeps being served while renewal is retried.
            status.state = (
                "valid" if issued is not None and issued.not_after > self.clock() else "failed"
            )
            status.failures += 1
            status.last_error = error
            status.next_attempt = self.clock() + delay
        logs.warning(
            "acme order failed",
            name=name,
            error=error,
            failures=status.failures,
            retry_in=round(delay, 1),
            retry_after=retry_after,
        )

    def _export(self) -> None:
        with self._lock:
            wanted = [s for s in self._status.values() if s.name in self._wanted]
        states = [s.state for s in wanted]
        expiries = [s.not_after for s in wanted if s.not_after is not None]
        self.metrics.set("cosmonaut_acme_names", len(states))
        self.metrics.set("cosmonaut_acme_names_failed", states.count("failed"))
        self.metrics.set("cosmonaut_acme_names_waiting", states.count("waiting"))
        self.metrics.set(
            "cosmonaut_acme_next_expiry_timestamp_seconds", min(expiries) if expiries else 0.0
        )
        statuses = wanted
        self.metrics.set_per_name(
            "cosmonaut_acme_certificate_expiry_timestamp_seconds",
            {s.name: s.not_after for s in statuses if s.not_after is not None},
        )
        self.metrics.set_per_name(
            "cosmonaut_acme_certificate_failing",
            {s.name: 1.0 if s.last_error else 0.0 for s in statuses},
        )


def _iso(moment: float | None) -> str | None:
    if moment is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))
