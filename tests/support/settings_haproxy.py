"""A real haproxy on loopback in front of tiny HTTP backends, for the settings' behaviour tests.

Each backend answers ``name=<its name>`` plus the request headers it saw, as JSON; its
health path answers 200 or 500 as the test says. haproxy runs in the foreground (``-db``)
with a config the compiler produced, on a loopback socket the test bound and hands over
(``tests.support.net.haproxy_serving``).
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from compiler.options import RenderOptions
from runtime.pipeline import compile_payload
from tests.support.net import haproxy_serving


@dataclass
class Backend:
    name: str
    server: ThreadingHTTPServer
    healthy: bool = True
    set_cookie: str | None = None  # a Set-Cookie header for every answer but the health path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"


def _handler(backend: Backend, health_path: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == health_path:
                status = 200 if backend.healthy else 500
                body = b"ok" if backend.healthy else b"sick"
            else:
                status = 200
                body = json.dumps({"name": backend.name, "headers": dict(self.headers)}).encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            if backend.set_cookie is not None and self.path != health_path:
                self.send_header("Set-Cookie", backend.set_cookie)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def backends(*names: str, health_path: str = "/healthz") -> Iterator[dict[str, Backend]]:
    started: dict[str, Backend] = {}
    try:
        for name in names:
            server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
            backend = Backend(name, server)
            server.RequestHandlerClass = _handler(backend, health_path)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            started[name] = backend
        yield started
    finally:
        for backend in started.values():
            backend.server.shutdown()
            backend.server.server_close()


def loopback_options(port: int, **overrides: Any) -> RenderOptions:
    return RenderOptions(
        bind_address="127.0.0.1",
        bind_port=port,
        user=None,
        group=None,
        daemon=False,
        log_targets=(),
        **overrides,
    )


def compile_text(payload: dict[str, Any], options: RenderOptions) -> str:
    result = compile_payload(payload, options=options, strict=True)
    return result.text


@contextmanager
def running_haproxy(
    binary: str,
    config: str,
    front: socket.socket,
    tmp_path: Path,
    env: dict[str, str] | None = None,
) -> Iterator[None]:
    """haproxy on ``config``, compiled with ``loopback_options(port_of(front))``, serving on
    ``front``; ``env`` is its whole environment (the test's own when None)."""
    path = tmp_path / "haproxy.cfg"
    path.write_text(config)
    with haproxy_serving(binary, path, front, env=env):
        yield


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    headers: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.body)


def get(
    port: int,
    host: str,
    path: str = "/",
    *,
    source: str = "127.0.0.1",
    headers: dict[str, str] | None = None,
) -> Answer:
    connection = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=10, source_address=(source, 0)
    )
    try:
        connection.request("GET", path, headers={"Host": host, **(headers or {})})
        response = connection.getresponse()
        return Answer(response.status, response.read(), dict(response.getheaders()))
    finally:
        connection.close()
