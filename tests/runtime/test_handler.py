"""The Lambda handler: the documented sample events, a direct invocation, errors as RFC 9457
problem documents, diagnostics on a 200, JSON logs, configuration from the environment."""

from __future__ import annotations

import base64
import copy
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import runtime.handler as lambda_handler
from compiler.errors import InternalError, PayloadError
from runtime import contract
from runtime.config import HandlerConfig
from runtime.handler import RegistryApp
from runtime.merge import Reconciled
from runtime.stores.memory import MemoryStore
from runtime.stores.select import StoreSpec
from tests.support.aws import MotoServer, aws_env
from tests.support.paths import FIXTURES, ROOT
from tests.support.stores import lock_held_by_another_process, statements

EVENTS = sorted((FIXTURES / "events").glob("*.json"))
SEED_CONFIG = statements((FIXTURES / "seed_expected.cfg").read_text())


class Context:
    """The attributes of the Lambda context object the handler reads."""

    def __init__(self, request_id: str = "c0ffee00-0000-4000-8000-000000000001") -> None:
        self.aws_request_id = request_id
        self.function_name = "lambda-registry"


def load_event(path: Path, payload: Any = None, **changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = json.loads(path.read_text())
    if payload is not None:
        event["body"] = payload if isinstance(payload, str) else json.dumps(payload)
    event.update(changes)
    return event


def set_method(event: dict[str, Any], method: str) -> dict[str, Any]:
    if "httpMethod" in event:
        event["httpMethod"] = method
    else:
        event["requestContext"]["http"]["method"] = method
    return event


def problem(response: dict[str, Any]) -> dict[str, Any]:
    assert response["headers"]["Content-Type"] == "application/problem+json"
    document: dict[str, Any] = json.loads(response["body"])
    assert document["status"] == response["statusCode"]
    assert set(document) >= {"type", "title", "status", "detail"}
    return document


@pytest.fixture
def invoke(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Any]]:
    """The real entry point, configured from the environment, in compat mode."""
    monkeypatch.setenv("LAMBDA_REGISTRY_OPTIONS", '{"compat": "seed"}')
    lambda_handler.reset()

    def call(event: Any, context: Any = None) -> Any:
        return lambda_handler.handler(event, context or Context())

    yield call
    lambda_handler.reset()


def log_lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]


# -- the seed through every event shape ------------------------------------------------------


@pytest.mark.parametrize("path", EVENTS, ids=[p.stem for p in EVENTS])
@pytest.mark.parametrize("encoded", [False, True], ids=["plain", "base64"])
def test_seed_first_and_second_call(
    path: Path, encoded: bool, invoke: Callable[..., Any], seed_payload: dict[str, Any]
) -> None:
    event = load_event(path)
    assert json.loads(event["body"]) == seed_payload  # the fixtures carry the seed's payload
    if encoded:
        event = load_event(
            path, base64.b64encode(event["body"].encode()).decode(), isBase64Encoded=True
        )
    first = invoke(event)
    assert first["statusCode"] == 200, first["body"]
    assert first["headers"]["Content-Type"] == "text/plain; charset=utf-8"
    assert first["headers"]["Lambda-Registry-Diagnostics"] == "0"
    assert statements(first["body"]) == SEED_CONFIG

    second = invoke(copy.deepcopy(event))
    assert second["statusCode"] == 200
    assert "server jk3243j54jl 192.168.1.8:80 check cookie JSESSIONID" in second["body"]
    assert second["body"].count("\n    server ") == 4


def test_direct_invocation_returns_the_config_text(
    invoke: Callable[..., Any], seed_payload: dict[str, Any]
) -> None:
    first = invoke(copy.deepcopy(seed_payload))
    assert isinstance(first, str)
    assert statements(first) == SEED_CONFIG
    second = invoke(copy.deepcopy(seed_payload))
    assert "server jk3243j54jl 192.168.1.8:80" in second


def test_direct_invocation_errors_raise(invoke: Callable[..., Any]) -> None:
    with pytest.raises(PayloadError, match=r"\$\.table: required field is missing"):
        invoke({"running": []})
    with pytest.raises(PayloadError, match="must be a JSON object"):
        invoke(["not", "a", "payload"])


