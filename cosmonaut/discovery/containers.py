"""Discovery: which containers of the Docker host are managed, with which settings and address.

One ``Discoverer.discover()`` is one full listing (level-triggered: it never relies on which
event arrived). It costs two list calls, one inspect of the HAProxy container, and one inspect
per container never seen before: a container's labels and environment cannot change, so they
are cached by id.

Where other hosts reach a container (``--address-mode``): ``container``, its IP on the chosen
Docker network (for networks routable from other hosts: an overlay, ECS ``awsvpc``, macvlan);
``published``, the host's ``--advertise-address`` with the host port Docker published for the
service port, as ``docker run -p`` and ECS bridge mode work. The published port is read from
each listing (``Ports``, the same data as ``NetworkSettings.Ports``), never from the cache: a
restart can give a container another host port.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from cosmonaut.discovery.engine import JSON, Engine, NotFound, engine_time
from cosmonaut.discovery.labels import (
    NETWORK_LABEL,
    ContainerProblem,
    ServiceSettings,
    is_enabled,
    is_managed,
    network_of,
    parse_environment,
    read_services,
)
from cosmonaut.discovery.modes import AddressMode
from cosmonaut.errors import UsageError

DEFAULT_CONFIG_PATH = "/usr/local/etc/haproxy/haproxy.cfg"
PUBLISHED = "published"  # the ``network`` of a container reached on a published port
_ALL_ADDRESSES = frozenset({"", "0.0.0.0", "::"})
_WILDCARD = {4: "0.0.0.0", 6: "::"}


@dataclass(frozen=True, slots=True)
class ManagedContainer:
    """A running, routable service container."""

    id: str
    name: str
    created: float
    settings: ServiceSettings
    network: str  # the Docker network of ``ip``, or ``PUBLISHED``
    ip: str
    host_port: int | None = None  # the published port (``--address-mode published``)

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def address(self) -> str:
        return f"[{self.ip}]:{self.port}" if ":" in self.ip else f"{self.ip}:{self.port}"

    @property
    def port(self) -> int:
        return self.host_port if self.host_port is not None else self.settings.port

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.short_id,
            "name": self.name,
            "service": self.settings.service,
            "mode": self.settings.mode,
            "predicate": self.settings.predicate,
            "cookie": self.settings.cookie,
            "address": self.address,
            "network": self.network,
        }


@dataclass(frozen=True, slots=True)
class Excluded:
    """A managed container out of rotation for now (unhealthy, paused); not a mistake."""

    container: str
    reason: str
    id: str = ""
    unhealthy: bool = False

    def as_dict(self) -> dict[str, str]:
        return {"container": self.container, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class HaproxyContainer:
    id: str
    name: str
    running: bool
    started_at: str
    networks: tuple[str, ...]
    command: tuple[str, ...]
    config_path: str


@dataclass(frozen=True, slots=True)
class Discovery:
    containers: tuple[ManagedContainer, ...]
    problems: tuple[ContainerProblem, ...] = ()
    excluded: tuple[Excluded, ...] = ()
    haproxy: HaproxyContainer | None = None
    networks: tuple[str, ...] = field(default=())  # where addresses were looked up


@dataclass(frozen=True, slots=True)
class _Static:
    """What never changes about a container: cached by id."""

    labels: Mapping[str, str]
    environment: Mapping[str, str]
    created: float


class Discoverer:
    def __init__(
        self,
        engine: Engine,
        *,
        haproxy_container: str = "haproxy",
        network: str | None = None,
        keyword: str | None = None,
        config_path: str | None = None,
        address_mode: AddressMode = "container",
        advertise_address: str | None = None,
    ) -> None:
        if address_mode == "published" and not advertise_address:
            raise UsageError(
                "--address-mode published needs the host's address", file="--advertise-address"
            )
        self.engine = engine
        self.address_mode = address_mode
        self.advertise_address = advertise_address
        self.haproxy_name = haproxy_container
        self.network = network
        self.keyword = keyword.lower() if keyword else None
        self.config_path = config_path
        self._static: dict[str, _Static] = {}
        self._pool = ThreadPoolExecutor(2, thread_name_prefix="cosmonaut-discover")

    def haproxy(self) -> HaproxyContainer | None:
        try:
            attributes = self.engine.inspect(self.haproxy_name)
        except NotFound:
            return None
        config = attributes.get("Config") or {}
        command = tuple(
            str(word) for word in [*(config.get("Entrypoint") or []), *(config.get("Cmd") or [])]
        )
        state = attributes.get("State") or {}
        networks = (attributes.get("NetworkSettings") or {}).get("Networks") or {}
        return HaproxyContainer(
            id=str(attributes.get("Id", "")),
            name=str(attributes.get("Name", self.haproxy_name)).lstrip("/"),
            running=bool(state.get("Running")) and not state.get("Paused"),
            started_at=str(state.get("StartedAt", "")),
            networks=tuple(sorted(networks)),
            command=command,
            config_path=self.config_path or config_path_of(command),
        )

    def discover(self) -> Discovery:
        # Three independent calls, two of them in the background.
        found_haproxy = self._pool.submit(self.haproxy)
        found_unhealthy = self._pool.submit(self.engine.containers, {"health": "unhealthy"})
        listed = self.engine.containers({"status": ["running", "paused"]}, all=True)
        unhealthy = {c.get("Id") for c in found_unhealthy.result()}
        haproxy = found_haproxy.result()
        if self.network:
            networks: tuple[str, ...] = (self.network,)
        elif haproxy is not None:
            networks = haproxy.networks
        else:
            networks = ()
        seen: set[str] = set()
        managed: list[ManagedContainer] = []
        problems: list[ContainerProblem] = []
        excluded: list[Excluded] = []
        for summary in sorted(listed, key=_name):
            container_id = str(summary.get("Id", ""))
            name = _name(summary)
            if not container_id or (haproxy is not None and container_id == haproxy.id):
                continue
            if self.keyword and self.keyword not in name.lower():
                continue
            seen.add(container_id)
            static = self._static_of(container_id, summary)
            if static is None or not is_managed(static.labels, static.environment):
                continue
            if not is_enabled(static.labels):
                continue  # cosmonaut.enable=false: opted out
            services = read_services(name, static.labels, static.environment)
            offered = [one for one in services if isinstance(one, ServiceSettings)]
            if len(offered) != len(services) or not offered:
                problems.extend(one for one in services if isinstance(one, ContainerProblem))
                continue
            state = str(summary.get("State", "")).lower()
            if state != "running":
                excluded.append(Excluded(name, f"container is {state or 'not running'}"))
                continue
            if container_id in unhealthy:
                excluded.append(
                    Excluded(name, "Docker health check says unhealthy", container_id, True)
                )
                continue
            chosen = network_of(static.labels)
            # One entry per service the container offers (several ports, several services).
            entries: list[ManagedContainer] = []
            for settings in offered:
                if self.advertise_address is not None and self.address_mode == "published":
                    found = published_address(summary, settings.port, self.advertise_address)
                else:
                    found = _address(summary, (chosen,) if chosen else networks)
                if isinstance(found, Unreachable):
                    where = (
                        NETWORK_LABEL if chosen and found.setting == "network" else found.setting
                    )
                    problems.append(ContainerProblem(name, where, found.reason))
                    break
                entries.append(
                    ManagedContainer(
                        container_id,
                        name,
                        static.created,
                        settings,
                        found.network,
                        found.ip,
                        found.host_port,
                    )
                )
            else:
                managed.extend(entries)
        for stale in set(self._static) - seen:
            del self._static[stale]
        return Discovery(tuple(managed), tuple(problems), tuple(excluded), haproxy, networks)

    def _static_of(self, container_id: str, summary: JSON) -> _Static | None:
        cached = self._static.get(container_id)
        if cached is not None:
            return cached
        try:
            attributes = self.engine.inspect(container_id)
        except NotFound:  # gone between the listing and now
            return None
        config = attributes.get("Config") or {}
        labels = config.get("Labels") or summary.get("Labels") or {}
        static = _Static(
            labels={str(k): str(v) for k, v in labels.items()},
            environment=parse_environment(config.get("Env")),
            created=_created(attributes.get("Created"), summary.get("Created")),
        )
        self._static[container_id] = static
        return static


def config_path_of(command: tuple[str, ...]) -> str:
    """The ``-f`` argument of HAProxy's command line, else the official image's path."""
    for index, word in enumerate(command):
        if word == "-f" and index + 1 < len(command):
            return command[index + 1]
        if word.startswith("-f") and len(word) > 2 and not word.startswith("-f-"):
            return word[2:]
    return DEFAULT_CONFIG_PATH


def _name(summary: JSON) -> str:
    names = summary.get("Names") or []
    return str(names[0]).lstrip("/") if names else str(summary.get("Id", ""))[:12]


@dataclass(frozen=True, slots=True)
class Reachable:
    """Where HAProxy reaches a container: ``ip`` on ``network``, at the service port or, when
    published, at ``host_port``."""

    network: str
    ip: str
    host_port: int | None = None


@dataclass(frozen=True, slots=True)
class Unreachable:
    """Why a container cannot be routed: the setting at fault and the reason."""

    setting: str
    reason: str


def _address(summary: JSON, networks: tuple[str, ...]) -> Reachable | Unreachable:
    """``--address-mode container``: the container's IP on the first of ``networks`` it is on."""
    attached: dict[str, Any] = (summary.get("NetworkSettings") or {}).get("Networks") or {}
    if not networks:
        return Unreachable(
            "network", "no network to reach it on: the HAProxy container is missing; give --network"
        )
    for wanted in networks:
        for name, endpoint in sorted(attached.items()):
            if wanted not in (name, (endpoint or {}).get("NetworkID")):
                continue
            ip = str((endpoint or {}).get("IPAddress") or "")
            ip = ip or str((endpoint or {}).get("GlobalIPv6Address") or "")
            if not ip:
                return Unreachable("network", f"no IP address on network {name!r}")
            try:
                ipaddress.ip_address(ip)
            except ValueError:
                return Unreachable("network", f"{ip!r} on network {name!r} is not an IP address")
            return Reachable(name, ip)
    have = ", ".join(sorted(attached)) or "none"
    return Unreachable(
        "network", f"not attached to network {' or '.join(networks)} (attached to: {have})"
    )


