"""Rules about routing: mode mismatches, missing timeouts, shadowed and unreachable rules
(HAP050-HAP053)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from compiler.ast import AnonymousAcl, Condition, DefaultBackend, UseBackend
from grammar.lint.findings import Problem
from grammar.lint.model import LintContext
from grammar.lint.registry import rule
from grammar.lint.statements import Stmt, is_dynamic


@rule("HAP050", "mode-mismatch", "error", "an http frontend routes to a tcp backend")
def mode_mismatch(ctx: LintContext) -> Iterator[Problem]:
    backends = ctx.backends
    for route in ctx.routes:
        proxy = route.proxy
        if not proxy.frontend or route.stmt.prefix:
            continue
        target = backends.get(route.backend)
        if target is None or target is proxy:
            continue
        if proxy.mode() == "http" and target.mode() == "tcp":
            yield Problem(
                route.stmt.src,
                f"http {proxy.info.label} routes to tcp {target.info.label} (see 'mode')",
                route.stmt.offset + 1,
            )
    for proxy in ctx.proxies:
        if proxy.kind != "frontend" or proxy.mode() != "http":
            continue
        if any(isinstance(s.node, DefaultBackend) for s in proxy.info.statements):
            continue
        inherited = proxy.lookup("default_backend")
        if inherited is None or not inherited.args:
            continue
        target = backends.get(inherited.args[0])
        if target is not None and target.mode() == "tcp":
            yield Problem(
                proxy.info.src,
                f"http {proxy.info.label} inherits default_backend '{inherited.args[0]}', "
                "a tcp backend (see 'mode')",
                1,
            )


@rule("HAP051", "missing-timeouts", "warning", "client/connect/server timeouts not set")
def missing_timeouts(ctx: LintContext) -> Iterator[Problem]:
    for proxy in ctx.proxies:
        if proxy.kind == "defaults":
            continue
        mode = proxy.mode()
        if mode not in ("tcp", "http"):
            continue
        if "disabled" in proxy.info.keywords:  # the keywords of its statements
            continue
        missing: list[str] = []
        if proxy.frontend and proxy.lookup("timeout client") is None:
            missing.append("client")
        if proxy.backend and proxy.info.servers:
            if proxy.lookup("timeout connect") is None:
                missing.append("connect")
            if proxy.lookup("timeout server") is None and (
                mode == "http" or proxy.lookup("timeout tunnel") is None
            ):
                missing.append("server")
        if missing:
            names = ", ".join(f"'timeout {name}'" for name in missing)
            yield Problem(proxy.info.src, f"{proxy.info.label} has no {names}", 1)


@dataclass(frozen=True, slots=True)
class _PathMatch:
    """What a single-ACL routing condition accepts: a prefix or exact path/url match."""

    fetch: str  # "path" or "url"
    exact: bool
    ignore_case: bool
    values: tuple[str, ...]

    def covers(self, later: _PathMatch) -> bool:
        if self.fetch != later.fetch or (later.ignore_case and not self.ignore_case):
            return False
        if self.exact and not later.exact:
            return False

        def norm(value: str) -> str:
            return value.lower() if self.ignore_case else value

        mine = [norm(value) for value in self.values]
        for value in later.values:
            value = norm(value)
            if self.exact:
                if value not in mine:
                    return False
            elif not any(value.startswith(prefix) for prefix in mine):
                return False
        return True


_PATH_FETCHES = {
    "path_beg": ("path", False), "path": ("path", True), "url_beg": ("url", False),
    "url": ("url", True), "base_beg": ("base", False), "base": ("base", True),
}  # fmt: skip


def _path_match(words: tuple[str, ...]) -> _PathMatch | None:
    """``criterion [flags] values`` as a path match, when it is a plain prefix/exact match."""
    if not words:
        return None
    criterion = words[0]
    fetch = _PATH_FETCHES.get(criterion)
    if fetch is None:
        return None
    name, exact = fetch
    ignore_case = False
    index = 1
    while index < len(words) and words[index].startswith("-"):
        flag = words[index]
        if flag == "--":
            index += 1
            break
        if flag == "-i":
            ignore_case = True
        elif flag == "-m" and index + 1 < len(words):
            method = words[index + 1]
            if method == "beg":
                exact = False
            elif method != "str":
                return None
            index += 1
        else:
            return None  # -f (values from a file), -M, -n, -u: not a plain match
        index += 1
    values = words[index:]
    if not values or any(is_dynamic(value) for value in values):
        return None
    return _PathMatch(name, exact, ignore_case, tuple(values))


def _route_match(condition: Condition | None, acls: dict[str, list[Stmt]]) -> _PathMatch | None:
    if condition is None or condition.kind != "if" or len(condition.alternatives) != 1:
        return None
    terms = condition.alternatives[0].terms
    if len(terms) != 1 or terms[0].negated:
        return None
    term = terms[0]
    if isinstance(term, AnonymousAcl):
        return _path_match(term.words)
    definitions = acls.get(term.name)
    if not definitions:
        return None
    matches = [_path_match(stmt.args[1:]) for stmt in definitions]
    first = matches[0]
    if first is None or any(
        m is None
        or (m.fetch, m.exact, m.ignore_case) != (first.fetch, first.exact, first.ignore_case)
        for m in matches
    ):
        return None
    values = tuple(value for m in matches if m is not None for value in m.values)
    return _PathMatch(first.fetch, first.exact, first.ignore_case, values)


@rule("HAP052", "shadowed-rule", "warning", "an earlier path rule takes every request first")
def shadowed_rule(ctx: LintContext) -> Iterator[Problem]:
    for proxy in ctx.proxies:
        if not proxy.frontend:
            continue
        acls: dict[str, list[Stmt]] = {}
        for stmt in proxy.info.statements:
            if stmt.keyword == "acl" and len(stmt.args) >= 2 and not stmt.prefix:
                acls.setdefault(stmt.args[0], []).append(stmt)
        earlier: list[tuple[_PathMatch, Stmt]] = []
        for stmt in proxy.info.statements:
            node = stmt.node
            if not isinstance(node, UseBackend):
                continue
            match = _route_match(node.condition, acls)
            if match is None:
                continue
            for previous, previous_stmt in earlier:
                if previous.covers(match) and not ctx.exclusive(previous_stmt.node, node):
                    line = previous_stmt.src.line if previous_stmt.src else 0
                    yield Problem(
                        stmt.src,
                        f"use_backend {node.backend} never matches: every request it accepts "
                        f"goes to the rule at line {line} first "
                        f"({'exact' if previous.exact else 'prefix'} "
                        f"{', '.join(previous.values)})",
                        2,
                    )
                    break
            earlier.append((match, stmt))


@rule("HAP053", "unreachable-rule", "warning", "a routing rule after an unconditional one")
def unreachable_rule(ctx: LintContext) -> Iterator[Problem]:
    for proxy in ctx.proxies:
        if not proxy.frontend:
            continue
        catch_all: Stmt | None = None
        for stmt in proxy.info.statements:
            node = stmt.node
            if isinstance(node, UseBackend):
                if catch_all is not None and not ctx.exclusive(catch_all.node, node):
                    line = catch_all.src.line if catch_all.src else 0
                    yield Problem(
                        stmt.src,
                        f"use_backend {node.backend} is never reached: the use_backend at "
                        f"line {line} has no condition",
                        0,
                    )
                elif node.condition is None and catch_all is None and not is_dynamic(node.backend):
                    catch_all = stmt
        if catch_all is None:
            continue
        for stmt in proxy.info.statements:
            if isinstance(stmt.node, DefaultBackend) and not ctx.exclusive(
                catch_all.node, stmt.node
            ):
                line = catch_all.src.line if catch_all.src else 0
                yield Problem(
                    stmt.src,
                    f"default_backend is never used: the use_backend at line {line} has no "
                    "condition",
                    0,
                )
