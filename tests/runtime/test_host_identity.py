"""Per-host credentials in fleet mode: a host may report only as itself.

``serve --host-tokens``: real HTTP to a real server (in-process, and once as the command);
the Lambda: the documented sample events (``tests/fixtures/events``) with the caller's IAM
identity where API Gateway puts it (REST: ``requestContext.identity.userArn``; HTTP API and
function URL: ``requestContext.authorizer.iam``, as in the HTTP API's IAM sample event).
Each refusal is checked from what a user sees (status, problem, the config) and from the
store: the other host's report is unchanged.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import runtime.handler as lambda_handler
from compiler.errors import InternalError, OptionsError
from runtime.cli import main as registry_main
from runtime.cli.serve import read_host_tokens
from runtime.config import HandlerConfig
from runtime.handler import RegistryApp
from runtime.identity import session_name
from runtime.server import RegistryServer
from runtime.stores.memory import MemoryStore
from tests.support.paths import FIXTURES
from tests.support.serve import serve_process, stopped

OPERATOR_TOKEN = "operator-Token_0123456789"
HOST_A_TOKEN = "host-a-Token_0123456789"
WEB_TOKEN = "web-glob-Token_0123456789"
TABLE = "fleet"
TOKENS = f"""\
# per-host credentials: <token> <host-id> ...
{HOST_A_TOKEN} host-a

{WEB_TOKEN} web-* edge-?   # every web host, and edge-1 to edge-9
"""


def report(host: str, ip: str = "10.0.0.1", table: str = TABLE) -> dict[str, Any]:
    """``host``'s report of one container of its own service ``svc-<host>``."""
    service = f"svc-{host}"
    return {
        "table": table,
        "host": host,
        "running": [{"serviceName": service, "id": f"{host}-c1", "ip": f"{ip}:80"}],
        "candidates": [
            {
                "serviceName": service,
                "predicate": f"{host}.example.com",
                "containers": [{"id": f"{host}-c1", "ip": f"{ip}:80"}],
            }
        ],
    }


def emptied(host: str) -> dict[str, Any]:
    """A report that would take every container of ``host`` out of the config."""
    return {"table": TABLE, "host": host, "running": [], "candidates": []}


def host_less(table: str = "seed-table") -> dict[str, Any]:
    return {
        "table": table,
        "running": [{"serviceName": "app", "id": "c1", "ip": "10.0.9.1:80"}],
        "candidates": [
            {
                "serviceName": "app",
                "predicate": "app.example.com",
                "containers": [{"id": "c1", "ip": "10.0.9.1:80"}],
            }
        ],
    }


def forbidden(status: int, content_type: str, body: str | bytes) -> str:
    """The detail of a 403 ``forbidden`` problem (failing on anything else)."""
    assert status == 403, body
    assert content_type == "application/problem+json"
    document = json.loads(body)
    assert document["type"] == "urn:lambda-registry:problem:forbidden"
    assert document["status"] == 403
    return str(document["detail"])


# -- serve --host-tokens ------------------------------------------------------------------------


