"""One reconcile pass: list the host, build one payload, ask the registry, apply the config.

``Syncer.sync()`` never raises for the expected failures (Docker or the registry
unavailable, HAProxy missing, a refused config): it returns a ``PassResult`` saying what
happened, and logs it. ``cosmonaut once`` is one pass; ``cosmonaut run`` calls it per batch
of events.

In fleet mode (``host``), each payload is this host's report. A config the poller read
(another host's change) is applied by ``apply_polled``, through the same safe apply, once
``poll_action`` (the one place that decides) says so: a config older than the last pass, or
the one this host already has, is skipped, and one that may lack this host's own report
(its last report did not reach the registry, or this host's containers are missing from it)
leads to a full pass instead, which reports first.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from compiler.errors import Diagnostic, LocatedError
from cosmonaut import logs
from cosmonaut.acme.policy import Https
from cosmonaut.acme.vault import Issued
from cosmonaut.apply.reload import Applier, ApplyPath, ApplyResult
from cosmonaut.apply.runtime_api import RuntimePath
from cosmonaut.discovery.containers import Discoverer, Discovery, HaproxyContainer
from cosmonaut.discovery.engine import EngineError, EngineUnavailable
from cosmonaut.discovery.labels import ContainerProblem
from cosmonaut.discovery.payload import PayloadPlan, build_payload
from cosmonaut.errors import HaproxyContainerError, RegistryError, RegistryUnavailable
from cosmonaut.metrics import Metrics
from cosmonaut.registry.client import RegistryClient
from cosmonaut.registry.poll import Polled, RegistryHealth
from cosmonaut.state import write_status
from runtime.contract import RegistryResult, etag_of

FailureKind = Literal["docker", "registry", "haproxy", "apply", "internal"]
PollAction = Literal["apply", "report", "skip"]


@dataclass(frozen=True, slots=True)
class PassResult:
    reasons: tuple[str, ...]
    started: float  # unix time
    seconds: float
    discovery: Discovery | None = None
    plan: PayloadPlan | None = None
    diagnostics: tuple[Diagnostic, ...] = ()
    applied: ApplyResult | None = None
    failure: FailureKind | None = None
    error: str | None = None
    problems: tuple[ContainerProblem, ...] = field(default=())
    timings: dict[str, float] = field(default_factory=dict)  # discover, registry (seconds)

    @property
    def ok(self) -> bool:
        return self.failure is None and (self.applied is None or self.applied.ok)

    @property
    def retry(self) -> bool:
        """Worth trying again without a new event (the same input may succeed later)."""
        if self.failure in ("docker", "registry", "haproxy", "internal"):
            return True
        return self.applied is not None and self.applied.outcome in ("rolled-back", "failed")

    def as_dict(self) -> dict[str, Any]:
        return {
            "time": datetime.fromtimestamp(self.started, UTC).isoformat(timespec="milliseconds"),
            "reasons": list(self.reasons),
            "seconds": round(self.seconds, 4),
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
            "ok": self.ok,
            "failure": self.failure,
            "error": self.error,
            "apply": self.applied.as_dict() if self.applied else None,
            "diagnostics": [d.as_dict() for d in self.diagnostics],
        }


class Syncer:
    def __init__(
        self,
        discoverer: Discoverer,
        registry: RegistryClient,
        applier: Applier,
        *,
        table: str,
        host: str | None = None,
        metrics: Metrics | None = None,
        status_path: Path | None = None,
        health: RegistryHealth | None = None,
        runtime: RuntimePath | None = None,
        https: Https | None = None,
    ) -> None:
        self.discoverer = discoverer
        self.registry = registry
        self.applier = applier
        self.table = table
        self.host = host  # fleet mode: the payload's ``host``
        self.metrics = metrics or Metrics()
        self.health = health or RegistryHealth(self.metrics)
        self.status_path = status_path
        self.runtime = runtime  # the runtime API path in front of the applier, if configured
        self.https = https  # the certificate folder and ACME, if configured
        self.last: PassResult | None = None
        self.last_success: PassResult | None = None
        self.last_sync: PassResult | None = None  # the last pass that listed the host
        self.generation = 0  # passes finished (a poll sent before one ended is stale)
        self.etag: str | None = None  # of the config this host last had from the registry
        self.reported = False  # the registry took this host's last payload
        self._reported: set[tuple[str, str, str]] = set()
        self._status_lock = threading.Lock()

    def sync(self, reasons: tuple[str, ...] = ("manual",)) -> PassResult:
        started, clock = time.time(), time.monotonic()
        discovery: Discovery | None = None
        plan: PayloadPlan | None = None
        diagnostics: tuple[Diagnostic, ...] = ()
        applied: ApplyResult | None = None
        failure: FailureKind | None = None
        error: str | None = None
        timings: dict[str, float] = {}
        try:
            discovery = self.discoverer.discover()
            timings["discover"] = time.monotonic() - clock
            plan = build_payload(self.table, discovery.containers, host=self.host)
            issued = self.https.issued() if self.https is not None else []
            if self.https is not None:
                plan = self.https.before_ask(plan, issued)
            self._report_problems((*discovery.problems, *plan.problems))
            compiled = self._ask(plan.payload)
            timings["registry"] = time.monotonic() - clock - timings["discover"]
            diagnostics = compiled.diagnostics
            self._report_diagnostics(plan, diagnostics)
            self.etag = etag_of(compiled.text, compiled.files)
            self._drain_unhealthy(discovery)
            applied = self._apply(
                compiled.text, discovery.haproxy, maps=compiled.maps, issued=issued
            )
        except Exception as caught:
            failure, error = _failure(caught)
            if isinstance(caught, RegistryError):
                diagnostics = caught.diagnostics
        problems = (discovery.problems if discovery else ()) + (plan.problems if plan else ())
        return self._finish(
            reasons,
            started,
            clock,
            listed=True,
            discovery=discovery,
            plan=plan,
            diagnostics=diagnostics,
            applied=applied,
            failure=failure,
            error=error,
            problems=problems,
            timings=timings,
        )

    def _ask(self, payload: dict[str, Any]) -> RegistryResult:
        """The registry's config for ``payload``; every answer and failure feeds its health."""
        try:
            compiled = self.registry.compile(payload)
        except RegistryUnavailable as error:
            self.reported = False
            self.health.failed(str(error))
            raise
        except RegistryError:
            self.reported = False
            self.health.answered()  # it answered: it refused the payload
            raise
        self.reported = True
        self.health.answered()
        return compiled

    def poll_action(self, polled: Polled) -> tuple[PollAction, str]:
        """What to do with a config the poller read, and why (the reason is logged)."""
        if polled.generation != self.generation:
            return "skip", "a pass finished after the poll was sent"
        if polled.etag == self.etag:
            return "skip", "it is the config this host already has"
        if not self.reported:
            return "report", "this host's last report did not reach the registry"
        plan = self.last_sync.plan if self.last_sync is not None else None
        missing = [c.name for c in plan.routed if c.short_id not in polled.text] if plan else []
        if missing:
            return "report", (
                f"it lacks {len(missing)} of this host's containers ({', '.join(missing[:3])}): "
                "the registry may have expired this host's report"
            )
        return "apply", "another host's report changed the table's config"

    def apply_polled(self, polled: Polled, reasons: tuple[str, ...] = ("poll",)) -> PassResult:
        """Apply a config the poller read, as a pass (recorded, logged, in the status)."""
        started, clock = time.time(), time.monotonic()
        applied: ApplyResult | None = None
        failure: FailureKind | None = None
        error: str | None = None
        self.etag = polled.etag
        try:
            applied = self._apply(polled.text, maps=polled.maps)
        except Exception as caught:
            failure, error = _failure(caught)
        return self._finish(reasons, started, clock, applied=applied, failure=failure, error=error)

    def _finish(
        self,
        reasons: tuple[str, ...],
        started: float,
        clock: float,
        *,
        listed: bool = False,
        **outcome: Any,
    ) -> PassResult:
        """The pass's result, recorded (metrics, log, status); ``listed``: the pass listed the
        host, so the status shows what it routed."""
        result = PassResult(reasons, started, time.monotonic() - clock, **outcome)
        if listed:
            self.last_sync = result
        self._record(result)
        return result

    @property
    def path(self) -> ApplyPath:
        """How a config reaches HAProxy: the runtime API in front of the reload, or the reload."""
        return self.runtime or self.applier

    def _apply(
        self,
        text: str,
        haproxy: HaproxyContainer | None = None,
        *,
        maps: tuple[tuple[str, str], ...] = (),
        issued: list[Issued] | None = None,
    ) -> ApplyResult:
        if self.https is None:
            return self.path.apply(text, haproxy, maps=maps)
        return self.https.apply(self.path, text, haproxy, maps=maps, issued=issued)

    def _drain_unhealthy(self, discovery: Discovery) -> None:
        """Drain each unhealthy container this pass takes out, before the change removes its
        server: its health event may have come first, while the engine still said healthy
        (Podman 4 sends the event before it updates the state), and drained nothing."""
        for item in discovery.excluded:
            if item.unhealthy and item.id:
                self.drain(item.id, "unhealthy")

    def drain(self, container: str, why: str, at: float | None = None) -> bool:
        """Stop new traffic to ``container`` now (the runtime API); False when not possible.
        ``at``: when the engine says the event happened."""
        return self.runtime is not None and self.runtime.drain(container, why, at)

    def _report_problems(self, problems: tuple[ContainerProblem, ...]) -> None:
        """Log each problem when it first appears (not at every pass), and when it is gone."""
        current = {(p.container, p.setting, p.reason) for p in problems}
        for container, setting, reason in sorted(current - self._reported):
            logs.warning("container left out", container=container, setting=setting, reason=reason)
        for container, setting, _reason in sorted(self._reported - current):
            logs.info("container problem gone", container=container, setting=setting)
        self._reported = current

    def _report_diagnostics(self, plan: PayloadPlan, diagnostics: tuple[Diagnostic, ...]) -> None:
        for diagnostic in diagnostics:
            logs.warning(
                "registry diagnostic",
                path=diagnostic.path,
                message=diagnostic.message,
                severity=diagnostic.severity,
                containers=list(plan.containers_of(diagnostic)),
            )

    def _record(self, result: PassResult) -> None:
        metrics = self.metrics
        metrics.inc("cosmonaut_reconciles_total")
        applied = result.applied
        fields: dict[str, Any] = {
            "reasons": list(result.reasons),
            "seconds": round(result.seconds, 4),
            "timings": {k: round(v, 4) for k, v in result.timings.items()},
        }
        if result.discovery is not None:
            routed = result.plan.routed if result.plan else result.discovery.containers
            metrics.set("cosmonaut_managed_containers", len(routed))
            metrics.set("cosmonaut_problem_containers", len({p.container for p in result.problems}))
            fields["routed"] = len(routed)
        if applied is not None:
            fields.update(outcome=applied.outcome, apply=applied.as_dict())
            metrics.set_per_name(
                "cosmonaut_service_left_out", {name: 1.0 for name, _ in applied.left_out}
            )
            if applied.outcome in ("applied", "pruned"):
                metrics.inc("cosmonaut_reloads_total")
                metrics.observe_apply(applied.seconds)
            elif applied.outcome == "unchanged":
                metrics.inc("cosmonaut_skips_total")
            elif applied.outcome == "rolled-back":
                metrics.inc("cosmonaut_rollbacks_total")
        if result.ok:
            metrics.success()
            self.last_success = result
            if applied is not None and applied.outcome == "dry-run" and applied.diff:
                fields["diff"] = applied.diff
            logs.info("reconciled", **fields)
        else:
            reason = result.failure or (applied.outcome if applied else "unknown")
            metrics.failure(reason)
            fields.update(failure=reason, error=result.error or (applied and applied.message))
            logs.error("reconcile failed", **fields)
        self.last = result
        self.generation += 1
        self.save_status()

    def save_status(self) -> None:
        """Write the status file (after each pass, and when the registry's health changes)."""
        if self.status_path is None:
            return
        with self._status_lock:
            try:
                write_status(self.status_path, self.status())
            except (OSError, LocatedError) as caught:
                logs.warning("cannot write status", path=str(self.status_path), error=str(caught))

    def status(self) -> dict[str, Any]:
        last = self.last
        listed = self.last_sync
        discovery = listed.discovery if listed else None
        plan = listed.plan if listed else None
        return {
            "table": self.table,
            "host": self.host,
            "address_mode": self.discoverer.address_mode,
            "registry": self.registry.label,
            "registry_health": self.health.as_dict(),
            "haproxy_container": self.discoverer.haproxy_name,
            "last_pass": last.as_dict() if last else None,
            "last_success": self.last_success.as_dict() if self.last_success else None,
            "routed": [c.as_dict() for c in plan.routed] if plan else [],
            "problems": [p.as_dict() for p in listed.problems] if listed else [],
            "excluded": [e.as_dict() for e in discovery.excluded] if discovery else [],
            "metrics": self.metrics.snapshot(),
            "change_path": self._change_path(),
            "acme": self.https.status() if self.https is not None else None,
        }

    def _change_path(self) -> dict[str, Any] | None:
        """How the last change reached HAProxy: the runtime API, or a reload (and why)."""
        runtime = self.runtime
        if runtime is None:
            return {"path": "reload", "reason": "no runtime API (--runtime-socket)"}
        if runtime.last_path is None:
            return None
        return {"path": runtime.last_path, "reason": runtime.last_reason}


def _failure(caught: Exception) -> tuple[FailureKind, str]:
    """The kind of an exception a pass caught, and what to say about it."""
    if isinstance(caught, EngineUnavailable):
        return "docker", str(caught)
    if isinstance(caught, RegistryError):
        return "registry", str(caught)
    if isinstance(caught, HaproxyContainerError | EngineError):
        return "haproxy", str(caught)
    if isinstance(caught, LocatedError):
        return "apply", str(caught)
    # A bug: keep the daemon alive, say what happened (called while handling it).
    logs.LOGGER.exception("internal error", extra={"cosmonaut_fields": {}})
    return "internal", f"{type(caught).__name__}: {caught}"
