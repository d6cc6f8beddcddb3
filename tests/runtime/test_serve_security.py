"""``lambda-registry serve`` on a private network: bearer tokens, loopback-only without one,
TLS, the body limit, timeouts against slow clients, the connection limit and the request log.

Real servers on loopback ports the kernel picks (port 0); clients are raw sockets where the
test needs to misbehave, Cosmonaut's ``RemoteRegistry`` otherwise.
"""

from __future__ import annotations

import http.client
import io
import json
import select
import signal
import socket
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cosmonaut.errors import RegistryError
from cosmonaut.registry.auth import BearerToken
from cosmonaut.registry.remote import RemoteRegistry
from runtime import contract
from runtime.cli import main as registry_main
from runtime.config import HandlerConfig
from runtime.handler import RegistryApp
from runtime.server import RegistryServer
from runtime.server_io import is_loopback
from tests.support.paths import ROOT
from tests.support.serve import serve_process, stopped
from tests.support.tls_certs import make_cert

TOKEN = "s3cret-Token_0123456789"


def payload() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((ROOT / "examples" / "mixed.json").read_text())
    return data


class Spy:
    """The real handler, counting what reaches it."""

    def __init__(self) -> None:
        self.app = RegistryApp(HandlerConfig.from_env({"LAMBDA_REGISTRY_STORE": "memory"}))
        self.calls = 0

    def handle(self, event: Any, context: Any = None) -> Any:
        self.calls += 1
        return self.app.handle(event, context)


@pytest.fixture
def spy() -> Spy:
    return Spy()


@pytest.fixture
def log() -> io.StringIO:
    return io.StringIO()


@pytest.fixture
def guarded(spy: Spy, log: io.StringIO) -> Iterator[RegistryServer]:
    """A server with a token, small limits and a short timeout."""
    server = RegistryServer(
        "127.0.0.1",
        0,
        spy,
        token=TOKEN,
        max_body=64 * 1024,
        timeout=0.5,
        header_timeout=0.5,
        log=log,
    ).start()
    try:
        yield server
    finally:
        server.stop()


def connect(server: RegistryServer, source: str | None = None) -> socket.socket:
    """A connection to ``server``, from the loopback address ``source`` if given (another
    client, as the server counts them)."""
    return socket.create_connection(
        server.address, timeout=10, source_address=(source, 0) if source else None
    )


def json_post(server: RegistryServer, document: Any, extra: bytes = b"") -> bytes:
    """A request as Cosmonaut sends it: JSON, to the server's own address."""
    body = json.dumps(document).encode()
    host, port = server.address
    return (
        (
            f"POST / HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n"
        ).encode()
        + extra
        + b"\r\n"
        + body
    )


