"""HTTPS through a real haproxy on loopback.

Certificates for two names are made by the test (``cryptography``); the config is compiled
from a payload with the ``tls`` render option, checked with ``haproxy -c`` and run. The
backends are small Python HTTP servers that echo the headers they received.
"""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from compiler.options import RenderOptions
from runtime.bundle import write_bundle
from runtime.pipeline import compile_payload
from tests.support.net import echo_server, haproxy_serving, listening, port_of
from tests.support.tls_certs import Answer, http_get, https_get, write_pem

THUMBPRINT = "Zm9vYmFyYmF6cXV4cXV1eHF1dXhxdXV4cXV1eHF1dXg"  # 43 base64url characters
A, B = "a.example.test", "b.example.test"


@dataclass
class Running:
    """A haproxy serving the compiled config: its HTTP and HTTPS ports and the config text."""

    http: int
    https: int
    text: str


def payload(ports: dict[str, int]) -> dict[str, Any]:
    """a: redirect with a cookie; b: on; c: path mode, on; d: off (HTTP only)."""
    return {
        "table": "tls-test",
        "running": [],
        "candidates": [
            {
                "serviceName": "a",
                "predicate": A,
                "cookie": "SID",
                "tls": "redirect",
                "containers": [{"id": "a1", "ip": f"127.0.0.1:{ports['a']}"}],
            },
            {
                "serviceName": "b",
                "predicate": B,
                "tls": "on",
                "containers": [{"id": "b1", "ip": f"127.0.0.1:{ports['b']}"}],
            },
            {
                "serviceName": "c",
                "configMode": "path",
                "predicate": "/api",
                "tls": "on",
                "containers": [{"id": "c1", "ip": f"127.0.0.1:{ports['c']}"}],
            },
            {
                "serviceName": "d",
                "predicate": "plain.example.test",
                "containers": [{"id": "d1", "ip": f"127.0.0.1:{ports['d']}"}],
            },
        ],
    }


def run_options(
    http: int, https: int, certs: Path, *, routing: str = "auto", **tls: Any
) -> RenderOptions:
    return RenderOptions.model_validate(
        {
            "routing": routing,
            "bind_address": "127.0.0.1",
            "bind_port": http,
            "log_targets": [],
            "user": None,
            "group": None,
            "daemon": False,
            "health_check": {"enabled": False},
            "tls": {"certs_dir": str(certs), "bind_port": https, **tls},
            "acme_thumbprint": THUMBPRINT,
        }
    )


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("certs")
    # HAProxy loads a folder in name order; the first certificate is the default one.
    write_pem(folder, f"{A}.pem", A)
    write_pem(folder, f"{B}.pem", B)
    return folder


@pytest.fixture(scope="module")
def fronts() -> Iterator[tuple[socket.socket, socket.socket]]:
    """The HTTP and HTTPS sockets haproxy serves on: bound here and handed over."""
    with listening() as http, listening() as https:
        yield http, https


@pytest.fixture(scope="module", params=["auto", "map"], ids=["acl-routing", "map-routing"])
def running(
    request: pytest.FixtureRequest,
    haproxy: str,
    haproxies: dict[str, str],
    certs: Path,
    fronts: tuple[socket.socket, socket.socket],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Running]:
    """Every test below runs against both routings: ACLs (four services under `auto`) and
    map files, whose frontend needs the HTTPS bind and the ACME answer too."""
    servers = {name: echo_server(name) for name in "abcd"}
    http, https = (port_of(front) for front in fronts)
    options = run_options(http, https, certs, hsts_max_age=300, routing=request.param)
    result = compile_payload(
        payload({n: port for n, (_, port) in servers.items()}), options=options
    )
    assert result.diagnostics == ()
    assert (len(result.files) > 1) == (request.param == "map")
    folder = tmp_path_factory.mktemp("haproxy")
    path = folder / "haproxy.cfg"
    write_bundle(str(path), result.files)
    # From another directory: a map bundle finds its files itself (default-path config).
    for version, binary in haproxies.items():
        checked = subprocess.run(
            [binary, "-c", "-f", str(path)], capture_output=True, text=True, cwd="/"
        )
        assert checked.returncode == 0, f"haproxy {version}: {checked.stdout}{checked.stderr}"
    try:
        with haproxy_serving(haproxy, path, *fronts, cwd="/"):
            yield Running(http, https, result.text)
    finally:
        for server, _ in servers.values():
            server.shutdown()


