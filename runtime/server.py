"""The Lambda handler over plain HTTP (``lambda-registry serve``), for on-premises use and tests.

Each HTTP request becomes an ``HttpRequest`` (``runtime.http_request``) that
``runtime.handler.RegistryApp`` answers as it answers a Lambda event, and its response becomes
the HTTP response, so the contract is exactly the Lambda's: ``POST``
the payload as JSON; 200 with the config as ``text/plain`` (or ``{"config", "diagnostics"}``
with ``Accept: application/json``) and the diagnostics in the ``Lambda-Registry-Diagnostics*``
headers; errors as ``application/problem+json``.

HTTP is handled by the standard library's ``http.server`` (``ThreadingHTTPServer``, one thread
per connection, HTTP/1.1 keep-alive); the handler's store serialises concurrent updates.

Fit for a private network (``runtime.contract`` has the header names and problem slugs):

* **Authentication.** With a token, a request without ``Authorization: Bearer <token>``
  (compared in constant time with every token) gets a 401 problem and never reaches the
  handler; its body is not read. The operator's token may do anything; a host's token
  (``host_tokens``, ``runtime.identity``) may read configs and report as its own hosts: the
  app refuses anything else with a 403, before its store is touched. Without a token the
  server only listens on loopback (``is_loopback``), and answers only what a web page in a
  browser on the same machine cannot send: a ``Host`` that names the server's own address
  (127.0.0.1, localhost or [::1] and its port: a DNS-rebinding page sends its own name; else
  421) and, for a ``POST``, ``Content-Type: application/json`` (a cross-origin page cannot
  send that without the CORS preflight serve never grants; else 415).
* **TLS** with a certificate and key (PEM), or any server-side ``ssl.SSLContext``. The
  handshake runs in the connection's thread, so a slow one never blocks the accept loop.
* **Limits.** Until a request is authorised, a connection holds its slot briefly:
  ``header_timeout`` seconds is the time a client has for the TLS handshake and the request's
  line and headers (however slowly they drip in), counted from the connection, or from the
  previous answer on a keep-alive connection (an idle one is closed after it). Once
  authorised, ``timeout`` seconds is the time it has to send the body, and then to read the
  answer. A body larger than ``max_body`` bytes gets a 413 problem from its
  ``Content-Length`` alone, before anything is read (chunked bodies are counted as they come,
  and cut at the limit). At most ``max_connections`` connections are served at once, and at
  most ``max_client_connections`` from one client address; more are closed at once, so that
  one client's idle sockets never take every slot.
* **Logs.** One JSON line per request on stderr (time, method, path, status, bytes out,
  duration, client address); never a header's value or the body.
"""

from __future__ import annotations

import base64
import hmac
import io
import re
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Protocol, TextIO

from compiler.errors import OptionsError
from runtime import contract
from runtime.http_request import HttpRequest, query_of
from runtime.identity import OPERATOR, HostCredential, Identity, token_problem
from runtime.server_io import (
    DeadlineReader,
    LogWriter,
    SocketWriter,
    is_loopback,
    server_class,
    tls_context,
)

DEFAULT_MAX_BODY = 6 * 1024 * 1024  # Lambda's own limit on a synchronous request
DEFAULT_TIMEOUT = 30.0
DEFAULT_HEADER_TIMEOUT = 5.0
DEFAULT_MAX_CONNECTIONS = 100
DEFAULT_MAX_CLIENT_CONNECTIONS = 10  # and at most half of max_connections
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,15}")
_MAX_TRAILERS = 32
# The kind the app logs for serve's requests: the same as when they reached it as HTTP API (v2)
# events, so log queries keep working.
SERVE_KIND = "apigw-v2"


class App(Protocol):
    """What ``serve`` runs: ``runtime.handler.RegistryApp`` (an ``HttpRequest`` in, a Lambda
    proxy response out)."""

    def handle(self, event: Any, context: Any = None) -> Any: ...


