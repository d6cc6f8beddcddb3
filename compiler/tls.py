"""HTTPS in the generated config: the frontend's HTTPS ``bind``, the ACME HTTP-01
answer, and each TLS service's backend statements.

Per-service behaviour lives in the service's backend (``http-request redirect`` and
``set-header``, ``http-response set-header``), so the frontend keeps one routing rule per
service whatever its TLS mode; the frontend only gains a ``bind`` line and, with an ACME
thumbprint, one rule before any routing. Pure: options and services in, AST lines out.
"""

from __future__ import annotations

from collections.abc import Sequence

from compiler.ast import Acl, Bind, Line, Statement
from compiler.errors import Diagnostic
from compiler.fetches import HOST_FETCH
from compiler.models import Service
from compiler.options import RenderOptions
from compiler.validators import TlsMode

# Tokens are base64url (RFC 8555 section 8.3); anything else under the prefix is routed as
# before. `[.]` instead of `\.` keeps the pattern free of backslashes.
ACME_CHALLENGE_PATH = "^/[.]well-known/acme-challenge/[-_A-Za-z0-9]+$"
# Named ACLs and `unless` instead of `!{ ... }`: the printer quotes `!` and braces, which is
# correct but hard to read. METH_GET is HAProxy's predefined ACL for GET and HEAD.
_ACME_ACL = "acme_challenge"
_TLS_ACL = "tls_on"
# The Host header without a port, as the routing rules compare it.
_HOST = f"%[{HOST_FETCH}]"


def effective_mode(service: Service, options: RenderOptions) -> TlsMode:
    """What the config does for ``service``: its TLS mode, or ``off`` without a ``tls``
    render option (the service stays routed on HTTP; ``diagnostics`` says why)."""
    return service.tls if options.tls is not None else "off"


def https_bind(options: RenderOptions) -> Bind | None:
    """``bind <address>:443 ssl crt <dir> ...`` beside the HTTP bind, or None without TLS."""
    tls = options.tls
    if tls is None:
        return None
    address = f"{options.bind_address or ''}:{tls.bind_port}"
    params = (
        *("ssl", "crt", tls.certs_dir),
        *("alpn", tls.alpn),
        *("ssl-min-ver", tls.min_version),
        *("ciphers", tls.ciphers),
        *("ciphersuites", tls.ciphersuites),
    )
    return Bind(address, params)


def acme_challenge_rule(options: RenderOptions) -> tuple[Line, ...]:
    """The stateless HTTP-01 answer: ``<token>.<thumbprint>`` for any token, on every bind,
    before routing (so a redirect service's challenge is answered on HTTP too)."""
    if options.acme_thumbprint is None:
        return ()
    answer = f"%[path,field(4,/)].{options.acme_thumbprint}"
    return (
        Acl(_ACME_ACL, "path_reg", (ACME_CHALLENGE_PATH,)),
        Statement(
            "http-request",
            (
                *("return", "status", "200", "content-type", "text/plain"),
                *("lf-string", answer),
                *("if", _ACME_ACL),
            ),
        ),
    )


def backend_lines(service: Service, options: RenderOptions) -> tuple[Line, ...]:
    """A service's statements when the config has HTTPS: redirect (``redirect``),
    X-Forwarded-Proto/Port (``on``, ``redirect``), Strict-Transport-Security on HTTPS answers
    (``redirect``, when ``hsts_max_age`` is set), a 503 on HTTPS (``off``)."""
    mode = effective_mode(service, options)
    tls = options.tls
    if tls is None:
        return ()
    lines: list[Line] = [Acl(_TLS_ACL, "ssl_fc")]
    if mode == "off":
        # Served on HTTP only, as before HTTPS existed: on the HTTPS port it gets what an
        # unknown host gets (503), not an answer under a certificate that is not its own.
        lines.append(Statement("http-request", ("deny", "deny_status", "503", "if", _TLS_ACL)))
        return tuple(lines)
    if mode == "redirect":
        port = "" if tls.bind_port == 443 else f":{tls.bind_port}"
        location = f"https://{_HOST}{port}%[pathq]"
        # 308 keeps the method and the body (anything but GET/HEAD); 301 for the rest.
        lines.append(
            Statement(
                "http-request",
                (
                    *("redirect", "location", location, "code", "308"),
                    *("unless", _TLS_ACL, "||", "METH_GET"),
                ),
            )
        )
        lines.append(
            Statement(
                "http-request",
                ("redirect", "location", location, "code", "301", "unless", _TLS_ACL),
            )
        )
    lines.append(
        Statement("http-request", ("set-header", "X-Forwarded-Proto", "https", "if", _TLS_ACL))
    )
    if mode == "on":
        lines.append(
            Statement(
                "http-request", ("set-header", "X-Forwarded-Proto", "http", "unless", _TLS_ACL)
            )
        )
    lines.append(Statement("http-request", ("set-header", "X-Forwarded-Port", "%[dst_port]")))
    if mode == "redirect" and tls.hsts_max_age is not None:
        value = f"max-age={tls.hsts_max_age}"
        if tls.hsts_include_subdomains:
            value += "; includeSubDomains"
        lines.append(
            Statement(
                "http-response",
                ("set-header", "Strict-Transport-Security", value, "if", _TLS_ACL),
            )
        )
    return tuple(lines)


def cookie_flags(service: Service, options: RenderOptions) -> tuple[str, ...]:
    """``secure`` on the sticky cookie of a service served on HTTPS only (``redirect``): an
    ``on`` service also answers on HTTP, where a secure cookie would never come back."""
    return ("secure",) if effective_mode(service, options) == "redirect" else ()


def diagnostics(services: Sequence[Service], options: RenderOptions) -> tuple[Diagnostic, ...]:
    """A warning for each service that asks for TLS when the config has no ``tls`` option."""
    if options.tls is not None:
        return ()
    return tuple(
        Diagnostic(
            f"service '{service.name}'",
            f"tls '{service.tls}' needs the 'tls' render option (a certificate folder); the "
            "service is routed on HTTP only",
            "warning",
        )
        for service in services
        if service.tls != "off"
    )
