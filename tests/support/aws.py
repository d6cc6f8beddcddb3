"""moto's server over real HTTP, and the environment that points boto3 at it the standard way
(``AWS_ENDPOINT_URL_*``)."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from moto.moto_server.werkzeug_app import (  # type: ignore[import-untyped]
    DomainDispatcherApplication,
    create_backend_app,
)
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server


class MotoServer:
    """moto's DynamoDB on 127.0.0.1; ``stop()`` really takes the endpoint down. ``calls``
    lists each DynamoDB request it answered as (operation, table), oldest first."""

    def __init__(self, port: int = 0) -> None:
        self.port = port
        self.calls: list[tuple[str, str]] = []
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MotoServer:
        self._server = make_server(
            "127.0.0.1",
            self.port,
            self._app,
            threaded=True,
            request_handler=_OneRequestPerConnection,
        )
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def _app(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
        if target.startswith("DynamoDB_"):
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            environ["wsgi.input"] = io.BytesIO(body)
            try:
                table = str(json.loads(body or b"{}").get("TableName", ""))
            except ValueError:
                table = ""
            self.calls.append((target.partition(".")[2], table))
        return _serialised_app(environ, start_response)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            assert self._thread is not None
            self._thread.join(timeout=10)
            self._server = None


def aws_env(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    server = MotoServer().start()
    yield server
    server.stop()


@pytest.fixture
def dynamodb(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> MotoServer:
    """The shared server, with boto3 pointed at it through the environment."""
    aws_env(monkeypatch, moto_server.endpoint)
    return moto_server


_APP = DomainDispatcherApplication(create_backend_app)


_APP_LOCK = threading.Lock()


def _serialised_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    # DynamoDB applies each request atomically; moto's backend does not lock, so requests
    # are handled one at a time here (connections are still accepted concurrently).
    with _APP_LOCK:
        return [b"".join(_APP(environ, start_response))]


class _OneRequestPerConnection(WSGIRequestHandler):
    # HTTP/1.0: no keep-alive, so once the server stops, nothing answers any more.
    protocol_version = "HTTP/1.0"

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass
