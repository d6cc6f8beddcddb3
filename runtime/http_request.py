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

from compiler.errors import LocatedError, PayloadError
from runtime import contract
from runtime.contract import PROBLEMS, ProblemType


@dataclass(frozen=True, slots=True)
class HttpRequest:
    kind: str  # "apigw-v1", "apigw-v2" or "function-url" (what the log line names)
    method: str
    headers: Mapping[str, str]  # lower-cased names
    body: str | bytes | None  # bytes: as received (serve); str: an event's, maybe base64
    base64: bool
    request_id: str | None
    query: Mapping[str, str] = field(default_factory=dict)


def http_request(event: Any) -> HttpRequest | None:
    """The HTTP request in an API Gateway / function URL event, or None for a direct call."""
    if not isinstance(event, dict):
        return None
    context = event.get("requestContext")
    if not isinstance(context, dict):
        return None
    headers = {
        str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items() if v is not None
    }
    base64_encoded = bool(event.get("isBase64Encoded"))
    body = event.get("body")
    if event.get("version") == "2.0" and isinstance(context.get("http"), dict):
        domain = str(context.get("domainName", ""))
        kind = "function-url" if ".lambda-url." in domain else "apigw-v2"
        method = str(context["http"].get("method", "")).upper()
    elif "httpMethod" in event:
        kind = "apigw-v1"
        method = str(event.get("httpMethod", "")).upper()
    else:
        return None
    request_id = context.get("requestId")
    query = {str(k): str(v) for k, v in (event.get("queryStringParameters") or {}).items() if v}
    if not query and isinstance(event.get("rawQueryString"), str):
        query = query_of(event["rawQueryString"])
    return HttpRequest(
        kind,
        method,
        headers,
        body if isinstance(body, str) else None,
        base64_encoded,
        str(request_id) if request_id else None,
        query,
    )


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