def echoed(answer: Answer) -> dict[str, Any]:
    assert answer.status == 200, answer
    data: dict[str, Any] = json.loads(answer.body)
    return data


def test_sni_picks_the_certificate_of_the_name(running: Running) -> None:
    assert https_get(running.https, A).common_name == A
    assert https_get(running.https, B).common_name == B


def test_unknown_sni_gets_the_default_certificate_and_the_unknown_host_answer(
    running: Running,
) -> None:
    today = http_get(running.http, "nobody.example.test")
    assert today.status == 503
    answer = https_get(running.https, "nobody.example.test")
    assert answer.common_name == A  # the first file of the folder
    assert answer.status == today.status
    # No SNI at all: the same.
    assert https_get(running.https, None, host="nobody.example.test").common_name == A


def test_redirect_service_answers_301_for_get_and_head_308_otherwise(running: Running) -> None:
    location = f"https://{A}:{running.https}/some/page?q=1&r=two"
    for method, code in (("GET", 301), ("HEAD", 301), ("POST", 308), ("PUT", 308)):
        answer = http_get(
            running.http, f"{A}:{running.http}", path="/some/page?q=1&r=two", method=method
        )
        assert (answer.status, answer.headers.get("location")) == (code, location), method
        assert "strict-transport-security" not in answer.headers  # never on plain HTTP


def test_redirect_service_on_https_gets_hsts_and_forwarded_headers(running: Running) -> None:
    answer = https_get(running.https, A, path="/x")
    seen = echoed(answer)
    assert seen["backend"] == "a"
    assert seen["headers"]["x-forwarded-proto"] == "https"
    assert seen["headers"]["x-forwarded-port"] == str(running.https)
    assert answer.headers["strict-transport-security"] == "max-age=300"


def test_on_service_answers_on_both_ports_without_hsts(running: Running) -> None:
    plain = http_get(running.http, B, path="/p")
    secure = https_get(running.https, B, path="/p")
    assert echoed(plain)["backend"] == echoed(secure)["backend"] == "b"
    assert echoed(plain)["headers"]["x-forwarded-proto"] == "http"
    assert echoed(secure)["headers"]["x-forwarded-proto"] == "https"
    assert echoed(plain)["headers"]["x-forwarded-port"] == str(running.http)
    assert "strict-transport-security" not in secure.headers


def test_forwarded_proto_from_the_client_is_replaced(running: Running) -> None:
    with socket.create_connection(("127.0.0.1", running.http), timeout=5) as conn:
        conn.sendall(
            f"GET / HTTP/1.1\r\nHost: {B}\r\nX-Forwarded-Proto: https\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    body = json.loads(data.partition(b"\r\n\r\n")[2])
    assert body["headers"]["x-forwarded-proto"] == "http"


def test_path_mode_works_on_https(running: Running) -> None:
    # A name no host rule claims (host rules are tested first, as on HTTP).
    assert echoed(https_get(running.https, "other.test", path="/api/users"))["backend"] == "c"
    assert echoed(https_get(running.https, "other.test", path="/api"))["backend"] == "c"
    assert https_get(running.https, "other.test", path="/apix").status == 503


def test_off_service_stays_on_http_only(running: Running) -> None:
    assert echoed(http_get(running.http, "plain.example.test"))["backend"] == "d"
    assert https_get(running.https, "plain.example.test").status == 503


def test_acme_challenge_is_answered_by_haproxy_on_both_ports(running: Running) -> None:
    token = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"
    for answer in (
        http_get(running.http, A, path=f"/.well-known/acme-challenge/{token}"),
        https_get(running.https, A, path=f"/.well-known/acme-challenge/{token}"),
        http_get(running.http, "unknown.test", path=f"/.well-known/acme-challenge/{token}"),
    ):
        assert answer.status == 200
        assert answer.body == f"{token}.{THUMBPRINT}".encode()
    # Not a token: routed as before (a's redirect).
    assert http_get(running.http, A, path="/.well-known/acme-challenge/a.b").status == 301


def test_sticky_cookie_is_secure_on_a_redirect_service(running: Running) -> None:
    backend_a = running.text.split("backend a\n")[1].split("\n\n")[0]
    assert "cookie SID prefix nocache secure" in backend_a
    # Server slots follow the servers; the Cookie line keeps its flags.
    assert "server slot-1 127.0.0.1:1 cookie slot-1 disabled" in backend_a
    answer = https_get(running.https, A, path="/set-cookie")
    assert echoed(answer)["backend"] == "a"
    assert answer.headers["set-cookie"] == "SID=a1~app"  # the server's cookie, prefixed
    backend_b = running.text.split("backend b\n")[1].split("\n\n")[0]
    assert "secure" not in backend_b


def test_tls_without_the_render_option_is_a_warning_and_stays_on_http(
    assert_haproxy_accepts: Callable[[str], None],
) -> None:
    data = payload({"a": 9001, "b": 9002, "c": 9003, "d": 9004})
    plain = dict(
        data, candidates=[{k: v for k, v in c.items() if k != "tls"} for c in data["candidates"]]
    )
    result = compile_payload(data)
    assert [(d.path, d.severity) for d in result.diagnostics] == [
        ("service 'a'", "warning"),
        ("service 'b'", "warning"),
        ("service 'c'", "warning"),
    ]
    assert "needs the 'tls' render option" in result.diagnostics[0].message
    # The config is exactly the one without any tls field: HTTP only, nobody else affected.
    assert result.text == compile_payload(plain).text
    assert_haproxy_accepts(result.text)


def test_bad_tls_values_are_refused_with_their_place(certs: Path) -> None:
    data = payload({"a": 9001, "b": 9002, "c": 9003, "d": 9004})
    data["candidates"][0]["tls"] = "yes"
    result = compile_payload(data, options=run_options(8080, 8443, certs))
    assert [d.path for d in result.diagnostics] == ["$.candidates[0].tls"]
    assert "'on'" in result.diagnostics[0].message
    assert [s.name for s in result.services] == ["b", "c", "d"]  # only a is left out
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="acme_thumbprint"):
        RenderOptions.model_validate({"acme_thumbprint": "short"})
    with pytest.raises(ValidationError, match="certs_dir"):
        RenderOptions.model_validate({"tls": {}})
    with pytest.raises(ValidationError, match="min_version"):
        RenderOptions.model_validate({"tls": {"certs_dir": "/c", "min_version": "SSLv3"}})


