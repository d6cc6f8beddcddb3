"""Map routing through a real haproxy on loopback: the same answers as ACL routing.

Each backend server is a tiny HTTP server that answers with its own name, so a response says
which service (and which server) HAProxy chose.
"""

from __future__ import annotations

import http.client
import os
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from compiler.ast import MapEntry
from compiler.options import RenderOptions
from compiler.printer import map_entry_problem, print_map
from compiler.quoting import UnprintableValueError
from grammar.maps import map_problems, parse_map
from runtime.bundle import write_bundle
from runtime.pipeline import compile_payload
from tests.support.net import haproxy_serving, listening, port_of


class _Named(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        name = self.server.name.encode()  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", str(len(name)))
        # For `cookie SID prefix`: HAProxy prefixes the application's own cookie.
        self.send_header("Set-Cookie", "SID=session1")
        self.end_headers()
        self.wfile.write(name)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, int]]:
    """Name -> port of named HTTP servers on 127.0.0.1."""
    started: dict[str, ThreadingHTTPServer] = {}
    for name in ("web", "app", "appv2", "sticky1", "sticky2", "other"):
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Named)
        server.name = name  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started[name] = server
    yield {name: server.server_address[1] for name, server in started.items()}
    for server in started.values():
        server.shutdown()
        server.server_close()


def _payload(ports: dict[str, int]) -> dict[str, Any]:
    def box(name: str) -> dict[str, str]:
        return {"id": name, "ip": f"127.0.0.1:{ports[name]}"}

    candidates: list[dict[str, Any]] = [
        {"serviceName": "web", "predicate": "web.example.com", "containers": [box("web")]},
        {
            "serviceName": "other",
            "predicate": "other.example.com",
            "containers": [box("other")],
        },
        {
            "serviceName": "app",
            "configMode": "path",
            "predicate": "/app",
            "containers": [box("app")],
        },
        {
            "serviceName": "appv2",
            "configMode": "path",
            "predicate": "/app/v2",
            "containers": [box("appv2")],
        },
        {
            "serviceName": "sticky",
            "predicate": "Sticky.Example.com",
            "cookie": "SID",
            "containers": [box("sticky1"), box("sticky2")],
        },
    ]
    candidates[2]["containers"] = [box("app")]
    return {"table": "maps", "running": [], "candidates": candidates}


class _Running:
    def __init__(self, port: int) -> None:
        self.port = port

    def get(self, path: str, host: str | None, cookie: str | None = None) -> tuple[int, str, str]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            connection.putrequest("GET", path, skip_host=True)
            if host is not None:
                connection.putheader("Host", host)
            if cookie is not None:
                connection.putheader("Cookie", cookie)
            connection.endheaders()
            response = connection.getresponse()
            body = response.read().decode()
            return (
                response.status,
                body if response.status == 200 else "",
                (response.getheader("Set-Cookie") or ""),
            )
        finally:
            connection.close()


def _bundle(ports: dict[str, int], routing: str, port: int, directory: Path) -> Path:
    options = RenderOptions.model_validate(
        {
            "routing": routing,
            "bind_address": "127.0.0.1",
            "bind_port": port,
            "user": None,
            "group": None,
            "daemon": False,
            "log_targets": [],
            "health_check": {"enabled": False},
        }
    )
    result = compile_payload(_payload(ports), options=options)
    assert (len(result.files) > 1) == (routing == "map")
    directory.mkdir()
    write_bundle(str(directory / "haproxy.cfg"), result.files)
    return directory / "haproxy.cfg"


