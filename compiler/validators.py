"""The rules payload and option values must follow, as pydantic validators and types.

Each rule is checked against what HAProxy can safely read, so that nothing a value says can
inject a directive. The published JSON Schema (``lambda-registry schema``) carries each rule as
a pattern (``schema_of``), so that an editor refuses what the registry would. The models
(``compiler.models``) and the render options (``compiler.options``) are built from these types.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, NoReturn

from pydantic import AfterValidator, BeforeValidator, ValidationInfo, WithJsonSchema
from pydantic_core import PydanticCustomError

ConfigModeName = Literal["host", "path"]
# HTTPS per service: "off" as before HTTPS existed, "on" served on both ports, "redirect" HTTP
# to HTTPS.
TlsMode = Literal["off", "on", "redirect"]
# The words a yes/no setting takes (labels, environment variables), any case.
YES_WORDS = frozenset({"1", "true", "yes", "on"})
NO_WORDS = frozenset({"0", "false", "no", "off"})

# HAProxy accepts letters, digits, '-', '_', '.' and ':' in proxy, server and ACL names.
_IDENTIFIER = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
# A state table's name (the registry's key, a DynamoDB partition): the handler checks a
# ``GET ?table=`` against the same rule.
TABLE_NAME = re.compile(r"[A-Za-z0-9_.-]{3,255}")
_HOST_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
# RFC 6265 token: any CHAR except CTLs and separators.
_COOKIE_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,256}")
# RFC 3986 pchar without the quote: unreserved, sub-delims but "'", ':', '@', pct-encoded.
_SEGMENT = r"(?:[A-Za-z0-9\-._~!$&()*+,;=:@]|%[0-9A-Fa-f]{2})+"
_PATH_SEGMENT = re.compile(_SEGMENT)
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
    TABLE_NAME,
    "table_name",
    "is not a valid table name: 3 to 255 of letters, digits, '_', '-', '.'",
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
    try:
        return created_text(moment)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is in the year 0 in UTC
        raise PydanticCustomError(
            "created", "{value} is out of range once in UTC", {"value": _preview(value)}
        ) from None


def created_text(moment: datetime) -> str:
    """``moment`` as a ``created`` time is stored: UTC, microseconds, so that text order is
    time order. The year has four digits: ``%Y`` writes the year 1 as ``1``, which neither
    reads back nor sorts as a time."""
    utc = moment.astimezone(UTC)
    return f"{utc.year:04d}-" + utc.strftime("%m-%dT%H:%M:%S.%fZ")


def _lower_mode(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def predicate_for_mode(cls: type, value: str, info: ValidationInfo) -> str:
    """A field validator: ``predicate`` is a host name in host mode, a path in path mode."""
    mode = info.data.get("config_mode", info.data.get("mode", "host"))
    return normalize_path(value) if mode == "path" else normalize_host(value)


# The published JSON Schema (``lambda-registry schema``) carries each validator's rule as a
# pattern, so that an editor refuses what the registry would (the registry's own checks, e.g.
# IP ranges and host lengths, stay the reference: the patterns are at most as strict).
IDENTIFIER_PATTERN = _IDENTIFIER.pattern
ADDRESS_PATTERN = (
    rf"{_OCTET}(?:\.{_OCTET}){{3}}:[0-9]{{1,5}}|\[[0-9A-Fa-f:.]{{2,45}}\]:[0-9]{{1,5}}"
)
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
TableName = Annotated[str, AfterValidator(_table_name), schema_of(TABLE_NAME.pattern)]
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

# A host name in host mode, a path in path mode: which one the registry checks by configMode.
PREDICATE_SCHEMA: dict[str, Any] = {
    "maxLength": 1024,
    "anyOf": [{"pattern": f"^(?:{HOST_PATTERN})$"}, {"pattern": f"^(?:{PATH_PATTERN})$"}],
}


# The `balance` algorithms a service or the render options may choose.
BalanceName = Literal["roundrobin", "static-rr", "leastconn", "first", "source", "random"]
_DURATION = re.compile(r"[0-9]{1,9}(us|ms|s|m|h|d)?")
# One word of a render option (an address, a path, a cipher list): nothing HAProxy would split.
_WORD = re.compile(r"[A-Za-z0-9_.:/@%+,=~*^\[\]-]{1,255}")
_USER_NAME = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
_REALM = re.compile(r"[A-Za-z0-9_.-]{1,64}")
# RFC 9110 field name (a token), at most 64 characters.
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,64}")
# Framing headers are HAProxy's to manage: setting them invites request smuggling.
_FORBIDDEN_HEADERS = frozenset({"content-length", "transfer-encoding", "connection", "host"})
_CRYPT_ALPHABET = r"[./0-9A-Za-z]"
# The crypt(3) schemes Debian's libxcrypt verifies: yescrypt, bcrypt (htpasswd -B writes
# $2y$), SHA-512 and SHA-256 crypt. HAProxy runs crypt(3) at every `haproxy -c`, reload and
# login attempt (on a worker thread), so the cost is capped at about 0.1-0.3 s of one core:
# yescrypt N up to "B" and r up to "T" (mkpasswd's default is j9T), bcrypt cost up to 12,
# SHA rounds up to 100 000 (the default is 5 000).
_PASSWORD_HASH = re.compile(
    rf"\$y\$j[./0-9AB][./0-9A-T]\${_CRYPT_ALPHABET}*\${_CRYPT_ALPHABET}{{43}}"
    rf"|\$2[aby]\$(?:0[4-9]|1[0-2])\${_CRYPT_ALPHABET}{{53}}"
    rf"|\$[56]\$(?:rounds=(?:[0-9]{{1,5}}|100000)\$)?{_CRYPT_ALPHABET}{{1,16}}"
    rf"\${_CRYPT_ALPHABET}{{43,86}}"
)
# The same schemes at any cost: told apart to say why a real hash is refused.
_ANY_COST_HASH = re.compile(
    rf"\$y\${_CRYPT_ALPHABET}+\${_CRYPT_ALPHABET}*\${_CRYPT_ALPHABET}{{43}}"
    rf"|\$2[aby]\$[0-9]{{2}}\${_CRYPT_ALPHABET}{{53}}"
    rf"|\$[56]\$(?:rounds=[0-9]{{1,9}}\$)?{_CRYPT_ALPHABET}{{1,16}}\${_CRYPT_ALPHABET}{{43,86}}"
)

# HAProxy keeps timers in signed 32-bit milliseconds and refuses a longer one ("timer
# overflow"); microseconds round up to a whole millisecond.
MAX_DURATION_MS = 2**31 - 1
_UNIT_MS = {"ms": 1, "": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def duration_ms(value: str) -> int:
    """The milliseconds of a duration ``_DURATION`` matched, as HAProxy counts them."""
    number = value.rstrip("usmhd")
    unit = value[len(number) :]
    if unit == "us":
        return -(-int(number) // 1000)
    return int(number) * _UNIT_MS[unit]


def _duration(value: str) -> str:
    if not _DURATION.fullmatch(value):
        refuse(
            "duration",
            "is not an HAProxy duration: a number with an optional unit us, ms, s, m, h or d "
            "(no unit means milliseconds)",
            value,
        )
    if duration_ms(value) > MAX_DURATION_MS:
        refuse(
            "duration",
            "is longer than HAProxy's longest timer, 2147483647 ms (about 24.8 days)",
            value,
        )
    return value


def _interval(value: str) -> str:
    if duration_ms(_duration(value)) == 0:
        refuse("interval", "must be at least 1 ms: HAProxy refuses an interval of 0", value)
    return value


_user_name = matching(
    _USER_NAME, "user_name", "is not a valid user name: 1 to 64 of letters, digits, _.@-"
)
_realm = matching(_REALM, "realm", "is not a valid realm: 1 to 64 of letters, digits, _.-")
_word = matching(_WORD, "word", "may contain only letters, digits and -_.:/@%+,=~*^[]")


def normalize_http_path(value: str) -> str:
    """A path an HTTP request may ask for: ``/`` itself, or ``normalize_path``'s form."""
    return "/" if value == "/" else normalize_path(value)


