"""Free-text values read back through a running haproxy, not through our own lexer.

``tests/compiler/test_quoting.py`` holds ``quote_arg`` to ``grammar.lexer``, which checks an
environment reference but keeps it as written: a ``$HOME`` that HAProxy would expand reads
back unchanged there. Here haproxy itself is the oracle: it runs with ``HOME`` and
``QUOTING_PROBE`` set in its environment, and every value must reach the client (and the
server) byte for byte, ``$``, quotes and backslashes included.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.support.net import listening, port_of
from tests.support.settings_haproxy import (
    Backend,
    backends,
    compile_text,
    get,
    loopback_options,
    running_haproxy,
)

# What haproxy would put in place of a reference it expands: never seen by a client.
HAPROXY_HOME = "/haproxy-home-leaked"
PROBE = "probe-leaked"


def haproxy_env() -> dict[str, str]:
    return {**os.environ, "HOME": HAPROXY_HOME, "QUOTING_PROBE": PROBE}


def payload(**service: Any) -> dict[str, Any]:
    return {"table": "quoting", "running": [], "candidates": [service]}


def raw_response_headers(port: int, host: str) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """The status line and each header line's name and value, as the bytes haproxy sent
    (no decoding, no stripping: http.client would hide leading and trailing blanks)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head = received.partition(b"\r\n\r\n")[0].split(b"\r\n")
    headers = []
    for line in head[1:]:
        name, separator, value = line.partition(b": ")
        assert separator, line
        headers.append((name, value))
    return head[0], headers


# Each holds `$`, a quote and a backslash or another quote: the spelling must be double
# quotes (a single quote is inside), where HAProxy expands an unescaped `$NAME`.
LITERALS = [
    'it\'s $HOME "quoted" \\ back',
    "\"$HOME\" and '${HOME}'",
    "it's ${QUOTING_PROBE-default} \\$HOME",
    '$QUOTING_PROBE\'s "value" \\',
    "100% it's $HOME %[src] \\x41",
    'it\'s ${HOME[*]} "#not a comment"',
]


def test_dollar_quotes_and_backslashes_reach_client_and_server_literally(
    haproxy: str, front: socket.socket, tmp_path: Path
) -> None:
    port = port_of(front)
    response = {f"X-Literal-{i}": value for i, value in enumerate(LITERALS)}
    request = {f"X-Sent-{i}": value for i, value in enumerate(LITERALS)}
    with backends("app") as members:
        config = compile_text(
            payload(
                serviceName="quoting",
                predicate="quoting.example.com",
                containers=[{"id": "app", "ip": members["app"].address}],
                headers={"request": request, "response": response},
            ),
            loopback_options(port),
        )
        with running_haproxy(haproxy, config, front, tmp_path, env=haproxy_env()):
            status, received = raw_response_headers(port, "quoting.example.com")
            answer = get(port, "quoting.example.com")
    assert status.split(b" ")[1] == b"200"
    sent = {name.decode().lower(): value for name, value in received}
    for name, value in response.items():
        assert sent[name.lower()] == value.encode(), name
    seen = {name.lower(): value for name, value in answer.json()["headers"].items()}
    for name, value in request.items():
        assert seen[name.lower()] == value, name


def test_a_cookie_name_with_a_quote_and_a_dollar_is_the_one_haproxy_prefixes(
    haproxy: str, front: socket.socket, tmp_path: Path
) -> None:
    # A cookie name is an RFC 6265 token: `'` and `$` are allowed, so it gets double quotes.
    cookie = "it's$HOME"
    port = port_of(front)
    with backends("app") as members:
        members["app"].set_cookie = f"{cookie}=session"
        config = compile_text(
            payload(
                serviceName="sticky",
                predicate="sticky.example.com",
                cookie=cookie,
                containers=[{"id": "app", "ip": members["app"].address}],
            ),
            loopback_options(port),
        )
        with running_haproxy(haproxy, config, front, tmp_path, env=haproxy_env()):
            _, received = raw_response_headers(port, "sticky.example.com")
    # Prefix mode: haproxy recognises the server's cookie by its name and prefixes the
    # server's id; a name it read differently would pass the cookie through untouched.
    assert (b"set-cookie", f"{cookie}=app~session".encode()) in received


@pytest.fixture
def front() -> Iterator[socket.socket]:
    """The socket haproxy serves on (it binds none itself)."""
    with listening() as sock:
        yield sock


# Values built from the characters HAProxy's line splitter treats specially, references to
# variables haproxy has, and any other printable text (HeaderValue takes printable text,
# not all blank).
REFERENCES = ["$HOME", "${HOME}", "$QUOTING_PROBE", "${QUOTING_PROBE-x}", "${HOME[*]}"]
SPECIAL = ["$", "'", '"', "\\", "\\$", "%", "%[src]", "#", " ", "{", "}", "\\x41"]
ATOMS = st.sampled_from([*REFERENCES, *SPECIAL])
TEXT = st.characters(categories=["L", "M", "N", "P", "S"])
HEADER_VALUES = (
    st.lists(ATOMS | TEXT, min_size=1, max_size=12).map("".join).filter(lambda v: not v.isspace())
)


# One haproxy per batch of 40 values, not one per value. Under the CI profile
# (derandomize=True) the batches are the same at every run.
@pytest.fixture(scope="module")
def server() -> Iterator[Backend]:
    """One backend for every batch (stopping one takes up to half a second)."""
    with backends("app") as members:
        yield members["app"]


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.lists(HEADER_VALUES, min_size=40, max_size=40))
@example(values=LITERALS)
def test_generated_header_values_reach_the_client_byte_for_byte(
    values: list[str], haproxy: str, server: Backend, tmp_path_factory: pytest.TempPathFactory
) -> None:
    response = {f"X-Value-{i:02d}": value for i, value in enumerate(values)}
    tmp_path = tmp_path_factory.mktemp("haproxy")
    with listening() as front:
        config = compile_text(
            payload(
                serviceName="batch",
                predicate="batch.example.com",
                containers=[{"id": "app", "ip": server.address}],
                headers={"response": response},
            ),
            loopback_options(port_of(front)),
        )
        with running_haproxy(haproxy, config, front, tmp_path, env=haproxy_env()):
            status, received = raw_response_headers(port_of(front), "batch.example.com")
    assert status.split(b" ")[1] == b"200"
    sent = {name.decode().lower(): value for name, value in received}
    assert {name.lower(): sent.get(name.lower()) for name in response} == {
        name.lower(): value.encode() for name, value in response.items()
    }
