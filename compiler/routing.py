"""The frontend: which backend a request goes to.

Each route kind (a service's ``mode``: host, path) is one entry of ``ROUTE_KINDS``, which says
how its services are ordered and how one is routed with ACLs, with the seed's ACLs, and through
map lookups. A new kind is one new entry; the frontends below only walk the table.

Host rules ignore a ``:port`` in the Host header; path rules match whole segments and the more
specific path is tested first. The seed's rules (``Dialect.seed_routing``) do neither.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from compiler.ast import (
    Acl,
    Bind,
    Comment,
    Condition,
    Frontend,
    Line,
    MapEntry,
    MapFile,
    Statement,
    UseBackend,
)
from compiler.fetches import HOST_FETCH
from compiler.models import Service
from compiler.options import Dialect, RenderOptions, uses_maps
from compiler.printer import map_file
from compiler.tls import acme_challenge_rule, https_bind
from compiler.validators import ConfigModeName

# The proxy mode every route kind needs: all of them read HTTP requests, so the defaults
# section sets it once for every frontend and backend.
PROXY_MODE = "http"


@dataclass(frozen=True, slots=True)
class MapRoute:
    """A kind's share of a map-routed frontend: its map files, the ACL that says its lookup
    found a backend, the lookups that fill its variable, and the guarded ``use_backend``."""

    maps: tuple[MapFile, ...]
    found: Acl
    lookups: tuple[Statement, ...]
    route: UseBackend


@dataclass(frozen=True, slots=True)
class RouteKind:
    """How the services of one ``mode`` are routed, with ACLs and through maps."""

    mode: ConfigModeName
    order: Callable[[Service], tuple[int, str]]  # ACL routing tests the services in this order
    acls: Callable[[Service, str], tuple[Acl, ...]]  # the service's ACLs under one name
    seed_acl: Callable[[Service], Acl]  # the seed's one ACL, named after the service
    map_route: Callable[[Sequence[Service]], MapRoute]


# Variables holding a map lookup's result: HAProxy stops at the first `use_backend` whose
# condition holds, and a dynamic `use_backend %[...]` whose name is empty or unknown does not
# fall through to the next rule (haproxy/haproxy#2698), so each one is guarded by an ACL
# that the lookup found something.
_HOST_VAR = "txn.host_backend"
_PATH_VAR = "txn.path_backend"
_HOST_FOUND = "route_host_found"
_PATH_FOUND = "route_path_found"


def _host_acls(service: Service, name: str) -> tuple[Acl, ...]:
    return (Acl(name, HOST_FETCH, ("-i", service.predicate)),)


def _path_acls(service: Service, name: str) -> tuple[Acl, ...]:
    # Two lines under one name are ORed: the path itself, or anything below it.
    return (
        Acl(name, "path", (service.predicate,)),
        Acl(name, "path_beg", (service.predicate + "/",)),
    )


def _host_map_route(services: Sequence[Service]) -> MapRoute:
    """The Host header without its port, lower-cased, looked up exactly (host predicates are
    stored lower-cased)."""
    host_map = map_file("host", _entries((s.predicate, s.name) for s in services))
    return MapRoute(
        maps=(host_map,),
        found=_found(_HOST_FOUND, _HOST_VAR),
        lookups=(_set_var(_HOST_VAR, f"{HOST_FETCH},lower,map({host_map.name})"),),
        route=_guarded_route(_HOST_VAR, _HOST_FOUND),
    )


def _path_map_route(services: Sequence[Service]) -> MapRoute:
    """The exact path, else the longest ``<path>/`` prefix (``map_beg`` finds the longest
    match in its tree), which keeps the segment rule (``/app`` and ``/app/x`` route to app,
    ``/apple`` does not) and lets the more specific path win."""
    exact = map_file("path", _entries((s.predicate, s.name) for s in services))
    prefix = map_file("path_beg", _entries((s.predicate + "/", s.name) for s in services))
    return MapRoute(
        maps=(exact, prefix),
        found=_found(_PATH_FOUND, _PATH_VAR),
        lookups=(
            _set_var(_PATH_VAR, f"path,map({exact.name})"),
            _set_var(_PATH_VAR, f"path,map_beg({prefix.name})", ("unless", _PATH_FOUND)),
        ),
        route=_guarded_route(_PATH_VAR, _PATH_FOUND),
    )


# In the order the frontend tests them: host rules before path rules.
ROUTE_KINDS: tuple[RouteKind, ...] = (
    RouteKind(
        mode="host",
        order=lambda service: (0, service.name),
        acls=_host_acls,
        seed_acl=lambda service: Acl(service.name, "hdr(host)", ("-i", service.predicate)),
        map_route=_host_map_route,
    ),
    RouteKind(
        mode="path",
        order=lambda service: (-service.predicate.count("/"), service.predicate),
        acls=_path_acls,
        seed_acl=lambda service: Acl(service.name, "url_beg", (service.predicate,)),
        map_route=_path_map_route,
    ),
)
_KIND_BY_MODE: dict[str, RouteKind] = {kind.mode: kind for kind in ROUTE_KINDS}


def frontend(
    services: Sequence[Service], options: RenderOptions, dialect: Dialect
) -> tuple[Frontend, tuple[MapFile, ...]]:
    """The frontend for ``services`` (sorted by name) and the map files it reads (none with
    ACL routing)."""
    if uses_maps(options, len(services)):
        return _map_frontend(services, options)
    rules = _seed_rules(services) if dialect.seed_routing else _acl_rules(services)
    body = [*_entry_lines(options), *rules]
    if services:
        body.append(Comment(" Define backends"))
    return Frontend(options.frontend_name, tuple(body)), ()


def _entry_lines(options: RenderOptions) -> list[Line]:
    """The frontend's first lines whatever the routing: the HTTP bind, with TLS an HTTPS bind
    beside it, and the ACME answer before any routing."""
    address = f"{options.bind_address or ''}:{options.bind_port}"
    body: list[Line] = [Bind(address)]
    https = https_bind(options)
    if https is not None:
        body.append(https)
    body.extend(acme_challenge_rule(options))
    return body


def _of_kind(services: Sequence[Service], kind: RouteKind) -> list[Service]:
    return [service for service in services if service.mode == kind.mode]


def _acl_rules(services: Sequence[Service]) -> list[Line]:
    """One ACL and ``use_backend`` per service, kind by kind, each kind in its own order."""
    rules: list[Line] = []
    for kind in ROUTE_KINDS:
        for service in sorted(_of_kind(services, kind), key=kind.order):
            acl_name = f"{service.mode}_{service.name}"
            rules.extend(kind.acls(service, acl_name))
            rules.append(UseBackend(service.name, Condition.when(acl_name)))
    return rules


def _seed_rules(services: Sequence[Service]) -> list[Line]:
    """The seed's rules: in name order whatever the kind, each ACL named after its service."""
    rules: list[Line] = []
    for service in services:
        rules.append(_KIND_BY_MODE[service.mode].seed_acl(service))
        rules.append(UseBackend(service.name, Condition.when(service.name)))
    return rules


