"""The AWS Lambda entry point: ``runtime.handler.handler``.

Accepted events:

* a direct invocation whose event *is* the payload (as the seed's Lambda was called):
  returns the config text, and raises on errors, so the caller sees a function error
  (``errorType`` is ``PayloadError``, ``StoreError``, ``ConflictError`` or ``InternalError``);
* API Gateway REST (v1) and HTTP API (v2) proxy events, and Lambda function URL events,
  whose body is the payload as JSON (base64-encoded or not). They get back an HTTP response:

  | status | when | body |
  | --- | --- | --- |
  | 200 | compiled | the config, ``text/plain`` (or JSON when ``Accept: application/json``) |
  | 400 | malformed body (no body, bad base64, not JSON, wrong envelope) | problem+json |
  | 405 | a method other than POST | problem+json |
  | 409 | concurrent updates: retries ran out | problem+json |
  | 503 | the state store failed (unreachable, read-only, ...) | problem+json |
  | 500 | anything else, without internal details | problem+json |

  Errors are ``application/problem+json`` (RFC 9457) with the diagnostics as an extension
  member. On a 200, the entries that were left out are reported in two headers:
  ``Lambda-Registry-Diagnostics`` (their count) and ``Lambda-Registry-Diagnostics-Detail``
  (a JSON array, cut to 4 KiB). A client that sends ``Accept: application/json`` gets
  ``{"config", "diagnostics", ...}`` as the body instead.

Configuration is read from the environment once, at the first call (see
``runtime.config``). Each call writes one JSON log line to stdout with the request id, the
table, the counts and the duration.

Cold start: importing this module loads pydantic, lark and the compiler (every call needs
them) and builds the Lark parser from its cache. The deployment package ships that cache,
and it is copied to the temp dir before the parser is built. boto3 is imported only when the
configured store is DynamoDB, and its client is created once, at the first call.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import sys
import time
import traceback
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def _seed_parser_cache() -> None:
    """Copy the Lark parser cache shipped in the package to the temp dir, if missing.

    ``grammar.parser`` builds its parser with ``cache=True``, i.e. from
    ``$TMPDIR/.lark_cache_<user>_<hash>_<py>.tmp``. Each new Lambda sandbox has an empty
    ``/tmp``, so without this step every cold start would build the LALR tables again. Lark
    checks the hash inside the file, so a stale copy is simply ignored.
    """
    shipped = Path(__file__).resolve().parent.parent / ".lark-cache"
    if not shipped.is_dir():
        return
    import getpass
    import shutil
    import tempfile

    try:
        user = getpass.getuser()
    except Exception:  # as Lark does: any failure means "unknown"
        user = "unknown"
    for source in shipped.glob(".lark_cache_*.tmp"):
        # .lark_cache_<user>_<sha256>_<major>_<minor>.tmp; the user part may hold '_'.
        parts = source.name.removesuffix(".tmp").split("_")
        if len(parts) < 6:  # .lark, cache, <user...>, sha, major, minor
            continue
        sha, major, minor = parts[-3:]
        target = Path(tempfile.gettempdir()) / f".lark_cache_{user}_{sha}_{major}_{minor}.tmp"
        if not target.exists():
            try:
                shutil.copyfile(source, target)
            except OSError:
                return


_seed_parser_cache()

from compiler.errors import Diagnostic, InternalError, LocatedError, PayloadError  # noqa: E402
from compiler.payload import parse_payload_text  # noqa: E402
from runtime.config import LAMBDA_ENV, HandlerConfig, default_store_spec  # noqa: E402
from runtime.pipeline import CompileResult, compile_payload  # noqa: E402
from runtime.reconcile import Reconciled  # noqa: E402
from runtime.stores import ConflictError, Decide, Store, StoreError, open_store  # noqa: E402

if default_store_spec() == "dynamodb":
    # Every call needs it: pay for the import during the init phase, not the first call.
    import runtime.dynamodb_store  # noqa: F401

PROBLEM_TYPE = "urn:lambda-registry:problem:"
DIAGNOSTICS_HEADER = "Lambda-Registry-Diagnostics"
DETAIL_HEADER = "Lambda-Registry-Diagnostics-Detail"
DETAIL_LIMIT = 4096


@dataclass(frozen=True, slots=True)
class HttpRequest:
    kind: str  # "apigw-v1", "apigw-v2" or "function-url"
    method: str
    headers: Mapping[str, str]  # lower-cased names
    body: str | None
    base64: bool
    request_id: str | None


class _CountingStore:
    """Counts how many times a store runs ``decide`` (conflict retries show up in logs)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.attempts = 0

    @property
    def label(self) -> str:
        return self.store.label

    def update(self, table: str, decide: Decide) -> Reconciled:
        def counted(stored: Any) -> Reconciled:
            self.attempts += 1
            return decide(stored)

        return self.store.update(table, counted)

    def services(self, table: str) -> dict[str, Any]:
        return self.store.services(table)

    def clear(self, table: str) -> int:
        return self.store.clear(table)


