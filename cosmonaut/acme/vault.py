"""The ACME state a fleet shares, as records of the registry's store (``Store.record``).

Records of the table (``swap_record`` writes them by compare-and-swap, so two hosts never
both win):

* ``acme:account-key``: the account's private key (PEM). Created once, by whichever host
  needs it first; every host then signs with it and renders the same thumbprint.
* ``acme:lease:<name>``: ``{"holder", "expires"}``: the host ordering ``name`` now. A host
  takes a lease that is absent, free, expired or its own; it frees it after a success, and
  after a failure holds it until its next attempt, so the whole fleet keeps one backoff.
* ``acme:cert:<name>``: the issued certificate (full chain and key, PEM) and its validity.
  Every host installs every one of them (``certificates``), also for services it runs no
  container of: its HAProxy routes them too.

On one host the store is the SQLite file in the state folder (mode 0600); in a fleet it is
the shared table (DynamoDB, say), which is how every host picks up a certificate one host got.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from cosmonaut import logs
from runtime.stores import RecordStore, StoreError

ACCOUNT_KEY = "acme:account-key"
LEASE_PREFIX = "acme:lease:"
CERT_PREFIX = "acme:cert:"
SWAP_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class Busy:
    """A lease someone holds: who, until when, and whether it is a backoff after a failed
    order (then nobody orders before ``until``) rather than an order under way."""

    holder: str
    until: float
    backoff: bool


class DamagedRecord(StoreError):
    """A stored certificate that does not parse, or whose key is not its own."""


@dataclass(frozen=True, slots=True)
class Issued:
    """A certificate for ``name``: its full chain and private key (PEM), and its validity
    (unix times)."""

    name: str
    fullchain: str
    key: str
    not_before: float
    not_after: float
    issued_by: str  # the host that ordered it

    @property
    def renew_at(self) -> float:
        """When a third of the lifetime is left."""
        return self.not_after - (self.not_after - self.not_before) / 3

    def pem(self) -> bytes:
        """What HAProxy loads: the chain, then the key, in one file."""
        chain = self.fullchain if self.fullchain.endswith("\n") else self.fullchain + "\n"
        return (chain + self.key).encode("ascii")

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.pem()).hexdigest()[:16]

    def public(self) -> dict[str, object]:
        """What status and logs may show (no key material)."""
        return {
            "name": self.name,
            "not_before": self.not_before,
            "not_after": self.not_after,
            "issued_by": self.issued_by,
            "digest": self.digest,
        }


class Vault:
    """The records of one table; ``holder`` names this host in leases."""

    def __init__(
        self,
        store: RecordStore,
        table: str,
        holder: str,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.table = table
        self.holder = holder
        self.clock = clock

    @property
    def label(self) -> str:
        return f"{getattr(self.store, 'label', 'store')} table {self.table}"

    def account_key(self, create: Callable[[], str]) -> str:
        """The account's private key (PEM); ``create`` makes one when there is none yet.
        When two hosts race, the first write wins and both use it."""
        for _ in range(SWAP_ATTEMPTS):
            record = self.store.record(self.table, ACCOUNT_KEY)
            if record is not None:
                return record.value
            if self.store.swap_record(self.table, ACCOUNT_KEY, 0, create()):
                continue  # read back what was stored
        raise StoreError("the ACME account key kept changing", file=self.label)

    def take_lease(self, name: str, ttl: float) -> Busy | None:
        """Take the lease on ``name`` for ``ttl`` seconds: None when taken, else who holds
        it and until when. A lease that does not parse counts as free (it is overwritten).
        This host's own lease is taken again, unless it is a backoff hold that has not run
        out (a restarted Cosmonaut keeps its backoff too)."""
        key = LEASE_PREFIX + name
        for _ in range(SWAP_ATTEMPTS):
            record = self.store.record(self.table, key)
            expected = 0
            if record is not None:
                holder, expires, backoff = _lease(record.value)
                live = holder is not None and expires > self.clock()
                if live and (holder != self.holder or backoff):
                    return Busy(str(holder), expires, backoff)
                expected = record.revision
            value = json.dumps({"holder": self.holder, "expires": self.clock() + ttl})
            if self.store.swap_record(self.table, key, expected, value):
                return None
        return Busy("another host", self.clock() + 1.0, False)

    def hold_lease(self, name: str, until: float) -> None:
        """Keep this host's lease on ``name`` until ``until``, marked as a backoff: after a
        failed order, so that every host (this one restarted, too) waits out the same
        backoff and the CA's ``Retry-After`` instead of ordering at once."""
        self._rewrite_lease(name, {"holder": self.holder, "expires": until, "backoff": True})

    def release_lease(self, name: str) -> None:
        """Free this host's lease. The record stays, holder-less (its revision only grows,
        so a stale compare-and-swap can never win after a release)."""
        self._rewrite_lease(name, {"holder": None, "expires": 0})

    def _rewrite_lease(self, name: str, lease: dict[str, object]) -> None:
        key = LEASE_PREFIX + name
        record = self.store.record(self.table, key)
        if record is not None and _lease(record.value)[0] == self.holder:
            self.store.swap_record(self.table, key, record.revision, json.dumps(lease))

    def certificate(self, name: str) -> Issued | None:
        record = self.store.record(self.table, CERT_PREFIX + name)
        return None if record is None else self._issued(CERT_PREFIX + name, record.value)

    def _issued(self, key: str, text: str) -> Issued:
        """A stored certificate, checked: the chain and the key parse, and belong together
        (a damaged record would make ``haproxy -c`` refuse every config after it)."""
        try:
            issued = _issued(text)
            _check_pair(issued)
        except (ValueError, KeyError, TypeError) as error:
            raise DamagedRecord(
                f"record {key!r} of table {self.table!r} is not a usable certificate "
                f"({type(error).__name__}: {str(error)[:120]}); delete it to order it again",
                file=self.label,
            ) from None
        return issued

    def certificates(self) -> list[Issued]:
        """Every certificate of the table (the fleet's), in name order."""
        records = self.store.records(self.table, CERT_PREFIX)
        found = []
        for key in sorted(records):
            try:
                found.append(self._issued(key, records[key].value))
            except DamagedRecord as error:  # the others are still installed
                logs.warning("acme certificate skipped", error=str(error))
        return found

    def put_certificate(self, issued: Issued) -> None:
        key = CERT_PREFIX + issued.name
        value = json.dumps(asdict(issued), sort_keys=True)
        for _ in range(SWAP_ATTEMPTS):
            record = self.store.record(self.table, key)
            if self.store.swap_record(self.table, key, record.revision if record else 0, value):
                return
        raise StoreError(f"the certificate record of {issued.name} kept changing", file=self.label)


def _issued(text: str) -> Issued:
    document = json.loads(text)
    return Issued(
        name=str(document["name"]),
        fullchain=str(document["fullchain"]),
        key=str(document["key"]),
        not_before=float(document["not_before"]),
        not_after=float(document["not_after"]),
        issued_by=str(document.get("issued_by", "")),
    )


def _check_pair(issued: Issued) -> None:
    """``ValueError`` unless the first certificate of the chain and the key match."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    leaf = x509.load_pem_x509_certificate(issued.fullchain.encode("ascii"))
    key = serialization.load_pem_private_key(issued.key.encode("ascii"), password=None)
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    if leaf.public_key().public_bytes(der, spki) != key.public_key().public_bytes(der, spki):
        raise ValueError("the key does not belong to the certificate")


def _lease(text: str) -> tuple[str | None, float, bool]:
    """(holder, expiry, whether it is a backoff hold) of a lease; a damaged one reads free."""
    try:
        lease = json.loads(text)
        holder = lease.get("holder")
        expires = float(lease.get("expires", 0))
        return (None if holder is None else str(holder)), expires, bool(lease.get("backoff"))
    except (ValueError, TypeError, AttributeError):
        return None, 0.0, False