def private_file(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


@pytest.fixture
def fleet_app() -> RegistryApp:
    return RegistryApp(HandlerConfig.from_env({"LAMBDA_REGISTRY_STORE": "memory"}), MemoryStore())


@pytest.fixture
def fleet_server(fleet_app: RegistryApp, tmp_path: Path) -> Iterator[RegistryServer]:
    """serve with the operator's token and the host tokens above, read from their file."""
    tokens = private_file(tmp_path / "host.tokens", TOKENS)
    server = RegistryServer(
        "127.0.0.1",
        0,
        fleet_app,
        token=OPERATOR_TOKEN,
        host_tokens=read_host_tokens(tokens),
        log=io.StringIO(),
    ).start()
    try:
        yield server
    finally:
        server.stop()


def call(
    server: RegistryServer | str, token: str, payload: Any = None, table: str = TABLE
) -> tuple[int, str, str]:
    """POST ``payload`` (or, without one, GET the table's config) with ``token``: status,
    content type, body."""
    url = server if isinstance(server, str) else server.url
    host, _, port = url.removeprefix("http://").rstrip("/").rpartition(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    headers = {"Authorization": f"Bearer {token}"}
    try:
        if payload is None:
            connection.request("GET", f"/?table={table}", headers=headers)
        else:
            headers["Content-Type"] = "application/json"
            connection.request("POST", "/", body=json.dumps(payload), headers=headers)
        answer = connection.getresponse()
        return answer.status, answer.getheader("Content-Type", ""), answer.read().decode()
    finally:
        connection.close()


def test_a_host_token_reports_as_its_host_and_never_as_another(
    fleet_server: RegistryServer, fleet_app: RegistryApp
) -> None:
    assert call(fleet_server, OPERATOR_TOKEN, report("host-b", "10.0.2.1"))[0] == 200
    before = fleet_app.store.hosts(TABLE)["host-b"]

    status, kind, body = call(fleet_server, HOST_A_TOKEN, emptied("host-b"))
    detail = forbidden(status, kind, body)
    assert "may report only as host 'host-a'" in detail
    assert "'host-b'" in detail
    assert HOST_A_TOKEN not in body
    assert fleet_app.store.hosts(TABLE)["host-b"] == before

    # Its own report is taken, and host-b's containers are still in the config it reads.
    assert call(fleet_server, HOST_A_TOKEN, report("host-a", "10.0.1.1"))[0] == 200
    status, _, config = call(fleet_server, HOST_A_TOKEN)
    assert status == 200
    assert "10.0.2.1:80" in config and "10.0.1.1:80" in config
    assert fleet_app.store.hosts(TABLE)["host-b"] == before


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("web-1", True),
        ("web-eu-2", True),
        ("edge-7", True),
        ("web", False),  # 'web-*' needs the dash
        ("edge-10", False),  # '?' is one character
        ("WEB-1", False),  # case counts
        ("api-1", False),
    ],
)
def test_a_token_with_host_globs_reports_as_the_hosts_they_match(
    fleet_server: RegistryServer, fleet_app: RegistryApp, host: str, allowed: bool
) -> None:
    status, kind, body = call(fleet_server, WEB_TOKEN, report(host))
    if allowed:
        assert status == 200, body
        assert host in fleet_app.store.hosts(TABLE)
    else:
        assert "may report only as host 'web-*' or 'edge-?'" in forbidden(status, kind, body)
        assert fleet_app.store.hosts(TABLE) == {}


def test_a_host_less_payload_needs_the_operators_token(
    fleet_server: RegistryServer, fleet_app: RegistryApp
) -> None:
    for token in (HOST_A_TOKEN, WEB_TOKEN):
        status, kind, body = call(fleet_server, token, host_less())
        assert "rewrites the whole table (seed mode)" in forbidden(status, kind, body)
    assert fleet_app.store.services("seed-table") == {}
    assert call(fleet_server, HOST_A_TOKEN, table="seed-table")[0] == 404  # nothing there

    assert call(fleet_server, OPERATOR_TOKEN, host_less())[0] == 200
    assert sorted(fleet_app.store.services("seed-table")) == ["app"]
    status, _, config = call(fleet_server, HOST_A_TOKEN, table="seed-table")
    assert status == 200 and "10.0.9.1:80" in config


def test_the_operators_token_reports_as_any_host(
    fleet_server: RegistryServer, fleet_app: RegistryApp
) -> None:
    for host in ("host-a", "web-1", "anything-else"):
        assert call(fleet_server, OPERATOR_TOKEN, report(host))[0] == 200
    assert sorted(fleet_app.store.hosts(TABLE)) == ["anything-else", "host-a", "web-1"]


@pytest.mark.parametrize(
    "token", ["not-a-token", HOST_A_TOKEN + "x", HOST_A_TOKEN[:-1], "host-a", "web-*"]
)
def test_with_host_tokens_any_other_token_is_still_a_401(
    fleet_server: RegistryServer, fleet_app: RegistryApp, token: str
) -> None:
    status, _, body = call(fleet_server, token, report("host-a"))
    assert status == 401
    assert "unauthorized" in json.loads(body)["type"]
    assert fleet_app.store.hosts(TABLE) == {}


