"""Typed payload and service models: the only place payload validation errors are born.

A payload is ``{"table", "running", "candidates"}`` as Cosmonaut sends it. Validation is
strict (no type coercion, unknown fields refused) and every value that ends up in the config
is checked against what HAProxy can safely read, so nothing a payload says can inject a
directive.
"""

from __future__ import annotations

import ipaddress
import json
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
    WithJsonSchema,
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


# The published JSON Schema (``lambda-registry schema``) carries each validator's rule as a
# pattern, so that an editor refuses what the registry would (the registry's own checks, e.g.
# IP ranges and host lengths, stay the reference: the patterns are at most as strict).
IDENTIFIER_PATTERN = _IDENTIFIER.pattern
ADDRESS_PATTERN = (
    rf"{_OCTET}(?:\.{_OCTET}){{3}}:[0-9]{{1,5}}|\[[0-9A-Fa-f:.]{{2,45}}\]:[0-9]{{1,5}}"
)
_SEGMENT = r"(?:[A-Za-z0-9\-._~!$&()*+,;=:@]|%[0-9A-Fa-f]{2})+"
PATH_PATTERN = rf"/*{_SEGMENT}(?:/{_SEGMENT})*/*"
HOST_PATTERN = r"(?=.{1,254}$)(?!-)[A-Za-z0-9-]{1,63}(?<!-)(?:\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?"


def _any_case(word: str) -> str:
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in word)


def schema_of(pattern: str, max_length: int | None = None) -> WithJsonSchema:
    """A string's JSON Schema: ``pattern`` anchored, and its length limit if it has one."""
    schema: dict[str, Any] = {"type": "string", "pattern": f"^(?:{pattern})$"}
    if max_length is not None:
        schema["maxLength"] = max_length
    return WithJsonSchema(schema)


Identifier = Annotated[str, AfterValidator(_identifier), schema_of(IDENTIFIER_PATTERN)]
ServiceName = Annotated[
    str,
    AfterValidator(_service_name),
    schema_of(
        rf"(?!(?:{_any_case('or')}|{_any_case('if')}|{_any_case('unless')})$)" + IDENTIFIER_PATTERN
    ),
]
TableName = Annotated[str, AfterValidator(_table_name), schema_of(_TABLE.pattern)]
CookieName = Annotated[str, AfterValidator(_cookie_name), schema_of(_COOKIE_TOKEN.pattern)]
Address = Annotated[str, AfterValidator(_address), schema_of(ADDRESS_PATTERN)]
Created = Annotated[
    str,
    AfterValidator(_created),
    schema_of(
        r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?"
        r"(?:[Zz]|[+-][0-9]{2}:[0-9]{2})",
        64,
    ),
]
ConfigMode = Annotated[
    ConfigModeName,
    BeforeValidator(_lower_mode),
    WithJsonSchema({"type": "string", "pattern": f"^(?:{_any_case('host')}|{_any_case('path')})$"}),
]


class _Strict(BaseModel):
    model_config = ConfigDict(
        strict=True, extra="forbid", frozen=True, populate_by_name=True, validate_by_alias=True
    )


class ContainerRef(_Strict):
    """A container of a service: its id (the server name), ``address:port`` and, when set,
    its share of the traffic (``weight``, HAProxy's server weight: 0 takes none)."""

    id: Identifier
    ip: Address
    weight: int | None = Field(default=None, ge=0, le=256)


# A host name in host mode, a path in path mode: which one the registry checks by configMode.
PREDICATE_SCHEMA: dict[str, Any] = {
    "maxLength": 1024,
    "anyOf": [{"pattern": f"^(?:{HOST_PATTERN})$"}, {"pattern": f"^(?:{PATH_PATTERN})$"}],
}


# --- per-service settings (issue 13) -----------------------------------------------------
# Every field is optional and None means "as before": a payload without settings compiles to
# exactly the config it always did.

BalanceName = Literal["roundrobin", "static-rr", "leastconn", "first", "source", "random"]
_DURATION = re.compile(r"[0-9]{1,9}(us|ms|s|m|h|d)?")
_USER_NAME = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
_REALM = re.compile(r"[A-Za-z0-9_.-]{1,64}")
# RFC 9110 field name (a token), at most 64 characters.
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,64}")
# Framing headers are HAProxy's to manage: setting them invites request smuggling.
_FORBIDDEN_HEADERS = frozenset({"content-length", "transfer-encoding", "connection", "host"})
_CRYPT_ALPHABET = r"[./0-9A-Za-z]"
# The crypt(3) schemes Debian's libxcrypt verifies: yescrypt, bcrypt (htpasswd -B writes
# $2y$), SHA-512 and SHA-256 crypt.
_PASSWORD_HASH = re.compile(
    rf"\$y\${_CRYPT_ALPHABET}+\${_CRYPT_ALPHABET}*\${_CRYPT_ALPHABET}{{43}}"
    rf"|\$2[aby]\$[0-9]{{2}}\${_CRYPT_ALPHABET}{{53}}"
    rf"|\$[56]\$(?:rounds=[0-9]{{1,9}}\$)?{_CRYPT_ALPHABET}{{1,16}}\${_CRYPT_ALPHABET}{{43,86}}"
)

