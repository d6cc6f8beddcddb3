"""One HTTP request as the registry app reads it, and the responses it gives back.

An ``HttpRequest`` comes from an API Gateway (REST v1, HTTP API v2) or function URL event
(``http_request``), or straight from ``lambda-registry serve`` (``runtime.server``); either way
the app answers with a Lambda proxy response (``response``): ``statusCode``, ``headers``,
``body``. Problems are RFC 9457 documents of a type from ``runtime.contract.PROBLEMS``.
"""

from __future__ import annotations

import base64
import binascii
import urllib.parse
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from compiler.errors import Diagnostic, LocatedError, PayloadError
from compiler.payload import json_path, json_type
from runtime import contract
from runtime.contract import PROBLEMS, ProblemType
from runtime.identity import Identity


@dataclass(frozen=True, slots=True)
class HttpRequest:
    kind: str  # "apigw-v1", "apigw-v2" or "function-url" (what the log line names)
    method: str
    headers: Mapping[str, str]  # lower-cased names
    body: str | bytes | None  # bytes: as received (serve); str: an event's, maybe base64
    base64: bool
    request_id: str | None
    query: Mapping[str, str] = field(default_factory=dict)
    # The IAM caller's ARN, when API Gateway or the function URL authorised the call with IAM.
    caller: str | None = None
    # Who sent it, when the transport proved it (serve, from the bearer token); None: the
    # app maps ``caller`` (``HandlerConfig.host_identities``).
    identity: Identity | None = None


# Members only an HTTP event has (a payload never does): an event with any of them is answered
# as an HTTP request, malformed or not.
_ENVELOPE_MEMBERS = (
    "requestContext",
    "httpMethod",
    "routeKey",
    "rawPath",
    "headers",
    "body",
    "isBase64Encoded",
)


class EnvelopeError(LocatedError):
    """An HTTP event that does not have the shape API Gateway and function URLs give: a 400
    ``invalid-request`` problem, never a function error."""

    def __init__(self, path: str, message: str) -> None:
        found = Diagnostic(path, message)
        super().__init__(message, file="<event>", json_path=path, diagnostics=(found,))


def is_http_event(event: Any) -> bool:
    """An API Gateway or function URL event (maybe malformed), not a direct call's payload."""
    return isinstance(event, dict) and any(member in event for member in _ENVELOPE_MEMBERS)


def http_request(event: Any) -> HttpRequest | None:
    """The HTTP request in an API Gateway / function URL event, or None for a direct call;
    ``EnvelopeError`` for an HTTP event of the wrong shape."""
    if not is_http_event(event):
        return None
    context = event.get("requestContext")
    if not isinstance(context, dict):
        raise EnvelopeError("$.requestContext", _expected("an object", context))
    http = context.get("http")
    if event.get("version") == "2.0":
        if not isinstance(http, dict):
            raise EnvelopeError("$.requestContext.http", _expected("an object", http))
        domain = context.get("domainName")
        kind = (
            "function-url" if isinstance(domain, str) and ".lambda-url." in domain else "apigw-v2"
        )
        method, method_path = http.get("method"), "$.requestContext.http.method"
    elif "httpMethod" in event:
        kind = "apigw-v1"
        method, method_path = event.get("httpMethod"), "$.httpMethod"
    else:
        raise EnvelopeError("$.httpMethod", "an HTTP event needs httpMethod or version 2.0")
    if not isinstance(method, str):
        raise EnvelopeError(method_path, _expected("a string", method))
    body = event.get("body")
    if body is not None and not isinstance(body, str):
        raise EnvelopeError("$.body", _expected("a string or null", body))
    encoded = event.get("isBase64Encoded")
    if encoded is not None and not isinstance(encoded, bool):
        raise EnvelopeError("$.isBase64Encoded", _expected("true or false", encoded))
    query = _strings(event, "queryStringParameters")
    raw_query = event.get("rawQueryString")
    if raw_query is not None and not isinstance(raw_query, str):
        raise EnvelopeError("$.rawQueryString", _expected("a string", raw_query))
    if not query and raw_query:
        query = query_of(raw_query)
    request_id = context.get("requestId")
    return HttpRequest(
        kind,
        method.upper(),
        {name.lower(): value for name, value in _strings(event, "headers").items()},
        body,
        bool(encoded),
        str(request_id) if isinstance(request_id, str | int) and request_id != "" else None,
        {name: value for name, value in query.items() if value},
        _caller(context, kind),
    )