def test_host_tokens_alone_let_serve_listen_beyond_loopback(
    fleet_app: RegistryApp, tmp_path: Path
) -> None:
    tokens = read_host_tokens(private_file(tmp_path / "host.tokens", TOKENS))
    with pytest.raises(OptionsError, match="--host-tokens"):
        RegistryServer("0.0.0.0", 0, fleet_app)
    server = RegistryServer("0.0.0.0", 0, fleet_app, host_tokens=tokens)
    server.httpd.server_close()


def test_serve_command_with_host_tokens_keeps_each_hosts_report(tmp_path: Path) -> None:
    """The command end to end: its flags, a SQLite store, ``state show`` afterwards."""
    store = f"sqlite:{tmp_path / 'state.db'}"
    token_file = private_file(tmp_path / "operator.token", OPERATOR_TOKEN + "\n")
    tokens = private_file(tmp_path / "host.tokens", TOKENS)
    process = serve_process(store, "--token-file", str(token_file), "--host-tokens", str(tokens))
    try:
        assert process.stderr is not None
        announced = json.loads(process.stderr.readline())
        assert (announced["auth"], announced["host_tokens"]) == ("bearer", 2)
        url = announced["url"]
        assert call(url, OPERATOR_TOKEN, report("host-b", "10.0.2.1"))[0] == 200
        forbidden(*call(url, HOST_A_TOKEN, emptied("host-b")))
        forbidden(*call(url, HOST_A_TOKEN, host_less(TABLE)))
        assert call(url, HOST_A_TOKEN, report("host-a", "10.0.1.1"))[0] == 200
    finally:
        process.send_signal(signal.SIGTERM)
        stopped(process)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert registry_main(["state", "show", TABLE, "--store", store, "--format", "json"]) == 0
    hosts = {row["host"]: row for row in json.loads(out.getvalue())["hosts"]}
    assert sorted(hosts) == ["host-a", "host-b"]
    assert (hosts["host-b"]["containers"], hosts["host-b"]["seq"]) == (1, 1)  # as it reported
    assert HOST_A_TOKEN not in process.stderr.read()


@pytest.mark.parametrize(
    ("text", "where", "words"),
    [
        pytest.param(f"{HOST_A_TOKEN}\n", ":1:", "a token without host ids", id="no-host"),
        pytest.param(
            f"# ok\n{HOST_A_TOKEN} host-a\n{HOST_A_TOKEN} host-b\n",
            ":3:",
            "the one of line 2 too",
            id="duplicate",
        ),
        pytest.param(
            f"{HOST_A_TOKEN} host-a,host-b\n", ":1:", "is not a host id or glob", id="comma"
        ),
        pytest.param(
            f"{HOST_A_TOKEN} {{session}}\n", ":1:", "is not a host id or glob", id="session"
        ),
        pytest.param("\n\ntøken-1 host-a\n", ":3:", "printable ASCII", id="not-ascii"),
        pytest.param("# only a comment\n\n", "--host-tokens", "holds no token", id="empty"),
        pytest.param(
            f"{OPERATOR_TOKEN} host-a\n", "--host-tokens", "the operator's token too",
            id="operator-token",
        ),
    ],
)  # fmt: skip
def test_serve_refuses_a_bad_host_tokens_file(
    never_serves: None,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    text: str,
    where: str,
    words: str,
) -> None:
    tokens = private_file(tmp_path / "host.tokens", text)
    operator = private_file(tmp_path / "operator.token", OPERATOR_TOKEN + "\n")
    argv = ["serve", "--listen", "127.0.0.1:0", "--token-file", str(operator)]
    assert registry_main([*argv, "--host-tokens", str(tokens)]) == 2
    err = capsys.readouterr().err
    if where.startswith(":"):
        assert f"{tokens}{where}" in err  # file:line
    else:
        assert where in err
    assert words in err
    assert HOST_A_TOKEN not in err and OPERATOR_TOKEN not in err
    assert "Traceback" not in err


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604], ids=oct)
def test_serve_refuses_a_host_tokens_file_others_can_read(
    never_serves: None, capsys: pytest.CaptureFixture[str], tmp_path: Path, mode: int
) -> None:
    tokens = private_file(tmp_path / "host.tokens", TOKENS, mode)
    assert registry_main(["serve", "--listen", "127.0.0.1:0", "--host-tokens", str(tokens)]) == 2
    err = capsys.readouterr().err
    assert f"--host-tokens: {tokens} is open to others (mode {mode:04o})" in err
    assert f"chmod 600 {tokens}" in err
    assert HOST_A_TOKEN not in err


