"""Who may report as which host: the one rule behind ``serve``'s per-host tokens and the
Lambda's IAM callers (pure: text in, decisions out).

In fleet mode every host's report lands in one table, and a report replaces its host's last
one: a credential that may write could empty any host's report by naming it. So a request
carries an ``Identity``: the operator (any host, and host-less payloads, which rewrite the
whole table as the seed did), or the host ids it may report as, as shell-style globs
(``fnmatchcase``: ``web-*``). Among those, only ``*`` covers a host-less payload.
``check_payload`` decides before anything is stored; its refusal (``Forbidden``, a 403) names
the hosts the identity may report as, never a secret. Reading a config needs no host.

Where identities come from:

* ``serve --host-tokens FILE`` (``parse_host_tokens``): a line per credential,
  ``<token> <host-id-glob> [<host-id-glob> ...]``; ``#`` starts a comment;
* the Lambda's ``LAMBDA_REGISTRY_HOST_IDENTITIES`` (``parse_host_identities``): a JSON object
  from IAM ARN globs to lists of host-id globs, where ``{session}`` stands for the caller's
  role session name (``session_name``), so one entry binds every EC2 instance to its own id.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from compiler.errors import LocatedError, OptionsError
from compiler.payload import json_path, json_type, parse_payload_text

SESSION = "{session}"
# A host-id glob: the characters of a host id (``compiler.validators``' identifiers) and the
# glob's own; anything else (a space, a brace other than ``{session}``) is a typo.
_HOST_GLOB = re.compile(r"[A-Za-z0-9_.:*?\[\]!-]{1,128}")
# ``arn:aws:sts::123456789012:assumed-role/ROLE/SESSION``: how an EC2 instance profile (and an
# ECS container instance) calls, with the instance id as the session name.
_ASSUMED_ROLE = re.compile(
    r"arn:[a-z0-9-]+:sts::[0-9]{12}:assumed-role/[\w+=,.@-]+/([\w+=,.@-]{2,64})", re.ASCII
)


@dataclass(frozen=True, slots=True)
class Identity:
    """What a request proved. ``hosts``: the host-id globs it may report as (``None``: the
    operator, any host and host-less payloads). ``name`` says which credential it is in
    logs and refusals: never the secret itself."""

    hosts: tuple[str, ...] | None = None
    name: str = "the operator"

    @property
    def operator(self) -> bool:
        return self.hosts is None


OPERATOR = Identity()


class Forbidden(Exception):
    """A request its identity may not make: a 403, and nothing is stored."""


def may_report(identity: Identity, host: str | None) -> bool:
    """May ``identity`` send host ``host``'s report (``None``: a host-less payload)?"""
    if identity.hosts is None:
        return True
    if host is None:
        return "*" in identity.hosts
    return any(fnmatchcase(host, pattern) for pattern in identity.hosts)


def check_payload(identity: Identity, payload: Any) -> None:
    """Raise ``Forbidden`` unless ``identity`` may send ``payload`` (decoded JSON, before it is
    validated: a ``host`` that is not a string is no host it may report as)."""
    if identity.hosts is None:
        return
    host = payload.get("host") if isinstance(payload, dict) else None
    if host is None:
        if may_report(identity, None):
            return
        raise Forbidden(
            f"a payload without 'host' rewrites the whole table (seed mode), which only the "
            f"operator's credential may send; {identity.name} may report only as "
            f"{_hosts(identity.hosts)}"
        )
    if isinstance(host, str) and may_report(identity, host):
        return
    shown = repr(host[:80]) if isinstance(host, str) else f"({json_type(host)})"
    raise Forbidden(
        f"{identity.name} may report only as {_hosts(identity.hosts)}, "
        f"not as host {shown}: a host reports its own containers"
    )


def _hosts(patterns: tuple[str, ...]) -> str:
    if not patterns:
        return "no host"
    return "host " + " or ".join(repr(pattern) for pattern in patterns)


# -- tokens -----------------------------------------------------------------------------------


def token_problem(token: str) -> str | None:
    """Why ``token`` cannot be a bearer token (it travels in a header), or ``None``."""
    if not token:
        return "the token is empty"
    if not (token.isascii() and token.isprintable()) or " " in token:
        return "the token must be printable ASCII without spaces (it travels in a header)"
    return None


@dataclass(frozen=True, slots=True)
class HostCredential:
    """One line of a host tokens file: its token and what it proves."""

    token: str
    identity: Identity

    def __repr__(self) -> str:  # a traceback or a log never shows the token
        return f"HostCredential({self.identity!r})"


