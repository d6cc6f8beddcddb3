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
* Two services claiming one route: the one deployed first (its oldest container's
  ``created``) keeps it; when that cannot be told, every claimant is left out and reported.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from compiler.errors import Diagnostic
from compiler.models import (
    Candidate,
    ContainerRef,
    HostReport,
    Payload,
    RunningContainer,
    Service,
)
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
    )


def _on_the_registry_clock(
    candidates: list[Candidate], previous: HostReport | None, now: float
) -> tuple[Candidate, ...]:
    """The candidates with no container ``created`` after the registry's clock, and none
    later than this host said before: a time in the future (a forged year 9999) would win
    every later deployment's settings and route for good."""
    latest = created_text(datetime.fromtimestamp(now, UTC))
    before = {
        (candidate.service_name, box.id): box.created
        for candidate in (previous.candidates if previous is not None else ())
        for box in candidate.containers
        if box.created is not None
    }
    clamped = []
    for candidate in candidates:
        boxes, moved = [], False
        for box in candidate.containers:
            limit = min(latest, before.get((candidate.service_name, box.id)) or latest)
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
    reports: Mapping[str, HostReport], payload: Payload, now: float, ttl: float
) -> FleetResult:
    """The reporting host's new report, and the fleet's services with it in place."""
    assert payload.host is not None
    report = new_report(payload, reports.get(payload.host), now)
    others = {h: r for h, r in reports.items() if h != payload.host}
    current = {**live(others, now, ttl), payload.host: report}
    result = render(current, reporting=payload.host)
    return FleetResult(result.render, report, expired(others, now, ttl), result.diagnostics)


def render(reports: Mapping[str, HostReport], *, reporting: str | None = None) -> FleetResult:
    """The services the (live) reports give."""
    diagnostics: list[Diagnostic] = []

    def where(host: str, index: int, position: int | None = None) -> str:
        base = "$" if host == reporting else f"host '{host}': $"
        tail = "" if position is None else f".containers[{position}]"
        return f"{base}.candidates[{index}]{tail}"

    entries: dict[str, list[tuple[str, int, Candidate]]] = defaultdict(list)
    for host in sorted(reports):
        for index, candidate in enumerate(reports[host].candidates):
            # A candidate without containers is no deployment: the host runs nothing of the
            # service, so it neither keeps the service alive nor decides its route.
            if candidate.containers:
                entries[candidate.service_name].append((host, index, candidate))

    winners: dict[str, Settings] = {}
    best_candidates: dict[str, Candidate] = {}
    for name, claims in entries.items():
        best = max(claims, key=lambda claim: (_newest(claim[2]), _settings_key(claim[2])))
        winners[name] = settings_of(best[2])
        best_candidates[name] = best[2]
        for host, index, candidate in claims:
            if settings_of(candidate) != winners[name]:
                diagnostics.append(
                    Diagnostic(
                        where(host, index),
                        f"service '{name}' is routed with the settings of its newest "
                        f"deployment (host '{best[0]}'); these containers differ and are left "
                        "out",
                    )
                )

    kept = _routable(winners, entries, diagnostics, where)
    # Running containers by service, hosts in order; a running container its host also lists
    # as a candidate was decided above. (Indexed once: a pass over every host's running list
    # per service made a 5 000-service fleet take seconds.)
    unlisted: dict[str, list[tuple[str, RunningContainer]]] = defaultdict(list)
    for host in sorted(reports):
        listed = {c.id for candidate in reports[host].candidates for c in candidate.containers}
        for running in reports[host].running:
            if running.id not in listed:
                unlisted[running.service_name].append((host, running))
    services = []
    for name in sorted(kept):
        mode, predicate, cookie, _ = winners[name]
        containers: dict[str, ContainerRef] = {}
        for host, index, candidate in entries[name]:
            if settings_of(candidate) != winners[name]:
                continue
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
    entries: Mapping[str, list[tuple[str, int, Candidate]]],
    diagnostics: list[Diagnostic],
    where: Callable[[str, int], str],
) -> set[str]:
    """Services whose route no other service claims; of claimants, the first deployed."""
    claims: dict[tuple[str, str], list[str]] = defaultdict(list)
    for name, settings in winners.items():
        claims[(settings[0], settings[1])].append(name)
    kept: set[str] = set()
    for (mode, predicate), names in claims.items():
        if len(names) == 1:
            kept.add(names[0])
            continue
        firsts = sorted((_oldest(entries[n], winners[n]), n) for n in names)
        holder = firsts[0][1] if firsts[0][0] < min(UNKNOWN, firsts[1][0]) else None
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
            host, index, _ = entries[name][0]
            path = where(host, index) + ".predicate"
            diagnostics.append(
                Diagnostic(
                    path,
                    f"{mode} '{predicate}' of service '{name}' conflicts: {why}; "
                    f"'{name}' is left out",
                )
            )
    return kept


def _settings_key(candidate: Candidate) -> tuple[str, str, str, str]:
    return (
        candidate.config_mode,
        candidate.predicate,
        candidate.cookie or "",
        candidate.settings_key(),
    )


def _newest(candidate: Candidate) -> str:
    return max((c.created or "" for c in candidate.containers), default="")


def _oldest(claims: list[tuple[str, int, Candidate]], settings: Settings) -> str:
    times = [
        c.created or UNKNOWN
        for _, _, candidate in claims
        if settings_of(candidate) == settings
        for c in candidate.containers
    ]
    return min(times, default=UNKNOWN)
