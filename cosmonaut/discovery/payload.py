"""Managed containers -> the registry payload (pure).

Level-triggered: every payload describes the whole host. ``running`` lists every routed
container, and ``candidates`` holds one entry per service with the settings and all of its
containers, so the registry's output never depends on what it remembered.

Containers of one service must agree on the settings. When they do not (a rolling deployment
that changes the route, say), the newest container's settings win, as the registry decides for
stored services, and the containers that disagree are left out and reported.

In fleet mode (a ``host`` id), the payload is that host's report: it carries ``host``, and each
candidate container its ``created`` time (RFC 3339), by which the registry lets the newest
deployment of a service win across hosts. Without a host, the payload is exactly the seed's
(no ``created`` either, so registries that predate fleet mode accept it).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from compiler.errors import Diagnostic
from compiler.validators import created_text
from cosmonaut.discovery.containers import ManagedContainer
from cosmonaut.discovery.labels import LABELS, ContainerProblem, ServiceSettings

_TABLE_CHARACTERS = re.compile(r"[^A-Za-z0-9_.-]")
_HOST_ID_CHARACTERS = re.compile(r"[^A-Za-z0-9_.:-]")  # compiler.models' Identifier
HOST_ID_LENGTH = 64
_CANDIDATE_PATH = re.compile(r"\$\.candidates\[(\d+)\](?:\.containers\[(\d+)\])?")
_RUNNING_PATH = re.compile(r"\$\.running\[(\d+)\]")


@dataclass(frozen=True, slots=True)
class PayloadPlan:
    payload: dict[str, Any]
    routed: tuple[ManagedContainer, ...]
    problems: tuple[ContainerProblem, ...]
    candidates: tuple[tuple[ManagedContainer, ...], ...]  # by candidate index

    def containers_of(self, diagnostic: Diagnostic) -> tuple[str, ...]:
        """The names of the containers a registry diagnostic is about (by its JSON path)."""
        match = _CANDIDATE_PATH.match(diagnostic.path)
        if match:
            index = int(match.group(1))
            if index >= len(self.candidates):
                return ()
            containers = self.candidates[index]
            if match.group(2) is not None:
                position = int(match.group(2))
                containers = containers[position : position + 1]
            return tuple(c.name for c in containers)
        match = _RUNNING_PATH.match(diagnostic.path)
        if match and int(match.group(1)) < len(self.routed):
            return (self.routed[int(match.group(1))].name,)
        return ()


def build_payload(
    table: str, containers: Iterable[ManagedContainer], *, host: str | None = None
) -> PayloadPlan:
    by_service: dict[str, list[ManagedContainer]] = defaultdict(list)
    for container in containers:
        by_service[container.settings.service].append(container)
    problems: list[ContainerProblem] = []
    candidates: list[dict[str, Any]] = []
    members: list[tuple[ManagedContainer, ...]] = []
    for service in sorted(by_service):
        group = sorted(by_service[service], key=lambda c: (-c.created, c.name))
        settings = group[0].settings
        agreeing = []
        for container in group:
            if _routing(container.settings) == _routing(settings):
                agreeing.append(container)
                continue
            differing = ", ".join(
                [
                    LABELS[name]
                    for name in ("mode", "predicate", "cookie", "tls")
                    if getattr(container.settings, name) != getattr(settings, name)
                ]
                + (["settings"] if _others(container.settings) != _others(settings) else [])
            )
            problems.append(
                ContainerProblem(
                    container.name,
                    differing,
                    f"differs from the newest container of service {service!r} "
                    f"({group[0].name}); left out until they agree",
                )
            )
        agreeing.sort(key=lambda c: c.short_id)
        candidate: dict[str, Any] = {
            "serviceName": service,
            "configMode": settings.mode,
            "predicate": settings.predicate,
            "containers": [_candidate_container(c, fleet=host is not None) for c in agreeing],
        }
        if settings.cookie is not None:
            candidate["cookie"] = settings.cookie
        candidate |= json.loads(settings.options)  # the per-service settings (tls too), if any
        candidates.append(candidate)
        members.append(tuple(agreeing))
    routed = tuple(c for group in members for c in group)
    payload: dict[str, Any] = {"table": table}
    if host is not None:
        payload["host"] = host
    payload |= {
        "running": [
            {"serviceName": c.settings.service, "id": c.short_id, "ip": c.address} for c in routed
        ],
        "candidates": candidates,
    }
    return PayloadPlan(payload, routed, tuple(problems), tuple(members))


def _candidate_container(container: ManagedContainer, *, fleet: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": container.short_id, "ip": container.address}
    if fleet and container.created > 0:
        entry["created"] = rfc3339(container.created)
    if container.settings.weight is not None:
        entry["weight"] = container.settings.weight
    return entry


def rfc3339(timestamp: float) -> str:
    """A Unix time as RFC 3339 in UTC, to the microsecond (``2026-12-01T20:32:52.436433Z``)."""
    return created_text(datetime.fromtimestamp(timestamp, UTC))


def _routing(settings: ServiceSettings) -> tuple[str, str, str | None, str]:
    return (settings.mode, settings.predicate, settings.cookie, settings.options)


def _others(settings: ServiceSettings) -> dict[str, Any]:
    """The per-service settings but tls, which is reported under its own label."""
    options: dict[str, Any] = json.loads(settings.options)
    options.pop("tls", None)
    return options


def table_for_host(name: str) -> str:
    """The default table of a Docker host: its name as a table name. Other characters become
    '-', and a name shorter than three characters is prefixed with 'host-'."""
    table = _TABLE_CHARACTERS.sub("-", name)[:255] or "host"
    return table if len(table) >= 3 else f"host-{table}"


def host_id_for(name: str) -> str:
    """A host id (an HAProxy identifier: 1 to 64 of letters, digits, '-', '_', '.', ':') from
    the Docker engine's name. Other characters become '-'; an empty name gives 'host'."""
    return _HOST_ID_CHARACTERS.sub("-", name.strip())[:HOST_ID_LENGTH] or "host"