_duration = matching(
    _DURATION,
    "duration",
    "is not an HAProxy duration: a number with an optional unit us, ms, s, m, h or d "
    "(no unit means milliseconds)",
)
_user_name = matching(
    _USER_NAME, "user_name", "is not a valid user name: 1 to 64 of letters, digits, _.@-"
)
_realm = matching(_REALM, "realm", "is not a valid realm: 1 to 64 of letters, digits, _.-")


def _health_path(value: str) -> str:
    return "/" if value == "/" else normalize_path(value)


def _password_hash(value: str) -> str:
    # Never echo the value: it may be a password.
    if len(value) <= 512 and _PASSWORD_HASH.fullmatch(value):
        return value
    raise PydanticCustomError(
        "password_hash",
        "is not a crypt(3) password hash (plain-text passwords are refused): give a "
        "yescrypt ($y$, mkpasswd), bcrypt ($2b$/$2y$, htpasswd -B) or SHA-512 ($6$, openssl "
        "passwd -6) hash",
    )


def _header_name(value: str) -> str:
    if not _HEADER_NAME.fullmatch(value):
        refuse(
            "header_name",
            "is not a valid header name: an HTTP token of 1 to 64 characters (letters, digits "
            "and !#$%&'*+-.^_`|~; no spaces, quotes, colons or control characters)",
            value,
        )
    if value.lower() in _FORBIDDEN_HEADERS:
        refuse("header_name", "is managed by HAProxy and cannot be set", value)
    return value


def _header_value(value: str) -> str:
    if len(value) > 1024 or not value.isprintable():
        refuse(
            "header_value",
            "is not a valid header value: at most 1024 printable characters (no control "
            "characters or line breaks)",
            value,
        )
    return value


def _cidr(value: str) -> str:
    """An IPv4 or IPv6 network (``10.0.0.0/8``, ``fd00::/8``; an address alone is /32 or
    /128), normalised to its network address."""
    network = None
    if len(value) <= 64 and value.isascii() and value.strip() == value:
        try:
            network = ipaddress.ip_network(value, strict=False)
        except ValueError:
            network = None
    if network is None:
        refuse(
            "cidr",
            "is not an IPv4 or IPv6 network: an address or CIDR, e.g. 10.0.0.0/8 or fd00::/8",
            value,
        )
    return network.compressed


Duration = Annotated[str, AfterValidator(_duration), schema_of(_DURATION.pattern)]
HealthPath = Annotated[str, AfterValidator(_health_path), schema_of(f"/|{PATH_PATTERN}", 1024)]
UserName = Annotated[str, AfterValidator(_user_name), schema_of(_USER_NAME.pattern)]
Realm = Annotated[str, AfterValidator(_realm), schema_of(_REALM.pattern)]
PasswordHash = Annotated[
    str, AfterValidator(_password_hash), schema_of(_PASSWORD_HASH.pattern, 512)
]
HeaderName = Annotated[
    str,
    AfterValidator(_header_name),
    schema_of(
        "(?!(?:"
        + "|".join(_any_case(n) for n in sorted(_FORBIDDEN_HEADERS))
        + ")$)"
        + _HEADER_NAME.pattern
    ),
]
HeaderValue = Annotated[
    str, AfterValidator(_header_value), schema_of("[^\\x00-\\x1f\\x7f-\\x9f]*", 1024)
]
Cidr = Annotated[
    str,
    AfterValidator(_cidr),
    schema_of(
        rf"{_OCTET}(?:\.{_OCTET}){{3}}(?:/(?:3[0-2]|[12]?[0-9]))?"
        r"|[0-9A-Fa-f.]{0,40}:[0-9A-Fa-f:.]{1,44}(?:/(?:12[0-8]|1[01][0-9]|[1-9]?[0-9]))?",
        64,
    ),
]


class HealthSettings(_Strict):
    """An HTTP health check: ``option httpchk GET <path>``, ``http-check expect status``,
    and the servers' ``inter``/``rise``/``fall``."""

    path: HealthPath
    status: int | None = Field(default=None, ge=100, le=599)
    interval: Duration | None = None
    rise: int | None = Field(default=None, ge=1, le=1000)
    fall: int | None = Field(default=None, ge=1, le=1000)