class Registry:
    """The handler's state across invocations: configuration, store, render options."""

    def __init__(self, config: HandlerConfig, store: Store | None = None) -> None:
        self.config = config
        self.store = store or open_store(
            config.store, settings=config.settings, source="LAMBDA_REGISTRY_STORE"
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Registry:
        return cls(HandlerConfig.from_env(environ))

    def handle(self, event: Any, context: Any = None) -> Any:
        started = time.perf_counter()
        request = _http_request(event)
        request_id = getattr(context, "aws_request_id", None) or (
            request.request_id if request else None
        )
        log: dict[str, Any] = {
            "request_id": request_id or str(uuid.uuid4()),
            "event": request.kind if request else "direct",
            "store": self.store.label,
        }
        try:
            if request is None:
                return self._direct(event, log)
            response = self._http(request, log)
            log["status"] = response["statusCode"]
            return response
        finally:
            log["duration_ms"] = round((time.perf_counter() - started) * 1000, 1)
            _log(log)

    # -- direct invocation -------------------------------------------------------------------

    def _direct(self, event: Any, log: dict[str, Any]) -> str:
        try:
            result = self._compile(event, None, log)
        except LocatedError as error:
            log.update(level="error", error=type(error).__name__, detail=str(error))
            raise
        except Exception as error:
            log.update(level="error", error=type(error).__name__, traceback=_traceback())
            raise InternalError(
                f"internal error (request {log['request_id']}); see the function's logs"
            ) from None
        return result.text

    # -- HTTP events -------------------------------------------------------------------------

    def _http(self, request: HttpRequest, log: dict[str, Any]) -> dict[str, Any]:
        if request.method != "POST":
            return _problem(
                405,
                "method-not-allowed",
                "Method not allowed",
                f"send the payload with POST, not {request.method}",
                log,
                headers={"Allow": "POST"},
            )
        try:
            body = _decode_body(request)
            result = self._compile(body, "<body>", log)
        except ConflictError as error:
            return _problem(409, "conflict", "Concurrent updates", str(error), log, error)
        except StoreError as error:
            return _problem(503, "store-unavailable", "State store failed", str(error), log, error)
        except InternalError as error:
            log["traceback"] = _traceback()
            return _problem(500, "internal-error", "Internal error", _internal(log), log, error)
        except LocatedError as error:
            return _problem(400, "invalid-payload", "Invalid payload", str(error), log, error)
        except Exception as error:
            log.update(error=type(error).__name__, traceback=_traceback())
            return _problem(500, "internal-error", "Internal error", _internal(log), log)
        diagnostics = [d.as_dict() for d in result.diagnostics]
        headers = {DIAGNOSTICS_HEADER: str(len(diagnostics))}
        if diagnostics:
            headers[DETAIL_HEADER] = _detail_header(diagnostics)
        if "application/json" in request.headers.get("accept", ""):
            document = {
                "table": log.get("table"),
                "config": result.text,
                "diagnostics": diagnostics,
                "services": [s.name for s in result.services],
            }
            return _response(200, json.dumps(document), "application/json", headers)
        return _response(200, result.text, "text/plain; charset=utf-8", headers)

    # -- both --------------------------------------------------------------------------------

    def _compile(self, payload: Any, file: str | None, log: dict[str, Any]) -> CompileResult:
        if isinstance(payload, bytes | str):
            payload = parse_payload_text(payload, file=file)  # once, here: the log wants the table
        if isinstance(payload, dict) and isinstance(payload.get("table"), str):
            log["table"] = payload["table"][:255]  # validated later; never log a huge value
        store = _CountingStore(self.store)
        try:
            result = compile_payload(payload, options=self.config.options, store=store, file=file)
        finally:
            log["attempts"] = store.attempts
        reconciled = result.reconciled
        log.update(
            rendered=len(reconciled.render),
            stored=len(reconciled.store),
            deleted=len(reconciled.delete),
            diagnostics=len(result.diagnostics),
        )
        return result


_REGISTRY: Registry | None = None


def handler(event: Any, context: Any = None) -> Any:
    """The Lambda entry point. Configuration is read once per process (sandbox)."""
    global _REGISTRY
    if _REGISTRY is None:
        try:
            _REGISTRY = Registry.from_env()
        except LocatedError as error:
            # A misconfigured function: say which variable, once per call, in the logs.
            _log({"level": "error", "message": "misconfigured", "detail": str(error)})
            if _http_request(event) is None:
                raise InternalError(f"the function is misconfigured: {error}") from None
            return _problem(
                500,
                "internal-error",
                "Internal error",
                "the function is misconfigured; see its logs",
                {"request_id": getattr(context, "aws_request_id", None)},
            )
    return _REGISTRY.handle(event, context)


def reset() -> None:
    """Forget the configuration and store (tests, or after changing the environment)."""
    global _REGISTRY
    _REGISTRY = None


# -- events -----------------------------------------------------------------------------------


def _http_request(event: Any) -> HttpRequest | None:
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
    return HttpRequest(
        kind,
        method,
        headers,
        body if isinstance(body, str) else None,
        base64_encoded,
        str(request_id) if request_id else None,
    )


def _decode_body(request: HttpRequest) -> bytes:
    if not request.body:
        raise PayloadError("the request has no body: send the payload as JSON", file="<body>")
    if request.base64:
        try:
            return base64.b64decode(request.body, validate=True)
        except (binascii.Error, ValueError):
            raise PayloadError(
                "the body is marked base64-encoded but is not valid base64", file="<body>"
            ) from None
    return request.body.encode("utf-8", errors="surrogatepass")


# -- responses --------------------------------------------------------------------------------


def _response(
    status: int, body: str, content_type: str, headers: Mapping[str, str] | None = None
) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": content_type, **(headers or {})},
        "body": body,
        "isBase64Encoded": False,
    }


