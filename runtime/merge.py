"""Stored services + payload -> what to render, store and delete (``reference/semantics.md``).

Pure: no store, no I/O. One invocation:

1. cleanse: a stored service with no entry in ``running`` is deleted; one that has keeps only
   the containers whose id is running;
2. merge: a candidate of a surviving service adds its containers and replaces its settings
   (route, cookie and per-service settings; a container listed again brings its weight); a
   candidate of any other service becomes a new service with exactly its own containers;
   every running container of a surviving service is added; containers are de-duplicated;
3. routes: two services never share a host or a path. A service that already held the route
   keeps it and the newcomer's candidate is left out; when none held it, every claimant's
   candidate is left out. Each case is reported with the candidate's JSON path.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from compiler.errors import Diagnostic
from compiler.models import Candidate, ContainerRef, Payload, Service


@dataclass(frozen=True, slots=True)
class Reconciled:
    render: tuple[Service, ...]
    store: tuple[Service, ...]
    delete: tuple[str, ...]
    diagnostics: tuple[Diagnostic, ...] = field(default=())


@dataclass(slots=True)
class _Draft:
    """A service being assembled, with the JSON path of each container's origin."""

    service: Service
    containers: dict[tuple[str, str], tuple[str, ContainerRef]]  # (id, ip) -> (origin, ref)


def reconcile(stored: Mapping[str, Service] | Iterable[Service], payload: Payload) -> Reconciled:
    stored_by_name = dict(stored) if isinstance(stored, Mapping) else {s.name: s for s in stored}
    running_ids = {container.id for container in payload.running}
    running_services = {container.service_name for container in payload.running}

    # 1. cleanse
    delete = sorted(name for name in stored_by_name if name not in running_services)
    survivors = {
        name: service.model_copy(
            update={"containers": tuple(c for c in service.containers if c.id in running_ids)}
        )
        for name, service in stored_by_name.items()
        if name in running_services
    }

    diagnostics: list[Diagnostic] = []
    candidates = _consistent_candidates(payload.candidates, survivors, diagnostics)
    accepted = _routable(candidates, survivors, diagnostics)

    # 2. merge
    drafts: dict[str, _Draft] = {
        name: _Draft(
            service, {(c.id, c.ip): (f"stored service '{name}'", c) for c in service.containers}
        )
        for name, service in survivors.items()
    }
    for name, (indexes, candidate) in sorted(accepted.items()):
        settings: dict[str, Any] = {
            "mode": candidate.config_mode,
            "predicate": candidate.predicate,
            "cookie": candidate.cookie,
            **candidate.settings(),
        }
        draft = drafts.get(name)
        if draft is None:
            draft = drafts[name] = _Draft(Service.model_construct(name=name, **settings), {})
        else:
            draft.service = draft.service.model_copy(update=settings)
        for index in indexes:
            for position, container in enumerate(payload.candidates[index].containers):
                origin = f"$.candidates[{index}].containers[{position}]"
                ref = ContainerRef.model_construct(
                    id=container.id, ip=container.ip, weight=container.weight
                )
                key = (container.id, container.ip)
                # A container listed again brings its weight; it keeps its first origin.
                draft.containers[key] = (draft.containers.get(key, (origin, ref))[0], ref)
    for index, running in enumerate(payload.running):
        key = (running.id, running.ip)
        if running.service_name in survivors and key not in drafts[running.service_name].containers:
            # Validated on the way in: no need to validate again.
            ref = ContainerRef.model_construct(id=running.id, ip=running.ip)
            drafts[running.service_name].containers[key] = (f"$.running[{index}]", ref)

    services = [_finish(draft, diagnostics) for _, draft in sorted(drafts.items())]
    services_tuple = tuple(services)
    return Reconciled(services_tuple, services_tuple, tuple(delete), tuple(diagnostics))


def _consistent_candidates(
    candidates: list[Candidate], survivors: Mapping[str, Service], diagnostics: list[Diagnostic]
) -> dict[str, tuple[list[int], Candidate]]:
    """One candidate per service; several that disagree on settings are all left out."""
    by_service: dict[str, list[int]] = defaultdict(list)
    for index, candidate in enumerate(candidates):
        by_service[candidate.service_name].append(index)
    result: dict[str, tuple[list[int], Candidate]] = {}
    for name, indexes in by_service.items():
        settings = {_settings(candidates[index]) for index in indexes}
        paths = [f"$.candidates[{index}]" for index in indexes]
        if len(settings) > 1:
            diagnostics.extend(
                Diagnostic(
                    path,
                    f"service '{name}' has candidates with different settings "
                    f"({', '.join(paths)}); all of them are left out",
                )
                for path in paths
            )
            continue
        result[name] = (indexes, candidates[indexes[0]])
    return result


def _settings(candidate: Candidate) -> tuple[str, str, str | None, str]:
    return (
        candidate.config_mode,
        candidate.predicate,
        candidate.cookie,
        candidate.settings_key(),
    )


def _routable(
    candidates: dict[str, tuple[list[int], Candidate]],
    survivors: Mapping[str, Service],
    diagnostics: list[Diagnostic],
) -> dict[str, tuple[list[int], Candidate]]:
    """Leave out candidates whose route another service holds or also claims."""
    accepted = dict(candidates)
    while True:
        claims: dict[tuple[str, str], list[str]] = defaultdict(list)
        for name in sorted({*survivors, *accepted}):
            if name in accepted:
                candidate = accepted[name][1]
                claims[(candidate.config_mode, candidate.predicate)].append(name)
            else:
                claims[survivors[name].route_key].append(name)
        rejected: set[str] = set()
        for (mode, predicate), names in claims.items():
            if len(names) < 2:
                continue
            holders = [
                n for n in names if n in survivors and survivors[n].route_key == (mode, predicate)
            ]
            for name in names:
                if name in accepted and name not in holders[:1]:
                    rejected.add(name)
                    others = ", ".join(f"'{other}'" for other in names if other != name)
                    why = (
                        f"service {others} already routes it"
                        if holders and holders[0] != name
                        else f"service {others} claims it too"
                    )
                    diagnostics.extend(
                        Diagnostic(
                            f"$.candidates[{index}].predicate",
                            f"{mode} '{predicate}' of service '{name}' conflicts: {why}; "
                            f"'{name}' is left out",
                        )
                        for index in accepted[name][0]
                    )
        if not rejected:
            return accepted
        for name in rejected:
            del accepted[name]


def _finish(draft: _Draft, diagnostics: list[Diagnostic]) -> Service:
    """Dedupe containers; a server id seen with two addresses keeps its first address."""
    kept: dict[str, ContainerRef] = {}
    for (container_id, ip), (origin, ref) in sorted(draft.containers.items()):
        if container_id in kept:
            diagnostics.append(
                Diagnostic(
                    origin,
                    f"container '{container_id}' of service '{draft.service.name}' is listed "
                    f"with two addresses ({kept[container_id].ip} and {ip}); {ip} is left out",
                )
            )
            continue
        kept[container_id] = ref
    return draft.service.model_copy(update={"containers": tuple(kept.values())})
