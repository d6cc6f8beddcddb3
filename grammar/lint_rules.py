"""The lint rules. Each is a pure function over a ``LintContext`` registered with ``rule()``.

Severity ``error`` is kept for what HAProxy 2.6 itself refuses (each such rule has a test that
runs ``haproxy -c`` on an example); ``warning`` is for what HAProxy accepts but is most likely
a mistake. The reference, with examples, is ``docs/lint-rules.md``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass

from compiler.ast import (
    AclRef,
    AnonymousAcl,
    Condition,
    DefaultBackend,
    Server,
    Source,
    UseBackend,
)
from grammar.keywords import KEYWORDS, check_section, check_words
from grammar.lint_rules_base import (
    PREDEFINED_ACLS,
    LintContext,
    Problem,
    Proxy,
    SectionInfo,
    Stmt,
    is_dynamic,
    rule,
    split_condition,
    tokens,
)
from grammar.sections import PROXY_KINDS, SECTION_SPECS

# --- the file and its structure ----------------------------------------------------------


@rule("HAP002", "missing-final-newline", "error", "the last line does not end with a newline")
def missing_final_newline(ctx: LintContext) -> Iterator[Problem]:
    message = (
        "no newline at the end of the file: HAProxy 2.6 refuses it ('Missing LF on last line')"
    )
    text = ctx.text
    if text is not None:
        if text and not text.endswith("\n"):
            last = text.rsplit("\n", 1)[-1]
            yield Problem(None, message, line=text.count("\n") + 1, col=len(last) + 1)
        return
    last_src = _last_source(ctx)
    if last_src is not None and not last_src.newline:
        content = last_src.text
        yield Problem(None, message, line=last_src.line, col=len(content) + 1)


def _last_source(ctx: LintContext) -> Source | None:
    config = ctx.config
    for section in reversed(config.sections):
        if section.body:
            return section.body[-1].src
        return section.src
    return config.preamble[-1].src if config.preamble else None


@rule("HAP003", "unbalanced-conditional", "error", "unbalanced .if/.elif/.else/.endif")
def unbalanced_conditional(ctx: LintContext) -> Iterator[Problem]:
    yield from ctx.conditional_problems


@rule("HAP004", "statement-outside-section", "error", "a statement before the first section")
def statement_outside_section(ctx: LintContext) -> Iterator[Problem]:
    for stmt in ctx.preamble:
        yield Problem(stmt.src, f"'{stmt.keyword}' is outside any section", stmt.offset)


_DIRECTIVES = frozenset(
    {".if", ".elif", ".else", ".endif", ".diag", ".notice", ".warning", ".alert"}
)


@rule("HAP005", "unknown-directive", "error", "a line starting with '.' that is no directive")
def unknown_directive(ctx: LintContext) -> Iterator[Problem]:
    for directive in ctx.directives:
        if directive.name not in _DIRECTIVES:
            yield Problem(directive.src, f"unknown directive '{directive.name}'")


@rule("HAP006", "unconditional-alert", "error", "an .alert outside any .if block")
def unconditional_alert(ctx: LintContext) -> Iterator[Problem]:
    for directive in ctx.directives:
        if directive.name == ".alert" and not ctx.branch(directive):
            yield Problem(directive.src, "'.alert' outside any '.if' block always stops HAProxy")


_NAME_CHARS = re.compile(r"[A-Za-z0-9_.:-]*")


@rule("HAP007", "bad-section-header", "error", "a section header HAProxy refuses")
def bad_section_header(ctx: LintContext) -> Iterator[Problem]:
    for info in ctx.sections:
        spec = SECTION_SPECS.get(info.kind)
        if spec is None:
            continue
        words = info.section.src.values if info.section.src else ()
        if info.kind == "global" and len(words) > 1:
            yield Problem(info.src, f"'global' takes no argument (found '{words[1]}')", 1)
            continue
        if spec.needs_name and info.name is None:
            yield Problem(info.src, f"'{info.kind}' needs a name")
            continue
        if info.kind in ("frontend", "backend", "listen"):
            extra = len(words) - 2 - (2 if info.from_name is not None else 0)
            if extra > 0:
                yield Problem(
                    info.src,
                    f"'{info.kind} {info.name}' has an address after its name: "
                    "use a 'bind' line for listening addresses",
                    2,
                )
            name = info.name or ""
            bad = _NAME_CHARS.match(name)
            if bad is not None and bad.end() < len(name) and not is_dynamic(name):
                yield Problem(
                    info.src,
                    f"character {name[bad.end()]!r} is not permitted in {info.kind} name '{name}'",
                    1,
                )
        if info.from_name is not None and info.kind in PROXY_KINDS:
            proxy = ctx.proxy_of.get(id(info.section))
            if proxy is not None and proxy.defaults is None:
                yield Problem(
                    info.src,
                    f"defaults section '{info.from_name}' is not defined before {info.label}",
                    len(words) - 1,
                )


# --- keywords ----------------------------------------------------------------------------

_KEYWORD_CODES = {
    "unknown": "HAP010",
    "wrong-section": "HAP011",
    "ignored": "HAP012",
    "removed": "HAP013",
    "too-new": "HAP014",
    "arity": "HAP015",
    "anonymous-defaults": "HAP016",
    "deprecated": "HAP017",
}


@dataclass(slots=True)
class _KeywordFindings:
    """The keyword checker runs once per file; each keyword rule reads its own share."""

    by_code: dict[str, list[Problem]]


_CACHE_ATTR = "_keyword_findings"
_NAMED_DEFAULTS_RULES = frozenset({"tcp-request", "tcp-response"})
_SUBKEYWORDS = frozenset(name for name, spec in KEYWORDS.items() if spec.subkeywords)


def _keyword_findings(ctx: LintContext) -> _KeywordFindings:
    cached: _KeywordFindings | None = getattr(ctx, _CACHE_ATTR, None)
    if cached is not None:
        return cached
    by_code: dict[str, list[Problem]] = {code: [] for code in _KEYWORD_CODES.values()}
    target = ctx.target
    # The table's answer depends on the section kind, the keyword (and option name), the
    # argument count, the prefix and whether a defaults section is named: cache on those.
    seen: dict[tuple[str, str, str, int, bool, bool], list[tuple[str, str, int]]] = {}
    guarded = bool(ctx.guarded_blocks)
    for info in ctx.sections:
        section_problem = check_section(info.kind, target)
        if section_problem is not None and not ctx.version_guarded(info.section):
            by_code["HAP014"].append(Problem(info.src, section_problem.message))
        named = info.name is not None
        kind = info.kind
        for stmt in info.statements:
            if guarded and ctx.version_guarded(stmt.node):
                continue
            prefixed = stmt.prefix is not None
            words = stmt.words[1:] if prefixed else stmt.words
            keyword = stmt.keyword
            option = words[1] if keyword in _SUBKEYWORDS and len(words) > 1 else ""
            cache_key = (kind, keyword, option, len(words), prefixed, named)
            found = seen.get(cache_key)
            if found is None:
                found = [
                    (_KEYWORD_CODES[problem.kind], problem.message, problem.index)
                    for problem in check_words(
                        kind, words, target=target, named_defaults=named, prefixed=prefixed
                    )
                ]
                if kind == "defaults" and not named and keyword in _NAMED_DEFAULTS_RULES:
                    found.append(
                        (
                            "HAP016",
                            f"'{keyword}' is not allowed in an anonymous 'defaults' section "
                            "(give it a name)",
                            0,
                        )
                    )
                seen[cache_key] = found
            if found:
                offset = stmt.offset
                for code, message, index in found:
                    by_code[code].append(Problem(stmt.src, message, index + offset))
    result = _KeywordFindings(by_code)
    setattr(ctx, _CACHE_ATTR, result)
    return result


@rule("HAP010", "unknown-keyword", "warning", "a keyword the table does not know")
def unknown_keyword(ctx: LintContext) -> Iterator[Problem]:
    yield from _keyword_findings(ctx).by_code["HAP010"]


@rule("HAP011", "keyword-wrong-section", "error", "a keyword not allowed in this section kind")
def keyword_wrong_section(ctx: LintContext) -> Iterator[Problem]:
    yield from _keyword_findings(ctx).by_code["HAP011"]


@rule("HAP012", "keyword-ignored", "warning", "a keyword HAProxy ignores in this section kind")
def keyword_ignored(ctx: LintContext) -> Iterator[Problem]:
    yield from _keyword_findings(ctx).by_code["HAP012"]


@rule("HAP013", "removed-keyword", "error", "a keyword removed from HAProxy")
def removed_keyword(ctx: LintContext) -> Iterator[Problem]:
    yield from _keyword_findings(ctx).by_code["HAP013"]


@rule("HAP014", "too-new-keyword", "error", "a keyword or section newer than the target")
def too_new_keyword(ctx: LintContext) -> Iterator[Problem]:
    yield from _keyword_findings(ctx).by_code["HAP014"]


@rule("HAP015", "argument-count", "error", "too few or too many arguments")
def argument_count(ctx: LintContext) -> Iterator[Problem]:
    yield from _keyword_findings(ctx).by_code["HAP015"]


@rule("HAP016", "rule-in-anonymous-defaults", "error", "rules in a defaults section without name")
def rule_in_anonymous_defaults(ctx: LintContext) -> Iterator[Problem]:
    yield from _keyword_findings(ctx).by_code["HAP016"]


@rule("HAP017", "deprecated-keyword", "warning", "a keyword removed after the target version")
def deprecated_keyword(ctx: LintContext) -> Iterator[Problem]:
    yield from _keyword_findings(ctx).by_code["HAP017"]


# --- names: backends, duplicates ---------------------------------------------------------


def _backends(ctx: LintContext) -> dict[str, Proxy]:
    """Proxies with the backend capability, by name (the first one of a duplicate)."""
    found: dict[str, Proxy] = {}
    for proxy in ctx.proxies:
        if proxy.backend and proxy.name is not None:
            found.setdefault(proxy.name, proxy)
    return found


@dataclass(frozen=True, slots=True)
class _Route:
    """A use_backend or default_backend statement of a proxy."""

    proxy: Proxy
    stmt: Stmt
    backend: str
    conditional: bool


def _routes(ctx: LintContext) -> list[_Route]:
    cached: list[_Route] | None = getattr(ctx, "_routes_cache", None)
    if cached is not None:
        return cached
    routes: list[_Route] = []
    for proxy in ctx.proxies:
        for stmt in proxy.info.statements:
            node = stmt.node
            if isinstance(node, UseBackend):
                routes.append(_Route(proxy, stmt, node.backend, node.condition is not None))
            elif isinstance(node, DefaultBackend):
                routes.append(_Route(proxy, stmt, node.backend, False))
            elif stmt.keyword in ("use_backend", "default_backend") and stmt.args:
                routes.append(_Route(proxy, stmt, stmt.args[0], True))
    ctx._routes_cache = routes  # type: ignore[attr-defined]
    return routes


@rule("HAP020", "undefined-backend", "error", "use_backend/default_backend names no backend")
def undefined_backend(ctx: LintContext) -> Iterator[Problem]:
    backends = _backends(ctx)
    for route in _routes(ctx):
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
    routes = _routes(ctx)
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


def _servers(info: SectionInfo) -> list[tuple[Stmt, Server]]:
    return info.servers


@rule("HAP023", "duplicate-server-name", "error", "two servers with one name in a backend")
def duplicate_server_name(ctx: LintContext) -> Iterator[Problem]:
    for proxy in ctx.proxies:
        if not proxy.backend:
            continue
        seen: dict[str, Stmt] = {}
        for stmt, server in _servers(proxy.info):
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


# --- ACLs --------------------------------------------------------------------------------

_ACL_SECTIONS = frozenset({"frontend", "backend", "listen", "defaults", "fcgi-app"})


def _acl_flags(args: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
    """An ACL's criterion and its flags (``-i``, ``-m beg``, ...), values left out."""
    criterion = args[0] if args else ""
    flags: list[str] = []
    index = 1
    while index < len(args) and args[index].startswith("-"):
        flag = args[index]
        if flag == "--":
            break
        flags.append(flag)
        if flag in ("-m", "-f", "-M") and index + 1 < len(args):
            flags.append(args[index + 1])
            index += 1
        index += 1
    return criterion, tuple(flags)


