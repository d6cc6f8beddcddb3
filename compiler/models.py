"""Typed payload and service models: the only place payload validation errors are born.

A payload is ``{"table", "running", "candidates"}`` as Cosmonaut sends it. Validation is
strict (no type coercion, unknown fields refused) and every value that ends up in the config
is checked against what HAProxy can safely read, so nothing a payload says can inject a
directive.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, NoReturn

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

ConfigModeName = Literal["host", "path"]
# HTTPS per service (issue 14): "off" as before, "on" served on both ports, "redirect" HTTP to
# HTTPS. Left out of dumps when "off", so stored state and echoes stay as they were.
TlsMode = Literal["off", "on", "redirect"]

# HAProxy accepts letters, digits, '-', '_', '.' and ':' in proxy, server and ACL names.
_IDENTIFIER = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_TABLE = re.compile(r"[A-Za-z0-9_.-]{3,255}")
_HOST_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
# RFC 6265 token: any CHAR except CTLs and separators.
_COOKIE_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,256}")
# RFC 3986 pchar without the quote: unreserved, sub-delims but "'", ':', '@', pct-encoded.
_PATH_SEGMENT = re.compile(r"(?:[A-Za-z0-9\-._~!$&()*+,;=:@]|%[0-9A-Fa-f]{2})+")
# Words HAProxy's condition parser reads as operators, never as an ACL or backend name.
_RESERVED_NAMES = frozenset({"or", "if", "unless"})


def _preview(value: str, limit: int = 40) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "...")


def refuse(code: str, message: str, value: str) -> NoReturn:
    """Raise a validation error whose message starts with the (shortened) bad value."""
    raise PydanticCustomError(code, "{value} " + message, {"value": _preview(value)})


def matching(pattern: re.Pattern[str], code: str, message: str) -> Callable[[str], str]:
    """A validator accepting values that ``pattern`` matches in full."""

    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            refuse(code, message, value)
        return value

    return check


def one_of(choices: frozenset[str], code: str, message: str) -> Callable[[str], str]:
    """A validator accepting only ``choices``."""

    def check(value: str) -> str:
        if value not in choices:
            refuse(code, message, value)
        return value

    return check


def _identifier(value: str) -> str:
    if not _IDENTIFIER.fullmatch(value):
        reason = (
            "must be 1 to 64 characters"
            if not value or len(value) > 64
            else "may contain only letters, digits, '-', '_', '.' and ':'"
        )
        raise PydanticCustomError(
            "identifier",
            "{value} is not a valid HAProxy name: {reason}",
            {"value": _preview(value), "reason": reason},
        )
    return value


def _service_name(value: str) -> str:
    _identifier(value)
    if value.lower() in _RESERVED_NAMES:
        raise PydanticCustomError(
            "reserved_name",
            "{value} is a reserved word in HAProxy conditions",
            {"value": repr(value)},
        )
    return value


_table_name = matching(
    _TABLE, "table_name", "is not a valid table name: 3 to 255 of letters, digits, '_', '-', '.'"
)
_cookie_name = matching(
    _COOKIE_TOKEN,
    "cookie_name",
    "is not a valid cookie name (an RFC 6265 token of at most 256 characters: no spaces, "
    "quotes, control characters or any of ()<>@,;:\\/[]?={})",
)


def normalize_host(value: str) -> str:
    """A DNS host name (RFC 1123), lower-cased; a single trailing dot is dropped."""
    host = value[:-1] if value.endswith(".") else value
    if not host.isascii():
        raise PydanticCustomError(
            "host_name",
            "{value} contains non-ASCII characters: write internationalised names in their "
            "IDNA (xn--) form",
            {"value": _preview(value)},
        )
    host = host.lower()
    labels = host.split(".")
    if len(host) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in labels):
        raise PydanticCustomError(
            "host_name",
            "{value} is not a valid host name: dot-separated labels of 1 to 63 letters, digits "
            "and '-', not starting or ending with '-', at most 253 characters",
            {"value": _preview(value)},
        )
    return host


def normalize_path(value: str) -> str:
    """URL path segments, returned as ``/seg1/seg2`` (leading/trailing slashes optional)."""
    segments = value.strip("/").split("/")
    if len(value) > 1024 or not all(_PATH_SEGMENT.fullmatch(segment) for segment in segments):
        raise PydanticCustomError(
            "url_path",
            "{value} is not a valid URL path prefix: one or more '/'-separated segments of "
            "URL characters (no spaces, '#', '?', quotes, control characters or empty segments)",
            {"value": _preview(value)},
        )
    return "/" + "/".join(segments)


_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
# The common case, already canonical: checked by one regex instead of the ipaddress module.
_CANONICAL_IPV4_ADDRESS = re.compile(
    rf"{_OCTET}(?:\.{_OCTET}){{3}}:(?:[1-9][0-9]{{0,3}}|[1-5][0-9]{{4}}|6[0-4][0-9]{{3}}"
    rf"|65[0-4][0-9]{{2}}|655[0-2][0-9]|6553[0-5])"
)


def _address(value: str) -> str:
    """``IPv4:port`` or ``[IPv6]:port``, normalised."""
    if _CANONICAL_IPV4_ADDRESS.fullmatch(value):
        return value
    host, sep, port_text = value.rpartition(":")
    if not sep or not host:
        raise PydanticCustomError(
            "address",
            "{value} is not an address: expected IP:PORT, e.g. 10.0.0.5:8080",
            {"value": _preview(value)},
        )
    if not (port_text.isascii() and port_text.isdigit() and 1 <= int(port_text) <= 65535):
        raise PydanticCustomError(
            "address",
            "{value} has an invalid port: expected a number from 1 to 65535",
            {"value": _preview(value)},
        )
    port = int(port_text)
    if host.startswith("[") and host.endswith("]"):
        try:
            return f"[{ipaddress.IPv6Address(host[1:-1]).compressed}]:{port}"
        except ValueError:
            pass
    else:
        try:
            return f"{ipaddress.IPv4Address(host)}:{port}"
        except ValueError:
            pass
        if ":" in host:
            raise PydanticCustomError(
                "address",
                "{value}: write an IPv6 address in brackets, e.g. [fd00::5]:8080",
                {"value": _preview(value)},
            )
        if re.fullmatch(r"[A-Za-z0-9.-]+", host) and re.search(r"[A-Za-z]", host):
            raise PydanticCustomError(
                "address",
                "{value} names a host, not an IP address: HAProxy resolves server names once "
                "at start-up and refuses the whole config if one does not resolve; give the "
                "container's IP address",
                {"value": _preview(value)},
            )
    raise PydanticCustomError(
        "address",
        "{value} is not a valid IPv4 or bracketed IPv6 address with a port",
        {"value": _preview(value)},
    )


def _created(value: str) -> str:
    """An RFC 3339 time, normalised to UTC (``2026-12-01T20:32:52.000000Z``) so that later
    times sort after earlier ones as text."""
    try:
        moment = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None or len(value) > 64:
        raise PydanticCustomError(
            "created",
            "{value} is not an RFC 3339 time with a time zone, e.g. 2026-12-01T20:32:52Z",
            {"value": _preview(value)},
        )
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _lower_mode(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _predicate_for_mode_impl(cls: type, value: str, info: ValidationInfo) -> str:
    mode = info.data.get("config_mode", info.data.get("mode", "host"))
    return normalize_path(value) if mode == "path" else normalize_host(value)


Identifier = Annotated[str, AfterValidator(_identifier)]
ServiceName = Annotated[str, AfterValidator(_service_name)]
TableName = Annotated[str, AfterValidator(_table_name)]
CookieName = Annotated[str, AfterValidator(_cookie_name)]
Address = Annotated[str, AfterValidator(_address)]
Created = Annotated[str, AfterValidator(_created)]
ConfigMode = Annotated[ConfigModeName, BeforeValidator(_lower_mode)]


class _Strict(BaseModel):
    model_config = ConfigDict(
        strict=True, extra="forbid", frozen=True, populate_by_name=True, validate_by_alias=True
    )


class ContainerRef(_Strict):
    """A container of a service: its id (the server name) and ``address:port``."""

    id: Identifier
    ip: Address


class CandidateContainer(ContainerRef):
    """A container as a candidate lists it; ``created`` (RFC 3339), when known, says which
    deployment of a service is the newest across hosts."""

    created: Created | None = None


class RunningContainer(_Strict):
    """An entry of ``running``: a service container alive on the host network now."""

    service_name: ServiceName = Field(alias="serviceName")
    id: Identifier
    ip: Address


class Candidate(_Strict):
    """An entry of ``candidates``: new containers with their service's routing settings."""

    service_name: ServiceName = Field(alias="serviceName")
    config_mode: ConfigMode = Field(default="host", alias="configMode")
    predicate: str
    cookie: CookieName | None = None
    containers: list[CandidateContainer] = Field(default_factory=list)
    # TLS (issue 14)
    tls: TlsMode = Field(default="off", exclude_if=lambda mode: mode == "off")

    _predicate_for_mode = field_validator("predicate")(_predicate_for_mode_impl)