def _map_frontend(
    services: Sequence[Service], options: RenderOptions
) -> tuple[Frontend, tuple[MapFile, ...]]:
    """Routing through map lookups, which HAProxy keeps in trees: the same cost at any size.
    Kinds come in table order, as with ACL routing."""
    routes = [
        kind.map_route(of_kind) for kind in ROUTE_KINDS if (of_kind := _of_kind(services, kind))
    ]
    # The ACLs come first: an http-request rule may name an ACL only once it is declared.
    # HAProxy runs every http-request rule before any use_backend, so they precede those.
    body: list[Line] = [
        *_entry_lines(options),
        *(route.found for route in routes),
        *(lookup for route in routes for lookup in route.lookups),
        *(route.route for route in routes),
    ]
    if services:
        body.append(Comment(" Define backends"))
    maps = tuple(map_ for route in routes for map_ in route.maps)
    return Frontend(options.frontend_name, tuple(body)), maps


def _found(acl: str, var: str) -> Acl:
    return Acl(acl, f"var({var})", ("-m", "found"))


def _entries(pairs: Iterable[tuple[str, str]]) -> tuple[MapEntry, ...]:
    return tuple(MapEntry(key, value) for key, value in sorted(pairs))


def _set_var(var: str, expression: str, condition: tuple[str, ...] = ()) -> Statement:
    return Statement("http-request", (f"set-var({var})", expression, *condition))


def _guarded_route(var: str, found: str) -> UseBackend:
    return UseBackend(f"%[var({var})]", Condition.when(found))
