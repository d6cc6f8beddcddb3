"""One reconcile pass: list the host, build one payload, ask the registry, apply the config.

``Syncer.sync()`` never raises for the expected failures (Docker or the registry
unavailable, HAProxy missing, a refused config): it returns a ``PassResult`` saying what
happened, and logs it. ``cosmonaut once`` is one pass; ``cosmonaut run`` calls it per batch
of events.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from compiler.errors import Diagnostic, LocatedError
from cosmonaut import logs
from cosmonaut.apply import Applier, ApplyResult
from cosmonaut.discovery import Discoverer, Discovery
from cosmonaut.engine import EngineError, EngineUnavailable
from cosmonaut.errors import HaproxyContainerError, RegistryError
from cosmonaut.metrics import Metrics
from cosmonaut.payload import PayloadPlan, build_payload
from cosmonaut.registry import RegistryClient
from cosmonaut.settings import ContainerProblem
from cosmonaut.state import write_status

FailureKind = Literal["docker", "registry", "haproxy", "apply", "internal"]


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
        metrics: Metrics | None = None,
        status_path: Path | None = None,
    ) -> None:
        self.discoverer = discoverer
        self.registry = registry
        self.applier = applier
        self.table = table
        self.metrics = metrics or Metrics()
        self.status_path = status_path
        self.last: PassResult | None = None
        self.last_success: PassResult | None = None
        self._reported: set[tuple[str, str, str]] = set()

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
            plan = build_payload(self.table, discovery.containers)
            self._report_problems((*discovery.problems, *plan.problems))
            compiled = self.registry.compile(plan.payload)
            timings["registry"] = time.monotonic() - clock - timings["discover"]
            diagnostics = compiled.diagnostics
            self._report_diagnostics(plan, diagnostics)
            applied = self.applier.apply(compiled.text, discovery.haproxy)
        except EngineUnavailable as caught:
            failure, error = "docker", str(caught)
        except RegistryError as caught:
            failure, error = "registry", str(caught)
            diagnostics = caught.diagnostics
        except (HaproxyContainerError, EngineError) as caught:
            failure, error = "haproxy", str(caught)
        except LocatedError as caught:
            failure, error = "apply", str(caught)
        except Exception as caught:  # a bug: keep the daemon alive, say what happened
            failure, error = "internal", f"{type(caught).__name__}: {caught}"
            logs.LOGGER.exception("internal error", extra={"cosmonaut_fields": {}})
        problems = (discovery.problems if discovery else ()) + (plan.problems if plan else ())
        result = PassResult(
            reasons=reasons,
            started=started,
            seconds=time.monotonic() - clock,
            discovery=discovery,
            plan=plan,
            diagnostics=diagnostics,
            applied=applied,
            failure=failure,
            error=error,
            problems=problems,
            timings=timings,
        )
        self._record(result)
        return result

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
            if applied.outcome == "applied":
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
        if self.status_path is not None:
            try:
                write_status(self.status_path, self.status())
            except (OSError, LocatedError) as caught:
                logs.warning("cannot write status", path=str(self.status_path), error=str(caught))

    def status(self) -> dict[str, Any]:
        last = self.last
        discovery = last.discovery if last else None
        plan = last.plan if last else None
        return {
            "table": self.table,
            "registry": self.registry.label,
            "haproxy_container": self.discoverer.haproxy_name,
            "last_pass": last.as_dict() if last else None,
            "last_success": self.last_success.as_dict() if self.last_success else None,
            "routed": [c.as_dict() for c in plan.routed] if plan else [],
            "problems": [p.as_dict() for p in last.problems] if last else [],
            "excluded": [e.as_dict() for e in discovery.excluded] if discovery else [],
            "metrics": self.metrics.snapshot(),
        }