@dataclass(slots=True)
class _AclUse:
    stmt: Stmt
    ref: AclRef
    index: int


def _condition_refs(condition: Condition, start: int) -> Iterator[tuple[AclRef, int]]:
    """The named ACLs of a condition with a best-effort word index (for the column)."""
    for alternative in condition.alternatives:
        for term in alternative.terms:
            if isinstance(term, AclRef):
                yield term, start


@dataclass(slots=True)
class _AclTable:
    definitions: dict[str, list[Stmt]]
    uses: list[_AclUse]
    order: dict[int, int]


def _acl_tables(ctx: LintContext) -> list[tuple[SectionInfo, _AclTable]]:
    cached: list[tuple[SectionInfo, _AclTable]] | None = getattr(ctx, "_acl_cache", None)
    if cached is not None:
        return cached
    tables: list[tuple[SectionInfo, _AclTable]] = []
    for info in ctx.sections:
        if info.kind not in _ACL_SECTIONS:
            continue
        definitions: dict[str, list[Stmt]] = {}
        uses: list[_AclUse] = []
        order: dict[int, int] = {}
        for position, stmt in enumerate(info.statements):
            if stmt.keyword == "acl" and not stmt.prefix and stmt.args:
                definitions.setdefault(stmt.args[0], []).append(stmt)
                order.setdefault(id(stmt.node), position)
                continue
            condition, start = split_condition(stmt)
            if condition is None:
                continue
            order[id(stmt.node)] = position
            for ref, index in _condition_refs(condition, start):
                uses.append(_AclUse(stmt, ref, _word_index(stmt, ref.name, index)))
        tables.append((info, _AclTable(definitions, uses, order)))
    ctx._acl_cache = tables  # type: ignore[attr-defined]
    return tables