def _caller(context: dict[str, Any], kind: str) -> str | None:
    """The IAM caller's ARN where each kind of event has it with IAM authorisation (REST:
    ``requestContext.identity.userArn``; HTTP API and function URL:
    ``requestContext.authorizer.iam.userArn``); API Gateway writes these, never the client."""
    path = ("identity",) if kind == "apigw-v1" else ("authorizer", "iam")
    found: Any = context
    for member in path:
        found = found.get(member) if isinstance(found, dict) else None
    arn = found.get("userArn") if isinstance(found, dict) else None
    return arn if isinstance(arn, str) and arn else None


def _strings(event: dict[str, Any], member: str) -> dict[str, str]:
    """An event's object of strings (headers, query parameters); null values are left out."""
    value = event.get(member)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise EnvelopeError(f"$.{member}", _expected("an object", value))
    for name, item in value.items():
        if item is not None and not isinstance(item, str):
            raise EnvelopeError(json_path((member, name)), _expected("a string", item))
    return {name: item for name, item in value.items() if item is not None}


def _expected(what: str, value: Any) -> str:
    got = "null or nothing" if value is None else json_type(value)
    return f"expected {what}, got {got}"


def query_of(raw: str) -> dict[str, str]:
    """A query string's parameters, the first value of each; empty values are left out."""
    return {k: v[0] for k, v in urllib.parse.parse_qs(raw).items()}


def etag_matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110's weak comparison for ``If-None-Match`` (a list, ``*``, ``W/`` prefixes)."""
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in tags or etag in tags


def decode_body(request: HttpRequest) -> bytes:
    if not request.body:
        raise PayloadError("the request has no body: send the payload as JSON", file="<body>")
    if isinstance(request.body, bytes):
        return request.body
    if request.base64:
        try:
            return base64.b64decode(request.body, validate=True)
        except (binascii.Error, ValueError):
            raise PayloadError(
                "the body is marked base64-encoded but is not valid base64", file="<body>"
            ) from None
    return request.body.encode("utf-8", errors="surrogatepass")


# -- responses --------------------------------------------------------------------------------


def response(status: int, encoded: contract.Encoded) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": encoded.headers,
        "body": encoded.body,
        "isBase64Encoded": False,
    }


def not_acceptable(log: dict[str, Any]) -> dict[str, Any]:
    detail = (
        "the config routes through map files: a bundle of several files, which only a JSON "
        "answer can carry; send 'Accept: application/json'"
    )
    return problem(PROBLEMS.not_acceptable, detail, log)


def problem(
    kind: ProblemType,
    detail: str,
    log: dict[str, Any],
    error: LocatedError | None = None,
    headers: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """An RFC 9457 problem response; the log line records what went wrong."""
    request_id = log.get("request_id")
    instance = None
    if request_id:
        instance = (
            f"urn:uuid:{request_id}"
            if is_uuid(request_id)
            else f"urn:lambda-registry:request:{request_id}"
        )
    encoded = contract.encode_problem(
        kind.status,
        kind.slug,
        kind.title,
        detail,
        diagnostics=error.diagnostics if error is not None else (),
        instance=instance,
    )
    encoded.headers.update(headers or {})
    if error is not None:
        log.setdefault("error", type(error).__name__)
    log.setdefault("detail", str(error) if error is not None else detail)
    log.setdefault("level", "error" if kind.status >= 500 else "warning")
    return response(kind.status, encoded)


def internal_detail(log: dict[str, Any]) -> str:
    """A 500's detail: the request id to look up in the logs, nothing internal."""
    return f"the request could not be completed (request id {log['request_id']})"


def is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True
