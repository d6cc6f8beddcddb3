"""Rules about servers and persistence: cookies, backends without servers, host names
(HAP040-HAP043)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator

from compiler.ast import Server
from grammar.lint.findings import Problem
from grammar.lint.model import LintContext, Proxy
from grammar.lint.registry import rule
from grammar.lint.statements import Stmt, is_dynamic


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
        for stmt, server in proxy.info.servers:
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
        for stmt, server in proxy.info.servers:
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
        for stmt, server in proxy.info.servers:
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
