"""The registry's HTTP contract, both directions in one place.

The Lambda handler and ``lambda-registry serve`` encode; Cosmonaut's remote registry decodes.

* request: ``POST`` the payload as JSON; ``Accept: application/json`` asks for a JSON body;
* 200: the config as ``text/plain``, the left-out entries counted in
  ``Lambda-Registry-Diagnostics`` and listed (JSON, cut to whole entries within 4 KiB) in
  ``Lambda-Registry-Diagnostics-Detail``; with ``Accept: application/json`` the body is
  ``{"table", "config", "files", "diagnostics": [{"path", "message", "severity"}],
  "services"}``, where ``files`` is the whole bundle by file name (``haproxy.cfg`` first,
  then the map files it reads). A bundle with map files cannot be one ``text/plain`` body:
  without ``application/json`` in ``Accept`` it is a 406 ``not-acceptable`` problem;
* errors: ``application/problem+json`` (RFC 9457) whose ``type`` is
  ``urn:lambda-registry:problem:<slug>``, with a ``diagnostics`` extension member; every
  slug, with its title and status, is in one table, ``PROBLEMS``;
* authentication to ``lambda-registry serve``: ``Authorization: Bearer <token>``; without it,
  or with another token, a 401 ``unauthorized`` problem with ``WWW-Authenticate: Bearer``.
  Without a token (loopback only), a request must name the server's own address in ``Host``
  (else 421 ``misdirected-request``) and a ``POST`` must be ``Content-Type: application/json``
  (else 415 ``unsupported-media-type``). The server answers these problems itself, before the
  handler sees the request (``SERVER_PROBLEMS``: 401, 413 beyond the size limit, 415, 421,
  malformed requests).
* ``GET ?table=NAME``: the table's config as a 200 answer above, with an ``ETag``
  (``etag_of`` the config text, so a client can name the config a ``POST`` gave it), and
  ``304 Not Modified`` when ``If-None-Match`` names it.

``encode_result``/``decode_result``, ``encode_problem``/``decode_problem`` and
``bearer_credentials``/``bearer_token`` are inverses; tests hold them to it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from compiler.errors import Diagnostic
from compiler.printer import CONFIG_NAME as CONFIG_FILE  # the config's name in a bundle

PROBLEM_TYPE = "urn:lambda-registry:problem:"
DIAGNOSTICS_HEADER = "Lambda-Registry-Diagnostics"
DETAIL_HEADER = "Lambda-Registry-Diagnostics-Detail"
DETAIL_LIMIT = 4096
JSON_TYPE = "application/json"
TEXT_TYPE = "text/plain; charset=utf-8"
PROBLEM_CONTENT_TYPE = "application/problem+json"
ACCEPT = "application/json, text/plain;q=0.5"  # what the client asks for
AUTHORIZATION_HEADER = "Authorization"
AUTHENTICATE_HEADER = "WWW-Authenticate"
BEARER_CHALLENGE = 'Bearer realm="lambda-registry"'
BEARER_INVALID = BEARER_CHALLENGE + ', error="invalid_token"'  # RFC 6750: a token, not this one


class ProblemType(NamedTuple):
    """A problem either end answers with: ``urn:lambda-registry:problem:<slug>``, its title and
    its HTTP status."""

    slug: str
    title: str
    status: int


class Problems(NamedTuple):
    """The one table of problem types, by name: the app's answers, then those ``lambda-registry
    serve`` gives itself before the app sees a request."""

    invalid_payload: ProblemType = ProblemType("invalid-payload", "Invalid payload", 400)
    invalid_request: ProblemType = ProblemType("invalid-request", "Invalid request", 400)
    table_mode: ProblemType = ProblemType("table-mode", "Wrong kind of table", 400)
    forbidden: ProblemType = ProblemType("forbidden", "Forbidden", 403)
    unknown_table: ProblemType = ProblemType("unknown-table", "Unknown table", 404)
    method_not_allowed: ProblemType = ProblemType("method-not-allowed", "Method not allowed", 405)
    not_acceptable: ProblemType = ProblemType("not-acceptable", "Not acceptable", 406)
    conflict: ProblemType = ProblemType("conflict", "Concurrent updates", 409)
    internal_error: ProblemType = ProblemType("internal-error", "Internal error", 500)
    store_unavailable: ProblemType = ProblemType("store-unavailable", "State store failed", 503)
    # The server's own:
    bad_request: ProblemType = ProblemType("bad-request", "Bad request", 400)
    unauthorized: ProblemType = ProblemType("unauthorized", "Unauthorized", 401)
    payload_too_large: ProblemType = ProblemType("payload-too-large", "Payload too large", 413)
    uri_too_long: ProblemType = ProblemType("uri-too-long", "URI too long", 414)
    unsupported_media_type: ProblemType = ProblemType(
        "unsupported-media-type", "Unsupported media type", 415
    )
    misdirected_request: ProblemType = ProblemType(
        "misdirected-request", "Misdirected request", 421
    )
    headers_too_large: ProblemType = ProblemType(
        "headers-too-large", "Request header fields too large", 431
    )
    not_implemented: ProblemType = ProblemType("not-implemented", "Not implemented", 501)
    http_version_not_supported: ProblemType = ProblemType(
        "http-version-not-supported", "HTTP version not supported", 505
    )


PROBLEMS = Problems()
# The problems ``lambda-registry serve`` answers itself, by the status http.server gives.
SERVER_PROBLEMS: dict[int, ProblemType] = {
    problem.status: problem
    for problem in (
        PROBLEMS.bad_request,
        PROBLEMS.unauthorized,
        PROBLEMS.payload_too_large,
        PROBLEMS.uri_too_long,
        PROBLEMS.unsupported_media_type,
        PROBLEMS.misdirected_request,
        PROBLEMS.headers_too_large,
        PROBLEMS.not_implemented,
        PROBLEMS.http_version_not_supported,
    )
}
ETAG_HEADER = "ETag"
IF_NONE_MATCH_HEADER = "If-None-Match"
TABLE_PARAMETER = "table"  # GET ?table=NAME


@dataclass(frozen=True, slots=True)
class RegistryResult:
    """A compiled config (and its map files, with map routing) as the contract carries it."""

    text: str
    diagnostics: tuple[Diagnostic, ...]
    table: str | None = None
    services: tuple[str, ...] = ()
    maps: tuple[tuple[str, str], ...] = ()  # (name, text) of each map file, in order

    @property
    def files(self) -> dict[str, str]:
        """The whole bundle by name, the config first."""
        return {CONFIG_FILE: self.text, **dict(self.maps)}


def maps_of(files: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """The map files of a bundle given as files by name, the config first."""
    return tuple(list(files.items())[1:])


@dataclass(frozen=True, slots=True)
class Encoded:
    """A response body with its headers (``Content-Type`` included)."""

    headers: dict[str, str]
    body: str


class ContractError(ValueError):
    """A 200 answer that does not follow the contract."""


def etag_of(text: str, files: Mapping[str, str] | None = None) -> str:
    """The entity tag of a config: a strong ETag naming its text, and with map files (a
    bundle: ``files`` holds more than the config) every file's name and text."""
    digest = hashlib.sha256(text.encode("utf-8"))
    if files is not None and len(files) > 1:
        for name, content in list(files.items())[1:]:
            digest.update(b"\0" + name.encode("utf-8") + b"\0" + content.encode("utf-8"))
    return '"' + digest.hexdigest()[:32] + '"'


