"""Render options: what a user changes about the generated config, with the seed's defaults."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from compiler.validators import (
    BalanceName,
    Cidr,
    Duration,
    HealthPath,
    Word,
    matching,
    one_of,
)

_FACILITIES = frozenset(
    (
        "kern user mail daemon auth syslog lpr news uucp cron auth2 ftp ntp audit alert cron2 "
        "local0 local1 local2 local3 local4 local5 local6 local7"
    ).split()
)
_LEVELS = frozenset(["emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"])


_facility = one_of(_FACILITIES, "facility", "is not a syslog facility")
_level = one_of(_LEVELS, "level", "is not a syslog level")

Facility = Annotated[str, AfterValidator(_facility)]
Level = Annotated[str, AfterValidator(_level)]


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class LogTarget(_Options):
    """``log <address> <facility> [<level>]`` in ``global``."""

    address: Word
    facility: Facility
    level: Level | None = None


class Timeouts(_Options):
    connect: Duration = "5000"
    client: Duration = "50000"
    server: Duration = "50000"


class HealthCheck(_Options):
    """``check`` on every server; with ``http_path``, an HTTP ``GET`` instead of a TCP connect."""

    enabled: bool = True
    http_path: HealthPath | None = None


# --- TLS ---------------------------------------------------------------------------------
# Mozilla's "intermediate" profile (ssl-config.mozilla.org, version 5.7): TLS 1.2 suites with
# forward secrecy and AEAD only; TLS 1.3 suites are OpenSSL's defaults, named so they are
# pinned.
MOZILLA_INTERMEDIATE_CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305"
)
MOZILLA_CIPHERSUITES = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
# An ACME account key's JWK thumbprint (RFC 7638): base64url of a SHA-256, 43 characters.
_THUMBPRINT = re.compile(r"[A-Za-z0-9_-]{43}")
_thumbprint = matching(
    _THUMBPRINT,
    "acme_thumbprint",
    "is not an ACME account key thumbprint (43 base64url characters, RFC 7638)",
)
Thumbprint = Annotated[str, AfterValidator(_thumbprint)]


class TlsOptions(_Options):
    """HTTPS on the frontend: one more ``bind`` that loads every certificate in ``certs_dir``
    (HAProxy picks one by SNI; the first file in name order is the default)."""

    certs_dir: Word
    bind_port: int = Field(default=443, ge=1, le=65535)
    alpn: Word = "h2,http/1.1"
    min_version: Literal["TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3"] = "TLSv1.2"
    ciphers: Word = MOZILLA_INTERMEDIATE_CIPHERS
    ciphersuites: Word = MOZILLA_CIPHERSUITES
    # Strict-Transport-Security on HTTPS answers of `redirect` services (none when unset).
    hsts_max_age: int | None = Field(default=None, ge=0, le=1_000_000_000)
    hsts_include_subdomains: bool = False


# Zero downtime: the runtime API socket and the server slots it fills.
_RETRY_ON = frozenset(
    "none conn-failure empty-response junk-response response-timeout 0rtt-rejected "
    "404 408 425 500 501 502 503 504 all-retryable-errors".split()
)
_retry_on = one_of(_RETRY_ON, "retry_on", "is not a retry-on keyword HAProxy 2.6 knows")
RetryOn = Annotated[str, AfterValidator(_retry_on)]


class StatsSocket(_Options):
    """``stats socket <path> mode <mode> level <level>`` in ``global``: the runtime API.

    A unix socket only, never an address, so no admin interface is ever on a network. The
    default directory exists in the official image and in Debian's package; mount a volume
    there that Cosmonaut shares to reach it (see the README)."""

    path: Word = "/var/lib/haproxy/admin.sock"
    mode: Annotated[str, Field(pattern=r"^[0-7]{3,4}$")] = "660"
    level: Literal["user", "operator", "admin"] = "admin"


class ServerSlots(_Options):
    """Placeholder servers (in maintenance) after each backend's servers, which Cosmonaut
    fills through the runtime API instead of reloading. A backend of ``n`` servers gets the
    first size of ``minimum``, ``minimum * growth``, ... above ``n``: at least one free."""

    enabled: bool = True
    minimum: int = Field(default=4, ge=1, le=4096)
    growth: float = Field(default=2.0, ge=1.1, le=16.0)
    placeholder: Word = "127.0.0.1:1"


# --- fleet mode: who may deploy what ---
_GLOB = re.compile(r"[!-~]{1,253}")
_glob = matching(_GLOB, "glob", "is not a pattern (printable ASCII without spaces)")
Glob = Annotated[str, AfterValidator(_glob)]


class OwnerRule(_Options):
    """Which hosts may deploy a service, or claim a route, in fleet mode.

    ``services`` matches service names and ``routes`` predicates (a domain or a path), as
    shell patterns (``billing-*``, ``*.pay.example.com``, ``/admin*``); ``hosts`` the host
    ids that may report them. A candidate or running container a rule matches, from a host
    none of its matching rules names, is left out. The named hosts own the service: their
    newest deployment decides its settings, auth and route included."""

    services: Glob | None = None
    routes: Glob | None = None
    hosts: tuple[Glob, ...] = Field(strict=False, min_length=1, max_length=1000)

    @model_validator(mode="after")
    def _one_subject(self) -> OwnerRule:
        if (self.services is None) == (self.routes is None):
            raise ValueError("an owner rule names either 'services' or 'routes'")
        return self


# `routing="auto"` switches to maps at this many services (benchmarks/routing_bench.py: below
# it ACL routing costs a few per cent of throughput at most, and stays one readable file).
AUTO_MAP_SERVICES = 50


class RenderOptions(_Options):
    """Everything about the output that is not in the payload. Defaults follow the seed."""

    compat: Literal["none", "seed"] = "none"
    bind_address: Word | None = None
    bind_port: int = Field(default=80, ge=1, le=65535)
    frontend_name: Word = "http"
    maxconn: int = Field(default=4096, ge=1, le=10_000_000)
    log_targets: tuple[LogTarget, ...] = Field(
        strict=False,
        default=(
            LogTarget(address="127.0.0.1", facility="local0"),
            LogTarget(address="127.0.0.1", facility="local1", level="notice"),
        ),
    )
    user: Word | None = "haproxy"
    group: Word | None = "haproxy"
    daemon: bool = True
    timeouts: Timeouts = Timeouts()
    balance: BalanceName = "roundrobin"
    health_check: HealthCheck = HealthCheck()
    # HTTPS is off unless set.
    tls: TlsOptions | None = None
    # With it, HAProxy answers ACME HTTP-01 challenges itself with `<token>.<thumbprint>`, on
    # every port, before any routing (works without `tls`: the first certificate needs it).
    acme_thumbprint: Thumbprint | None = None
    # Zero downtime: safe retries, old workers, server state, runtime API, slots.
    # None (or False) leaves a statement out; compat="seed" leaves all of them out.
    retries: int | None = Field(default=3, ge=0, le=100)
    # ``option redispatch <n>``: every n-th retry goes to another server (1: each retry), so
    # a request to a container that just exited is not retried on it; None leaves it out.
    redispatch: int | None = Field(default=1, ge=-100, le=100)
    retry_on: tuple[RetryOn, ...] = Field(
        strict=False, default=("conn-failure", "empty-response", "response-timeout")
    )
    tunnel_timeout: Duration | None = "1h"
    hard_stop_after: Duration | None = "30m"
    server_state_file: Word | None = "/var/lib/haproxy/server-state"
    stats_socket: StatsSocket | None = StatsSocket()
    server_slots: ServerSlots = ServerSlots()
    # --- routing at scale ---
    # How the frontend picks a backend: one ACL + use_backend per service (`acl`, linear in
    # the number of services), map lookups (`map`, a tree: the same cost at any size; the
    # output is then a bundle of haproxy.cfg + map files), or `auto`: maps from
    # AUTO_MAP_SERVICES services on. `compat="seed"` always keeps the seed's ACLs.
    routing: Literal["acl", "map", "auto"] = "auto"
    # --- fleet mode ---
    # Networks whose loopback, link-local, unspecified, multicast or broadcast addresses a
    # host may still report (refused otherwise: every host's HAProxy would route to its own
    # loopback, or to a cloud's metadata service at 169.254.169.254).
    fleet_allow: tuple[Cidr, ...] = Field(strict=False, default=(), max_length=1000)
    # Which hosts may deploy which services and routes (none: any host may, and only a
    # service's protections and its route are kept from newcomers; docs/registry.md).
    fleet_owners: tuple[OwnerRule, ...] = Field(strict=False, default=(), max_length=1000)


@dataclass(frozen=True, slots=True)
class Dialect:
    """What the output holds beyond the seed's statements, decided once from ``compat``:
    ``compat="seed"`` reproduces the seed's config statement for statement, so it has none."""

    # The seed's ACLs (``hdr(host)`` with the port, ``url_beg``) in name order, never maps.
    seed_routing: bool
    # Safe retries, old workers, server state, the runtime API and its server slots.
    zero_downtime: bool
    # Per-service backend settings, their userlists and the servers' own options.
    service_settings: bool
    # Each server its own cookie value: the seed gave every one the cookie's name, so every
    # returning client went to the first server.
    own_cookie_values: bool


_SEED = Dialect(
    seed_routing=True, zero_downtime=False, service_settings=False, own_cookie_values=False
)
_CURRENT = Dialect(
    seed_routing=False, zero_downtime=True, service_settings=True, own_cookie_values=True
)


def dialect(options: RenderOptions) -> Dialect:
    """The one place the compiler reads ``compat``: the seed's output, or today's."""
    return _SEED if options.compat == "seed" else _CURRENT


def uses_maps(options: RenderOptions, services: int) -> bool:
    """Whether a config of ``services`` services routes through map files."""
    if dialect(options).seed_routing or options.routing == "acl":
        return False
    return options.routing == "map" or services >= AUTO_MAP_SERVICES


def parse_render_options(raw: str | bytes, *, file: str) -> RenderOptions:
    """Render options from JSON text; the first error is reported with ``file`` and its path."""
    from pydantic import ValidationError

    from compiler.errors import OptionsError
    from compiler.payload import json_path

    try:
        return RenderOptions.model_validate_json(raw)
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        raise OptionsError(
            f"{first['msg']} ({error.error_count()} error(s))",
            file=file,
            json_path=json_path(first["loc"]),
        ) from None
