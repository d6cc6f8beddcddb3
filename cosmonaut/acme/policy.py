"""What HTTPS adds to a pass, as one collaborator of the syncer (``Https``).

Before the registry is asked, services whose first certificate has not arrived stay on HTTP
(``hold_back`` turns their ``tls`` off: no redirect to a certificate that does not exist).
Around the apply, the ACME certificates the folder lacks are written into it, and a config is
reloaded even when unchanged if the folder changed since HAProxy loaded it (only a reload loads
certificate files). After a successful apply, the manager learns which names to get, once the
config answers HTTP-01 with this account's thumbprint."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from cosmonaut import logs
from cosmonaut.acme.certfolder import ACME_SUFFIX, CertFolder
from cosmonaut.acme.manager import CertificateManager
from cosmonaut.acme.vault import Issued
from cosmonaut.apply.container import HaproxyTarget
from cosmonaut.apply.reload import ApplyPath, ApplyResult
from cosmonaut.discovery.containers import HaproxyContainer
from cosmonaut.discovery.engine import EngineError, EngineUnavailable
from cosmonaut.discovery.payload import PayloadPlan
from cosmonaut.errors import HaproxyContainerError

# What HAProxy loaded last: the container (id, start time) and the folder's listing.
Loaded = tuple[tuple[str, str], tuple[str, ...] | None]


def acme_names(plan: PayloadPlan, *, everyone: bool, folder: Iterable[str] = ()) -> dict[int, str]:
    """The candidates (by index) whose certificate Cosmonaut gets, and the name of each: host
    mode services with ``tls`` on or redirect that opt in (``cosmonaut.tls.acme=true``), or,
    with ``everyone``, all of them but those whose name has a file in the folder
    (``<name>.pem``, ``<name>.crt``)."""
    own = {
        f.removesuffix(".pem").removesuffix(".crt") for f in folder if not f.endswith(ACME_SUFFIX)
    }
    chosen: dict[int, str] = {}
    for index, members in enumerate(plan.candidates):
        if not members:
            continue
        settings = members[0].settings
        if settings.mode != "host" or settings.tls == "off":
            continue
        if settings.acme or (everyone and settings.predicate not in own):
            chosen[index] = settings.predicate
    return chosen


def hold_back(plan: PayloadPlan, waiting: Iterable[int]) -> PayloadPlan:
    """The plan with ``tls`` off for the candidates still waiting for a certificate."""
    indexes = set(waiting)
    if not indexes:
        return plan
    payload = copy.copy(plan.payload)
    payload["candidates"] = [
        {**candidate, "tls": "off"} if index in indexes else candidate
        for index, candidate in enumerate(plan.payload["candidates"])
    ]
    return PayloadPlan(payload, plan.routed, plan.problems, plan.candidates)


class Https:
    """The certificate folder (a change there is loaded by a reload) and, with
    ``--acme-directory``, the ACME certificates: what HTTPS adds to a pass."""

    def __init__(
        self,
        folder: CertFolder,
        target: HaproxyTarget,
        *,
        certificates: CertificateManager | None = None,
        everyone: bool = False,
        thumbprint: str | None = None,
    ) -> None:
        self.folder = folder
        self.target = target
        self.certificates = certificates
        self.everyone = everyone
        self.thumbprint = thumbprint  # what the applied config must answer challenges with
        self._thumbprint_missing = False
        self._seen: Loaded | None = None
        self._tried: Loaded | None = None
        self._waiting: tuple[str, ...] = ()
        self._names: tuple[str, ...] = ()
        self._install_failed = False  # the last write into the certificate folder failed

    def issued(self) -> list[Issued]:
        """The certificates ready now: read once per pass, so what leaves HTTP is what is
        installed."""
        return self.certificates.ready_all() if self.certificates is not None else []

    def before_ask(self, plan: PayloadPlan, issued: list[Issued]) -> PayloadPlan:
        """With ACME: note which names to get, and keep each service whose first certificate
        has not arrived on HTTP (its ``tls`` off in the payload)."""
        certificates = self.certificates
        if certificates is None:
            return plan
        folder = self._seen[1] if self._seen else None
        names = acme_names(
            plan, everyone=self.everyone, folder=CertFolder.certificates(folder or ())
        )
        # Wanted (ordered) once a config that answers the challenges is applied: ``apply``.
        self._names = tuple(names.values())
        ready = {certificate.name: certificate for certificate in issued}
        waiting = {
            i: n
            for i, n in names.items()
            if n not in ready or (self._install_failed and not certificates.is_installed(ready[n]))
        }
        if tuple(sorted(waiting.values())) != self._waiting and waiting:
            logs.info("waiting for certificates: served on HTTP", names=sorted(waiting.values()))
        self._waiting = tuple(sorted(waiting.values()))
        return hold_back(plan, waiting)

    def apply(
        self,
        path: ApplyPath,
        text: str,
        haproxy: HaproxyContainer | None,
        *,
        maps: tuple[tuple[str, str], ...] = (),
        issued: list[Issued] | None = None,
    ) -> ApplyResult:
        """Apply ``text`` through ``path`` after writing the ACME certificates the folder
        lacks (``issued``, the pass's read, else read now); reload even an unchanged config
        when the folder changed since the last apply."""
        haproxy = self.target.located(haproxy)
        key = (haproxy.id, haproxy.started_at)
        if issued is None:
            issued = self.issued()
        written, listing = self._install(haproxy, issued)
        if self._install_failed:
            issued = []
        seen = self._seen
        # The first look at a container is the baseline: HAProxy loaded that folder.
        force = bool(written) or (seen is not None and seen[0] == key and seen[1] != listing)
        self._tried = (key, listing)
        result = path.apply(text, haproxy, maps=maps, force=force)
        if result.ok or seen is None or seen[0] != key:
            self._seen = (key, listing)
        if result.ok and self.certificates is not None:
            self.certificates.installed(issued)
            self.certificates.want(self._names if self._answers_challenges(text) else ())
        return result

    def _install(
        self, haproxy: HaproxyContainer, issued: list[Issued]
    ) -> tuple[tuple[str, ...], tuple[str, ...] | None]:
        """Write what the folder lacks; the files written and the folder's listing after."""
        written: tuple[str, ...] = ()
        listing: tuple[str, ...] | None = None
        try:
            listing = self.folder.listing(haproxy)
            if self.certificates is not None:
                written = self.folder.install(haproxy, issued, listing)
                self._install_failed = False
                if written:
                    folder = self.folder.directory
                    logs.info("certificates written", files=list(written), folder=folder)
                    listing = self.folder.listing(haproxy)
        except EngineError as error:
            # A read-only or missing folder costs the certificates, not the routing; the
            # next passes keep services whose certificate is not installed on HTTP.
            logs.warning(
                "certificate folder unusable", folder=self.folder.directory, error=str(error)
            )
            self._install_failed = True
        return written, listing

    def _answers_challenges(self, text: str) -> bool:
        """Whether the config answers HTTP-01 with this account's thumbprint: until it does
        (a remote registry without the render option), ordering would only fail and spend
        the CA's rate limits."""
        answers = self.thumbprint is None or f".{self.thumbprint}" in text
        if not answers and not self._thumbprint_missing:
            logs.error(
                "acme: the config does not answer challenges with this account's thumbprint; "
                "no certificate is ordered until the registry's render options carry it",
                acme_thumbprint=self.thumbprint,
            )
        self._thumbprint_missing = not answers
        return answers

    def changed(self) -> bool:
        """Whether the certificate folder changed since the last apply tried it (the daemon
        asks every few seconds, and runs a pass when it did; a pass that failed with it is
        retried by the retry schedule, not by this)."""
        if self._tried is None:
            return False
        try:
            haproxy = self.target.locate()
            listing = self.folder.listing(haproxy)
        except (EngineError, EngineUnavailable, HaproxyContainerError):
            return False
        now = ((haproxy.id, haproxy.started_at), listing)
        if self._tried == now:
            return False
        # Reported once: if the pass it starts fails before trying this listing (the
        # registry down, say), the retry schedule takes over, not a pass every few seconds.
        self._tried = now
        return True

    def status(self) -> list[dict[str, Any]] | None:
        return self.certificates.status() if self.certificates is not None else None
