"""Fleet mode: the live hosts' reports -> the services to render (pure; see
``reference/semantics.md``, "Fleet mode").

* A report replaces its own host's previous report and touches nothing else.
* A host silent for longer than the lease (``ttl``) is expired: its containers leave the
  config, and the store removes its record at the next write.
* The rendered config is the union of the live hosts' containers: a service exists while a
  live host reports a candidate of it with at least one container (a candidate without
  containers deploys nothing: it neither keeps a service nor decides its route).
* One service reported with different settings (route, cookie or per-service settings):
  the newest deployment decides, by
  the containers' ``created`` time (ties broken by the settings themselves, so the choice
  depends only on what the live reports say, never on the order they came in). Containers
  whose settings differ from the winner's are left out and reported. ``created`` is taken
  on the registry's clock: never after the report's arrival, nor later than the host said
  before.
* Two services claiming one route: the one deployed first keeps it: first seen by the
  registry (each report keeps when its containers were first reported), then by oldest
  ``created``; when that cannot be told, every claimant is left out and reported.
* Who may change what: a service's route, basic auth and allow list stay those of its first
  protected deployment while it runs; a path service inside a protected path's tree must
  carry the same protection; the render option ``fleet_owners`` binds services and routes
  to hosts, whose newest deployment then decides everything (docs/registry.md).
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fnmatch import fnmatchcase

from compiler.errors import Diagnostic
from compiler.models import (
    Candidate,
    ContainerRef,
    HostReport,
    Payload,
    RunningContainer,
    Service,
)
from compiler.options import OwnerRule
from compiler.validators import created_text
from runtime.merge import Settings, settings_of

DEFAULT_TTL = 90.0  # seconds: three of Cosmonaut's default 30 s resyncs
UNKNOWN = "~"  # sorts after every RFC 3339 time: "not known to be old"


@dataclass(frozen=True, slots=True)
class FleetResult:
    """What a fleet call renders; ``report`` (the reporting host's new report) and
    ``delete`` (expired hosts) are what its store writes."""

    render: tuple[Service, ...]
    report: HostReport | None = None
    delete: tuple[str, ...] = ()
    diagnostics: tuple[Diagnostic, ...] = field(default=())

    # The seed-mode ``Decision`` shape, so that results read the same way in logs.
    @property
    def store(self) -> tuple[Service, ...]:
        return ()


def live(reports: Mapping[str, HostReport], now: float, ttl: float) -> dict[str, HostReport]:
    return {host: r for host, r in reports.items() if now - r.reported_at <= ttl}


def expired(reports: Mapping[str, HostReport], now: float, ttl: float) -> tuple[str, ...]:
    return tuple(sorted(host for host, r in reports.items() if now - r.reported_at > ttl))


def new_report(payload: Payload, previous: HostReport | None, now: float) -> HostReport:
    assert payload.host is not None
    return HostReport.model_construct(
        host=payload.host,
        reported_at=now,
        seq=(previous.seq + 1) if previous is not None else 1,
        running=tuple(payload.running),
        candidates=_on_the_registry_clock(payload.candidates, previous, now),
        first_seen=_first_seen(payload.candidates, previous, now),
    )


def _first_seen(
    candidates: list[Candidate], previous: HostReport | None, now: float
) -> dict[str, float]:
    before = previous.first_seen if previous is not None else {}
    return {
        box.id: before.get(box.id, now) for candidate in candidates for box in candidate.containers
    }


def _on_the_registry_clock(
    candidates: list[Candidate], previous: HostReport | None, now: float
) -> tuple[Candidate, ...]:
    """The candidates with no container ``created`` after the registry's clock, and none
    later than this host said for it before or elsewhere in this report: a time in the
    future (a forged year 9999) would win every later deployment's settings and route for
    good, and a container listed twice with two times would change its time each report."""
    limits: dict[tuple[str, str], str] = {}
    for candidate in (*(previous.candidates if previous is not None else ()), *candidates):
        for box in candidate.containers:
            key = (candidate.service_name, box.id)
            if box.created is not None and box.created < limits.get(key, "~"):
                limits[key] = box.created
    latest = created_text(datetime.fromtimestamp(now, UTC))
    clamped = []
    for candidate in candidates:
        boxes, moved = [], False
        for box in candidate.containers:
            limit = min(latest, limits.get((candidate.service_name, box.id), latest))
            if box.created is not None and box.created > limit:
                box, moved = box.model_copy(update={"created": limit}), True
            boxes.append(box)
        if moved:  # most reports move nothing: keep the candidate as validated
            candidate = candidate.model_copy(update={"containers": boxes})
        clamped.append(candidate)
    return tuple(clamped)


def without_local_addresses(
    payload: Payload, allowed: Sequence[str] = ()
) -> tuple[Payload, tuple[Diagnostic, ...]]:
    """The payload without containers at addresses that only mean something on the host
    itself, or nowhere (loopback, link-local, unspecified, multicast, broadcast), unless a
    network in ``allowed`` holds them: in fleet mode every host's HAProxy routes to every
    address, so ``127.0.0.1:2375`` would open each host's own Docker API, and
    ``169.254.169.254:80`` its cloud metadata service."""
    networks = [ipaddress.ip_network(cidr) for cidr in allowed]
    diagnostics: list[Diagnostic] = []

    def refused(address: str, path: str) -> bool:
        host = address.rpartition(":")[0].strip("[]")
        ip = ipaddress.ip_address(host)
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        kind = _local_kind(ip)
        if kind is None or any(ip in network for network in networks):
            return False
        diagnostics.append(
            Diagnostic(
                path,
                f"{address} is a {kind} address: in fleet mode every host's HAProxy would "
                "route to it on itself; it is left out (the render option fleet_allow "
                "takes networks to allow)",
            )
        )
        return True

    candidates = []
    left_out: set[tuple[str, str]] = set()
    for index, candidate in enumerate(payload.candidates):
        boxes = []
        for position, box in enumerate(candidate.containers):
            if refused(box.ip, f"$.candidates[{index}].containers[{position}].ip"):
                left_out.add((box.id, box.ip))
            else:
                boxes.append(box)
        if len(boxes) != len(candidate.containers):
            candidate = candidate.model_copy(update={"containers": boxes})
        candidates.append(candidate)
    running = [
        container
        for index, container in enumerate(payload.running)
        # A container its candidate lists was reported there already.
        if (container.id, container.ip) not in left_out
        and not refused(container.ip, f"$.running[{index}].ip")
    ]
    if not diagnostics:
        return payload, ()
    return payload.model_copy(update={"running": running, "candidates": candidates}), tuple(
        diagnostics
    )


def _local_kind(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_multicast:
        return "multicast"
    if ip == ipaddress.IPv4Address("255.255.255.255"):
        return "broadcast"
    return None


def report_and_render(
    reports: Mapping[str, HostReport],
    payload: Payload,
    now: float,
    ttl: float,
    owners: Sequence[OwnerRule] = (),
) -> FleetResult:
    """The reporting host's new report, and the fleet's services with it in place."""
    assert payload.host is not None
    report = new_report(payload, reports.get(payload.host), now)
    others = {h: r for h, r in reports.items() if h != payload.host}
    current = {**live(others, now, ttl), payload.host: report}
    result = render(current, reporting=payload.host, owners=owners)
    return FleetResult(result.render, report, expired(others, now, ttl), result.diagnostics)


# A candidate as one host reports it: (host, its index in that host's candidates, candidate).
Claim = tuple[str, int, Candidate]


def render(
    reports: Mapping[str, HostReport],
    *,
    reporting: str | None = None,
    owners: Sequence[OwnerRule] = (),
) -> FleetResult:
    """The services the (live) reports give; ``owners`` (the render option ``fleet_owners``)
    says which hosts may deploy which services and routes."""
    diagnostics: list[Diagnostic] = []

    def where(host: str, index: int, position: int | None = None) -> str:
        base = "$" if host == reporting else f"host '{host}': $"
        tail = "" if position is None else f".containers[{position}]"
        return f"{base}.candidates[{index}]{tail}"

    policy = _Owners(owners)
    entries: dict[str, list[Claim]] = defaultdict(list)
    for host in sorted(reports):
        for index, candidate in enumerate(reports[host].candidates):
            # A candidate without containers is no deployment: the host runs nothing of the
            # service, so it neither keeps the service alive nor decides its route.
            if not candidate.containers:
                continue
            refusal = policy.refusal(host, candidate)
            if refusal is not None:
                diagnostics.append(Diagnostic(where(host, index), refusal))
                continue
            entries[candidate.service_name].append((host, index, candidate))

    def seen(claim: Claim) -> tuple[float, str]:
        return _first_deployed(reports[claim[0]], claim[2])

    winners: dict[str, Settings] = {}
    best_candidates: dict[str, Candidate] = {}
    chosen: dict[str, list[Claim]] = {}
    for name, claims in entries.items():
        if not policy.owns(name, claims):
            claims = _keeping_protections(name, claims, seen, diagnostics, where)
        best = max(claims, key=lambda claim: (_newest(claim[2]), _settings_key(claim[2])))
        winners[name] = settings_of(best[2])
        best_candidates[name] = best[2]
        chosen[name] = []
        for claim in claims:
            host, index, candidate = claim
            if settings_of(candidate) == winners[name]:
                chosen[name].append(claim)
                continue
            diagnostics.append(
                Diagnostic(
                    where(host, index),
                    f"service '{name}' is routed with the settings of its newest "
                    f"deployment (host '{best[0]}'); these containers differ and are left "
                    "out",
                )
            )

    kept = _routable(winners, chosen, seen, diagnostics, where)
    kept -= _under_protected_paths(kept, best_candidates, chosen, policy, diagnostics, where)
    # Running containers by service, hosts in order; a running container its host also lists
    # as a candidate was decided above. (Indexed once: a pass over every host's running list
    # per service made a 5 000-service fleet take seconds.)
    unlisted: dict[str, list[tuple[str, RunningContainer]]] = defaultdict(list)
    for host in sorted(reports):
        listed = {c.id for candidate in reports[host].candidates for c in candidate.containers}
        for running in reports[host].running:
            if running.id not in listed and policy.may_run(host, running.service_name):
                unlisted[running.service_name].append((host, running))
    services = []
    for name in sorted(kept):
        mode, predicate, cookie, _ = winners[name]
        containers: dict[str, ContainerRef] = {}
        for host, index, candidate in chosen[name]:
            for position, container in enumerate(candidate.containers):
                _add(containers, container, name, where(host, index, position), diagnostics)
        for host, running in unlisted.get(name, ()):
            _add(containers, running, name, f"host '{host}': $.running", diagnostics)
        services.append(
            Service.model_construct(
                name=name,
                mode=mode,
                predicate=predicate,
                cookie=cookie,
                containers=tuple(sorted(containers.values(), key=lambda c: (c.id, c.ip))),
                # The newest deployment's settings, as for its route.
                **best_candidates[name].settings(),
            )
        )
    return FleetResult(tuple(services), diagnostics=tuple(diagnostics))


def _add(
    containers: dict[str, ContainerRef],
    container: ContainerRef | object,
    service: str,
    origin: str,
    diagnostics: list[Diagnostic],
) -> None:
    container_id: str = getattr(container, "id")  # noqa: B009
    ip: str = getattr(container, "ip")  # noqa: B009
    known = containers.get(container_id)
    if known is None:
        weight: int | None = getattr(container, "weight", None)
        containers[container_id] = ContainerRef.model_construct(
            id=container_id, ip=ip, weight=weight
        )
    elif known.ip != ip:
        diagnostics.append(
            Diagnostic(
                origin,
                f"container '{container_id}' of service '{service}' is listed with two "
                f"addresses ({known.ip} and {ip}); {ip} is left out",
            )
        )


def _routable(
    winners: dict[str, Settings],
    chosen: Mapping[str, list[Claim]],
    seen: Callable[[Claim], tuple[float, str]],
    diagnostics: list[Diagnostic],
    where: Callable[[str, int], str],
) -> set[str]:
    """Services whose route no other service claims; of claimants, the first deployed (as
    the registry saw it, then by ``created``)."""
    claims: dict[tuple[str, str], list[str]] = defaultdict(list)
    for name, settings in winners.items():
        claims[(settings[0], settings[1])].append(name)
    kept: set[str] = set()
    for (mode, predicate), names in claims.items():
        if len(names) == 1:
            kept.add(names[0])
            continue
        firsts = sorted((min(map(seen, chosen[n])), n) for n in names)
        holder = firsts[0][1] if firsts[0][0] < min(NOT_SEEN, firsts[1][0]) else None
        if holder is not None:
            kept.add(holder)
        for name in names:
            if name == holder:
                continue
            others = ", ".join(f"'{other}'" for other in sorted(names) if other != name)
            why = (
                f"service '{holder}' already routes it"
                if holder
                else f"service {others} claims it too"
            )
            host, index, _ = chosen[name][0]
            path = where(host, index) + ".predicate"
            diagnostics.append(
                Diagnostic(
                    path,
                    f"{mode} '{predicate}' of service '{name}' conflicts: {why}; "
                    f"'{name}' is left out",
                )
            )
    return kept


# --- who may change what ----------------------------------------------------------------

NOT_SEEN = (float("inf"), UNKNOWN)  # after every known (first seen, created)


def _first_deployed(report: HostReport, candidate: Candidate) -> tuple[float, str]:
    """When the registry first saw a container of this candidate, then its oldest
    ``created``: a forged ``created`` in the past cannot make a newcomer the first."""
    return min(
        (
            (report.first_seen.get(c.id, float("inf")), c.created or UNKNOWN)
            for c in candidate.containers
        ),
        default=NOT_SEEN,
    )


def _guard(candidate: Candidate) -> tuple[object, ...]:
    """What a newcomer may not drop or take: the route, the basic auth, the allow list."""
    return (candidate.config_mode, candidate.predicate, candidate.auth, candidate.allow)


def _protected(candidate: Candidate) -> bool:
    return candidate.auth is not None or candidate.allow is not None


def _keeping_protections(
    name: str,
    claims: list[Claim],
    seen: Callable[[Claim], tuple[float, str]],
    diagnostics: list[Diagnostic],
    where: Callable[[str, int], str],
) -> list[Claim]:
    """The claims that keep the route, basic auth and allow list of the service's first
    protected deployment: a later deployment that changes them (drops the auth, say) is left
    out while that one runs, unless the operator names the service's owners."""
    protected = [claim for claim in claims if _protected(claim[2])]
    if not protected:
        return claims
    first = min(protected, key=lambda claim: (seen(claim), _settings_key(claim[2])))
    guard = _guard(first[2])
    kept = []
    for claim in claims:
        host, index, candidate = claim
        if _guard(candidate) == guard:
            kept.append(claim)
            continue
        diagnostics.append(
            Diagnostic(
                where(host, index),
                f"service '{name}' keeps the route, basic auth and allow list it has had "
                f"since host '{first[0]}' deployed it; these containers would change them "
                "and are left out (the render option fleet_owners names hosts that may)",
            )
        )
    return kept


def _under_protected_paths(
    kept: set[str],
    best: Mapping[str, Candidate],
    chosen: Mapping[str, list[Claim]],
    policy: _Owners,
    diagnostics: list[Diagnostic],
    where: Callable[[str, int], str],
) -> set[str]:
    """Path services inside another path service's tree that has basic auth or an allow
    list, without the same protection: the longer path is routed first, so it would take
    that part of the tree out from behind the protection. The operator allows one by
    naming its owners (``fleet_owners``)."""
    guarded = [
        (best[name].predicate, name)
        for name in kept
        if best[name].config_mode == "path" and _protected(best[name])
    ]
    if not guarded:
        return set()
    left_out = set()
    for name in sorted(kept):
        candidate = best[name]
        if candidate.config_mode != "path" or policy.owns(name, chosen[name]):
            continue
        for parent_path, parent in sorted(guarded):
            if parent == name or not _inside(candidate.predicate, parent_path):
                continue
            parent_guard = (best[parent].auth, best[parent].allow)
            if (candidate.auth, candidate.allow) == parent_guard:
                continue
            host, index, _ = chosen[name][0]
            diagnostics.append(
                Diagnostic(
                    where(host, index) + ".predicate",
                    f"path '{candidate.predicate}' of service '{name}' lies under "
                    f"'{parent_path}' of service '{parent}', which has basic auth or an allow "
                    f"list that '{name}' does not carry; '{name}' is left out (the render "
                    "option fleet_owners names hosts that may)",
                )
            )
            left_out.add(name)
            break
    return left_out


def _inside(path: str, parent: str) -> bool:
    return path.startswith(parent + "/")


class _Owners:
    """The render option ``fleet_owners``: which hosts may deploy which services and
    routes."""

    def __init__(self, rules: Sequence[OwnerRule]) -> None:
        self.rules = tuple(rules)

    def _service_rules(self, name: str) -> list[OwnerRule]:
        return [r for r in self.rules if r.services is not None and fnmatchcase(name, r.services)]

    def _route_rules(self, predicate: str) -> list[OwnerRule]:
        return [r for r in self.rules if r.routes is not None and fnmatchcase(predicate, r.routes)]

    @staticmethod
    def _names(rules: list[OwnerRule], host: str) -> bool:
        return any(fnmatchcase(host, pattern) for rule in rules for pattern in rule.hosts)

    def refusal(self, host: str, candidate: Candidate) -> str | None:
        """Why ``host`` may not deploy ``candidate``, or None."""
        name = candidate.service_name
        by_service = self._service_rules(name)
        if by_service and not self._names(by_service, host):
            return (
                f"host '{host}' may not deploy service '{name}' (render option "
                "fleet_owners); these containers are left out"
            )
        by_route = self._route_rules(candidate.predicate)
        if by_route and not self._names(by_route, host):
            return (
                f"host '{host}' may not claim {candidate.config_mode} "
                f"'{candidate.predicate}' for service '{name}' (render option fleet_owners); "
                "these containers are left out"
            )
        return None

    def may_run(self, host: str, service: str) -> bool:
        """Whether ``host``'s running containers may join ``service``."""
        rules = self._service_rules(service)
        return not rules or self._names(rules, host)

    def owns(self, name: str, claims: list[Claim]) -> bool:
        """Whether the operator named the hosts of every claim: then their newest deployment
        decides the service's settings, protections and route included."""
        return bool(claims) and all(
            self._service_rules(name) or self._route_rules(candidate.predicate)
            for _, _, candidate in claims
        )


def _settings_key(candidate: Candidate) -> tuple[str, str, str, str]:
    return (
        candidate.config_mode,
        candidate.predicate,
        candidate.cookie or "",
        candidate.settings_key(),
    )


def _newest(candidate: Candidate) -> str:
    return max((c.created or "" for c in candidate.containers), default="")
