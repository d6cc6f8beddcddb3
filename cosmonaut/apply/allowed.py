"""What Cosmonaut accepts from a registry: an allow-list, read from the parsed config.

A registry's config is written into the HAProxy container and loaded by a master that runs
as root there. The compiler prints a small, fixed set of statements; a registry that answers
something else (a server that is not the registry, a stolen endpoint, a hostile host's
report) could otherwise start programs (``program``, ``external-check``, Lua), change the
process (``setenv``, ``insecure-fork-wanted``), put the runtime API on a network, serve the
container's files (``http-request return file``), or read its environment.
A config from a registry may hold only:

* comments and blank lines outside sections, and no ``.if``/``.diag``-style directives;
* the sections ``global``, ``defaults``, ``frontend``, ``backend`` and ``userlist``, their
  headers plain (a name for ``frontend``, ``backend`` and ``userlist``, nothing else);
* in each section, the keywords of its table below (``GLOBAL``, ``PROXY``, ``USERLIST``),
  each with the arguments its rule allows: ``option``, ``timeout``, ``http-request``,
  ``http-response`` and ``http-check`` only of the kinds the compiler prints, servers and
  binds with IP addresses and the compiler's parameters only, user passwords hashed at a
  cost HAProxy can afford, map files only by their generated names beside the config;
* at most one ``stats socket``, a unix socket path with ``mode`` and ``level`` and nothing
  else; with the in-process registry, exactly the one its render options print (``Expected``),
  and the same for ``server-state-file``;
* no environment variable read anywhere: ``$NAME`` inside double quotes (expanded when the
  file is loaded), the ``env()`` fetch (at run time).

``check`` returns the first statement outside the list (its line, keyword and why), or None.
Pure: a parsed config in, a verdict out.
"""

from __future__ import annotations

import ipaddress
import itertools
import posixpath
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache

from compiler.ast import (
    Blank,
    Comment,
    Config,
    Directive,
    Line,
    Section,
    Source,
    Statement,
)
from compiler.lower import lower_bundle
from compiler.options import RenderOptions
from compiler.statements import PREFIXES, statement_words
from compiler.validators import IDENTIFIER_PATTERN, PasswordHash
from runtime.bundle import GENERATED_MAP

NAME = re.compile(IDENTIFIER_PATTERN)
_OCTAL_MODE = re.compile(r"[0-7]{3,4}")
_SET_VAR = re.compile(r"set-var\((?:txn|req|sess)\.[A-Za-z0-9_.]{1,64}\)")
# A map converter's file argument: map(<file>), map_beg(<file>), map_str(<file>,<default>)...
_MAP_FILE = re.compile(r"\bmap(?:_[a-z_]+)?\(([^),]*)")
_ENV_FETCH = re.compile(r"(?:^|[^A-Za-z0-9_.])env\(")

# Why a statement's arguments are refused, or None: one rule per keyword.
Rule = Callable[[tuple[str, ...]], str | None]


@dataclass(frozen=True, slots=True)
class Refusal:
    """The first statement of a config that a registry may not send."""

    line: int | None
    keyword: str
    reason: str

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line is not None else ""
        return f"{where}{self.keyword!r} {self.reason}"


@dataclass(frozen=True, slots=True)
class Expected:
    """The ``stats socket`` and ``server-state-file`` that the in-process registry's render
    options make the compiler print (their words after the keyword; None: none)."""

    stats: tuple[str, ...] | None
    server_state_file: tuple[str, ...] | None

    @classmethod
    def of(cls, options: RenderOptions) -> Expected:
        head = lower_bundle([], options).config.sections[0]
        found: dict[str, tuple[str, ...]] = {}
        for line in head.body:
            if isinstance(line, Statement) and line.keyword in ("stats", "server-state-file"):
                found[line.keyword] = line.args
        return cls(found.get("stats"), found.get("server-state-file"))