def parse_host_tokens(text: str, *, file: str) -> tuple[HostCredential, ...]:
    """The credentials of a host tokens file: ``<token> <host-id-glob> ...`` a line, blank
    lines and ``#`` comments (a word that starts with ``#`` starts one) left out.
    ``OptionsError`` at ``file:line`` for a bad line or a token given twice; an error never
    quotes a token."""
    credentials: list[HostCredential] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        words = line.split()
        for index, word in enumerate(words):
            if word.startswith("#"):
                del words[index:]
                break
        if not words:
            continue
        token, patterns = words[0], words[1:]
        problem = token_problem(token)
        if problem is not None:
            raise OptionsError(problem, file=file, line=number)
        if not patterns:
            raise OptionsError(
                "a token without host ids: write '<token> <host-id> [<host-id> ...]'",
                file=file,
                line=number,
            )
        for pattern in patterns:
            if not _HOST_GLOB.fullmatch(pattern):
                raise OptionsError(_bad_glob(pattern), file=file, line=number)
        if token in seen:
            raise OptionsError(
                f"this token is the one of line {seen[token]} too: give each credential its "
                "own token",
                file=file,
                line=number,
            )
        seen[token] = number
        identity = Identity(tuple(patterns), f"the token on line {number} of the host tokens file")
        credentials.append(HostCredential(token, identity))
    return tuple(credentials)


def _bad_glob(pattern: str) -> str:
    return (
        f"{pattern[:80]!r} is not a host id or glob (letters, digits, '-', '_', '.', ':' and "
        "the glob's '*', '?', '[...]')"
    )


# -- IAM callers --------------------------------------------------------------------------------


def session_name(arn: str) -> str | None:
    """The role session name of an ``assumed-role`` ARN (its last ``/`` part), else ``None``."""
    found = _ASSUMED_ROLE.fullmatch(arn)
    return found.group(1) if found else None


@dataclass(frozen=True, slots=True)
class HostIdentities:
    """IAM callers to the hosts they may report as: ``(ARN glob, host-id globs)`` in order;
    a host-id glob may hold ``{session}``."""

    entries: tuple[tuple[str, tuple[str, ...]], ...]

    def identity_of(self, arn: str | None) -> Identity | None:
        """The identity of the caller ``arn``: the host globs of every entry its ARN matches,
        ``{session}`` filled in (an entry that needs a session gives nothing for a caller
        without one). ``None`` for a call without an IAM identity."""
        if not arn:
            return None
        session = session_name(arn)
        hosts: list[str] = []
        for arn_glob, patterns in self.entries:
            if not fnmatchcase(arn, arn_glob):
                continue
            for pattern in patterns:
                if SESSION not in pattern:
                    hosts.append(pattern)
                elif session is not None:
                    hosts.append(pattern.replace(SESSION, session))
        return Identity(tuple(dict.fromkeys(hosts)), f"the caller {arn}")


def parse_host_identities(text: str, *, source: str) -> HostIdentities:
    """``{"<IAM ARN glob>": ["<host-id glob>", ...], ...}`` as strict JSON (a key twice is
    refused); ``OptionsError`` naming ``source`` and the JSON path."""
    try:
        data = parse_payload_text(text, file=source)
    except LocatedError as error:
        raise OptionsError(
            error.message, file=source, line=error.line, col=error.col, json_path=error.json_path
        ) from None
    if not isinstance(data, dict):
        raise OptionsError(
            f"expected an object of IAM ARN globs to lists of host ids, got {json_type(data)}",
            file=source,
            json_path="$",
        )
    return HostIdentities(tuple(_entries(data, source)))


def _entries(data: Mapping[str, Any], source: str) -> Iterable[tuple[str, tuple[str, ...]]]:
    for arn_glob, patterns in data.items():
        where = json_path((arn_glob,))
        if not arn_glob.strip() or arn_glob != arn_glob.strip():
            raise OptionsError(
                "an IAM ARN glob must be non-empty, without spaces around it",
                file=source,
                json_path=where,
            )
        if not isinstance(patterns, list):
            raise OptionsError(
                f"expected a list of host ids, got {json_type(patterns)}",
                file=source,
                json_path=where,
            )
        for index, pattern in enumerate(patterns):
            at = json_path((arn_glob, index))
            if not isinstance(pattern, str):
                raise OptionsError(
                    f"expected a host id, got {json_type(pattern)}", file=source, json_path=at
                )
            if not _HOST_GLOB.fullmatch(pattern.replace(SESSION, "x")):
                detail = _bad_glob(pattern) + f", and {SESSION} for the role session name"
                raise OptionsError(detail, file=source, json_path=at)
        yield arn_glob, tuple(patterns)
