"""The AWS Lambda entry point: ``runtime.handler.handler``.

Accepted events:

* a direct invocation whose event *is* the payload (as the seed's Lambda was called):
  returns the config text (with map files, the bundle in ``runtime.bundle``'s stream form),
  and raises on errors, so the caller sees a function error
  (``errorType`` is ``PayloadError``, ``StoreError``, ``ConflictError`` or ``InternalError``).
  It carries no caller, so it is the operator's: any host, and host-less payloads (the
  boundary is IAM on ``lambda:InvokeFunction``);
* API Gateway REST (v1) and HTTP API (v2) proxy events, and Lambda function URL events,
  whose body is the payload as JSON (base64-encoded or not). An event with any member only
  these have (``requestContext``, ``httpMethod``, ``headers``, ``body``, ...) is one of them,
  however malformed. They get back an HTTP response:

  | status | when | body |
  | --- | --- | --- |
  | 200 | compiled | the config, ``text/plain`` (or JSON, all files, for ``application/json``) |
  | 406 | compiled, but there are map files and ``Accept`` lacks JSON | problem+json |
  | 400 | malformed body (no body, bad base64, not JSON, a key twice, bad payload) | problem+json |
  | 400 | malformed event (``headers`` not an object, ``body`` not a string, ...) | problem+json |
  | 403 | the caller may not report as the payload's host (``runtime.identity``) | problem+json |
  | 405 | a method other than POST | problem+json |
  | 409 | concurrent updates: retries ran out | problem+json |
  | 503 | the state store failed (unreachable, read-only, ...) | problem+json |
  | 500 | anything else, without internal details | problem+json |

  The bodies and headers follow the registry's HTTP contract, ``runtime.contract``.

Configuration is read from the environment once, at the first call (see
``runtime.config``). Each call writes one JSON log line to stdout with the request id, the
table, the counts and the duration.

Cold start: importing this module loads pydantic and the compiler (every call needs them),
and boto3 when the configured store is DynamoDB (its client is made at the first
call). Nothing else happens at import: the first call reads the configuration and loads the
Lark parser from the cache the deployment package ships (``SHIPPED_PARSER_CACHE``).
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from compiler.errors import Diagnostic, InternalError, LocatedError
from compiler.payload import parse_payload_text
from compiler.validators import TABLE_NAME
from grammar.parser import load_parser
from runtime import contract
from runtime.config import HandlerConfig
from runtime.contract import PROBLEMS
from runtime.http_request import (
    EnvelopeError,
    HttpRequest,
    decode_body,
    etag_matches,
    http_request,
    internal_detail,
    is_http_event,
    not_acceptable,
    problem,
    response,
)
from runtime.identity import OPERATOR, Forbidden, Identity, check_payload
from runtime.pipeline import CompileResult, compile_payload, render_table
from runtime.stores import ConflictError, RegistryStore, StoreError, TableModeError
from runtime.stores.select import LAMBDA_ENV, STORE_ENV, chosen_spec, open_store

if chosen_spec()[0] == "dynamodb":
    # Every call needs it: pay for the import in Lambda's (boosted) init phase, not the first
    # call. Only the import: the client is made at the first call.
    import runtime.stores.dynamodb  # noqa: F401

# The deployment package ships the Lark parser's cache here (deploy/build.py): each new
# sandbox then loads the LALR tables instead of building them (at the first call).
SHIPPED_PARSER_CACHE = (
    Path(__file__).resolve().parents[1] / ".lark-cache" / ".lark_cache_haproxy.tmp"
)


class RegistryApp:
    """The registry as an app: configuration, store and render options kept across
    invocations; ``handle`` answers one event."""

    def __init__(
        self,
        config: HandlerConfig,
        store: RegistryStore | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.clock = clock
        self.store = store or open_store(config.store, settings=config.settings, source=STORE_ENV)
        load_parser(str(SHIPPED_PARSER_CACHE) if SHIPPED_PARSER_CACHE.is_file() else True)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RegistryApp:
        return cls(HandlerConfig.from_env(environ))

    def handle(self, event: Any, context: Any = None) -> Any:
        """Answer a Lambda event, or an ``HttpRequest`` that ``lambda-registry serve`` read."""
        started = time.perf_counter()
        malformed: EnvelopeError | None = None
        try:
            request = event if isinstance(event, HttpRequest) else http_request(event)
        except EnvelopeError as error:
            request, malformed = None, error
        request_id = getattr(context, "aws_request_id", None) or (
            request.request_id if request else None
        )
        log: dict[str, Any] = {
            "request_id": request_id or str(uuid.uuid4()),
            "event": request.kind if request else "malformed" if malformed else "direct",
            "store": self.store.label,
        }
        try:
            if malformed is not None:
                answer = problem(PROBLEMS.invalid_request, str(malformed), log, malformed)
            elif request is None:
                return self._direct(event, log)
            else:
                answer = self._http(request, log)
            log["status"] = answer["statusCode"]
            return answer
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
        if len(result.files) > 1:
            from runtime.bundle import format_stream

            return format_stream(result.files)
        return result.text

    # -- HTTP events -------------------------------------------------------------------------

    def _http(self, request: HttpRequest, log: dict[str, Any]) -> dict[str, Any]:
        identity = self._identity(request)
        if identity is None:
            detail = (
                "this registry maps IAM callers to the hosts they may report as "
                "(LAMBDA_REGISTRY_HOST_IDENTITIES): call it with IAM authorisation (SigV4)"
            )
            log["error"] = "Forbidden"
            return problem(PROBLEMS.forbidden, detail, log)
        if not identity.operator:
            log["identity"] = identity.name
        if request.method == "GET":
            return self._read(request, log)
        if request.method != "POST":
            return problem(
                PROBLEMS.method_not_allowed,
                f"send the payload with POST (or GET ?table=NAME), not {request.method}",
                log,
                headers={"Allow": "GET, POST"},
            )
        try:
            result = self._compile(decode_body(request), "<body>", log, identity)
        except Forbidden as error:
            log["error"] = "Forbidden"
            return problem(PROBLEMS.forbidden, str(error), log)
        except TableModeError as error:
            return problem(PROBLEMS.table_mode, str(error), log, error)
        except ConflictError as error:
            return problem(PROBLEMS.conflict, str(error), log, error)
        except StoreError as error:
            return problem(PROBLEMS.store_unavailable, str(error), log, error)
        except InternalError as error:
            log["traceback"] = _traceback()
            return problem(PROBLEMS.internal_error, internal_detail(log), log, error)
        except LocatedError as error:
            return problem(PROBLEMS.invalid_payload, str(error), log, error)
        except Exception as error:
            log.update(error=type(error).__name__, traceback=_traceback())
            return problem(PROBLEMS.internal_error, internal_detail(log), log)
        names = tuple(service.name for service in result.services)
        return _config_answer(
            request, log, result.text, result.files, result.diagnostics, log.get("table"), names
        )

    def _read(self, request: HttpRequest, log: dict[str, Any]) -> dict[str, Any]:
        """``GET ?table=NAME``: the table's config now (leases applied, nothing written)."""
        table = request.query.get(contract.TABLE_PARAMETER, "")
        log["table"] = table[:255]
        if not TABLE_NAME.fullmatch(table):
            detail = "give the table as ?table=NAME (3 to 255 of letters, digits, '_', '-', '.')"
            return problem(PROBLEMS.invalid_request, detail, log)
        try:
            rendered = render_table(
                self.store,
                table,
                options=self.config.options,
                clock=self.clock,
                host_ttl=self.config.host_ttl,
            )
        except StoreError as error:
            return problem(PROBLEMS.store_unavailable, str(error), log, error)
        except Exception as error:
            log.update(error=type(error).__name__, traceback=_traceback())
            return problem(PROBLEMS.internal_error, internal_detail(log), log)
        if rendered is None:
            detail = f"table {table!r} holds no services and no host reports"
            return problem(PROBLEMS.unknown_table, detail, log)
        log.update(rendered=len(rendered.services), hosts=rendered.hosts)
        cache = {contract.ETAG_HEADER: rendered.etag, "Cache-Control": "no-cache"}
        if_none_match = request.headers.get(contract.IF_NONE_MATCH_HEADER.lower(), "")
        if etag_matches(if_none_match, rendered.etag):
            return response(304, contract.Encoded(cache, ""))
        names = tuple(service.name for service in rendered.services)
        return _config_answer(request, log, rendered.text, rendered.files, (), table, names, cache)

    # -- both --------------------------------------------------------------------------------

    def _identity(self, request: HttpRequest) -> Identity | None:
        """Who sent ``request``: as serve proved it, else its IAM caller as
        ``LAMBDA_REGISTRY_HOST_IDENTITIES`` maps it (``None``: no IAM identity), else (no map)
        the operator."""
        if request.identity is not None:
            return request.identity
        if self.config.host_identities is None:
            return OPERATOR
        return self.config.host_identities.identity_of(request.caller)

    def _compile(
        self, payload: Any, file: str | None, log: dict[str, Any], identity: Identity = OPERATOR
    ) -> CompileResult:
        """A direct invocation carries no caller: it is the operator's (the boundary is IAM on
        ``lambda:InvokeFunction``)."""
        if isinstance(payload, bytes | str):
            payload = parse_payload_text(payload, file=file)  # once, here: the log wants the table
        if isinstance(payload, dict) and isinstance(payload.get("table"), str):
            log["table"] = payload["table"][:255]  # validated later; never log a huge value
        check_payload(identity, payload)  # before the store is touched
        result = compile_payload(
            payload,
            options=self.config.options,
            store=self.store,
            file=file,
            clock=self.clock,
            host_ttl=self.config.host_ttl,
        )
        reconciled = result.reconciled
        log.update(
            attempts=result.attempts,
            rendered=len(reconciled.render),
            stored=len(reconciled.store),
            deleted=len(reconciled.delete),
            diagnostics=len(result.diagnostics),
        )
        return result