@pytest.fixture(scope="module", params=["map", "acl"])
def proxy(
    request: pytest.FixtureRequest,
    haproxy: str,
    servers: dict[str, int],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[_Running]:
    directory = tmp_path_factory.mktemp("b") / "bundle"
    with listening() as front:
        config = _bundle(servers, request.param, port_of(front), directory)
        # Started from another directory: the config finds its maps itself (default-path config).
        with haproxy_serving(haproxy, config, front, cwd="/"):
            yield _Running(port_of(front))


# (path, Host header) -> the service that answers; "" is HAProxy's 503 (no backend).
CASES = [
    ("/", "web.example.com", "web"),
    ("/", "web.example.com:8080", "web"),
    ("/", "WEB.Example.COM", "web"),
    ("/x", "WEB.EXAMPLE.COM:80", "web"),
    ("/app", "web.example.com", "web"),  # host rules come first
    ("/", "nope.example.com", ""),
    ("/", "web.example.com.evil", ""),
    ("/", "example.com", ""),
    ("/app", "unknown.test", "app"),
    ("/app/", None, "app"),
    ("/app/x", "unknown.test", "app"),
    ("/app?q=1", "unknown.test", "app"),
    ("/apple", "unknown.test", ""),
    ("/ap", "unknown.test", ""),
    ("/APP", "unknown.test", ""),
    ("/app/v2", "unknown.test", "appv2"),
    ("/app/v2/deep/er", "unknown.test", "appv2"),
    ("/app/v2x", "unknown.test", "app"),
    ("/app/v", "unknown.test", "app"),
    ("/unknown", "unknown.test", ""),
]


@pytest.mark.parametrize(("path", "host", "service"), CASES)
def test_routes(proxy: _Running, path: str, host: str | None, service: str) -> None:
    status, body, _ = proxy.get(path, host)
    assert (status, body) == ((200, service) if service else (503, ""))


def test_sticky_sessions_stick(proxy: _Running) -> None:
    first = {proxy.get("/", "sticky.example.com")[1] for _ in range(4)}
    assert first == {"sticky1", "sticky2"}  # round robin without a cookie
    status, server, set_cookie = proxy.get("/", "STICKY.example.com:80")
    assert status == 200
    assert set_cookie.startswith(f"SID={server}~session1")
    cookie = set_cookie.split(";")[0]
    assert {proxy.get("/", "sticky.example.com", cookie)[1] for _ in range(6)} == {server}


def test_map_mode_bundle_is_what_haproxy_runs(haproxy: str, servers: dict[str, int]) -> None:
    result = compile_payload(_payload(servers), options=RenderOptions(routing="map"))
    config = result.text
    names = list(result.files)[1:]
    assert [name.split(".")[0] for name in names] == ["host", "path", "path_beg"]
    assert "default-path config" in config
    assert "-i" not in config.split("frontend")[1].split("backend")[0]
    for name in names:
        assert f"({name})" in config
    assert result.files[names[0]] == (
        "other.example.com other\nsticky.example.com sticky\nweb.example.com web\n"
    )
    assert result.files[names[2]] == "/app/ app\n/app/v2/ appv2\n"


def test_auto_routing_switches_to_maps_for_many_services() -> None:
    def payload(count: int) -> dict[str, Any]:
        return {
            "table": "maps",
            "running": [],
            "candidates": [
                {"serviceName": f"s{i}", "predicate": f"s{i}.test", "containers": []}
                for i in range(count)
            ],
        }

    assert len(compile_payload(payload(49)).files) == 1
    assert len(compile_payload(payload(50)).files) == 2
    seed = RenderOptions(compat="seed", routing="map")
    assert len(compile_payload(payload(60), options=seed).files) == 1


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("a b", "x"),
        ("a\tb", "x"),
        ("a\nb", "x"),
        ("a\rb", "x"),
        ("#a", "x"),
        ("", "x"),
        ("a\x00", "x"),
        ("a", ""),
        ("a", " x"),
        ("a", "x\ny"),
        ("a", "x\r"),
        ("a", "x\t"),
        ("a" * 9000, "x"),
    ],
)
def test_no_map_line_can_be_broken(key: str, value: str) -> None:
    assert map_entry_problem(key, value) is not None
    with pytest.raises(UnprintableValueError):
        print_map([MapEntry(key, value)])


def test_map_lines_read_as_haproxy_reads_them() -> None:
    text = "# comment\n\n  a.test  web  \n\t/p x y\r\n #k v\nkey\n"
    parsed = parse_map(text, "m.map")
    assert [(e.key, e.value) for e in parsed.entries] == [
        ("a.test", "web"),
        ("/p", "x y"),
        ("#k", "v"),
        ("key", ""),
    ]
    assert [(p.line, p.col) for p in map_problems(text)] == [(6, 1)]
    assert map_problems("a b\rc\n")[0].line == 1
    assert map_problems("a pattern with blanks\n", with_values=False) == []


def test_written_bundle_survives_any_working_directory(
    tmp_path: Path, haproxies: dict[str, str], servers: dict[str, int]
) -> None:
    result = compile_payload(_payload(servers), options=RenderOptions(routing="map"))
    write_bundle(str(tmp_path / "haproxy.cfg"), result.files)
    for version, binary in haproxies.items():
        check = subprocess.run(
            [binary, "-c", "-f", str(tmp_path / "haproxy.cfg")],
            cwd=os.path.expanduser("~") if os.path.isdir(os.path.expanduser("~")) else "/",
            capture_output=True,
            text=True,
            check=False,
        )
        assert check.returncode == 0, f"haproxy {version}: {check.stderr}"


def test_a_direct_lambda_invocation_returns_the_bundle_as_a_stream(
    servers: dict[str, int], assert_haproxy_accepts: Any
) -> None:
    from runtime.bundle import parse_stream
    from runtime.config import HandlerConfig
    from runtime.handler import RegistryApp
    from runtime.stores.select import StoreSpec

    app = RegistryApp(
        HandlerConfig(store=StoreSpec("memory"), options=RenderOptions(routing="map"))
    )
    answer = app.handle(_payload(servers))
    files = parse_stream(answer)
    assert len(files) == 4 and next(iter(files)) == "haproxy.cfg"
    assert_haproxy_accepts(files)