class TimeoutSettings(_Strict):
    """Backend timeouts; ``tunnel`` applies once a connection is upgraded (WebSocket)."""

    connect: Duration | None = None
    server: Duration | None = None
    queue: Duration | None = None
    tunnel: Duration | None = None


class AuthUser(_Strict):
    name: UserName
    hash: PasswordHash


class AuthSettings(_Strict):
    """HTTP basic authentication against a ``userlist`` of crypt(3) hashes."""

    realm: Realm | None = None
    users: list[AuthUser] = Field(min_length=1, max_length=1000)

    @field_validator("users")
    @classmethod
    def _unique_names(cls, users: list[AuthUser]) -> list[AuthUser]:
        seen: set[str] = set()
        for user in users:
            if user.name in seen:
                refuse("user_name", "is listed twice", user.name)
            seen.add(user.name)
        return users


class HeaderSettings(_Strict):
    """Headers to set (replacing any the client or server sent) on requests and responses."""

    # In the schema, a name that does not match the header-name pattern is refused too.
    request: dict[HeaderName, HeaderValue] = Field(
        default_factory=dict, max_length=100, json_schema_extra={"additionalProperties": False}
    )
    response: dict[HeaderName, HeaderValue] = Field(
        default_factory=dict, max_length=100, json_schema_extra={"additionalProperties": False}
    )


SETTING_FIELDS = ("health", "balance", "maxconn", "timeouts", "auth", "allow", "headers")
# What travels with a service like its settings (merge, fleet, stores, state show): the
# backend settings above and HTTPS (issue 14), which the frontend and backend read apart.
CARRIED_FIELDS = (*SETTING_FIELDS, "tls")


class ServiceSettings(_Strict):
    """The optional per-service settings a candidate carries and a service keeps."""

    health: HealthSettings | None = None
    balance: BalanceName | None = None
    maxconn: int | None = Field(default=None, ge=1, le=1_000_000)
    timeouts: TimeoutSettings | None = None
    auth: AuthSettings | None = None
    allow: list[Cidr] | None = Field(default=None, min_length=1, max_length=1000)
    headers: HeaderSettings | None = None
    # TLS (issue 14); left out of dumps when "off", so stored state reads as it did.
    tls: TlsMode = Field(default="off", exclude_if=lambda mode: mode == "off")

    def settings_key(self) -> str:
        """The settings as canonical JSON: equal for equal settings, and comparable."""
        if self.tls == "off" and all(getattr(self, name) is None for name in SETTING_FIELDS):
            return "{}"  # the common case, without a dump (compile speed at 10 000 services)
        dumped = self.model_dump(mode="json", include=set(CARRIED_FIELDS), exclude_none=True)
        return json.dumps(dumped, sort_keys=True, separators=(",", ":"))

    def settings(self) -> dict[str, Any]:
        """The settings fields, to copy onto another model (``model_copy(update=...)``)."""
        return {name: getattr(self, name) for name in CARRIED_FIELDS}


class CandidateContainer(ContainerRef):
    """A container as a candidate lists it; ``created`` (RFC 3339), when known, says which
    deployment of a service is the newest across hosts."""

    created: Created | None = None


class RunningContainer(_Strict):
    """An entry of ``running``: a service container alive on the host network now."""

    service_name: ServiceName = Field(alias="serviceName")
    id: Identifier
    ip: Address


class Candidate(ServiceSettings):
    """An entry of ``candidates``: new containers with their service's routing settings."""

    service_name: ServiceName = Field(alias="serviceName")
    config_mode: ConfigMode = Field(default="host", alias="configMode")
    predicate: str = Field(json_schema_extra=PREDICATE_SCHEMA)
    cookie: CookieName | None = None
    containers: list[CandidateContainer] = Field(default_factory=list)

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


class Service(ServiceSettings):
    """A resolved service: one backend, one routing rule, its servers."""

    name: ServiceName
    mode: ConfigModeName
    predicate: str = Field(json_schema_extra=PREDICATE_SCHEMA)
    cookie: CookieName | None = None
    # Lax only about the container: JSON (and stores) give a list where we keep a tuple.
    containers: tuple[ContainerRef, ...] = Field(default=(), strict=False)

    _predicate_for_mode = field_validator("predicate")(_predicate_for_mode_impl)

    def stored_form(self) -> dict[str, Any]:
        """As JSON for stores and ``state show``: unset settings and weights left out, so a
        service without them reads exactly as before they existed (``cookie`` stays)."""
        data = self.model_dump(mode="json", exclude_none=True)
        data.setdefault("cookie", None)
        return data

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
