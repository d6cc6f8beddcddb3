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
from compiler.validators import ConfigModeName

# Route and settings of a candidate: mode, predicate, cookie, the other settings as JSON.
Settings = tuple[ConfigModeName, str, str | None, str]


@dataclass(frozen=True, slots=True)
class Reconciled:
    render: tuple[Service, ...]
    store: tuple[Service, ...]
    delete: tuple[str, ...]
    diagnostics: tuple[Diagnostic, ...] = field(default=())


@dataclass(slots=True)
class _Draft:
    """A service being assembled, with the JSON path of each container's origin."""

    service: Service | None  # None for a new service: made once, in _finish
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
            service, {(c.id, c.ip): (f"{_STORED} '{name}'", c) for c in service.containers}
        )
        for name, service in survivors.items()
    }
    new_services: dict[str, dict[str, Any]] = {}  # built once, in _finish
    for name, (indexes, candidate) in sorted(accepted.items()):
        settings: dict[str, Any] = {
            "mode": candidate.config_mode,
            "predicate": candidate.predicate,
            "cookie": candidate.cookie,
            **candidate.settings(),
        }
        draft = drafts.get(name)
        if draft is None:
            draft = drafts[name] = _Draft(None, {})
            new_services[name] = settings
        else:
            draft.service = _with(draft.service, settings)
        containers = draft.containers
        for index in indexes:
            prefix = f"$.candidates[{index}].containers["
            for position, container in enumerate(payload.candidates[index].containers):
                key = (container.id, container.ip)
                ref = _container_ref(container.id, container.ip, container.weight)
                # A container listed again brings its weight; it keeps its first origin.
                found = containers.get(key)
                containers[key] = (found[0] if found else f"{prefix}{position}]", ref)
    for index, running in enumerate(payload.running):
        name = running.service_name
        if name in survivors:
            containers = drafts[name].containers
            key = (running.id, running.ip)
            if key not in containers:
                # Validated on the way in: no need to validate again.
                containers[key] = (f"$.running[{index}]", _container_ref(*key))

    services = tuple(
        _finish(name, draft, new_services.get(name), diagnostics)
        for name, draft in sorted(drafts.items())
    )
    return Reconciled(services, services, tuple(delete), tuple(diagnostics))


_STORED = "stored service"  # the origin of a container the table remembered
_FIELDS_SET = frozenset({"id", "ip"})
_new_ref = ContainerRef.__new__


def _container_ref(container_id: str, ip: str, weight: int | None = None) -> ContainerRef:
    """``ContainerRef.model_construct(...)`` for already validated values, through pydantic's
    pickling protocol (``__setstate__``), at less than half the cost: a compile makes one per
    container (tests/runtime/test_reconcile.py checks that both give the same model)."""
    ref = _new_ref(ContainerRef)
    ref.__setstate__(
        {
            "__dict__": {"id": container_id, "ip": ip, "weight": weight},
            "__pydantic_fields_set__": set(_FIELDS_SET)
            if weight is None
            else {*_FIELDS_SET, "weight"},
            "__pydantic_extra__": None,
            "__pydantic_private__": None,
        }
    )
    return ref


def _with(service: Service | None, update: dict[str, Any]) -> Service:
    assert service is not None  # a draft without a service is a new one (see _finish)
    return service.model_copy(update=update)


def _consistent_candidates(
    candidates: list[Candidate], survivors: Mapping[str, Service], diagnostics: list[Diagnostic]
) -> dict[str, tuple[list[int], Candidate]]:
    """One candidate per service; several that disagree on settings are all left out."""
    by_service: dict[str, list[int]] = defaultdict(list)
    for index, candidate in enumerate(candidates):
        by_service[candidate.service_name].append(index)
    result: dict[str, tuple[list[int], Candidate]] = {}
    for name, indexes in by_service.items():
        settings = {settings_of(candidates[index]) for index in indexes}
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


def settings_of(candidate: Candidate) -> Settings:
    """What candidates of one service must agree on (equal values: they agree): route (mode
    and predicate), cookie, and the other settings as JSON. Fleet mode asks it too."""
    return (candidate.config_mode, candidate.predicate, candidate.cookie, candidate.settings_key())


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


def _finish(
    name: str, draft: _Draft, settings: dict[str, Any] | None, diagnostics: list[Diagnostic]
) -> Service:
    """Dedupe containers. A container this payload lists at another address than the stored
    one has moved (an engine gives a restarted container a new address): the payload's
    address replaces the stored one. Listed by the payload at two addresses, it keeps its
    first, and the other is reported.

    A new service (``settings`` given) is made here, once, with its containers."""
    kept: dict[str, ContainerRef] = {}
    from_store: set[str] = set()
    listed: list[tuple[tuple[str, str], tuple[str, ContainerRef]]] = []
    stored: list[tuple[tuple[str, str], tuple[str, ContainerRef]]] = []
    for entry in sorted(draft.containers.items()):
        (stored if entry[1][0].startswith(_STORED) else listed).append(entry)
    for (container_id, ip), (origin, ref) in [*listed, *stored]:
        if container_id in kept:
            if origin.startswith(_STORED) and container_id not in from_store:
                continue  # the payload's newer address wins, silently
            diagnostics.append(
                Diagnostic(
                    origin,
                    f"container '{container_id}' of service '{name}' is listed "
                    f"with two addresses ({kept[container_id].ip} and {ip}); {ip} is left out",
                )
            )
            continue
        kept[container_id] = ref
        if origin.startswith(_STORED):
            from_store.add(container_id)
    containers = tuple(ref for _, ref in sorted(kept.items()))
    if settings is not None:
        # Validated on the way in (a candidate's settings): no need to validate again.
        return Service.model_construct(name=name, **settings, containers=containers)
    assert draft.service is not None
    return draft.service.model_copy(update={"containers": containers})