def published_address(summary: JSON, port: int, advertise: str) -> Reachable | Unreachable:
    """``--address-mode published``: ``advertise`` with the host port Docker published for the
    container's ``port``/tcp (the listing's ``Ports``). A port published on another host
    address only (``-p 127.0.0.1:8080:80``) cannot be reached at ``advertise``. Docker maps
    IPv4 and IPv6 apart, and their host ports can differ (``0.0.0.0:32775``, ``[::]:32774``):
    a mapping of ``advertise``'s own family is taken first, the lowest of them."""
    published: list[tuple[int, str]] = []
    for entry in summary.get("Ports") or []:
        if not isinstance(entry, dict) or str(entry.get("Type", "tcp")).lower() != "tcp":
            continue
        public = entry.get("PublicPort")
        if entry.get("PrivatePort") != port or not isinstance(public, int) or public <= 0:
            continue
        published.append((public, str(entry.get("IP") or "")))
    family = ipaddress.ip_address(advertise.strip("[]")).version
    own = {"", advertise, _WILDCARD[family]}
    usable = sorted(public for public, ip in published if ip in own)
    usable = usable or sorted(public for public, ip in published if ip in _ALL_ADDRESSES)
    if usable:
        return Reachable(PUBLISHED, advertise, usable[0])
    if published:
        where = ", ".join(f"{ip}:{public}" for public, ip in sorted(published))
        return Unreachable(
            "ports",
            f"{port}/tcp is published only on {where}, which other hosts cannot reach at "
            f"{advertise}",
        )
    return Unreachable(
        "ports",
        f"{port}/tcp is not published on the host (--address-mode published needs "
        f"-p HOSTPORT:{port})",
    )


def _created(inspected: Any, listed: Any) -> float:
    """Creation time: the inspected RFC 3339 time (sub-second), else the listed seconds."""
    seconds = engine_time(inspected)
    if seconds is not None:
        return seconds
    return float(listed) if isinstance(listed, int | float) else 0.0