def _password_hash(value: str) -> str:
    # Never echo the value: it may be a password.
    if len(value) <= 512 and _PASSWORD_HASH.fullmatch(value):
        return value
    if len(value) <= 512 and _ANY_COST_HASH.fullmatch(value):
        raise PydanticCustomError(
            "password_hash",
            "costs too much to check: HAProxy checks it at every reload and every login "
            "attempt; use at most rounds=100000 ($5$/$6$), cost 12 (bcrypt) or parameters "
            "jBT (yescrypt)",
        )
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
    if not 0 < len(value) <= 1024 or not value.isprintable() or value.isspace():
        refuse(
            "header_value",
            "is not a valid header value: 1 to 1024 printable characters, not all spaces "
            "(no control characters or line breaks)",
            value,
        )
    return value


def _cidr(value: str) -> str:
    """An IPv4 or IPv6 network (``10.0.0.0/8``, ``fd00::/8``; an address alone is /32 or
    /128), normalised to its network address."""
    network = None
    # A zone id (fe80::1%eth0) is Python's but not HAProxy's: haproxy -c refuses it.
    if len(value) <= 64 and value.isascii() and value.strip() == value and "%" not in value:
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
# A duration HAProxy refuses as 0 (a health check's ``inter``).
Interval = Annotated[str, AfterValidator(_interval), schema_of(rf"(?=.*[1-9]){_DURATION.pattern}")]
Word = Annotated[str, AfterValidator(_word), schema_of(_WORD.pattern)]
HealthPath = Annotated[
    str, AfterValidator(normalize_http_path), schema_of(f"/|{PATH_PATTERN}", 1024)
]
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
    str,
    AfterValidator(_header_value),
    schema_of("(?=.*[^ ])[^\\x00-\\x1f\\x7f-\\x9f]+", 1024),
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