# -- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "encoded", "words"),
    [
        pytest.param(None, False, "has no body", id="no-body"),
        pytest.param("", False, "has no body", id="empty-body"),
        pytest.param("{not json", False, "<body>:1:2: not valid JSON", id="not-json"),
        pytest.param("[1, 2]", False, "must be a JSON object", id="array"),
        pytest.param("%%%not base64%%%", True, "not valid base64", id="bad-base64"),
        pytest.param('{"running": []}', False, "$.table: required field is missing", id="no-table"),
        # json.loads keeps the last of a repeated key: two readers could disagree on the payload.
        pytest.param(
            '{"table": "web-eu-1", "running": [{"name": "a", "name": "b"}]}',
            False,
            "<body>: $.running[0].name: this key appears more than once",
            id="repeated-key",
        ),
        # Python refuses to convert it (int max str digits): a ValueError, once a 500.
        pytest.param(
            '{"table": "web-eu-1", "running": [], "n": ' + "1" * 100_000 + "}",
            False,
            "not valid JSON: a number has more than 4300 digits",
            id="huge-number",
        ),
        pytest.param('{"table": Infinity}', False, "Infinity is not a JSON value", id="infinity"),
    ],
)
@pytest.mark.parametrize("path", EVENTS, ids=[p.stem for p in EVENTS])
def test_malformed_body_is_400(
    path: Path, body: str | None, encoded: bool, words: str, invoke: Callable[..., Any]
) -> None:
    event = load_event(path)
    event["body"] = body
    event["isBase64Encoded"] = encoded
    response = invoke(event)
    assert response["statusCode"] == 400
    document = problem(response)
    assert words in document["detail"]
    assert document["type"] == "urn:lambda-registry:problem:invalid-payload"
    assert isinstance(document["diagnostics"], list)
    if "$.table" in words:
        assert document["diagnostics"] == [
            {"path": "$.table", "message": "required field is missing", "severity": "error"}
        ]


def _method_path(event: dict[str, Any]) -> str:
    if "httpMethod" in event:
        event["httpMethod"] = ["POST"]
        return "$.httpMethod"
    event["requestContext"]["http"]["method"] = ["POST"]
    return "$.requestContext.http.method"


def _set(member: str, value: Any) -> Callable[[dict[str, Any]], str]:
    def change(event: dict[str, Any]) -> str:
        event[member] = value
        return f"$.{member}"

    return change


def _drop_context(event: dict[str, Any]) -> str:
    del event["requestContext"]
    return "$.requestContext"


def _header_number(event: dict[str, Any]) -> str:
    event["headers"]["X-Count"] = 3
    return '$.headers["X-Count"]'


ENVELOPES: list[Any] = [
    pytest.param(_set("headers", [["content-type", "application/json"]]), id="headers-list"),
    pytest.param(_set("headers", "content-type: application/json"), id="headers-text"),
    pytest.param(_header_number, id="header-value-number"),
    pytest.param(_set("body", {"table": "web-eu-1", "running": []}), id="body-object"),
    pytest.param(_set("body", 5), id="body-number"),
    pytest.param(_set("isBase64Encoded", "false"), id="base64-flag-text"),
    pytest.param(_set("isBase64Encoded", 1), id="base64-flag-number"),
    pytest.param(_drop_context, id="no-request-context"),
    pytest.param(_set("requestContext", []), id="request-context-list"),
    pytest.param(_method_path, id="method-list"),
    pytest.param(_set("queryStringParameters", ["table"]), id="query-list"),
]