def _word_index(stmt: Stmt, name: str, start: int) -> int:
    for index in range(max(start, 0), len(stmt.words)):
        if stmt.words[index].lstrip("!") == name:
            return index
    return max(start, 0)


@rule("HAP030", "undefined-acl", "error", "a condition names an ACL not defined before it")
def undefined_acl(ctx: LintContext) -> Iterator[Problem]:
    for info, table in _acl_tables(ctx):
        for use in table.uses:
            name = use.ref.name
            if name in PREDEFINED_ACLS:
                continue
            definitions = table.definitions.get(name)
            if not definitions:
                yield Problem(
                    use.stmt.src, f"ACL '{name}' is not defined in {info.label}", use.index
                )
                continue
            position = table.order[id(use.stmt.node)]
            if all(table.order[id(d.node)] > position for d in definitions):
                line = definitions[0].src.line if definitions[0].src else 0
                yield Problem(
                    use.stmt.src,
                    f"ACL '{name}' is used before its definition at line {line}",
                    use.index,
                )


@rule("HAP031", "unused-acl", "warning", "an ACL no condition uses")
def unused_acl(ctx: LintContext) -> Iterator[Problem]:
    for info, table in _acl_tables(ctx):
        if not table.definitions:
            continue
        used = {use.ref.name for use in table.uses}
        unused = [name for name in table.definitions if name not in used]
        if not unused:
            continue
        # ACLs can also be read by the acl() sample fetch (3.x) or other expressions.
        mentioned = tokens(
            word for stmt in info.statements if stmt.keyword != "acl" for word in stmt.words
        )
        for name in unused:
            if name in mentioned:
                continue
            first = table.definitions[name][0]
            yield Problem(first.src, f"ACL '{name}' is never used in {info.label}", 1)


