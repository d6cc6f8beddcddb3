"""The Lambda handler over plain HTTP (``lambda-registry serve``), for on-premises use and tests.

Each HTTP request becomes an API Gateway HTTP API (v2) event for ``runtime.handler.RegistryApp``,
and its response becomes the HTTP response, so the contract is exactly the Lambda's: ``POST``
the payload as JSON; 200 with the config as ``text/plain`` (or ``{"config", "diagnostics"}``
with ``Accept: application/json``) and the diagnostics in the ``Lambda-Registry-Diagnostics*``
headers; errors as ``application/problem+json``.

HTTP is handled by the standard library's ``http.server`` (``ThreadingHTTPServer``, one thread
per connection, HTTP/1.1 keep-alive); the handler's store serialises concurrent updates.
"""

from __future__ import annotations

import base64
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from compiler.errors import OptionsError

MAX_BODY = 64 * 1024 * 1024


class RegistryServer:
    """The handler on ``host:port`` (port 0 picks a free one); ``serve_forever`` or
    ``start`` (a daemon thread) and ``stop``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 8080, registry: Any = None) -> None:
        from runtime.handler import RegistryApp

        self.registry = registry if registry is not None else RegistryApp.from_env()
        handler = _handler_class(self.registry)
        try:
            self.httpd = ThreadingHTTPServer((host, port), handler)
        except OSError as error:
            raise OptionsError(
                f"cannot listen on {host}:{port}: {error.strerror or error}", file="--listen"
            ) from None
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.httpd.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://{host}:{port}/"

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


def _handler_class(registry: Any) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "lambda-registry"

        def _handle(self) -> None:
            length_text = self.headers.get("Content-Length", "0") or "0"
            try:
                length = int(length_text)
            except ValueError:
                length = -1
            if length < 0 or length > MAX_BODY:
                self.send_error(413 if length > MAX_BODY else 400, "bad Content-Length")
                return
            raw = self.rfile.read(length) if length else b""
            try:
                body, encoded = raw.decode("utf-8"), False
            except UnicodeDecodeError:
                body, encoded = base64.b64encode(raw).decode("ascii"), True
            path, _, query = self.path.partition("?")
            event = {
                "version": "2.0",
                "routeKey": "$default",
                "rawPath": path,
                "rawQueryString": query,
                "headers": {name.lower(): value for name, value in self.headers.items()},
                "requestContext": {
                    "http": {"method": self.command, "path": path},
                    "requestId": str(uuid.uuid4()),
                },
                "body": body if raw else None,
                "isBase64Encoded": encoded,
            }
            response = registry.handle(event)
            payload = response.get("body") or ""
            data = (
                base64.b64decode(payload)
                if response.get("isBase64Encoded")
                else str(payload).encode("utf-8")
            )
            self.send_response(int(response.get("statusCode", 500)))
            for name, value in (response.get("headers") or {}).items():
                self.send_header(str(name), str(value))
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_POST = _handle
        do_GET = _handle
        do_PUT = _handle
        do_DELETE = _handle
        do_PATCH = _handle

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the handler logs one JSON line per request

    return Handler
