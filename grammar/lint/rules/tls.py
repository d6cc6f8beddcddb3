"""Rules about TLS on bind lines (HAP062-HAP063)."""

from __future__ import annotations

import posixpath
from collections.abc import Iterator

from grammar.lint.findings import Problem
from grammar.lint.model import LintContext
from grammar.lint.registry import rule
from grammar.lint.statements import Stmt, is_dynamic

# Bind parameters that take a file or folder HAProxy opens at start-up.
_PATH_PARAMS = frozenset({"crt", "crt-list", "ca-file", "crl-file", "ca-verify-file"})
# Bind parameters that only mean something with `ssl`: without it HAProxy accepts them and
# serves the port in clear text.
_TLS_PARAMS = frozenset(
    {
        *_PATH_PARAMS,
        "alpn", "npn", "ciphers", "ciphersuites", "curves", "ecdhe", "ssl-min-ver",
        "ssl-max-ver", "strict-sni", "verify", "no-tls-tickets", "prefer-client-ciphers",
        "allow-0rtt", "generate-certificates", "tls-ticket-keys", "no-ca-names",
    }
)  # fmt: skip


@rule("HAP062", "missing-certificate", "error", "a bind names a certificate file that is missing")
def missing_certificate(ctx: LintContext) -> Iterator[Problem]:
    exists = ctx.path_exists
    if exists is None:
        return
    bases = [s.args[0] for s in ctx.preamble if s.keyword == "crt-base" and s.args]
    for section in ctx.sections:
        if section.kind == "global":
            bases.extend(s.args[0] for s in section.statements if s.keyword == "crt-base")
    base = bases[-1] if bases else ""
    for stmt in _binds(ctx):
        params = stmt.args[1:]
        for index, word in enumerate(params[:-1]):
            if word not in _PATH_PARAMS:
                continue
            path = params[index + 1]
            if is_dynamic(path):
                continue
            if word in ("crt", "crt-list") and base and not path.startswith("/"):
                path = posixpath.join(base, path)
            if not exists(path):
                yield Problem(
                    stmt.src,
                    f"'{word} {params[index + 1]}': no such file or folder ({path}); "
                    "HAProxy refuses to start without it",
                    index + 3,
                )


@rule("HAP063", "tls-params-without-ssl", "warning", "certificate parameters on a bind without ssl")
def tls_params_without_ssl(ctx: LintContext) -> Iterator[Problem]:
    for stmt in _binds(ctx):
        params = stmt.args[1:]
        if "ssl" in params or "quic" in " ".join(stmt.args[:1]):
            continue
        found = [word for word in params if word in _TLS_PARAMS]
        if found:
            yield Problem(
                stmt.src,
                f"bind {stmt.args[0]} has '{found[0]}' but no 'ssl': HAProxy serves this "
                "port in clear text; add 'ssl'",
                2 + params.index(found[0]),
            )


def _binds(ctx: LintContext) -> Iterator[Stmt]:
    """Every ``bind`` line of every proxy that has frontend side (not ``no bind``)."""
    for proxy in ctx.proxies:
        if proxy.frontend:
            yield from (
                stmt for stmt in proxy.info.statements if stmt.keyword == "bind" and not stmt.prefix
            )