def check(
    config: Config, maps: Iterable[str] = (), *, expected: Expected | None = None
) -> Refusal | None:
    """The first thing in ``config`` (with its map files named ``maps``) that Cosmonaut does
    not accept from a registry, or None. ``expected``: pin the runtime API socket and the
    server state file to what the in-process registry prints."""
    for line in config.preamble:
        if not isinstance(line, Comment | Blank):
            return _refusal(line, "outside any section", "only comments may stand there")
    for name in maps:
        if not GENERATED_MAP.fullmatch(name):
            return Refusal(None, name, "is not a map file name the registry generates")
    # Sections first: a section that may not be there at all is named, wherever it stands.
    for section in config.sections:
        refused = _header(section)
        if refused is not None:
            return refused
    seen: set[str] = set()
    for section in config.sections:
        table = _TABLES[section.keyword]
        for statement in section.body:
            refused = _line(section.keyword, table, statement, seen, expected)
            if refused is not None:
                return refused
    return None


def _header(section: Section) -> Refusal | None:
    kind = section.keyword
    line = section.src.line if section.src is not None else None
    if kind not in _TABLES:
        return Refusal(line, kind, "sections are not accepted from a registry")
    # A name for frontend and backend (kept apart from the arguments), and for userlist.
    if len(section.header_args) != (1 if kind == "userlist" else 0):
        return Refusal(line, kind, "header must be the section's name alone")
    why = _environment(section.src)
    return Refusal(line, kind, why) if why is not None else None


def _line(
    kind: str,
    table: dict[str, Rule],
    statement: Line,
    seen: set[str],
    expected: Expected | None,
) -> Refusal | None:
    if isinstance(statement, Comment | Blank):
        return None
    if isinstance(statement, Directive):
        return _refusal(statement, statement.name, "directives are not accepted")
    words = statement_words(statement)
    if words[0] in PREFIXES:
        return _refusal(statement, " ".join(words[:2]), "is not accepted from a registry")
    keyword, args = words[0], words[1:]
    rule = table.get(keyword)
    if rule is None:
        return _refusal(statement, keyword, f"is not accepted in a registry's {kind} section")
    why = rule(args)
    if why is None and kind == "global" and keyword in ("stats", "server-state-file"):
        why = _once(keyword, args, seen, expected)
    if why is None:
        why = _environment(statement.src) or _map_files(words) or _environment_fetch(keyword, args)
    return _refusal(statement, keyword, why) if why is not None else None


def _once(
    keyword: str, args: tuple[str, ...], seen: set[str], expected: Expected | None
) -> str | None:
    if keyword in seen:
        return "may appear only once"
    seen.add(keyword)
    if expected is None:
        return None
    wanted = expected.stats if keyword == "stats" else expected.server_state_file
    if args != wanted:
        says = " ".join((keyword, *wanted)) if wanted else "none"
        return f"differs from what the render options print ({says})"
    return None


def _refusal(statement: Line, keyword: str, reason: str) -> Refusal:
    src: Source | None = getattr(statement, "src", None)
    return Refusal(src.line if src is not None else None, keyword, reason)


# -- words anywhere ---------------------------------------------------------------------------


def _environment(src: Source | None) -> str | None:
    """HAProxy expands ``$NAME`` inside double quotes when it reads the file: a registry could
    copy the container's environment into a header. Only spelled words can hold quotes."""
    if src is None or src.spelled is None:
        return None
    for word in src.spelled:
        if _expands(word.raw):
            return f"refers to an environment variable ({word.raw[:40]!r})"
    return None


def _expands(raw: str) -> bool:
    quote = ""
    index = 0
    while index < len(raw):
        char = raw[index]
        if quote != "'" and char == "\\":
            index += 2
            continue
        if char in "'\"" and quote in ("", char):
            quote = "" if quote else char
        elif char == "$" and quote == '"':
            return True
        index += 1
    return False


def _environment_fetch(keyword: str, args: tuple[str, ...]) -> str | None:
    """The ``env(NAME)`` sample fetch reads HAProxy's environment at run time: refused in a
    sample expression (an ACL's criterion, ``set-var``, an anonymous ACL) and inside a
    log-format's ``%[...]``, where ``%%`` is a literal per cent sign."""
    set_var = keyword == "http-request" and bool(args) and args[0].startswith("set-var(")
    expression = keyword == "acl" or set_var
    samples = [args[1]] if expression and len(args) > 1 else []
    samples += [word for before, word in itertools.pairwise(args) if before == "{"]
    samples += [inner for word in args for inner in _log_format_samples(word)]
    for sample in samples:
        if _ENV_FETCH.search(sample):
            return "reads the environment (the env() fetch)"
    return None