_APP: RegistryApp | None = None


def handler(event: Any, context: Any = None) -> Any:
    """The Lambda entry point. Configuration is read once per process (sandbox)."""
    global _APP
    if _APP is None:
        try:
            _APP = RegistryApp.from_env()
        except LocatedError as error:
            # A misconfigured function: say which variable, once per call, in the logs.
            _log({"level": "error", "message": "misconfigured", "detail": str(error)})
            if not is_http_event(event):
                raise InternalError(f"the function is misconfigured: {error}") from None
            return problem(
                PROBLEMS.internal_error,
                "the function is misconfigured; see its logs",
                {"request_id": getattr(context, "aws_request_id", None)},
            )
    return _APP.handle(event, context)


def reset() -> None:
    """Forget the configuration and store (tests, or after changing the environment)."""
    global _APP
    _APP = None


def _config_answer(
    request: HttpRequest,
    log: dict[str, Any],
    text: str,
    files: Mapping[str, str],
    diagnostics: Sequence[Diagnostic],
    table: str | None,
    services: tuple[str, ...],
    headers: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The 200 answer with a config (POST and GET alike), in the form ``Accept`` asks for; a
    406 when it names map files but ``Accept`` lacks JSON (only this answer cannot be sent:
    a POST has compiled and stored by then)."""
    as_json = contract.wants_json(request.headers.get("accept", ""))
    maps = contract.maps_of(files)
    if maps and not as_json:
        return not_acceptable(log)
    encoded = contract.encode_result(
        contract.RegistryResult(text, tuple(diagnostics), table, services, maps),
        as_json=as_json,
    )
    encoded.headers.update(headers or {})
    return response(200, encoded)


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
    if status == 304:
        return "not modified"
    return "compiled" if status == 200 else "rejected" if status < 500 else "failed"


def _traceback() -> str:
    return traceback.format_exc(limit=20)