# -- the Lambda: IAM callers -------------------------------------------------------------------

ACCOUNT = "123456789012"
INSTANCE_ROLE = f"arn:aws:sts::{ACCOUNT}:assumed-role/ecsInstanceRole"
DEPLOYER = f"arn:aws:iam::{ACCOUNT}:user/deployer"
OPERATOR_ROLE = f"arn:aws:sts::{ACCOUNT}:assumed-role/registry-operator/alice"
IDENTITIES = {
    f"{INSTANCE_ROLE}/*": ["{session}"],
    DEPLOYER: ["web-*"],
    f"arn:aws:sts::{ACCOUNT}:assumed-role/registry-operator/*": ["*"],
}
EVENTS = {path.stem: path for path in sorted((FIXTURES / "events").glob("*.json"))}


def event(shape: str, caller: str | None, payload: Any = None) -> dict[str, Any]:
    """The sample event of ``shape`` (POST ``payload``, or GET the table without one), from
    ``caller`` as IAM authorisation gives it, or without an IAM identity (``None``)."""
    data: dict[str, Any] = json.loads(EVENTS[shape].read_text())
    context = data["requestContext"]
    if payload is None:
        data["body"] = None
        data["queryStringParameters"] = {"table": TABLE}
        if "httpMethod" in data:
            data["httpMethod"] = "GET"
        else:
            context["http"]["method"] = "GET"
    else:
        data["body"] = json.dumps(payload)
    if shape == "apigw-rest-v1":
        # REST API, AWS_IAM: the identity's members are the caller's (null without IAM).
        context["identity"].update(
            userArn=caller,
            caller="AROAEXAMPLE:i-0aaa" if caller else None,
            accountId=ACCOUNT if caller else None,
            user="AROAEXAMPLE:i-0aaa" if caller else None,
        )
    elif caller is None:
        context.pop("authorizer", None)  # function URL with auth NONE; the HTTP API's JWT
        if shape == "apigw-http-v2":
            context["authorizer"] = {"jwt": {"claims": {"sub": "x"}, "scopes": None}}
    else:
        context["authorizer"] = {
            "iam": {
                "accessKey": "ASIAEXAMPLE",
                "accountId": ACCOUNT,
                "callerId": "AROAEXAMPLE:i-0aaa",
                "cognitoIdentity": None,
                "principalOrgId": None,
                "userArn": caller,
                "userId": "AROAEXAMPLE:i-0aaa",
            }
        }
    return data


def problem_of(answer: dict[str, Any]) -> str:
    return forbidden(answer["statusCode"], answer["headers"]["Content-Type"], answer["body"])


@pytest.fixture
def iam_app() -> RegistryApp:
    env = {
        "LAMBDA_REGISTRY_STORE": "memory",
        "LAMBDA_REGISTRY_HOST_IDENTITIES": json.dumps(IDENTITIES),
    }
    return RegistryApp(HandlerConfig.from_env(env), MemoryStore())


SHAPES = pytest.mark.parametrize("shape", sorted(EVENTS))


@SHAPES
def test_an_instance_role_reports_as_its_own_instance_only(
    iam_app: RegistryApp, shape: str
) -> None:
    other = iam_app.handle(event(shape, f"{INSTANCE_ROLE}/i-0bbb", report("i-0bbb", "10.0.2.1")))
    assert other["statusCode"] == 200, other["body"]
    before = iam_app.store.hosts(TABLE)["i-0bbb"]

    answer = iam_app.handle(event(shape, f"{INSTANCE_ROLE}/i-0aaa", emptied("i-0bbb")))
    detail = problem_of(answer)
    assert f"the caller {INSTANCE_ROLE}/i-0aaa may report only as host 'i-0aaa'" in detail
    assert iam_app.store.hosts(TABLE)["i-0bbb"] == before

    own = iam_app.handle(event(shape, f"{INSTANCE_ROLE}/i-0aaa", report("i-0aaa", "10.0.1.1")))
    assert own["statusCode"] == 200, own["body"]
    read = iam_app.handle(event(shape, f"{INSTANCE_ROLE}/i-0aaa"))
    assert read["statusCode"] == 200
    assert "10.0.2.1:80" in read["body"] and "10.0.1.1:80" in read["body"]
    assert iam_app.store.hosts(TABLE)["i-0bbb"] == before


