"""Rules about names: backends that are not defined or not used, duplicate section and
server names (HAP020-HAP024)."""

from __future__ import annotations

from collections.abc import Iterator

from grammar.lint.findings import Problem
from grammar.lint.model import LintContext, SectionInfo
from grammar.lint.registry import rule
from grammar.lint.statements import Stmt, is_dynamic, tokens


@rule("HAP020", "undefined-backend", "error", "use_backend/default_backend names no backend")
def undefined_backend(ctx: LintContext) -> Iterator[Problem]:
    backends = ctx.backends
    for route in ctx.routes:
        if route.stmt.prefix or is_dynamic(route.backend) or route.backend in backends:
            continue
        if route.proxy.kind == "backend":
            continue  # ignored there (HAP012)
        other = next((p for p in ctx.proxies if p.name == route.backend), None)
        hint = f" ('{route.backend}' is a {other.kind})" if other is not None else ""
        yield Problem(
            route.stmt.src,
            f"{route.stmt.keyword} names backend '{route.backend}', which is not defined{hint}",
            route.stmt.offset + 1,
        )


@rule("HAP021", "unused-backend", "warning", "a backend nothing routes to or refers to")
def unused_backend(ctx: LintContext) -> Iterator[Problem]:
    routes = ctx.routes
    if any(is_dynamic(route.backend) for route in routes):
        return  # any backend may be chosen at run time
    used = {route.backend for route in routes}
    candidates = {
        proxy.name: proxy
        for proxy in ctx.proxies
        if proxy.kind == "backend" and proxy.name is not None and proxy.name not in used
    }
    if not candidates:
        return
    mentioned: set[str] = set()
    for info, stmt in ctx.statements():
        if stmt.keyword in ("server", "acl", "bind") and info.kind in ("backend", "frontend"):
            words = stmt.words[2:]  # a server's own name is not a reference
        else:
            words = stmt.words[1:]
        mentioned |= tokens(words) & candidates.keys()
    for name, proxy in candidates.items():
        if name not in mentioned:
            yield Problem(
                proxy.info.src,
                f"backend '{name}' is never used: no use_backend or default_backend names it",
                1,
            )


# Section kinds that share one namespace, and whether HAProxy refuses (True) or ignores a
# duplicate (False).
_NAMESPACES: dict[str, tuple[str, bool]] = {
    "peers": ("peers", True),
    "resolvers": ("resolvers", True),
    "cache": ("cache", True),
    "ring": ("ring", True),
    "http-errors": ("http-errors", True),
    "mailers": ("mailers", True),
    "userlist": ("userlist", False),
    "defaults": ("defaults", False),
}


def _duplicates(ctx: LintContext) -> Iterator[tuple[SectionInfo, SectionInfo, bool]]:
    """(duplicate, first, refused) for sections HAProxy sees twice under one name."""
    frontends: dict[str, SectionInfo] = {}
    backends: dict[str, SectionInfo] = {}
    others: dict[tuple[str, str], SectionInfo] = {}
    for info in ctx.sections:
        name = info.name
        if name is None:
            continue
        kind = info.kind
        if kind in ("frontend", "backend", "listen"):
            tables = []
            if kind in ("frontend", "listen"):
                tables.append(frontends)
            if kind in ("backend", "listen"):
                tables.append(backends)
            clash = None
            for table in tables:
                first = table.get(name)
                if first is not None and not ctx.exclusive(first.section, info.section):
                    clash = first
                    break
            if clash is not None:
                yield info, clash, True
                continue
            for table in tables:
                table.setdefault(name, info)
        elif kind in _NAMESPACES:
            space, refused = _NAMESPACES[kind]
            first = others.get((space, name))
            if first is not None and not ctx.exclusive(first.section, info.section):
                yield info, first, refused
            else:
                others.setdefault((space, name), info)


def _line(info: SectionInfo) -> int:
    return info.src.line if info.src is not None else 0


@rule("HAP022", "duplicate-section-name", "error", "two sections with one name HAProxy refuses")
def duplicate_section_name(ctx: LintContext) -> Iterator[Problem]:
    for info, first, refused in _duplicates(ctx):
        if refused:
            yield Problem(
                info.src,
                f"{info.label} has the same name as the {first.kind} at line {_line(first)}",
                1,
            )


@rule("HAP024", "ignored-duplicate-name", "warning", "a duplicate name HAProxy ignores")
def ignored_duplicate_name(ctx: LintContext) -> Iterator[Problem]:
    for info, first, refused in _duplicates(ctx):
        if not refused:
            effect = (
                "HAProxy ignores this one"
                if info.kind == "userlist"
                else "'from' refers to the last one"
            )
            yield Problem(
                info.src,
                f"{info.label} has the same name as the one at line {_line(first)}; {effect}",
                1,
            )


@rule("HAP023", "duplicate-server-name", "error", "two servers with one name in a backend")
def duplicate_server_name(ctx: LintContext) -> Iterator[Problem]:
    for proxy in ctx.proxies:
        if not proxy.backend:
            continue
        seen: dict[str, Stmt] = {}
        for stmt, server in proxy.info.servers:
            first = seen.get(server.name)
            if first is not None and not ctx.exclusive(first.node, stmt.node):
                line = first.src.line if first.src else 0
                yield Problem(
                    stmt.src,
                    f"server '{server.name}' is already defined at line {line} in "
                    f"{proxy.info.label}",
                    1,
                )
            else:
                seen.setdefault(server.name, stmt)