@pytest.mark.parametrize("malform", ENVELOPES)
@pytest.mark.parametrize("path", EVENTS, ids=[p.stem for p in EVENTS])
def test_a_malformed_event_is_400_and_never_a_function_error(
    path: Path,
    malform: Callable[[dict[str, Any]], str],
    invoke: Callable[..., Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An HTTP event of the wrong shape (a test event typed by hand, a proxy misconfigured)
    is a 400 problem naming the member, not an exception out of the function (API Gateway's
    bare 502) nor a 500."""
    event = load_event(path)
    member = malform(event)
    response = invoke(event)
    assert response["statusCode"] == 400
    document = problem(response)
    assert document["type"] == "urn:lambda-registry:problem:invalid-request"
    assert document["detail"].startswith(f"<event>: {member}: expected ")
    assert [d["path"] for d in document["diagnostics"]] == [member]
    (log,) = log_lines(capsys)
    assert (log["event"], log["status"], log["level"]) == ("malformed", 400, "warning")


@pytest.mark.parametrize("path", EVENTS, ids=[p.stem for p in EVENTS])
def test_other_methods_are_405(path: Path, invoke: Callable[..., Any]) -> None:
    # GET reads a table (fleet mode: GET ?table=NAME); anything but GET and POST is refused.
    response = invoke(set_method(load_event(path), "PUT"))
    assert response["statusCode"] == 405
    assert response["headers"]["Allow"] == "GET, POST"
    assert problem(response)["title"] == "Method not allowed"


def test_lock_held_until_timeout_is_409(
    invoke: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    seed_payload: dict[str, Any],
) -> None:
    database = tmp_path / "state.db"
    monkeypatch.setenv("LAMBDA_REGISTRY_STORE", f"sqlite:{database}")
    monkeypatch.setenv("LAMBDA_REGISTRY_SQLITE_TIMEOUT", "0.2")
    event = load_event(EVENTS[0], seed_payload)
    assert invoke(event)["statusCode"] == 200
    with lock_held_by_another_process(database):
        response = invoke(load_event(EVENTS[0], seed_payload))
    assert response["statusCode"] == 409
    assert response["headers"]["Retry-After"] == "1"
    document = problem(response)
    assert "stayed locked by another process" in document["detail"]
    assert document["type"] == "urn:lambda-registry:problem:conflict"


def test_store_down_is_503_and_changes_nothing(
    invoke: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
    seed_payload: dict[str, Any],
) -> None:
    server = MotoServer().start()
    try:
        aws_env(monkeypatch, server.endpoint)
        monkeypatch.setenv("LAMBDA_REGISTRY_STORE", "dynamodb")
        payload = {**seed_payload, "table": "handler-503"}
        assert invoke(load_event(EVENTS[1], payload))["statusCode"] == 200
    finally:
        server.stop()
    response = invoke(load_event(EVENTS[1], payload))
    assert response["statusCode"] == 503
    document = problem(response)
    assert "cannot reach DynamoDB" in document["detail"]
    assert "nothing was changed" in document["detail"]
    assert "Traceback" not in response["body"]

    from runtime.stores.dynamodb import DynamoDBStore

    server = MotoServer(server.port).start()  # moto keeps its data in this process
    try:
        stored = DynamoDBStore().services("handler-503")
    finally:
        server.stop()
    assert [c.id for c in stored["app1"].containers] == ["a23nj53h3j4"]  # first call's state


class BrokenStore(MemoryStore):
    def update(self, table: str, decide: Any) -> Reconciled:
        raise RuntimeError("password=hunter2 at /internal/path.py line 7")


def test_anything_else_is_500_without_internal_details(
    capsys: pytest.CaptureFixture[str], seed_payload: dict[str, Any]
) -> None:
    registry = RegistryApp(HandlerConfig(store=StoreSpec("memory")), store=BrokenStore())
    response = registry.handle(load_event(EVENTS[2], seed_payload), Context("r-500"))
    assert response["statusCode"] == 500
    document = problem(response)
    assert "hunter2" not in response["body"] and "RuntimeError" not in response["body"]
    assert "diagnostics" not in document
    assert document["detail"] == "the request could not be completed (request id r-500)"
    (log,) = log_lines(capsys)
    assert log["level"] == "error" and log["error"] == "RuntimeError"
    assert "hunter2" in log["traceback"]  # the details are in the logs, not the response

    with pytest.raises(InternalError, match=r"internal error \(request r-500\)") as raised:
        registry.handle(copy.deepcopy(seed_payload), Context("r-500"))
    assert "hunter2" not in str(raised.value)


def test_bad_configuration_is_500_and_named_in_the_logs(
    invoke: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    seed_payload: dict[str, Any],
) -> None:
    monkeypatch.setenv("LAMBDA_REGISTRY_CREATE_TABLES", "maybe")
    response = invoke(load_event(EVENTS[0], seed_payload))
    assert response["statusCode"] == 500
    assert "misconfigured" in problem(response)["detail"]
    (log,) = log_lines(capsys)
    assert "LAMBDA_REGISTRY_CREATE_TABLES" in log["detail"]
    with pytest.raises(InternalError, match="LAMBDA_REGISTRY_CREATE_TABLES"):
        invoke(copy.deepcopy(seed_payload))


# -- diagnostics on a 200 --------------------------------------------------------------------


def payload_with_a_bad_entry(seed_payload: dict[str, Any]) -> dict[str, Any]:
    bad = {"serviceName": "evil", "predicate": "a.com\nbackend x", "containers": []}
    return {**seed_payload, "candidates": [*seed_payload["candidates"], bad]}


@pytest.mark.parametrize("path", EVENTS, ids=[p.stem for p in EVENTS])
def test_left_out_entries_reach_the_caller_in_headers(
    path: Path, invoke: Callable[..., Any], seed_payload: dict[str, Any]
) -> None:
    response = invoke(load_event(path, payload_with_a_bad_entry(seed_payload)))
    assert response["statusCode"] == 200
    assert statements(response["body"]) == SEED_CONFIG
    headers = response["headers"]
    assert headers["Lambda-Registry-Diagnostics"] == "1"
    (diagnostic,) = json.loads(headers["Lambda-Registry-Diagnostics-Detail"])
    assert diagnostic["path"] == "$.candidates[2].predicate"
    assert headers["Lambda-Registry-Diagnostics-Detail"].isascii()


def test_accept_json_puts_config_and_diagnostics_in_the_body(
    invoke: Callable[..., Any], seed_payload: dict[str, Any]
) -> None:
    event = load_event(EVENTS[1], payload_with_a_bad_entry(seed_payload))
    event["headers"]["accept"] = "application/json"
    response = invoke(event)
    assert response["statusCode"] == 200
    assert response["headers"]["Content-Type"] == "application/json"
    document = json.loads(response["body"])
    assert statements(document["config"]) == SEED_CONFIG
    assert [d["path"] for d in document["diagnostics"]] == ["$.candidates[2].predicate"]
    assert document["table"] == "astro" and document["services"] == ["app1", "app2"]


def test_detail_header_is_bounded(invoke: Callable[..., Any]) -> None:
    bad = [{"serviceName": f"bad{n}", "predicate": "x y"} for n in range(200)]
    event = load_event(EVENTS[0], {"table": "astro", "running": [], "candidates": bad})
    response = invoke(event)
    assert response["headers"]["Lambda-Registry-Diagnostics"] == "200"
    detail = response["headers"]["Lambda-Registry-Diagnostics-Detail"]
    assert len(detail) <= contract.DETAIL_LIMIT
    assert 0 < len(json.loads(detail)) < 200


# -- logs ------------------------------------------------------------------------------------


def test_one_json_log_line_per_call(
    invoke: Callable[..., Any], capsys: pytest.CaptureFixture[str], seed_payload: dict[str, Any]
) -> None:
    invoke(load_event(EVENTS[0], seed_payload), Context("11111111-2222-4333-8444-555555555555"))
    invoke(copy.deepcopy(seed_payload), Context("req-2"))
    first, second = log_lines(capsys)
    assert first["request_id"] == "11111111-2222-4333-8444-555555555555"
    assert first["event"] == "apigw-v2"  # EVENTS[0] is the HTTP API sample
    for log in (first, second):
        assert log["table"] == "astro"
        assert (log["rendered"], log["stored"], log["diagnostics"]) == (2, 2, 0)
        assert log["attempts"] == 1
        assert isinstance(log["duration_ms"], float)
        assert log["level"] == "info" and log["message"] == "compiled"
    assert first["deleted"] == 0 and second["deleted"] == 1  # app2 cleansed, then re-created
    assert second["event"] == "direct" and second["request_id"] == "req-2"


def test_event_kinds_are_told_apart(capsys: pytest.CaptureFixture[str]) -> None:
    registry = RegistryApp(HandlerConfig(store=StoreSpec("memory")))
    kinds = []
    for path in EVENTS:
        registry.handle(set_method(load_event(path), "GET"), Context())
        kinds.append(log_lines(capsys)[0]["event"])
    assert dict(zip([p.stem for p in EVENTS], kinds, strict=True)) == {
        "apigw-http-v2": "apigw-v2",
        "apigw-rest-v1": "apigw-v1",
        "function-url": "function-url",
    }


# -- configuration ---------------------------------------------------------------------------


def test_store_defaults_to_dynamodb_only_inside_lambda(
    monkeypatch: pytest.MonkeyPatch, isolated_state: Path
) -> None:
    local = HandlerConfig.from_env()
    assert local.store == StoreSpec("sqlite", isolated_state / "lambda-registry" / "state.db")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "lambda-registry")
    assert HandlerConfig.from_env().store == StoreSpec("dynamodb")
    monkeypatch.setenv("LAMBDA_REGISTRY_STORE", "memory")
    assert HandlerConfig.from_env().store == StoreSpec("memory")


def test_configuration_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    options = tmp_path / "options.json"
    options.write_text('{"bind_port": 8080, "maxconn": 100}')
    monkeypatch.setenv("LAMBDA_REGISTRY_OPTIONS_FILE", str(options))
    monkeypatch.setenv("LAMBDA_REGISTRY_CREATE_TABLES", "false")
    monkeypatch.setenv("LAMBDA_REGISTRY_MAX_ATTEMPTS", "4")
    config = HandlerConfig.from_env()
    assert (config.options.bind_port, config.options.maxconn) == (8080, 100)
    assert not config.settings.create_tables and config.settings.max_attempts == 4

    from compiler.errors import OptionsError

    monkeypatch.setenv("LAMBDA_REGISTRY_OPTIONS", "{}")
    with pytest.raises(OptionsError, match="not both"):
        HandlerConfig.from_env()
    monkeypatch.delenv("LAMBDA_REGISTRY_OPTIONS_FILE")
    monkeypatch.setenv("LAMBDA_REGISTRY_OPTIONS", '{"bind_port": 0}')
    with pytest.raises(OptionsError, match=r"\$\.bind_port"):
        HandlerConfig.from_env()
    monkeypatch.delenv("LAMBDA_REGISTRY_OPTIONS")
    monkeypatch.setenv("LAMBDA_REGISTRY_MAX_ATTEMPTS", "0")
    with pytest.raises(OptionsError, match="LAMBDA_REGISTRY_MAX_ATTEMPTS"):
        HandlerConfig.from_env()


def test_inside_lambda_with_no_store_configured_uses_dynamodb(
    moto_server: MotoServer,
    invoke: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
    seed_payload: dict[str, Any],
    isolated_state: Path,
) -> None:
    aws_env(monkeypatch, moto_server.endpoint)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "lambda-registry")
    payload = {**seed_payload, "table": "handler-default"}
    for path in EVENTS:
        response = invoke(load_event(path, payload))
        assert response["statusCode"] == 200
    assert "server jk3243j54jl" in response["body"]
    assert not (isolated_state / "lambda-registry").exists()  # nothing went to SQLite

    from runtime.stores.dynamodb import DynamoDBStore

    assert sorted(DynamoDBStore().services("handler-default")) == ["app1", "app2"]


# -- cold start ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "boto3_loaded"),
    [({}, False), ({"AWS_LAMBDA_FUNCTION_NAME": "f", "AWS_REGION": "us-east-1"}, True)],
    ids=["local", "inside-lambda"],
)
def test_import_loads_only_what_calls_need(env: dict[str, str], boto3_loaded: bool) -> None:
    code = (
        "import sys, runtime.handler\n"
        "print(sorted(m for m in ('boto3', 'docker', 'grammar.parser', 'pydantic') "
        "if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **env},
        check=True,
    )
    loaded = json.loads(result.stdout.replace("'", '"'))
    expected = ["grammar.parser", "pydantic"]
    assert loaded == (["boto3", *expected] if boto3_loaded else expected)