@SHAPES
@pytest.mark.parametrize(
    ("caller", "host", "allowed"),
    [
        (DEPLOYER, "web-1", True),
        (DEPLOYER, "api-1", False),
        (DEPLOYER + "2", "web-1", False),  # another user: no entry matches
        (OPERATOR_ROLE, "anything", True),
        # Another role's session named like the host: only the instance role's entry binds.
        (f"arn:aws:sts::{ACCOUNT}:assumed-role/otherRole/i-0aaa", "i-0aaa", False),
        ("arn:aws:sts::999999999999:assumed-role/ecsInstanceRole/i-0aaa", "i-0aaa", False),
    ],
)
def test_callers_report_as_the_hosts_their_arn_maps_to(
    iam_app: RegistryApp, shape: str, caller: str, host: str, allowed: bool
) -> None:
    answer = iam_app.handle(event(shape, caller, report(host)))
    if allowed:
        assert answer["statusCode"] == 200, answer["body"]
        assert list(iam_app.store.hosts(TABLE)) == [host]
    else:
        assert f"the caller {caller} may report only as" in problem_of(answer)
        assert iam_app.store.hosts(TABLE) == {}


@SHAPES
def test_without_an_iam_identity_every_call_is_refused(iam_app: RegistryApp, shape: str) -> None:
    assert iam_app.handle(event(shape, OPERATOR_ROLE, report("i-0bbb")))["statusCode"] == 200
    before = iam_app.store.hosts(TABLE)
    for payload in (emptied("i-0bbb"), host_less(), None):
        detail = problem_of(iam_app.handle(event(shape, None, payload)))
        assert "LAMBDA_REGISTRY_HOST_IDENTITIES" in detail and "IAM" in detail
    assert iam_app.store.hosts(TABLE) == before
    assert iam_app.store.services("seed-table") == {}


@SHAPES
def test_a_host_less_payload_needs_a_caller_mapped_to_every_host(
    iam_app: RegistryApp, shape: str
) -> None:
    for caller in (f"{INSTANCE_ROLE}/i-0aaa", DEPLOYER):
        detail = problem_of(iam_app.handle(event(shape, caller, host_less())))
        assert "rewrites the whole table (seed mode)" in detail
    assert iam_app.store.services("seed-table") == {}
    answer = iam_app.handle(event(shape, OPERATOR_ROLE, host_less()))
    assert answer["statusCode"] == 200, answer["body"]
    assert sorted(iam_app.store.services("seed-table")) == ["app"]


def test_a_direct_invocation_is_the_operators(iam_app: RegistryApp) -> None:
    """No HTTP envelope, no caller: IAM on lambda:InvokeFunction is that boundary."""
    assert "10.0.2.1:80" in iam_app.handle(report("i-0bbb", "10.0.2.1"))
    assert "10.0.9.1:80" in iam_app.handle(host_less())


def test_without_the_map_every_caller_is_the_operator(fleet_app: RegistryApp) -> None:
    for shape in sorted(EVENTS):
        answer = fleet_app.handle(event(shape, None, report(f"host-{shape}")))
        assert answer["statusCode"] == 200, answer["body"]


