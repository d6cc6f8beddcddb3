"""The registry clients: in process, and over HTTP against ``lambda-registry serve`` (the real
handler behind a real HTTP server on loopback)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from cosmonaut.errors import RegistryError
from cosmonaut.registry.client import LocalRegistry
from cosmonaut.registry.remote import RemoteRegistry
from runtime.config import HandlerConfig
from runtime.handler import RegistryApp
from runtime.server import RegistryServer
from runtime.stores.memory import MemoryStore
from tests.support.paths import ROOT


def payload() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((ROOT / "examples" / "mixed.json").read_text())
    data["candidates"].append({"serviceName": "bad name", "predicate": "x", "containers": []})
    return data


@pytest.fixture
def server() -> Iterator[RegistryServer]:
    registry = RegistryApp(HandlerConfig.from_env({"LAMBDA_REGISTRY_STORE": "memory"}))
    running = RegistryServer("127.0.0.1", 0, registry).start()
    try:
        yield running
    finally:
        running.stop()


def test_remote_matches_local_and_returns_the_diagnostics(server: RegistryServer) -> None:
    remote = RemoteRegistry(server.url).compile(payload())
    local = LocalRegistry(MemoryStore(ephemeral=True)).compile(payload())
    assert remote.text == local.text
    assert remote.diagnostics == local.diagnostics
    assert [d.path for d in remote.diagnostics] == ["$.candidates[3].serviceName"]


def test_a_refused_payload_is_not_retried_and_says_why(server: RegistryServer) -> None:
    remote = RemoteRegistry(server.url, retries=3, backoff=0.01)
    with pytest.raises(RegistryError, match="HTTP 400") as caught:
        remote.compile({"table": "x", "running": []})
    assert remote.attempts == 1
    assert [d.path for d in caught.value.diagnostics] == ["$.table"]


def test_unreachable_is_retried_with_backoff(refusing_url: str) -> None:
    sleeps: list[float] = []
    remote = RemoteRegistry(refusing_url, retries=3, backoff=0.1, timeout=1, sleep=sleeps.append)
    with pytest.raises(RegistryError, match="unreachable") as caught:
        remote.compile(payload())
    assert remote.attempts == 4
    assert "after 4 attempt(s)" in str(caught.value)
    # Exponential from 0.1 s, each with up to ±20 % jitter.
    assert sleeps == pytest.approx([0.1, 0.2, 0.4], rel=0.2001)


class Flaky(BaseHTTPRequestHandler):
    """Fails twice with 503, then answers text/plain with the diagnostics header."""

    calls = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        type(self).calls += 1
        if type(self).calls <= 2:
            body = json.dumps({"title": "Store failed", "detail": "try later"}).encode()
            self.send_response(503)
            self.send_header("Content-Type", "application/problem+json")
        else:
            body = b"global\n"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            detail = [{"path": "$.running[0]", "message": "m", "severity": "warning"}]
            self.send_header("Lambda-Registry-Diagnostics-Detail", json.dumps(detail))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_server_errors_are_retried_and_plain_text_is_understood() -> None:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        remote = RemoteRegistry(f"http://127.0.0.1:{httpd.server_address[1]}/", backoff=0.01)
        result = remote.compile(payload())
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert remote.attempts == 3
    assert result.text == "global\n"
    assert [(d.path, d.severity) for d in result.diagnostics] == [("$.running[0]", "warning")]


def test_close_interrupts_the_backoff(refusing_url: str) -> None:
    remote = RemoteRegistry(refusing_url, retries=5, backoff=30, timeout=1)
    threading.Timer(0.2, remote.close).start()
    with pytest.raises(RegistryError):
        remote.compile(payload())
    assert remote.attempts < 3


def test_only_http_urls() -> None:
    with pytest.raises(RegistryError, match="not an http"):
        RemoteRegistry("file:///etc/passwd")


def test_local_registry_reports_a_refused_payload() -> None:
    with pytest.raises(RegistryError, match="refused the payload"):
        LocalRegistry(MemoryStore()).compile({"table": "ok-table", "running": "no"})


def test_serve_command_over_http(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "LAMBDA_REGISTRY_STORE": f"sqlite:{tmp_path / 'state.db'}"}
    env.pop("LAMBDA_REGISTRY_TOKEN", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "runtime.cli", "serve", "--listen", "127.0.0.1:0"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        assert process.stderr is not None
        announced = json.loads(process.stderr.readline())
        assert announced["event"] == "listening"
        assert announced["auth"] == "none"
        assert announced["url"].startswith("http://127.0.0.1:")
        assert not announced["url"].endswith(":0/")  # the port the kernel picked
        result = RemoteRegistry(announced["url"]).compile(payload())
        assert "frontend http" in result.text
        assert len(result.diagnostics) == 1
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def map_server() -> Iterator[RegistryServer]:
    from compiler.options import RenderOptions
    from runtime.stores.select import StoreSpec

    config = HandlerConfig(store=StoreSpec("memory"), options=RenderOptions(routing="map"))
    running = RegistryServer("127.0.0.1", 0, RegistryApp(config)).start()
    try:
        yield running
    finally:
        running.stop()


def test_a_bundle_comes_over_http_whole(map_server: RegistryServer) -> None:
    import urllib.error
    import urllib.request

    from compiler.options import RenderOptions
    from runtime.contract import maps_of

    remote = RemoteRegistry(map_server.url)
    result = remote.compile(payload())
    local = LocalRegistry(MemoryStore(ephemeral=True), RenderOptions(routing="map"))
    expected = local.compile(payload())
    assert result.text == expected.text and len(result.maps) == 3
    assert result.maps == expected.maps
    assert result.files == {"haproxy.cfg": result.text, **dict(result.maps)}
    kept = LocalRegistry(MemoryStore(), RenderOptions(routing="map"))  # remembers
    kept.compile(payload())
    fetched = kept.fetch(payload()["table"])
    assert fetched is not None and fetched.maps == result.maps
    # The bundle cannot be one text/plain body: asking for text only is a 406 problem.
    body = json.dumps(payload()).encode()
    sent = {"Content-Type": "application/json"}
    plain = urllib.request.Request(map_server.url, body, {**sent, "Accept": "text/plain"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(plain, timeout=10)
    assert refused.value.code == 406
    assert "application/json" in json.loads(refused.value.read())["detail"]
    asked = urllib.request.Request(map_server.url, body, {**sent, "Accept": "application/json"})
    with urllib.request.urlopen(asked, timeout=10) as answer:
        document = json.loads(answer.read())
    assert list(document["files"]) == ["haproxy.cfg", *(name for name, _ in result.maps)]
    assert maps_of(document["files"]) == result.maps