def wants_json(accept: str) -> bool:
    return JSON_TYPE in accept


def encode_result(result: RegistryResult, *, as_json: bool) -> Encoded:
    diagnostics = [d.as_dict() for d in result.diagnostics]
    headers = {DIAGNOSTICS_HEADER: str(len(diagnostics))}
    if diagnostics:
        headers[DETAIL_HEADER] = _detail_header(diagnostics)
    if as_json:
        document = {
            "table": result.table,
            "config": result.text,
            "files": result.files,
            "diagnostics": diagnostics,
            "services": list(result.services),
        }
        return Encoded({"Content-Type": JSON_TYPE, **headers}, json.dumps(document))
    return Encoded({"Content-Type": TEXT_TYPE, **headers}, result.text)


def decode_result(headers: Mapping[str, str], body: bytes) -> RegistryResult:
    """A 200 answer; ``headers`` is looked up case-insensitively (lower-cased names)."""
    lowered = {name.lower(): value for name, value in headers.items()}
    if "json" in lowered.get("content-type", ""):
        try:
            document = json.loads(body)
            text = document["config"]
        except (ValueError, KeyError, TypeError):
            raise ContractError("a 200 answer without a 'config' member") from None
        if not isinstance(text, str):
            raise ContractError("'config' is not text")
        table = document.get("table")
        services = document.get("services")
        return RegistryResult(
            text,
            diagnostics_from_json(document.get("diagnostics")),
            table if isinstance(table, str) else None,
            tuple(s for s in services if isinstance(s, str)) if isinstance(services, list) else (),
            _maps_from_json(document.get("files"), text),
        )
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ContractError("the config is not UTF-8") from None
    detail: Any = None
    if lowered.get(DETAIL_HEADER.lower()):
        try:
            detail = json.loads(lowered[DETAIL_HEADER.lower()])
        except ValueError:
            detail = None
    return RegistryResult(text, diagnostics_from_json(detail))


def _maps_from_json(files: Any, config: str) -> tuple[tuple[str, str], ...]:
    """The maps of a ``files`` member: every file text, named by a plain file name, the config
    first and the same as ``config``. An older registry sends no ``files``: no maps."""
    if files is None:
        return ()
    if not isinstance(files, dict) or not files:
        raise ContractError("'files' is not an object of file names and texts")
    names = list(files)
    if names[0] != CONFIG_FILE or files[CONFIG_FILE] != config:
        raise ContractError(f"'files' must start with {CONFIG_FILE!r}, the same as 'config'")
    for name, text in files.items():
        if not isinstance(text, str) or not _FILE_NAME.fullmatch(name) or name in (".", ".."):
            raise ContractError(f"'files' holds an unusable entry {name[:80]!r}")
    return maps_of(files)


_FILE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,128}")


def encode_problem(
    status: int,
    slug: str,
    title: str,
    detail: str,
    *,
    diagnostics: Sequence[Diagnostic] = (),
    instance: str | None = None,
) -> Encoded:
    """An RFC 9457 problem document. A 500 never carries diagnostics (no internals leak)."""
    problem: dict[str, Any] = {
        "type": PROBLEM_TYPE + slug,
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        problem["instance"] = instance
    if status != 500:
        problem["diagnostics"] = [d.as_dict() for d in diagnostics]
    headers = {"Content-Type": PROBLEM_CONTENT_TYPE}
    if status == 409:
        headers["Retry-After"] = "1"
    return Encoded(headers, json.dumps(problem))


def server_problem(status: int, detail: str) -> Encoded:
    """A problem the HTTP server answers itself (``SERVER_PROBLEMS``); a 401 carries the
    bearer challenge."""
    problem = SERVER_PROBLEMS.get(status, SERVER_PROBLEMS[400 if status < 500 else 501])
    encoded = encode_problem(status, problem.slug, problem.title, detail)
    if status == 401:
        encoded.headers[AUTHENTICATE_HEADER] = BEARER_CHALLENGE
    return encoded


def bearer_credentials(token: str) -> str:
    """The ``Authorization`` value that carries ``token``."""
    return f"Bearer {token}"


def bearer_token(value: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` value (the scheme is
    case-insensitive), else ``None``."""
    scheme, _, token = (value or "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        return None
    return token


def decode_problem(
    status: int, content_type: str, body: bytes
) -> tuple[str, tuple[Diagnostic, ...]]:
    """The message and diagnostics of an error answer (any body: problem+json or not)."""
    if "json" in content_type:
        try:
            document = json.loads(body)
        except ValueError:
            document = None
        if isinstance(document, dict):
            # ``message``: how API Gateway and Function URLs word their own errors (403 ...).
            message = str(
                document.get("detail")
                or document.get("title")
                or document.get("message")
                or f"HTTP {status}"
            )
            return message, diagnostics_from_json(document.get("diagnostics"))
    text = body.decode("utf-8", "replace").strip()
    return (text[:300] or f"HTTP {status}"), ()


def problem_slug(content_type: str, body: bytes) -> str | None:
    """The ``<slug>`` of a problem document's ``urn:lambda-registry:problem:<slug>`` type."""
    if "json" not in content_type:
        return None
    try:
        document = json.loads(body)
    except ValueError:
        return None
    kind = document.get("type") if isinstance(document, dict) else None
    if isinstance(kind, str) and kind.startswith(PROBLEM_TYPE):
        return kind[len(PROBLEM_TYPE) :]
    return None


def diagnostics_from_json(value: Any) -> tuple[Diagnostic, ...]:
    """Diagnostics as ``Diagnostic.as_dict`` wrote them; malformed entries are skipped."""
    if not isinstance(value, list):
        return ()
    found = []
    for item in value:
        if isinstance(item, dict) and isinstance(item.get("message"), str):
            path = str(item.get("path", "$"))
            if item.get("severity") == "warning":
                found.append(Diagnostic(path, item["message"], "warning"))
            else:
                found.append(Diagnostic(path, item["message"]))
    return tuple(found)


def _detail_header(diagnostics: list[dict[str, str]]) -> str:
    """The diagnostics as ASCII JSON, whole entries only, at most ``DETAIL_LIMIT`` bytes."""
    kept: list[dict[str, str]] = []
    for entry in diagnostics:
        candidate = json.dumps([*kept, entry], ensure_ascii=True, separators=(",", ":"))
        if len(candidate) > DETAIL_LIMIT:
            break
        kept.append(entry)
    return json.dumps(kept, ensure_ascii=True, separators=(",", ":"))