def _problem(
    status: int,
    slug: str,
    title: str,
    detail: str,
    log: dict[str, Any],
    error: LocatedError | None = None,
    headers: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """An RFC 9457 problem document."""
    problem: dict[str, Any] = {
        "type": PROBLEM_TYPE + slug,
        "title": title,
        "status": status,
        "detail": detail,
    }
    if log.get("request_id"):
        problem["instance"] = (
            f"urn:uuid:{log['request_id']}"
            if _is_uuid(log["request_id"])
            else (f"urn:lambda-registry:request:{log['request_id']}")
        )
    diagnostics: Sequence[Diagnostic] = error.diagnostics if error is not None else ()
    if status != 500:
        problem["diagnostics"] = [d.as_dict() for d in diagnostics]
    if error is not None:
        log.setdefault("error", type(error).__name__)
    log.setdefault("detail", str(error) if error is not None else detail)
    log.setdefault("level", "error" if status >= 500 else "warning")
    extra = dict(headers or {})
    if status == 409:
        extra.setdefault("Retry-After", "1")
    return _response(status, json.dumps(problem), "application/problem+json", extra)


def _detail_header(diagnostics: list[dict[str, str]]) -> str:
    """The diagnostics as ASCII JSON, whole entries only, at most ``DETAIL_LIMIT`` bytes."""
    kept: list[dict[str, str]] = []
    for entry in diagnostics:
        candidate = json.dumps([*kept, entry], ensure_ascii=True, separators=(",", ":"))
        if len(candidate) > DETAIL_LIMIT:
            break
        kept.append(entry)
    return json.dumps(kept, ensure_ascii=True, separators=(",", ":"))


def _internal(log: dict[str, Any]) -> str:
    return f"the request could not be completed (request id {log['request_id']})"


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


# -- logs -------------------------------------------------------------------------------------


def _log(record: dict[str, Any]) -> None:
    """One JSON object per line on stdout (CloudWatch Logs keeps each line as one event)."""
    entry = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "level": record.get("level", "info"),
        "message": record.get("message") or _outcome(record),
        **{k: v for k, v in record.items() if k not in ("level", "message")},
    }
    function = os.environ.get(LAMBDA_ENV)
    if function:
        entry["function"] = function
    sys.stdout.write(json.dumps(entry, default=str) + "\n")
    sys.stdout.flush()


def _outcome(record: Mapping[str, Any]) -> str:
    status = record.get("status")
    if status is None:
        return "failed" if "error" in record else "compiled"
    return "compiled" if status == 200 else "rejected" if status < 500 else "failed"


def _traceback() -> str:
    return traceback.format_exc(limit=20)
