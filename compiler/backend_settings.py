"""Per-service settings -> backend statements, server parameters and userlists (pure).

Everything a setting adds lives in its service's own backend (or its own ``userlist``), so
the frontend's routing never changes with settings. A service without settings gets nothing
from here: its backend is exactly what it was before settings existed. Under
``compat="seed"`` the lowering does not call this module; ``seed_unsupported`` names each
setting that was ignored instead.

Order inside a backend, always the same: the head (balance and health check replaced where
the service sets them), ``http-check expect``, timeouts, the allow list's ``deny``, basic
auth, then headers (by name).
"""

from __future__ import annotations

from compiler.ast import (
    Acl,
    Balance,
    GenericSection,
    Line,
    Option,
    Statement,
    Timeout,
)
from compiler.errors import Diagnostic
from compiler.models import SETTING_FIELDS, ContainerRef, Payload, Service

_ALLOW_ACL = "allowed_source"
_AUTH_ACL = "authenticated"


def has_settings(service: Service) -> bool:
    return any(getattr(service, name) is not None for name in SETTING_FIELDS)


def userlist_name(service: Service) -> str:
    return f"auth_{service.name}"


def head(service: Service, shared: tuple[Line, ...]) -> tuple[Line, ...]:
    """The shared backend head with this service's balance and health check in place."""
    if service.balance is None and service.health is None:
        return shared
    lines: list[Line] = []
    for line in shared:
        if service.balance is not None and isinstance(line, Balance):
            line = Balance(service.balance)
        elif service.health is not None and isinstance(line, Option) and line.name == "httpchk":
            continue  # replaced by the service's own check below
        lines.append(line)
    if service.health is not None:
        lines.append(Option("httpchk", ("GET", service.health.path)))
    return tuple(lines)


def lines(service: Service) -> tuple[Line, ...]:
    """The statements the service's settings add after the head."""
    body: list[Line] = []
    if service.health is not None and service.health.status is not None:
        body.append(Statement("http-check", ("expect", "status", str(service.health.status))))
    if service.timeouts is not None:
        for event in ("connect", "server", "queue", "tunnel"):
            value = getattr(service.timeouts, event)
            if value is not None:
                body.append(Timeout(event, value))
    if service.allow is not None:
        body.append(Acl(_ALLOW_ACL, "src", tuple(service.allow)))
        body.append(Statement("http-request", ("deny", "deny_status", "403", "unless", _ALLOW_ACL)))
    if service.auth is not None:
        realm = service.auth.realm or service.name
        body.append(Acl(_AUTH_ACL, f"http_auth({userlist_name(service)})"))
        body.append(Statement("http-request", ("auth", "realm", realm, "unless", _AUTH_ACL)))
    if service.headers is not None:
        for direction, headers in (
            ("http-request", service.headers.request),
            ("http-response", service.headers.response),
        ):
            for name in sorted(headers, key=lambda n: (n.lower(), n)):
                # The value is a log-format string to HAProxy: '%' must be doubled to stay
                # literal ("%[src]" would otherwise be evaluated).
                value = headers[name].replace("%", "%%")
                body.append(Statement(direction, ("set-header", name, value)))
    return tuple(body)


def checks(service: Service, enabled: bool) -> tuple[str, ...]:
    """A server's health-check parameters: ``check`` (if on) and the service's timing."""
    health = service.health
    if health is None:
        return ("check",) if enabled else ()
    words = ["check"]
    if health.interval is not None:
        words.extend(("inter", health.interval))
    if health.rise is not None:
        words.extend(("rise", str(health.rise)))
    if health.fall is not None:
        words.extend(("fall", str(health.fall)))
    return tuple(words)


def server_extra(service: Service, container: ContainerRef) -> tuple[str, ...]:
    """Parameters after a server's check and cookie: its weight, the service's maxconn."""
    words: list[str] = []
    if container.weight is not None:
        words.extend(("weight", str(container.weight)))
    if service.maxconn is not None:
        words.extend(("maxconn", str(service.maxconn)))
    return tuple(words)


def userlists(services: list[Service]) -> list[GenericSection]:
    """One ``userlist`` per service with basic auth, users by name."""
    sections = []
    for service in services:
        if service.auth is None:
            continue
        users = sorted(service.auth.users, key=lambda user: user.name)
        sections.append(
            GenericSection(
                "userlist",
                (userlist_name(service),),
                tuple(Statement("user", (u.name, "password", u.hash)) for u in users),
            )
        )
    return sections


def seed_unsupported(payload: Payload) -> tuple[Diagnostic, ...]:
    """Under ``compat="seed"``: each setting the payload gives that the seed's output cannot
    express, which is therefore ignored (a warning: the rest is compiled as the seed would)."""
    found: list[Diagnostic] = []
    for index, candidate in enumerate(payload.candidates):
        for name in SETTING_FIELDS:
            if getattr(candidate, name) is not None:
                found.append(_ignored(f"$.candidates[{index}].{name}", name))
        for position, container in enumerate(candidate.containers):
            if container.weight is not None:
                path = f"$.candidates[{index}].containers[{position}].weight"
                found.append(_ignored(path, "weight"))
    return tuple(found)


def _ignored(path: str, name: str) -> Diagnostic:
    return Diagnostic(
        path,
        f"compat=seed: the seed's output cannot express '{name}'; it is ignored",
        severity="warning",
    )