def test_tls_is_remembered_by_the_stores(tmp_path: Path, certs: Path) -> None:
    """A later payload that only lists running containers keeps each service's tls."""
    from runtime.stores.dynamodb_items import service_from_item, service_item
    from runtime.stores.sqlite import SQLiteStore

    store = SQLiteStore(tmp_path / "state.db")
    options = run_options(8080, 8443, certs)
    first = compile_payload(
        payload({"a": 9001, "b": 9002, "c": 9003, "d": 9004}), store=store, options=options
    )
    running = [
        {"serviceName": s.name, "id": c.id, "ip": c.ip}
        for s in first.services
        for c in s.containers
    ]
    again = compile_payload({"table": "tls-test", "running": running}, store=store, options=options)
    assert {s.name: s.tls for s in again.services} == {
        "a": "redirect",
        "b": "on",
        "c": "on",
        "d": "off",
    }
    assert again.text == first.text
    for service in again.services:
        assert service_from_item(service_item(service, 1), "tls-test") == service
    # tls travels with the other per-service settings: in the item's settings JSON.
    assert service_item(again.services[0], 1)["settings"] == {"S": '{"tls":"redirect"}'}
    # "off" is left out of what is stored, so state written before TLS existed reads the same.
    assert "tls" not in service_item(again.services[-1], 1)
    assert "settings" not in service_item(again.services[-1], 1)
    assert "tls" not in again.services[-1].model_dump(mode="json")


def test_fleet_takes_the_newest_deployments_tls() -> None:
    """Fleet mode: tls is a setting like the others; the newest deployment's wins, and the
    older host's disagreeing containers are reported and left out."""
    from compiler.models import Candidate, HostReport
    from runtime.fleet import render

    def report(host: str, created: str, tls: str) -> HostReport:
        candidate = Candidate.model_validate(
            {
                "serviceName": "web",
                "predicate": "web.example.com",
                "tls": tls,
                "containers": [{"id": f"{host}1", "ip": "10.0.0.1:80", "created": created}],
            }
        )
        return HostReport(host=host, reported_at=1.0, seq=1, candidates=(candidate,))

    result = render(
        {
            "a": report("a", "2026-01-01T00:00:00Z", "off"),
            "b": report("b", "2026-02-01T00:00:00Z", "redirect"),
        }
    )
    (service,) = result.render
    assert service.tls == "redirect"
    assert [c.id for c in service.containers] == ["b1"]
    assert [d.path for d in result.diagnostics] == ["host 'a': $.candidates[0]"]