@rule("HAP032", "acl-conflicting-flags", "warning", "one ACL name, one criterion, other flags")
def acl_conflicting_flags(ctx: LintContext) -> Iterator[Problem]:
    for _, table in _acl_tables(ctx):
        for name, definitions in table.definitions.items():
            if len(definitions) < 2:
                continue
            seen: dict[str, tuple[tuple[str, ...], Stmt]] = {}
            for stmt in definitions:
                criterion, flags = _acl_flags(stmt.args[1:])
                first = seen.get(criterion)
                if first is None:
                    seen[criterion] = (flags, stmt)
                elif first[0] != flags and not ctx.exclusive(first[1].node, stmt.node):
                    line = first[1].src.line if first[1].src else 0
                    old = " ".join(first[0]) or "no flags"
                    new = " ".join(flags) or "no flags"
                    yield Problem(
                        stmt.src,
                        f"ACL '{name}' uses '{criterion}' with {new} here but {old} at line {line}",
                        2,
                    )


# --- servers and persistence -------------------------------------------------------------


def _param(params: tuple[str, ...], name: str) -> str | None:
    for index, word in enumerate(params[:-1]):
        if word == name:
            return params[index + 1]
    return None


@rule("HAP040", "server-cookie-without-cookie", "warning", "server cookie, no backend cookie")
def server_cookie_without_cookie(ctx: LintContext) -> Iterator[Problem]:
    for proxy in ctx.proxies:
        if not proxy.backend or proxy.lookup("cookie") is not None:
            continue
        for stmt, server in _servers(proxy.info):
            if _param(server.params, "cookie") is not None:
                yield Problem(
                    stmt.src,
                    f"server '{server.name}' sets a cookie value but {proxy.info.label} has no "
                    "'cookie' directive, so it is never used",
                    3 + server.params.index("cookie"),
                )


@rule("HAP041", "duplicate-server-cookie", "warning", "two servers with the same cookie value")
def duplicate_server_cookie(ctx: LintContext) -> Iterator[Problem]:
    for proxy in ctx.proxies:
        if not proxy.backend:
            continue
        seen: dict[str, tuple[Stmt, Server]] = {}
        for stmt, server in _servers(proxy.info):
            value = _param(server.params, "cookie")
            if value is None:
                continue
            first = seen.get(value)
            if first is not None and not ctx.exclusive(first[0].node, stmt.node):
                yield Problem(
                    stmt.src,
                    f"servers '{first[1].name}' and '{server.name}' share the cookie value "
                    f"'{value}': sticky sessions always go to '{first[1].name}'",
                    4 + server.params.index("cookie"),
                )
            else:
                seen.setdefault(value, (stmt, server))