class RegistryServer:
    """The handler on ``host:port`` (port 0 picks a free one); ``serve_forever`` or
    ``start`` (a daemon thread) and ``stop``.

    ``token``: the operator's bearer token; ``host_tokens``: hosts' tokens, each good only for
    reading and for its own hosts' reports. One of them is required unless ``host`` is a
    loopback address; with either, every request must carry one. TLS: ``ssl_context``, or
    ``tls_cert`` and ``tls_key`` (PEM paths).
    ``max_client_connections`` defaults to ``DEFAULT_MAX_CLIENT_CONNECTIONS``, or half of
    ``max_connections`` when that is less.
    ``log``: where the request log lines go (default: stderr, as it is at each line)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8080,
        registry: App | None = None,
        *,
        token: str | None = None,
        host_tokens: Sequence[HostCredential] = (),
        ssl_context: ssl.SSLContext | None = None,
        tls_cert: Path | str | None = None,
        tls_key: Path | str | None = None,
        max_body: int = DEFAULT_MAX_BODY,
        timeout: float = DEFAULT_TIMEOUT,
        header_timeout: float = DEFAULT_HEADER_TIMEOUT,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        max_client_connections: int | None = None,
        log: TextIO | None = None,
    ) -> None:
        if token is not None:
            _check_token(token)
            if any(credential.token == token for credential in host_tokens):
                raise OptionsError(
                    "a host's token is the operator's token too: give each its own",
                    file="--host-tokens",
                )
        elif not host_tokens and not is_loopback(host):
            raise OptionsError(
                f"{host or '0.0.0.0'} is not a loopback address: without a token anyone who "
                "can reach it could rewrite every config; give --token-file (or "
                "LAMBDA_REGISTRY_TOKEN) or --host-tokens, or listen on 127.0.0.1",
                file="--listen",
            )
        if (tls_cert is None) != (tls_key is None):
            missing = "--tls-key" if tls_key is None else "--tls-cert"
            raise OptionsError("--tls-cert and --tls-key go together", file=missing)
        if tls_cert is not None and tls_key is not None:
            ssl_context = tls_context(tls_cert, tls_key)
        if max_client_connections is None:
            max_client_connections = min(
                DEFAULT_MAX_CLIENT_CONNECTIONS, max(1, max_connections // 2)
            )
        if (
            max_body < 0
            or timeout <= 0
            or header_timeout <= 0
            or max_connections < 1
            or max_client_connections < 1
        ):
            raise ValueError(
                "max_body >= 0, timeouts > 0, max_connections and max_client_connections >= 1"
            )
        if registry is None:
            from runtime.handler import RegistryApp

            registry = RegistryApp.from_env()
        self.registry = registry
        self.tls = ssl_context is not None
        self._log = LogWriter(log)
        kind = server_class(":" in host)
        try:
            self.httpd = kind((host, port), self._connection)
        except OSError as error:
            raise OptionsError(
                f"cannot listen on {host}:{port}: {error.strerror or error}", file="--listen"
            ) from None
        credentials = [(c.token.encode("ascii"), c.identity) for c in host_tokens]
        if token is not None:
            credentials.insert(0, (token.encode("ascii"), OPERATOR))
        self.options = ServeOptions(
            registry,
            tuple(credentials),
            max_body,
            timeout,
            header_timeout,
            self._log,
            _own_hosts(host, self.address[1], tls=ssl_context is not None),
        )
        self.httpd.limit(max_connections, max_client_connections)
        self.httpd.log = self._log
        if ssl_context is not None:
            # No handshake in accept(): the connection's thread does it, under the timeout.
            self.httpd.socket = ssl_context.wrap_socket(
                self.httpd.socket, server_side=True, do_handshake_on_connect=False
            )
        self._thread: threading.Thread | None = None

    def _connection(self, request: Any, client_address: Any, server: Any) -> Handler:
        return Handler(self.options, request, client_address, server)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.httpd.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"{'https' if self.tls else 'http'}://{_shown(host)}:{port}/"

    def serve_forever(self) -> None:
        self.httpd.serve_forever(poll_interval=0.2)

    def start(self) -> RegistryServer:
        self._thread = threading.Thread(
            target=self.serve_forever, name="lambda-registry-serve", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)


def _shown(host: str) -> str:
    """A host as a URL or a ``Host`` header spells it (IPv6 in brackets)."""
    return f"[{host}]" if ":" in host else host


def _own_hosts(host: str, port: int, *, tls: bool) -> frozenset[str]:
    """The ``Host`` values (lower case) that name this server: a loopback name or the listen
    address with its port; without a port too on the scheme's default port."""
    names = {"127.0.0.1", "localhost", "[::1]", _shown(host).lower()}
    default = port == (443 if tls else 80)
    return frozenset({f"{name}:{port}" for name in names} | (names if default else set()))


def _check_token(token: str) -> None:
    problem = token_problem(token)
    if problem is not None:
        raise OptionsError(problem, file="--token-file")


