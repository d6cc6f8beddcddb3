"""Resolved services + render options -> HAProxy AST.

The global and defaults sections, the backends and their server slots here; the frontend in
``compiler.routing``. The default output fixes the seed's defects: each server gets its own
cookie value, and the routing rules are the ones ``compiler.routing`` describes.
``compat="seed"`` reproduces the seed's output statement for statement instead
(``compiler.options.dialect`` says what that leaves out).

Order never depends on input order: backends by name, and the frontend's rules as
``compiler.routing`` orders them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from compiler import backend_settings
from compiler.ast import (
    Backend,
    Balance,
    Bundle,
    Comment,
    Config,
    Cookie,
    Defaults,
    Global,
    Line,
    Log,
    Mode,
    Option,
    Section,
    Server,
    Statement,
    Timeout,
)
from compiler.models import ContainerRef, Service
from compiler.options import Dialect, RenderOptions, dialect
from compiler.routing import PROXY_MODE, frontend
from compiler.tls import backend_lines, cookie_flags


def lower_bundle(services: Iterable[Service], options: RenderOptions | None = None) -> Bundle:
    """Build the whole output: the config and its map files (none with ACL routing).

    Service names and route keys must be unique (``runtime.merge.reconcile`` sees to it).
    """
    options = options or RenderOptions()
    output = dialect(options)
    ordered = sorted(services, key=lambda service: service.name)
    _require_unique(ordered)
    head = _global(options, output)
    routing, maps = frontend(ordered, options, output)
    if maps:
        # Relative file names (the maps) are read from the config's own directory, so the
        # bundle works from any working directory (HAProxy >= 2.4).
        head = replace(head, body=(*head.body, Statement("default-path", ("config",))))
    sections: list[Section] = [head, _defaults(options, output), routing]
    shared = _backend_head(options, output)
    sections.extend(_backend(service, options, output, shared) for service in ordered)
    if output.service_settings:
        sections.extend(backend_settings.userlists(ordered))
    return Bundle(Config(tuple(sections)), maps)


def _require_unique(services: Sequence[Service]) -> None:
    names = [service.name for service in services]
    if len(set(names)) != len(names):
        raise ValueError("services passed to lower_bundle() must have unique names")
    keys = [service.route_key for service in services]
    if len(set(keys)) != len(keys):
        raise ValueError("services passed to lower_bundle() must have unique routes")


def _global(options: RenderOptions, output: Dialect) -> Global:
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
    if output.zero_downtime:
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


def _defaults(options: RenderOptions, output: Dialect) -> Defaults:
    timeouts = options.timeouts
    body: list[Line] = [
        Log(("global",)),
        Mode(PROXY_MODE),
        Option("httplog"),
        Option("dontlognull"),
        Option("forwardfor"),
        Option("http-server-close"),
        Timeout("connect", timeouts.connect),
        Timeout("client", timeouts.client),
        Timeout("server", timeouts.server),
    ]
    if output.zero_downtime:
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


def _backend_head(options: RenderOptions, output: Dialect) -> tuple[Line, ...]:
    """The statements every backend starts with. Nodes are immutable, so all share them."""
    head: list[Line] = [Mode(PROXY_MODE), Balance(options.balance), Option("forwardfor")]
    health = options.health_check
    if health.enabled and health.http_path:
        head.append(Option("httpchk", ("GET", health.http_path)))
    if output.zero_downtime:
        # Safe retries: HAProxy replays only what it may (never a request whose body it
        # sent on), each retry on another server with `redispatch 1` (not the stopped one).
        if options.retries is not None:
            head.append(Statement("retries", (str(options.retries),)))
        if options.redispatch is not None:
            head.append(Option("redispatch", (str(options.redispatch),)))
        if options.retry_on:
            head.append(Statement("retry-on", options.retry_on))
    return tuple(head)


def _backend(
    service: Service, options: RenderOptions, output: Dialect, head: tuple[Line, ...]
) -> Backend:
    check: tuple[str, ...] = ("check",) if options.health_check.enabled else ()
    # Per-service settings (compiler.backend_settings); the seed cannot express them.
    settings = output.service_settings and backend_settings.has_settings(service)
    if settings:
        head = backend_settings.head(service, head)
        check = backend_settings.checks(service, options.health_check.enabled)
    body = [*head, *backend_lines(service, options)]
    if settings:
        body.extend(backend_settings.lines(service))
    containers = sorted(service.containers, key=_container_order)
    if service.cookie:
        body.append(Cookie(service.cookie, ("prefix", "nocache", *cookie_flags(service, options))))
        # The server id is unique within a backend: each server its own cookie value.
        body.extend(
            Server(
                c.id,
                c.ip,
                (
                    *check,
                    *("cookie", c.id if output.own_cookie_values else service.cookie),
                    *_extra(service, c, output),
                ),
            )
            for c in containers
        )
    else:
        body.extend(Server(c.id, c.ip, (*check, *_extra(service, c, output))) for c in containers)
    body.extend(_slots(service, options, output, check))
    return Backend(service.name, tuple(body))


def slot_capacity(servers: int, minimum: int, growth: float) -> int:
    """The first size of ``minimum``, ``minimum * growth``, ... above ``servers``."""
    size = minimum
    while size <= servers:
        size = max(size + 1, int(size * growth + 0.999999))
    return size


def _slots(
    service: Service, options: RenderOptions, output: Dialect, check: tuple[str, ...]
) -> list[Server]:
    """Free server slots, in maintenance (``disabled``), for the runtime API to fill. A
    slot's cookie value is its name, fixed, so a filled slot keeps its sticky clients."""
    slots = options.server_slots
    if not output.zero_downtime or not slots.enabled:
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


def _extra(service: Service, container: ContainerRef, output: Dialect) -> tuple[str, ...]:
    if not output.service_settings:
        return ()
    return backend_settings.server_extra(service, container)


def _container_order(container: ContainerRef) -> tuple[str, str]:
    return (container.id, container.ip)