def until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (a test failure, by
    timeout, if it never does)."""
    received = b""
    while True:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            return received
        if not data:
            return received
        received += data


def parse(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


def problem_slug(body: bytes) -> str:
    document = json.loads(body)
    assert document["type"].startswith(contract.PROBLEM_TYPE)
    return str(document["type"][len(contract.PROBLEM_TYPE) :])


def log_lines(log: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.getvalue().splitlines()]


# -- authentication ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("authorization", "challenge"),
    [
        pytest.param(None, contract.BEARER_CHALLENGE, id="none"),
        pytest.param("Bearer wrong-token", contract.BEARER_INVALID, id="wrong"),
        pytest.param(f"Bearer {TOKEN}x", contract.BEARER_INVALID, id="longer"),
        # The same length as the real token: a check of the length alone lets these in.
        pytest.param(f"Bearer {TOKEN[:-1]}!", contract.BEARER_INVALID, id="last-character"),
        pytest.param(f"Bearer {TOKEN.swapcase()}", contract.BEARER_INVALID, id="other-case"),
        pytest.param(f"Bearer {TOKEN[::-1]}", contract.BEARER_INVALID, id="same-characters"),
        # A part of the token: a check that one starts or ends with the other lets these in.
        pytest.param(f"Bearer {TOKEN[:-1]}", contract.BEARER_INVALID, id="prefix"),
        pytest.param(f"Bearer {TOKEN[1:]}", contract.BEARER_INVALID, id="suffix"),
        pytest.param(f"Bearer x{TOKEN}", contract.BEARER_INVALID, id="ends-with-the-token"),
        pytest.param(f"Basic {TOKEN}", contract.BEARER_CHALLENGE, id="basic"),
    ],
)
def test_a_request_without_the_token_gets_401_and_reaches_nothing(
    guarded: RegistryServer, spy: Spy, authorization: str | None, challenge: str
) -> None:
    body = json.dumps(payload()).encode()
    head = f"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
    if authorization:
        head += f"Authorization: {authorization}\r\n"
    with connect(guarded) as sock:
        sock.sendall(head.encode() + b"\r\n")  # the body is never needed
        status, headers, answer = parse(until_closed(sock))
    assert status == 401
    assert headers["content-type"] == contract.PROBLEM_CONTENT_TYPE
    assert headers["www-authenticate"] == challenge
    assert problem_slug(answer) == "unauthorized"
    assert spy.calls == 0


def test_the_right_token_passes_and_the_handler_never_sees_it(
    guarded: RegistryServer, spy: Spy
) -> None:
    seen: list[dict[str, str]] = []
    handle = spy.handle

    def recording(event: Any, context: Any = None) -> Any:
        seen.append(dict(event.headers))  # serve hands the app an HttpRequest
        return handle(event, context)

    spy.handle = recording  # type: ignore[method-assign]
    result = RemoteRegistry(guarded.url, auth=BearerToken(TOKEN)).compile(payload())
    assert "frontend http" in result.text
    assert spy.calls == 1
    assert "authorization" not in seen[0]


def test_remote_registry_without_or_with_a_wrong_token_is_refused_once(
    guarded: RegistryServer, spy: Spy
) -> None:
    for auth in (None, BearerToken("not-the-token")):
        remote = RemoteRegistry(guarded.url, auth=auth, retries=3, backoff=0.01)
        with pytest.raises(RegistryError, match="HTTP 401"):
            remote.compile(payload())
        assert remote.attempts == 1  # a 401 is not retried
    assert spy.calls == 0


def test_bearer_credentials_and_bearer_token_are_inverses() -> None:
    assert contract.bearer_token(contract.bearer_credentials(TOKEN)) == TOKEN
    assert contract.bearer_token(f"bearer   {TOKEN}  ") == TOKEN  # scheme case-insensitive
    for value in (None, "", "Bearer", "Bearer ", f"Basic {TOKEN}", "Bearer a b"):
        assert contract.bearer_token(value) is None


def test_serve_with_a_token_changes_nothing_for_a_request_without_it(tmp_path: Path) -> None:
    store = f"sqlite:{tmp_path / 'state.db'}"
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    process = serve_process(store, "--token-file", str(token_file))
    try:
        assert process.stderr is not None
        announced = json.loads(process.stderr.readline())
        assert announced["auth"] == "bearer"
        url = announced["url"]
        for auth in (None, BearerToken("wrong")):
            with pytest.raises(RegistryError, match="HTTP 401"):
                RemoteRegistry(url, auth=auth, retries=0).compile(payload())
        assert _stored(store) == []
        RemoteRegistry(url, auth=BearerToken(TOKEN)).compile(payload())
        assert _stored(store) != []
    finally:
        # docker stop: serve closes, its connections' threads done (and their log lines).
        process.send_signal(signal.SIGTERM)
        stopped(process)
    assert process.returncode == 0  # a clean stop, not SIGTERM's default death
    requests = [json.loads(line) for line in process.stderr.read().splitlines()]
    assert [r["status"] for r in requests if r.get("event") == "request"] == [401, 401, 200]
    assert TOKEN not in json.dumps(requests)


def _stored(store: str) -> list[str]:
    import contextlib

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert (
            registry_main(["state", "show", "web-eu-1", "--store", store, "--format", "json"]) == 0
        )
    return [service["name"] for service in json.loads(out.getvalue())["services"]]


# -- refusing to start ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "listen",
    [
        pytest.param("0.0.0.0:0", id="any-ipv4"),
        pytest.param(":0", id="empty-host"),
        pytest.param("[::]:0", id="any-ipv6"),
        pytest.param("192.0.2.10:0", id="public"),
        pytest.param("registry.example:0", id="name"),
    ],
)
def test_serve_refuses_a_public_address_without_a_token(
    never_serves: None, capsys: pytest.CaptureFixture[str], listen: str
) -> None:
    assert registry_main(["serve", "--listen", listen]) == 2
    err = capsys.readouterr().err
    assert "--listen" in err
    assert "--token-file" in err
    assert "LAMBDA_REGISTRY_TOKEN" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.3.4.5", True),
        ("localhost", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("0.0.0.0", False),
        ("::", False),
        ("", False),
        ("10.0.0.1", False),
        ("localhost.example", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(
    ("args", "flag", "words"),
    [
        pytest.param(
            ["--tls-cert", "{missing}", "--tls-key", "{key}"], "--tls-cert", "cannot read",
            id="missing-cert",
        ),
        pytest.param(
            ["--tls-cert", "{cert}", "--tls-key", "{missing}"], "--tls-key", "cannot read",
            id="missing-key",
        ),
        pytest.param(["--tls-cert", "{cert}"], "--tls-key", "go together", id="cert-alone"),
        pytest.param(
            ["--tls-cert", "{garbage}", "--tls-key", "{key}"], "--tls-cert", "not a PEM",
            id="garbage",
        ),
        pytest.param(
            ["--tls-cert", "{cert}", "--tls-key", "{other_key}"], "--tls-cert", "not a PEM",
            id="wrong-key",
        ),
        pytest.param(["--token-file", "{missing}"], "--token-file", "cannot read", id="no-token"),
        pytest.param(["--token-file", "{empty}"], "--token-file", "holds no token", id="empty"),
        pytest.param(["--token-file", "{shared}"], "--token-file", "chmod 600", id="too-open"),
    ],
)  # fmt: skip
def test_serve_refuses_bad_tls_and_token_files(
    never_serves: None,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    args: list[str],
    flag: str,
    words: str,
) -> None:
    cert, key = make_cert(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    files = {
        "cert": cert,
        "key": key,
        "other_key": make_cert(other)[1],
        "missing": tmp_path / "missing.pem",
        "garbage": tmp_path / "garbage.pem",
        "empty": tmp_path / "empty",
        "shared": tmp_path / "shared",
    }
    files["garbage"].write_text("not a certificate\n")
    files["empty"].write_text("\n")
    files["empty"].chmod(0o600)
    files["shared"].write_text(TOKEN + "\n")
    files["shared"].chmod(0o644)
    argv = ["serve", "--listen", "127.0.0.1:0", *(a.format(**files) for a in args)]
    assert registry_main(argv) == 2
    err = capsys.readouterr().err
    assert flag in err
    assert words in err
    assert "Traceback" not in err


@pytest.mark.parametrize("mode", [0o640, 0o644, 0o604, 0o620, 0o660, 0o707], ids=oct)
def test_serve_refuses_a_token_file_others_can_read_or_write(
    never_serves: None, capsys: pytest.CaptureFixture[str], tmp_path: Path, mode: int
) -> None:
    """As ssh refuses such a private key: the error names the file and the fix."""
    token_file = tmp_path / "registry.token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(mode)
    assert registry_main(["serve", "--listen", "127.0.0.1:0", "--token-file", str(token_file)]) == 2
    err = capsys.readouterr().err
    assert f"--token-file: {token_file} is open to others (mode {mode:04o})" in err
    assert f"run 'chmod 600 {token_file}'" in err
    assert TOKEN not in err
    assert "Traceback" not in err


@pytest.mark.parametrize("mode", [0o600, 0o400], ids=oct)
def test_serve_takes_a_token_file_only_its_owner_can_access(tmp_path: Path, mode: int) -> None:
    from runtime.cli.serve import read_token

    token_file = tmp_path / "registry.token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(mode)
    assert read_token(token_file, {}) == TOKEN


# -- TLS ----------------------------------------------------------------------------------------


def test_tls_serve_answers_over_https(
    tmp_path: Path, spy: Spy, log: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = make_cert(tmp_path)
    server = RegistryServer(
        "127.0.0.1", 0, spy, token=TOKEN, tls_cert=cert, tls_key=key, log=log, timeout=5
    ).start()
    try:
        assert server.url.startswith("https://127.0.0.1:")
        # Cosmonaut trusts the self-signed certificate the standard way.
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        result = RemoteRegistry(server.url, auth=BearerToken(TOKEN)).compile(payload())
        assert "frontend http" in result.text
        # Plain HTTP on the TLS port: the handshake fails, the server logs one line and
        # goes on serving.
        with connect(server) as sock:
            sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert b"HTTP/1.1" not in until_closed(sock)
    finally:
        server.stop()
    assert spy.calls == 1
    events = [line["event"] for line in log_lines(log)]
    assert events.count("request") == 1
    assert "connection-error" in events


# -- limits -------------------------------------------------------------------------------------


def test_a_body_over_the_limit_gets_413_without_being_read(
    guarded: RegistryServer, spy: Spy
) -> None:
    with connect(guarded) as sock:
        # A gigabyte announced, and not one byte of it sent: the answer cannot wait for it.
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n"
            + f"Authorization: Bearer {TOKEN}\r\nExpect: 100-continue\r\n\r\n".encode()
        )
        raw = until_closed(sock)
    assert raw.startswith(b"HTTP/1.1 413 ")  # no "100 Continue" first
    _, headers, body = parse(raw)
    assert headers["connection"] == "close"
    assert problem_slug(body) == "payload-too-large"
    assert json.loads(body)["detail"] == "the body is 1000000000 bytes; the limit is 65536"
    assert spy.calls == 0


def test_a_chunked_body_is_counted_and_cut_at_the_limit(guarded: RegistryServer, spy: Spy) -> None:
    head = (
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        f"Authorization: Bearer {TOKEN}\r\nAccept: application/json\r\n\r\n"
    ).encode()
    with connect(guarded) as sock:
        sock.sendall(head + b"%x\r\n" % (1 << 30))  # a 1 GiB chunk announced, never sent
        status, _, body = parse(until_closed(sock))
    assert (status, problem_slug(body)) == (413, "payload-too-large")
    assert spy.calls == 0

    data = json.dumps(payload()).encode()
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (data[:100], data[100:]))
    with connect(guarded) as sock:
        sock.sendall(head + chunked + b"0\r\n\r\n")
        response = _read_one(sock)
    assert response.status == 200
    assert "frontend http" in json.loads(response.read())["config"]
    assert spy.calls == 1


def _read_one(sock: socket.socket) -> Any:
    import http.client

    response = http.client.HTTPResponse(sock, method="POST")
    response.begin()
    return response


@pytest.mark.parametrize(
    ("request_head", "status", "slug"),
    [
        pytest.param(b"FOO / HTTP/1.1\r\nHost: x\r\n\r\n", 501, "not-implemented", id="method"),
        pytest.param(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 12, 13\r\n",
            400,
            "bad-request",
            id="two-lengths",
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n",
            501,
            "not-implemented",
            id="gzip",
        ),
    ],
)
def test_malformed_requests_get_a_problem_and_a_closed_connection(
    guarded: RegistryServer, spy: Spy, request_head: bytes, status: int, slug: str
) -> None:
    if b"Content-Length: 12" in request_head or b"gzip" in request_head:
        request_head += f"Authorization: Bearer {TOKEN}\r\n\r\n".encode()
    with connect(guarded) as sock:
        sock.sendall(request_head)
        got, headers, body = parse(until_closed(sock))
    assert (got, problem_slug(body)) == (status, slug)
    assert headers["content-type"] == contract.PROBLEM_CONTENT_TYPE
    assert spy.calls == 0


def test_a_slow_client_is_cut_off(guarded: RegistryServer, log: io.StringIO) -> None:
    """Each byte comes well within the socket timeout (0.5 s); only the request's deadline
    as a whole stops it."""
    with connect(guarded) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        closed = False
        for _ in range(400):  # up to 20 s of dripping, 40 times the timeout
            try:
                sock.sendall(b"a")
            except OSError:
                closed = True
                break
            readable, _, _ = select.select([sock], [], [], 0.05)
            if readable:
                closed = until_closed(sock) == b""
                break
    assert closed, "the server kept a dripping client"
    assert any(line["event"] == "timeout" for line in log_lines(log))
    # and the server goes on serving
    assert RemoteRegistry(guarded.url, auth=BearerToken(TOKEN)).compile(payload()).text


def test_an_idle_connection_is_closed(guarded: RegistryServer) -> None:
    with connect(guarded) as sock:
        assert until_closed(sock) == b""  # nothing sent: closed after the timeout


def test_connections_beyond_the_limit_are_closed(spy: Spy, log: io.StringIO) -> None:
    server = RegistryServer("127.0.0.1", 0, spy, max_connections=1, timeout=5, log=log).start()
    try:
        # Another client's connection: refused because the server is full, not for its own.
        with connect(server) as first, connect(server, source="127.0.0.2") as second:
            assert until_closed(second) == b""  # closed at once, the first one still open
            first.sendall(json_post(server, payload(), b"Connection: close\r\n"))
            assert parse(until_closed(first))[0] == 200
    finally:
        server.stop()
    lines = log_lines(log)
    assert [line["event"] for line in lines] == ["refused", "request"]
    assert (lines[0]["client"], lines[0]["reason"]) == ("127.0.0.2", "busy")


@pytest.mark.parametrize(
    "limits",
    [
        pytest.param({"max_connections": 5}, id="max-connections-5"),
        pytest.param({}, id="defaults"),
    ],
)
def test_idle_sockets_of_one_client_leave_slots_for_the_others(
    spy: Spy, log: io.StringIO, limits: dict[str, int]
) -> None:
    """One client's idle sockets, as many as the server serves at once, used to take every
    slot for the whole timeout. Each client now holds at most its share (10, or half of
    ``max_connections``); the rest of its sockets are closed at once, and another client is
    served. The header timeout is long here: only the cap keeps the slots free."""
    server = RegistryServer(
        "127.0.0.1", 0, spy, token=TOKEN, timeout=60, header_timeout=60, log=log, **limits
    ).start()
    idle: list[socket.socket] = []
    try:
        for _ in range(limits.get("max_connections", 100)):
            idle.append(connect(server, source="127.0.0.2"))
        remote = RemoteRegistry(server.url, auth=BearerToken(TOKEN), retries=0)
        assert "frontend http" in remote.compile(payload()).text
        refused = [line for line in log_lines(log) if line["event"] == "refused"]
        held = min(10, limits.get("max_connections", 100) // 2)
        assert len(refused) == len(idle) - held
        assert {(line["client"], line["reason"]) for line in refused} == {
            ("127.0.0.2", "client-limit")
        }
    finally:
        for sock in idle:
            sock.close()
        server.stop()
    assert spy.calls == 1


def test_a_head_that_never_ends_is_cut_off_at_the_header_timeout(
    spy: Spy, log: io.StringIO
) -> None:
    """Before a request is authorised, its connection has the short header timeout, not the
    body's (60 s here: the client waits at most 30 s for the server to close)."""
    server = RegistryServer(
        "127.0.0.1", 0, spy, token=TOKEN, timeout=60, header_timeout=0.5, log=log
    ).start()
    try:
        for head in (b"", b"POST / HTTP/1.1\r\nHost: x\r\n"):  # idle; a head never ended
            with socket.create_connection(server.address, timeout=30) as sock:
                sock.sendall(head)
                assert until_closed(sock) == b""
        # and the server goes on serving
        assert RemoteRegistry(server.url, auth=BearerToken(TOKEN)).compile(payload()).text
    finally:
        server.stop()
    assert [line["event"] for line in log_lines(log)].count("timeout") == 2
    assert spy.calls == 1