class Payload(_Strict):
    """What Cosmonaut sends: the state table, what runs, and what is new.

    With ``host``, the payload is that host's report: ``running`` and ``candidates`` describe
    its containers only, and the table keeps one report per host (fleet mode).
    """

    table: TableName
    host: Identifier | None = None
    running: list[RunningContainer]
    candidates: list[Candidate] = Field(default_factory=list)


class Service(_Strict):
    """A resolved service: one backend, one routing rule, its servers."""

    name: ServiceName
    mode: ConfigModeName
    predicate: str
    cookie: CookieName | None = None
    # Lax only about the container: JSON (and stores) give a list where we keep a tuple.
    containers: tuple[ContainerRef, ...] = Field(default=(), strict=False)
    # TLS (issue 14)
    tls: TlsMode = Field(default="off", exclude_if=lambda mode: mode == "off")

    _predicate_for_mode = field_validator("predicate")(_predicate_for_mode_impl)

    @property
    def route_key(self) -> tuple[str, str]:
        """What two services must not share: the same host, or the same path."""
        return (self.mode, self.predicate)


class HostReport(_Strict):
    """A host's last report, as a fleet table keeps it: its containers and their settings.

    ``reported_at`` is the registry's clock (seconds since the epoch) when it arrived; ``seq``
    counts the host's reports, so that a store writes each host's report only over the one it
    read (the only thing two writers can race on is one host's own report).
    """

    host: Identifier
    reported_at: float
    seq: int = Field(ge=1)
    running: tuple[RunningContainer, ...] = Field(default=(), strict=False)
    candidates: tuple[Candidate, ...] = Field(default=(), strict=False)

    @property
    def container_count(self) -> int:
        ids = {c.id for c in self.running}
        ids.update(c.id for candidate in self.candidates for c in candidate.containers)
        return len(ids)