_SERVERLESS_OK = frozenset(
    {
        "server",
        "server-template",
        "dispatch",
        "stick-table",
        "stats",
        "http-request",
        "redirect",
        "use_backend",
        "default_backend",
        "tcp-request",
        "errorfile",
        "use-service",
        "http-error",
        "transparent",
        "errorfiles",
        "errorloc",
        "errorloc302",
        "errorloc303",
    }
)


@rule("HAP042", "backend-without-server", "warning", "a backend with no server")
def backend_without_server(ctx: LintContext) -> Iterator[Problem]:
    for proxy in ctx.proxies:
        if not proxy.backend:
            continue
        if proxy.info.keywords & _SERVERLESS_OK:
            continue
        if any(
            stmt.keyword == "option" and stmt.args[:1] == ("transparent",)
            for stmt in proxy.info.statements
        ):
            continue
        yield Problem(proxy.info.src, f"{proxy.info.label} has no server", 1)


_IPV4 = re.compile(
    r"(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}"
    r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
)
_IPV4_PORT = re.compile(_IPV4.pattern + r"(?::[0-9+-]*)?")
_PREFIXES = re.compile(r"^(ipv4|ipv6|tcp|tcp4|tcp6|udp|udp4|udp6|quic4|quic6)@", re.IGNORECASE)
_NOT_NETWORK = re.compile(r"^(unix|abns|abnsz|fd|sockpair|uxst|uxdg|rhttp)@|^/", re.IGNORECASE)


def _host(address: str) -> str | None:
    """The host part of a server address when it is a name, else None."""
    if _IPV4_PORT.fullmatch(address) or is_dynamic(address) or _NOT_NETWORK.match(address):
        return None
    address = _PREFIXES.sub("", address)
    if address.startswith("["):
        return None  # [IPv6]:port
    host = address
    if address.count(":") == 1:
        host = address.split(":", 1)[0]
    elif address.count(":") > 1:
        return None  # a bare IPv6 address
    if not host or host == "*" or host.lower() == "localhost" or _IPV4.fullmatch(host):
        return None
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return host
    return None


def _init_addr_allows_none(words: tuple[str, ...]) -> bool | None:
    value = _param(words, "init-addr")
    if value is None:
        return None
    return "none" in value.split(",")


@rule("HAP043", "server-hostname", "warning", "a server host name without 'init-addr none'")
def server_hostname(ctx: LintContext) -> Iterator[Problem]:
    for proxy in ctx.proxies:
        if not proxy.backend:
            continue
        fallback: bool | None = None
        chain: Proxy | None = proxy
        defaults_seen = 0
        while chain is not None and defaults_seen < 64:
            for stmt in chain.info.statements:
                if stmt.keyword == "default-server":
                    allowed = _init_addr_allows_none(stmt.args)
                    if allowed is not None and fallback is None:
                        fallback = allowed
            chain = chain.defaults
            defaults_seen += 1
        for stmt, server in _servers(proxy.info):
            host = _host(server.address)
            if host is None:
                continue
            allowed = _init_addr_allows_none(server.params)
            if allowed is None:
                allowed = fallback
            if allowed:
                continue
            yield Problem(
                stmt.src,
                f"server '{server.name}' uses host name '{host}': if it does not resolve when "
                "HAProxy starts, the whole config is refused (add 'init-addr last,libc,none')",
                2,
            )


# --- routing -----------------------------------------------------------------------------


@rule("HAP050", "mode-mismatch", "error", "an http frontend routes to a tcp backend")
def mode_mismatch(ctx: LintContext) -> Iterator[Problem]:
    backends = _backends(ctx)
    for route in _routes(ctx):
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
        if proxy.kind == "defaults" or proxy.mode() not in ("tcp", "http"):
            continue
        if any(stmt.keyword == "disabled" for stmt in proxy.info.statements):
            continue
        missing: list[str] = []
        if proxy.frontend and proxy.lookup("timeout client") is None:
            missing.append("client")
        if proxy.backend and any(True for _ in _servers(proxy.info)):
            if proxy.lookup("timeout connect") is None:
                missing.append("connect")
            if proxy.lookup("timeout server") is None and (
                proxy.mode() == "http" or proxy.lookup("timeout tunnel") is None
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