class _Refused(Exception):
    """A request answered with a problem before the handler; the connection closes."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass(frozen=True, slots=True)
class ServeOptions:
    """What every connection's ``Handler`` is given by its ``RegistryServer``."""

    registry: App
    # The bearer tokens and who each proves (the operator's, hosts'); none: loopback only.
    credentials: tuple[tuple[bytes, Identity], ...]
    max_body: int
    timeout: float  # for an authorised request's body, and for reading the answer
    header_timeout: float  # for the handshake and a request's head: before authorisation
    log: Callable[[dict[str, Any]], None]
    own_hosts: frozenset[str]  # the ``Host`` values a request may carry without a token


class Handler(BaseHTTPRequestHandler):
    """One connection: authorise, read the body (to ``max_body``), hand the app an
    ``HttpRequest``, send its answer; problems before the app close the connection."""

    protocol_version = "HTTP/1.1"
    server_version = "lambda-registry"

    def __init__(
        self, options: ServeOptions, request: Any, client_address: Any, server: Any
    ) -> None:
        self.options = options  # first: the base class serves the connection in __init__
        super().__init__(request, client_address, server)

    def setup(self) -> None:
        self.connection = self.request
        self.reader = DeadlineReader(self.connection)
        # The handshake and the first request's head share one short deadline.
        self.reader.deadline = time.monotonic() + self.options.header_timeout
        self.connection.settimeout(self.options.header_timeout)
        if isinstance(self.connection, ssl.SSLSocket):
            self.connection.do_handshake()  # bounded by the timeout as a whole
        self.rfile = io.BufferedReader(self.reader)
        self.wfile = SocketWriter(self.connection)
        self.started = time.perf_counter()
        self.expect_continue = False
        self.answered = False
        self.identity = OPERATOR

    def handle_one_request(self) -> None:
        # The deadline covers waiting for the request too: idle connections close.
        if self.answered:
            self.reader.deadline = time.monotonic() + self.options.header_timeout
        self.expect_continue = False
        super().handle_one_request()

    def parse_request(self) -> bool:
        self.started = time.perf_counter()
        return super().parse_request()

    def handle_expect_100(self) -> bool:
        # ``100 Continue`` only once the request is authorised and small enough.
        self.expect_continue = True
        return True

    def _handle(self) -> None:
        try:
            self.identity = self._authorise()
            # Authorised: now the body may take the longer timeout.
            self.reader.deadline = time.monotonic() + self.options.timeout
            raw = self._read_body()
        except _Refused as refused:
            self._problem(refused.status, refused.detail)
            return
        if raw is None:  # the client went away mid-body
            self.close_connection = True
            return
        answer = self.options.registry.handle(self._http_request(raw))
        payload = answer.get("body") or ""
        data = (
            base64.b64decode(payload)
            if answer.get("isBase64Encoded")
            else str(payload).encode("utf-8")
        )
        headers = {str(k): str(v) for k, v in (answer.get("headers") or {}).items()}
        self._answer(int(answer.get("statusCode", 500)), headers, data)

    def _http_request(self, raw: bytes) -> HttpRequest:
        headers = {name.lower(): value for name, value in self.headers.items()}
        headers.pop("authorization", None)  # checked here; the app never sees it
        return HttpRequest(
            SERVE_KIND,
            self.command,
            headers,
            raw or None,
            False,
            str(uuid.uuid4()),
            query_of(self.path.partition("?")[2]),
            identity=self.identity,
        )

    def _authorise(self) -> Identity:
        """Who sent the request, by its bearer token; ``_Refused`` (401) without one."""
        if not self.options.credentials:
            self._same_machine_only()
            return OPERATOR
        value = self.headers.get(contract.AUTHORIZATION_HEADER)
        presented = contract.bearer_token(value)
        if presented is None:
            raise _Refused(401, "this registry needs 'Authorization: Bearer <token>'")
        offered = presented.encode("utf-8", "replace")
        found: Identity | None = None
        # Compared with every token, to the end: the time taken tells nothing of which
        # (tokens are distinct, so at most one matches).
        for token, identity in self.options.credentials:
            if hmac.compare_digest(offered, token):
                found = identity
        if found is None:
            raise _Refused(401, "the bearer token is not accepted")
        return found

    def _same_machine_only(self) -> None:
        """Without a token: refuse what a web page in a browser on this machine can send."""
        hosts = self.headers.get_all("Host") or []
        port = self.connection.getsockname()[1]
        if len(hosts) != 1 or hosts[0].strip().lower() not in self.options.own_hosts:
            named = repr(hosts[0][:80]) if len(hosts) == 1 else f"{len(hosts)} Host headers"
            raise _Refused(
                421,
                f"Host {named} is not this server's address: without a token, serve answers "
                f"only requests to 127.0.0.1:{port}, localhost:{port} or [::1]:{port}",
            )
        if self.command == "POST" and not _is_json(self.headers.get("Content-Type")):
            raise _Refused(
                415,
                "send the payload as 'Content-Type: application/json' (without a token, "
                "serve refuses other types: a web page could send those from any site)",
            )

    def _read_body(self) -> bytes | None:
        coding = self.headers.get("Transfer-Encoding")
        if coding is not None:
            if [c.strip().lower() for c in coding.split(",")] != ["chunked"]:
                raise _Refused(501, f"Transfer-Encoding {coding!r} is not supported")
            self._continue()
            return self._read_chunked()
        lengths = {
            value.strip()
            for header in self.headers.get_all("Content-Length") or ()
            for value in header.split(",")
        }
        if not lengths:
            return b""  # no length, no body (RFC 9112 6.3)
        text = lengths.pop()
        if lengths or not (text.isascii() and text.isdigit()):
            raise _Refused(400, "the Content-Length header is not one whole number")
        length = int(text)
        if length > self.options.max_body:
            raise _Refused(413, f"the body is {length} bytes; the limit is {self.options.max_body}")
        self._continue()
        raw = self.rfile.read(length) if length else b""
        return raw if len(raw) == length else None

    def _read_chunked(self) -> bytes | None:
        chunks: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(1024)
            if not line:
                return None
            size_text = line.split(b";", 1)[0].strip()
            if not line.endswith(b"\n") or not _CHUNK_SIZE.fullmatch(size_text):
                raise _Refused(400, "malformed chunked body")
            size = int(size_text, 16)
            if size == 0:
                break
            total += size
            if total > self.options.max_body:
                raise _Refused(413, f"the body is over the limit of {self.options.max_body} bytes")
            data = self.rfile.read(size)
            if len(data) != size:
                return None
            if self.rfile.readline(3) not in (b"\r\n", b"\n"):
                raise _Refused(400, "malformed chunked body")
            chunks.append(data)
        for _ in range(_MAX_TRAILERS):
            line = self.rfile.readline(8192)
            if line in (b"\r\n", b"\n", b""):
                return b"".join(chunks)
        raise _Refused(400, "too many trailer fields")

    def _continue(self) -> None:
        if self.expect_continue:
            self.expect_continue = False
            self.send_response_only(100)
            self.end_headers()

    def _problem(self, status: int, detail: str) -> None:
        encoded = contract.server_problem(status, detail)
        headers = getattr(self, "headers", None)
        presented = headers.get(contract.AUTHORIZATION_HEADER) if headers else None
        if status == 401 and contract.bearer_token(presented) is not None:
            encoded.headers[contract.AUTHENTICATE_HEADER] = contract.BEARER_INVALID
        # The body (if any) is not read: the connection cannot carry another request.
        self._answer(status, {**encoded.headers, "Connection": "close"}, encoded.body.encode())

    def _answer(self, status: int, headers: dict[str, str], data: bytes) -> None:
        self.answered = True
        self.connection.settimeout(self.options.timeout)  # for the whole answer (``sendall``)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        sent = 0
        if self.command != "HEAD":
            self.wfile.write(data)
            sent = len(data)
        path = str(getattr(self, "path", "") or "").partition("?")[0]
        self.options.log(
            {
                "event": "request",
                "method": self.command,
                "path": path[:512],
                "status": status,
                "bytes_out": sent,
                "duration_ms": round((time.perf_counter() - self.started) * 1000, 1),
                "client": str(self.client_address[0]),
            }
        )

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # Requests http.server refuses itself (a malformed line, headers too large, an
        # unknown method) get a problem document and a log line like any other.
        self.close_connection = True
        if getattr(self, "command", None) is None:
            self.command = ""
        self._problem(code, message or explain or f"HTTP {code}")

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # ``_answer`` logs one JSON line per request

    def log_error(self, format: str, *args: Any) -> None:
        if args and isinstance(args[0], TimeoutError):
            self.options.log({"event": "timeout", "client": str(self.client_address[0])})

    def log_message(self, format: str, *args: Any) -> None:
        pass

    do_POST = _handle
    do_GET = _handle
    do_PUT = _handle
    do_DELETE = _handle
    do_PATCH = _handle


def _is_json(content_type: str | None) -> bool:
    """``application/json``, with parameters or not (``; charset=utf-8``)."""
    media = (content_type or "").partition(";")[0].strip().lower()
    return media == contract.JSON_TYPE