def _log_format_samples(word: str) -> list[str]:
    found: list[str] = []
    index = word.find("%")
    while 0 <= index < len(word) - 1:
        following = word[index + 1]
        if following == "[":
            end = word.find("]", index)
            found.append(word[index + 2 : end if end >= 0 else len(word)])
            index = end if end >= 0 else len(word)
        elif following == "%":
            index += 1
        index = word.find("%", index + 1)
    return found


def _map_files(words: tuple[str, ...]) -> str | None:
    """Map converters read files: only the bundle's own maps, beside the config."""
    for word in words:
        for name in _MAP_FILE.findall(word):
            if not GENERATED_MAP.fullmatch(name):
                return f"reads the file {name[:80]!r}, which is not one of the registry's maps"
    return None


# -- the rules --------------------------------------------------------------------------------


def _any(args: tuple[str, ...]) -> str | None:
    return None


def _exactly(count: int) -> Rule:
    def rule(args: tuple[str, ...]) -> str | None:
        return None if len(args) == count else f"takes {count} argument(s) here"

    return rule


def _first_of(kinds: frozenset[str]) -> Rule:
    def rule(args: tuple[str, ...]) -> str | None:
        if not args or args[0] not in kinds:
            first = args[0] if args else ""
            return f"{first!r} is not one of {', '.join(sorted(kinds))}"
        return None

    return rule


def _stats(args: tuple[str, ...]) -> str | None:
    """``stats socket <path> mode <mode> level <level>``, as the compiler prints it: a unix
    socket (never a network address), no ``expose-fd`` or other parameters."""
    if len(args) != 6 or args[0] != "socket" or args[2] != "mode" or args[4] != "level":
        return "must be 'stats socket <path> mode <mode> level <level>'"
    if not _absolute(args[1]):
        return f"must be a unix socket's absolute path, not {args[1][:80]!r}"
    if not _OCTAL_MODE.fullmatch(args[3]) or args[5] not in ("user", "operator", "admin"):
        return "mode must be octal and level user, operator or admin"
    return None


def _state_file(args: tuple[str, ...]) -> str | None:
    if len(args) != 1 or not _absolute(args[0]):
        return "must be one absolute path"
    return None


def _absolute(path: str) -> bool:
    return path.startswith("/") and posixpath.normpath(path) == path and path.isprintable()


def _address(word: str, *, any_host: bool = False) -> str | None:
    """Why ``word`` is not ``IP:port`` (``[IPv6]:port``; with ``any_host``, ``:port`` too)."""
    host, _, port = word.rpartition(":")
    if not _port(port):
        return f"{word[:80]!r} has no port from 1 to 65535"
    if any_host and host in ("", "*"):
        return None
    if ip_address(host.removeprefix("[").removesuffix("]")) is None:
        return f"{word[:80]!r} is not an IP address with a port"
    return None


def ip_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """``text`` as an IP address, or None (a zone id, ``fe80::1%eth0``, is not one)."""
    if "%" in text or not text.isascii():
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _port(text: str) -> bool:
    return text.isascii() and text.isdigit() and str(int(text)) == text and 1 <= int(text) <= 65535


def _parameters(
    params: tuple[str, ...], flags: frozenset[str], valued: frozenset[str]
) -> str | None:
    index = 0
    while index < len(params):
        word = params[index]
        if word in valued and index + 1 < len(params):
            index += 2
        elif word in flags:
            index += 1
        else:
            return f"parameter {word[:40]!r} is not accepted from a registry"
    return None


_BIND_FLAGS = frozenset({"ssl"})
_BIND_VALUED = frozenset({"crt", "alpn", "ssl-min-ver", "ciphers", "ciphersuites"})
_SERVER_FLAGS = frozenset({"check", "disabled"})
_SERVER_VALUED = frozenset({"inter", "rise", "fall", "cookie", "weight", "maxconn"})