@pytest.mark.parametrize(
    ("arn", "session"),
    [
        (f"{INSTANCE_ROLE}/i-0abc", "i-0abc"),
        (f"arn:aws-cn:sts::{ACCOUNT}:assumed-role/role.name+x/me@corp.example", "me@corp.example"),
        (f"arn:aws:iam::{ACCOUNT}:user/deployer", None),
        (f"arn:aws:iam::{ACCOUNT}:role/ecsInstanceRole", None),
        (f"{INSTANCE_ROLE}/x", None),  # a session name has 2 to 64 characters
        (f"{INSTANCE_ROLE}/i-0abc*", None),  # never a glob
        (f"{INSTANCE_ROLE}/a/b", None),
    ],
)  # fmt: skip
def test_session_name(arn: str, session: str | None) -> None:
    assert session_name(arn) == session


@pytest.mark.parametrize(
    ("value", "where"),
    [
        pytest.param("{", "LAMBDA_REGISTRY_HOST_IDENTITIES:1:2", id="not-json"),
        pytest.param('["a"]', "LAMBDA_REGISTRY_HOST_IDENTITIES: $", id="list"),
        pytest.param(
            '{"arn:aws:iam::1:user/a": "web-1"}',
            'LAMBDA_REGISTRY_HOST_IDENTITIES: $["arn:aws:iam::1:user/a"]',
            id="value-not-a-list",
        ),
        pytest.param(
            '{"arn:aws:iam::1:user/a": ["web-1", 7]}',
            'LAMBDA_REGISTRY_HOST_IDENTITIES: $["arn:aws:iam::1:user/a"][1]',
            id="item-not-a-string",
        ),
        pytest.param(
            '{"arn:aws:sts::1:assumed-role/r/*": ["{instance}"]}',
            'LAMBDA_REGISTRY_HOST_IDENTITIES: $["arn:aws:sts::1:assumed-role/r/*"][0]',
            id="unknown-placeholder",
        ),
        pytest.param(
            '{"a": ["x"], "a": ["*"]}', "LAMBDA_REGISTRY_HOST_IDENTITIES: $.a", id="key-twice"
        ),
        pytest.param('{"": ["x"]}', "LAMBDA_REGISTRY_HOST_IDENTITIES: $", id="empty-arn"),
    ],
)
def test_a_malformed_map_is_a_startup_error_naming_the_variable_and_path(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    value: str,
    where: str,
) -> None:
    env = {"LAMBDA_REGISTRY_STORE": "memory", "LAMBDA_REGISTRY_HOST_IDENTITIES": value}
    with pytest.raises(OptionsError) as raised:
        HandlerConfig.from_env(env)
    assert str(raised.value).startswith(where), str(raised.value)

    # Through the entry point: every call fails, and the logs name the variable.
    for name, setting in env.items():
        monkeypatch.setenv(name, setting)
    lambda_handler.reset()
    try:
        answer = lambda_handler.handler(event("function-url", OPERATOR_ROLE, report("h-1")))
        assert answer["statusCode"] == 500
        with pytest.raises(InternalError, match="LAMBDA_REGISTRY_HOST_IDENTITIES"):
            lambda_handler.handler(report("h-1"))
    finally:
        lambda_handler.reset()
    logged = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    assert logged[0]["message"] == "misconfigured"
    assert where in logged[0]["detail"]


def test_the_map_from_a_file(tmp_path: Path) -> None:
    good = tmp_path / "identities.json"
    good.write_text(json.dumps(IDENTITIES))
    env = {"LAMBDA_REGISTRY_STORE": "memory", "LAMBDA_REGISTRY_HOST_IDENTITIES_FILE": str(good)}
    app = RegistryApp(HandlerConfig.from_env(env))
    answer = app.handle(event("function-url", f"{INSTANCE_ROLE}/i-0aaa", emptied("i-0bbb")))
    assert "may report only as host 'i-0aaa'" in problem_of(answer)

    bad = tmp_path / "bad.json"
    bad.write_text('{"a": 1}')
    env["LAMBDA_REGISTRY_HOST_IDENTITIES_FILE"] = str(bad)
    with pytest.raises(OptionsError, match=rf"^LAMBDA_REGISTRY_HOST_IDENTITIES_FILE={bad}: \$\.a"):
        HandlerConfig.from_env(env)
    env["LAMBDA_REGISTRY_HOST_IDENTITIES"] = "{}"
    with pytest.raises(OptionsError, match="not both"):
        HandlerConfig.from_env(env)