def test_an_authorised_body_may_take_longer_than_the_header_timeout(
    spy: Spy, log: io.StringIO
) -> None:
    server = RegistryServer(
        "127.0.0.1", 0, spy, token=TOKEN, timeout=30, header_timeout=0.3, log=log
    ).start()
    body = json.dumps(payload()).encode()
    head = (
        "POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        f"Authorization: Bearer {TOKEN}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    try:
        with connect(server) as sock:
            sock.sendall(head.encode())
            step = len(body) // 8 + 1
            for start in range(0, len(body), step):  # 0.8 s in all: beyond the 0.3 s
                time.sleep(0.1)
                sock.sendall(body[start : start + step])
            status, _, answer = parse(until_closed(sock))
    finally:
        server.stop()
    assert status == 200
    assert b"frontend http" in answer


# -- without a token: only what a browser page cannot send ------------------------------------


@pytest.fixture
def open_server(spy: Spy, log: io.StringIO) -> Iterator[RegistryServer]:
    """A server without a token (loopback only)."""
    server = RegistryServer("127.0.0.1", 0, spy, timeout=5, log=log).start()
    try:
        yield server
    finally:
        server.stop()


def exchange(server: RegistryServer, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """One request on its own connection; the answer, once the server closes."""
    with connect(server) as sock:
        sock.sendall(raw)
        return parse(until_closed(sock))


@pytest.mark.parametrize(
    "content_type",
    [
        pytest.param("text/plain;charset=UTF-8", id="text-plain"),
        pytest.param("application/x-www-form-urlencoded", id="form"),
        pytest.param("multipart/form-data; boundary=x", id="multipart"),
        pytest.param(None, id="none"),
        pytest.param("application/jsonp", id="jsonp"),
    ],
)
def test_without_a_token_a_post_that_is_not_json_is_refused(
    open_server: RegistryServer, spy: Spy, content_type: str | None
) -> None:
    """What a web page on any site can POST to 127.0.0.1 without a CORS preflight (a
    "simple" request: text/plain, a form) never reaches the handler."""
    body = json.dumps(payload()).encode()
    _, port = open_server.address
    head = (
        f"POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: http://attacker.example\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n"
    )
    if content_type is not None:
        head += f"Content-Type: {content_type}\r\n"
    status, headers, answer = exchange(open_server, head.encode() + b"\r\n" + body)
    assert status == 415
    assert headers["content-type"] == contract.PROBLEM_CONTENT_TYPE
    assert problem_slug(answer) == "unsupported-media-type"
    assert "Content-Type: application/json" in json.loads(answer)["detail"]
    assert spy.calls == 0


@pytest.mark.parametrize(
    "host",
    [
        pytest.param("attacker.example:{port}", id="rebound-name"),
        pytest.param("attacker.example", id="name-without-port"),
        pytest.param("127.0.0.1:{other}", id="other-port"),
        pytest.param("localhost", id="default-port"),
        pytest.param("localhost.:{port}", id="trailing-dot"),
        pytest.param(None, id="no-host"),
        pytest.param("127.0.0.1:{port}\r\nHost: attacker.example:{port}", id="two-hosts"),
    ],
)
@pytest.mark.parametrize("method", ["POST", "GET"])
def test_without_a_token_a_request_for_another_host_is_refused(
    open_server: RegistryServer, spy: Spy, host: str | None, method: str
) -> None:
    """A DNS-rebinding page reaches 127.0.0.1 under its own name, which it sends as ``Host``:
    neither a write nor a read of a table's config (userlist hashes) is answered."""
    _, port = open_server.address
    body = json.dumps(payload()).encode() if method == "POST" else b""
    head = f"{method} /?table=web-eu-1 HTTP/1.1\r\nConnection: close\r\n"
    if host is not None:
        head += "Host: " + host.format(port=port, other=port + 1) + "\r\n"
    head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    status, _, answer = exchange(open_server, head.encode() + body)
    assert (status, problem_slug(answer)) == (421, "misdirected-request")
    assert f"127.0.0.1:{port}" in json.loads(answer)["detail"]
    assert spy.calls == 0


@pytest.mark.parametrize(
    "host", ["127.0.0.1:{port}", "localhost:{port}", "LocalHost:{port}", "[::1]:{port}"]
)
def test_without_a_token_a_json_post_to_this_address_is_served(
    open_server: RegistryServer, spy: Spy, host: str
) -> None:
    _, port = open_server.address
    body = json.dumps(payload()).encode()
    head = (
        f"POST / HTTP/1.1\r\nHost: {host.format(port=port)}\r\nConnection: close\r\n"
        f"Content-Type: application/json; charset=utf-8\r\nContent-Length: {len(body)}\r\n"
    )
    status, _, answer = exchange(open_server, head.encode() + b"\r\n" + body)
    assert status == 200
    assert b"frontend http" in answer
    # Cosmonaut names the server as the URL does, and sends JSON.
    remote = RemoteRegistry(f"http://localhost:{port}/")
    assert "frontend http" in remote.compile(payload()).text
    assert spy.calls == 2


def test_with_a_token_the_bearer_check_alone_decides(guarded: RegistryServer, spy: Spy) -> None:
    """Behind a proxy or a name, ``Host`` is anything; a browser cannot add the token."""
    body = json.dumps(payload()).encode()
    head = (
        "POST / HTTP/1.1\r\nHost: registry.example\r\nContent-Type: text/plain\r\n"
        f"Authorization: Bearer {TOKEN}\r\nConnection: close\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    status, _, answer = exchange(guarded, head.encode() + body)
    assert status == 200
    assert b"frontend http" in answer
    assert spy.calls == 1


# -- bodies the app refuses -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "words", "path"),
    [
        pytest.param(
            '{"table": "web-eu-1", "running": [{"name": "a", "name": "b"}]}',
            "appears more than once",
            "$.running[0].name",
            id="repeated-key",
        ),
        pytest.param(
            '{"table": "web-eu-1", "running": [], "n": ' + "9" * 100_000 + "}",
            "more than 4300 digits",
            None,
            id="huge-number",
        ),
        pytest.param('{"table": NaN, "running": []}', "NaN is not a JSON value", None, id="nan"),
    ],
)
def test_a_body_json_cannot_hold_is_a_400(
    open_server: RegistryServer, body: str, words: str, path: str | None
) -> None:
    _, port = open_server.address
    data = body.encode()
    head = (
        f"POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    status, headers, answer = exchange(open_server, head.encode() + data)
    assert status == 400
    assert headers["content-type"] == contract.PROBLEM_CONTENT_TYPE
    document = json.loads(answer)
    assert problem_slug(answer) == "invalid-payload"
    assert words in document["detail"]
    if path is not None:
        assert [d["path"] for d in document["diagnostics"]] == [path]


# -- the request log ----------------------------------------------------------------------------


def test_one_json_log_line_per_request_without_secrets(
    guarded: RegistryServer, log: io.StringIO
) -> None:
    with pytest.raises(RegistryError):
        RemoteRegistry(guarded.url + "?table=x", auth=BearerToken("wrong-" + TOKEN)).compile(
            payload()
        )
    RemoteRegistry(guarded.url, auth=BearerToken(TOKEN)).compile(payload())
    guarded.stop()  # the line is written once the answer is sent: wait for the threads
    lines = log_lines(log)
    assert [line["status"] for line in lines] == [401, 200]
    for line in lines:
        assert set(line) == {
            "time", "event", "method", "path", "status", "bytes_out", "duration_ms", "client"
        }  # fmt: skip
        assert line["time"].endswith("Z")
        assert (line["event"], line["method"], line["path"]) == ("request", "POST", "/")
        assert line["client"] == "127.0.0.1"
        assert line["bytes_out"] > 0
        assert line["duration_ms"] >= 0
    text = log.getvalue()
    assert TOKEN not in text
    assert "web-eu-1" not in text  # nor anything of the body


def test_serve_stops_at_once_with_an_idle_keep_alive_connection_open(tmp_path: Path) -> None:
    """Ctrl-C stops serve at once, also when it started with SIGINT ignored (a background job
    of a non-interactive shell, as CI runs it), and with a client's idle keep-alive
    connection open (nothing waits out its 30 s read timeout)."""
    process = serve_process(f"sqlite:{tmp_path / 'state.db'}", sigint_ignored=True)
    try:
        assert process.stderr is not None
        url = urllib.parse.urlsplit(json.loads(process.stderr.readline())["url"])
        connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=10)
        connection.request(
            "POST", "/", body=json.dumps(payload()), headers={"Content-Type": "application/json"}
        )
        response = connection.getresponse()
        response.read()
        assert response.status == 200 and not response.will_close  # kept alive, now idle
        process.send_signal(signal.SIGINT)
        stopped(process)  # within 10 s: far less than the 30 s an idle connection could hold
        assert process.returncode == 0
        connection.close()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
