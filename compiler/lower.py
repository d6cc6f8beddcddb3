"""Resolved services + render options -> HAProxy AST.

The default output fixes the seed's defects: each server gets its own cookie value, path
rules match whole segments and the more specific path is tested first, and host matching
ignores a ``:port`` in the Host header. ``compat="seed"`` reproduces the seed's output
statement for statement instead.

Order never depends on input order: backends by name, host rules by name, path rules from
the most specific path to the least.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from compiler import backend_settings
from compiler.ast import (
    Acl,
    Backend,
    Balance,
    Bind,
    Bundle,
    Comment,
    Condition,
    Config,
    Cookie,
    Defaults,
    Frontend,
    Global,
    Line,
    Log,
    MapEntry,
    MapFile,
    Mode,
    Option,
    Section,
    Server,
    Statement,
    Timeout,
    UseBackend,
)
from compiler.models import ContainerRef, Service
from compiler.options import RenderOptions, uses_maps
from compiler.printer import map_file
from compiler.tls import acme_challenge_rule, backend_lines, cookie_flags, https_bind

# Host header without its optional ":port", compared case-insensitively. `host_only` would
# say it better but only exists from HAProxy 2.8 on; `field(1,:)` works on 2.6.
_HOST_FETCH = "hdr(host),field(1,:)"


def lower(services: Iterable[Service], options: RenderOptions | None = None) -> Config:
    """The config alone; with map routing it refers to maps only ``lower_bundle`` gives."""
    return lower_bundle(services, options).config


def lower_bundle(services: Iterable[Service], options: RenderOptions | None = None) -> Bundle:
    """Build the whole output: the config and its map files (none with ACL routing).

    Service names and route keys must be unique (see reconcile).
    """
    options = options or RenderOptions()
    ordered = sorted(services, key=lambda service: service.name)
    _require_unique(ordered)
    maps: tuple[MapFile, ...] = ()
    head = _global(options)
    if uses_maps(options, len(ordered)):
        frontend, maps = _map_frontend(ordered, options)
        if maps:
            # Relative file names (the maps) are read from the config's own directory, so the
            # bundle works from any working directory (HAProxy >= 2.4).
            head = replace(head, body=(*head.body, Statement("default-path", ("config",))))
    else:
        frontend = _frontend(ordered, options)
    sections: list[Section] = [head, _defaults(options), frontend]
    shared = _backend_head(options)
    sections.extend(_backend(service, options, shared) for service in ordered)
    if options.compat != "seed":
        sections.extend(backend_settings.userlists(ordered))
    return Bundle(Config(tuple(sections)), maps)


def _require_unique(services: Sequence[Service]) -> None:
    names = [service.name for service in services]
    if len(set(names)) != len(names):
        raise ValueError("services passed to lower() must have unique names")
    keys = [service.route_key for service in services]
    if len(set(keys)) != len(keys):
        raise ValueError("services passed to lower() must have unique routes")


def _global(options: RenderOptions) -> Global:
    body: list[Line] = []
    for target in options.log_targets:
        level = (target.level,) if target.level else ()
        body.append(Log((target.address, target.facility, *level)))
    body.append(Statement("maxconn", (str(options.maxconn),)))
    if options.user:
        body.append(Statement("user", (options.user,)))
    if options.group:
        body.append(Statement("group", (options.group,)))
    if options.daemon:
        body.append(Statement("daemon"))
    if options.compat != "seed":
        body.extend(_zero_downtime_global(options))
    return Global(tuple(body))


def _zero_downtime_global(options: RenderOptions) -> list[Line]:
    """Old workers stop after ``hard_stop_after``; server states survive a reload (Cosmonaut
    dumps them into the file before it reloads); the runtime API on a unix socket only."""
    body: list[Line] = []
    if options.hard_stop_after:
        body.append(Statement("hard-stop-after", (options.hard_stop_after,)))
    if options.server_state_file:
        body.append(Statement("server-state-file", (options.server_state_file,)))
    socket = options.stats_socket
    if socket is not None:
        words = (socket.path, "mode", socket.mode, "level", socket.level)
        body.append(Statement("stats", ("socket", *words)))
    return body


def _defaults(options: RenderOptions) -> Defaults:
    timeouts = options.timeouts
    body: list[Line] = [
        Log(("global",)),
        Mode("http"),
        Option("httplog"),
        Option("dontlognull"),
        Option("forwardfor"),
        Option("http-server-close"),
        Timeout("connect", timeouts.connect),
        Timeout("client", timeouts.client),
        Timeout("server", timeouts.server),
    ]
    if options.compat != "seed":
        # At a reload the old worker answers the next request of an idle keep-alive
        # connection (with "Connection: close") instead of closing it under the client.
        body.append(Option("idle-close-on-response"))
        if options.tunnel_timeout:
            body.append(Timeout("tunnel", options.tunnel_timeout))
        if options.server_state_file:
            body.append(Statement("load-server-state-from-file", ("global",)))
    # A comment after a section's last statement is printed flush left, before the next
    # section header, where the seed has it.
    body.append(Comment(" Define frontends"))
    return Defaults(tuple(body))


def _entry_lines(options: RenderOptions) -> list[Line]:
    """The frontend's first lines whatever the routing: the HTTP bind, with TLS (issue 14)
    an HTTPS bind beside it, and the ACME answer before any routing."""
    address = f"{options.bind_address or ''}:{options.bind_port}"
    body: list[Line] = [Bind(address)]
    https = https_bind(options)
    if https is not None:
        body.append(https)
    body.extend(acme_challenge_rule(options))
    return body


def _frontend(services: Sequence[Service], options: RenderOptions) -> Frontend:
    body = _entry_lines(options)
    if options.compat == "seed":
        rules = [_seed_rule(service) for service in services]
    else:
        hosts = [service for service in services if service.mode == "host"]
        paths = sorted(
            (service for service in services if service.mode == "path"),
            key=lambda service: (-service.predicate.count("/"), service.predicate),
        )
        rules = [_rule(service) for service in [*hosts, *paths]]
    for rule in rules:
        body.extend(rule)
    if services:
        body.append(Comment(" Define backends"))
    return Frontend(options.frontend_name, tuple(body))


# Variables holding a map lookup's result: HAProxy stops at the first `use_backend` whose
# condition holds, and a dynamic `use_backend %[...]` whose name is empty or unknown does not
# fall through to the next rule (haproxy/haproxy#2698), so each one is guarded by an ACL
# that the lookup found something.
_HOST_VAR = "txn.host_backend"
_PATH_VAR = "txn.path_backend"
_HOST_FOUND = "route_host_found"
_PATH_FOUND = "route_path_found"


def _map_frontend(
    services: Sequence[Service], options: RenderOptions
) -> tuple[Frontend, tuple[MapFile, ...]]:
    """Routing through map lookups, which HAProxy keeps in trees: the same cost at any size.

    Host: the Host header without its port, lower-cased, looked up exactly (host predicates
    are stored lower-cased). Path: the exact path, else the longest `<path>/` prefix
    (`map_beg` finds the longest match in its tree), which keeps the segment rule (`/app`
    and `/app/x` route to app, `/apple` does not) and lets the more specific path win.
    Host rules come before path rules, as with ACL routing.
    """
    hosts = [s for s in services if s.mode == "host"]
    paths = [s for s in services if s.mode == "path"]
    maps: list[MapFile] = []
    lookups: list[Line] = []
    routes: list[Line] = []
    if hosts:
        host_map = map_file("host", _entries((s.predicate, s.name) for s in hosts))
        maps.append(host_map)
        lookups.append(_set_var(_HOST_VAR, f"{_HOST_FETCH},lower,map({host_map.name})"))
        routes.extend(_guarded_route(_HOST_VAR, _HOST_FOUND))
    if paths:
        exact = map_file("path", _entries((s.predicate, s.name) for s in paths))
        prefix = map_file("path_beg", _entries((s.predicate + "/", s.name) for s in paths))
        maps.extend((exact, prefix))
        lookups.append(_set_var(_PATH_VAR, f"path,map({exact.name})"))
        lookups.append(_set_var(_PATH_VAR, f"path,map_beg({prefix.name})", ("unless", _PATH_FOUND)))
        routes.extend(_guarded_route(_PATH_VAR, _PATH_FOUND))
    # The ACLs come first: an http-request rule may name an ACL only once it is declared.
    # HAProxy runs every http-request rule before any use_backend, so they precede those.
    acls: list[Line] = []
    if hosts:
        acls.append(Acl(_HOST_FOUND, f"var({_HOST_VAR})", ("-m", "found")))
    if paths:
        acls.append(Acl(_PATH_FOUND, f"var({_PATH_VAR})", ("-m", "found")))
    body: list[Line] = [*_entry_lines(options), *acls, *lookups, *routes]
    if services:
        body.append(Comment(" Define backends"))
    return Frontend(options.frontend_name, tuple(body)), tuple(maps)


def _entries(pairs: Iterable[tuple[str, str]]) -> tuple[MapEntry, ...]:
    return tuple(MapEntry(key, value) for key, value in sorted(pairs))


def _set_var(var: str, expression: str, condition: tuple[str, ...] = ()) -> Statement:
    return Statement("http-request", (f"set-var({var})", expression, *condition))


def _guarded_route(var: str, found: str) -> tuple[Line, ...]:
    return (UseBackend(f"%[var({var})]", Condition.when(found)),)


def _seed_rule(service: Service) -> tuple[Line, ...]:
    if service.mode == "host":
        acl = Acl(service.name, "hdr(host)", ("-i", service.predicate))
    else:
        acl = Acl(service.name, "url_beg", (service.predicate,))
    return (acl, UseBackend(service.name, Condition.when(service.name)))


def _rule(service: Service) -> tuple[Line, ...]:
    acl_name = f"{service.mode}_{service.name}"
    acls: tuple[Acl, ...]
    if service.mode == "host":
        acls = (Acl(acl_name, _HOST_FETCH, ("-i", service.predicate)),)
    else:
        # Two lines under one name are ORed: the path itself, or anything below it.
        acls = (
            Acl(acl_name, "path", (service.predicate,)),
            Acl(acl_name, "path_beg", (service.predicate + "/",)),
        )
    return (*acls, UseBackend(service.name, Condition.when(acl_name)))


def _backend_head(options: RenderOptions) -> tuple[Line, ...]:
    """The statements every backend starts with. Nodes are immutable, so all share them."""
    head: list[Line] = [Mode("http"), Balance(options.balance), Option("forwardfor")]
    health = options.health_check
    if health.enabled and health.http_path:
        head.append(Option("httpchk", ("GET", health.http_path)))
    if options.compat != "seed":
        # Safe retries: HAProxy replays only what it may (never a request whose body it
        # sent on), each retry on another server with `redispatch 1` (not the stopped one).
        if options.retries is not None:
            head.append(Statement("retries", (str(options.retries),)))
        if options.redispatch is not None:
            head.append(Option("redispatch", (str(options.redispatch),)))
        if options.retry_on:
            head.append(Statement("retry-on", options.retry_on))
    return tuple(head)


def _backend(service: Service, options: RenderOptions, head: tuple[Line, ...]) -> Backend:
    check: tuple[str, ...] = ("check",) if options.health_check.enabled else ()
    seed = options.compat == "seed"
    # Per-service settings (compiler.backend_settings); the seed cannot express them.
    settings = not seed and backend_settings.has_settings(service)
    if settings:
        head = backend_settings.head(service, head)
        check = backend_settings.checks(service, options.health_check.enabled)
    body = [*head, *backend_lines(service, options)]  # TLS (issue 14)
    if settings:
        body.extend(backend_settings.lines(service))
    containers = sorted(service.containers, key=_container_order)
    if service.cookie:
        body.append(Cookie(service.cookie, ("prefix", "nocache", *cookie_flags(service, options))))
        # The seed gave every server the cookie *name* as its value, so every returning
        # client went to the first server. The server id is unique within a backend.
        body.extend(
            Server(
                c.id,
                c.ip,
                (*check, "cookie", service.cookie if seed else c.id, *_extra(service, c, seed)),
            )
            for c in containers
        )
    else:
        body.extend(Server(c.id, c.ip, (*check, *_extra(service, c, seed))) for c in containers)
    body.extend(_slots(service, options, check))
    return Backend(service.name, tuple(body))


def slot_capacity(servers: int, minimum: int, growth: float) -> int:
    """The first size of ``minimum``, ``minimum * growth``, ... above ``servers``."""
    size = minimum
    while size <= servers:
        size = max(size + 1, int(size * growth + 0.999999))
    return size


def _slots(service: Service, options: RenderOptions, check: tuple[str, ...]) -> list[Server]:
    """Free server slots, in maintenance (``disabled``), for the runtime API to fill. A
    slot's cookie value is its name, fixed, so a filled slot keeps its sticky clients."""
    slots = options.server_slots
    if options.compat == "seed" or not slots.enabled:
        return []
    taken = {c.id for c in service.containers}
    free = slot_capacity(len(taken), slots.minimum, slots.growth) - len(taken)
    names = (f"slot-{n}" for n in range(1, free + len(taken) + 1))
    chosen = [name for name in names if name not in taken][:free]
    cookie = service.cookie is not None
    # A slot takes the service's server settings (maxconn); a container's weight is its own.
    extra = () if service.maxconn is None else ("maxconn", str(service.maxconn))
    return [
        Server(
            name,
            slots.placeholder,
            (*check, *(("cookie", name) if cookie else ()), *extra, "disabled"),
        )
        for name in chosen
    ]


def _extra(service: Service, container: ContainerRef, seed: bool) -> tuple[str, ...]:
    return () if seed else backend_settings.server_extra(service, container)


def _container_order(container: ContainerRef) -> tuple[str, str]:
    return (container.id, container.ip)