def _bind(args: tuple[str, ...]) -> str | None:
    if not args:
        return "needs an address"
    return _address(args[0], any_host=True) or _parameters(args[1:], _BIND_FLAGS, _BIND_VALUED)


def _server(args: tuple[str, ...]) -> str | None:
    if len(args) < 2 or not NAME.fullmatch(args[0]):
        return "needs a name of letters, digits and '_.:-' and an address"
    return _address(args[1]) or _parameters(args[2:], _SERVER_FLAGS, _SERVER_VALUED)


def _acl(args: tuple[str, ...]) -> str | None:
    if len(args) < 2:
        return "needs a name and a criterion"
    if {"-f", "-M"} & set(args[2:]):
        return "may not load patterns from a file (-f, -M)"
    return None


_ACTIONS = frozenset({"set-header", "deny", "auth", "redirect", "return"})
# Payload options of `return` and `deny` that read a file of the container into the answer.
_FILE_PAYLOADS = frozenset({"file", "lf-file", "errorfile", "errorfiles"})


def _http_request(args: tuple[str, ...]) -> str | None:
    if not args or not (args[0] in _ACTIONS or _SET_VAR.fullmatch(args[0])):
        action = args[0] if args else ""
        return f"action {action[:40]!r} is not accepted from a registry"
    if args[0] in ("return", "deny") and _FILE_PAYLOADS & set(args[1:]):
        return "may not answer with a file of the HAProxy container"
    return None


_OPTIONS = frozenset(
    {
        "httplog",
        "dontlognull",
        "forwardfor",
        "http-server-close",
        "idle-close-on-response",
        "httpchk",
        "redispatch",
    }
)
_TIMEOUTS = frozenset({"connect", "client", "server", "tunnel", "queue"})


@cache
def _password_hash() -> Callable[[str], object]:
    from pydantic import TypeAdapter

    return TypeAdapter(PasswordHash).validate_python


def _user(args: tuple[str, ...]) -> str | None:
    if len(args) != 3 or args[1] != "password":
        return "must be 'user <name> password <hash>'"
    try:
        _password_hash()(args[2])
    except ValueError:
        # Never echo the value: it may be a password.
        return "has a password that is not a crypt(3) hash HAProxy can check at a sane cost"
    return None


GLOBAL: dict[str, Rule] = {
    "log": _any,
    "maxconn": _exactly(1),
    "user": _exactly(1),
    "group": _exactly(1),
    "daemon": _exactly(0),
    "hard-stop-after": _exactly(1),
    "server-state-file": _state_file,
    "stats": _stats,
    "default-path": lambda args: None if args == ("config",) else "must be 'default-path config'",
}
PROXY: dict[str, Rule] = {
    "mode": _exactly(1),
    "log": _any,
    "option": _first_of(_OPTIONS),
    "timeout": _first_of(_TIMEOUTS),
    "load-server-state-from-file": _exactly(1),
    "balance": _any,
    "retries": _exactly(1),
    "retry-on": _any,
    "cookie": _any,
    "bind": _bind,
    "acl": _acl,
    "use_backend": _any,
    "default_backend": _exactly(1),
    "http-request": _http_request,
    "http-response": _first_of(frozenset({"set-header"})),
    "http-check": _first_of(frozenset({"expect"})),
    "server": _server,
}
USERLIST: dict[str, Rule] = {"user": _user}
_TABLES: dict[str, dict[str, Rule]] = {
    "global": GLOBAL,
    "defaults": PROXY,
    "frontend": PROXY,
    "backend": PROXY,
    "userlist": USERLIST,
}


@dataclass(frozen=True, slots=True)
class AllowList:
    """``check`` with what this Cosmonaut expects (``Expected`` for the in-process registry)."""

    expected: Expected | None = None

    def refusal(self, config: Config, maps: Iterable[str] = ()) -> Refusal | None:
        return check(config, maps, expected=self.expected)


# Any registry's config, with no render options known (a remote registry).
ANY_REGISTRY = AllowList()
