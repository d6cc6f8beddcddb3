"""Per-service settings through a running haproxy: what a client sees.

Health checks mark a failing server down and a backend with none up answers 503; weights
split traffic 3:1; basic auth answers 401 without (or with wrong) credentials and 200 with a
bcrypt or a SHA-512 hash; the allow list answers 403 to a source outside it (two loopback
addresses) and 200 inside; headers set per service reach the server and the client.
"""

from __future__ import annotations

import base64
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.net import listening, port_of
from tests.support.passwords import sha512_hash
from tests.support.required import require
from tests.support.settings_haproxy import (
    Backend,
    backends,
    compile_text,
    get,
    loopback_options,
    running_haproxy,
)


def payload(*candidates: dict[str, Any]) -> dict[str, Any]:
    return {"table": "settings", "running": [], "candidates": list(candidates)}


def service(name: str, members: dict[str, Backend], **settings: Any) -> dict[str, Any]:
    return {
        "serviceName": name,
        "predicate": f"{name}.example.com",
        "containers": [{"id": b.name, "ip": b.address} for b in members.values()],
        **settings,
    }


@pytest.fixture
def front() -> Iterator[socket.socket]:
    """The socket haproxy serves on (it binds none itself)."""
    with listening() as sock:
        yield sock


def eventually(condition: Callable[[], bool], what: str, limit: float = 10.0) -> None:
    """Poll until ``condition`` holds (health checks take a few intervals to act)."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {limit} s: {what}")
        time.sleep(0.1)


def test_failing_health_check_marks_a_server_down_and_none_up_gives_503(
    haproxy: str, front: socket.socket, tmp_path: Path
) -> None:
    port = port_of(front)
    with backends("good", "sick") as members:
        members["sick"].healthy = False
        health = {"path": "/healthz", "status": 200, "interval": "100ms", "rise": 1, "fall": 1}
        config = compile_text(
            payload(service("web", members, health=health)), loopback_options(port)
        )
        assert "option httpchk GET /healthz" in config
        assert "http-check expect status 200" in config
        with running_haproxy(haproxy, config, front, tmp_path):
            # Once the check has run, every request goes to the healthy server only.
            eventually(
                lambda: all(
                    get(port, "web.example.com").json()["name"] == "good" for _ in range(10)
                ),
                "the failing server marked down",
            )
            names = Counter(get(port, "web.example.com").json()["name"] for _ in range(20))
            assert names == {"good": 20}
            members["good"].healthy = False
            eventually(
                lambda: get(port, "web.example.com").status == 503,
                "503 once no server is up",
            )
            # No route at all is 503 too, never 404.
            assert get(port, "nobody.example.com").status == 503


def test_weights_split_traffic_three_to_one(
    haproxy: str, front: socket.socket, tmp_path: Path
) -> None:
    port = port_of(front)
    with backends("heavy", "light") as members:
        entry = service("canary", members)
        entry["containers"][0]["weight"] = 3
        entry["containers"][1]["weight"] = 1
        config = compile_text(payload(entry), loopback_options(port))
        assert "weight 3" in config and "weight 1" in config
        with running_haproxy(haproxy, config, front, tmp_path):
            names = Counter(get(port, "canary.example.com").json()["name"] for _ in range(400))
    assert set(names) == {"heavy", "light"}
    assert 300 * 0.9 <= names["heavy"] <= 300 * 1.1, names
    assert 100 * 0.9 <= names["light"] <= 100 * 1.1, names


def bcrypt_hash(password: str) -> str:
    try:
        import bcrypt
    except ImportError:
        require("bcrypt", "not installed; it is in the 'test' extra (scripts/bootstrap)")
    hashed: bytes = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4))
    return hashed.decode()


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def test_basic_auth_with_bcrypt_and_sha512_hashes(
    haproxy: str, front: socket.socket, tmp_path: Path
) -> None:
    port = port_of(front)
    alice, bob = bcrypt_hash("wonderland"), sha512_hash("builder")
    assert alice.startswith("$2b$") and bob.startswith("$6$")
    with backends("app") as members:
        auth = {
            "realm": "private",
            "users": [{"name": "alice", "hash": alice}, {"name": "bob", "hash": bob}],
        }
        config = compile_text(
            payload(service("private", members, auth=auth)), loopback_options(port)
        )
        assert "userlist auth_private" in config
        with running_haproxy(haproxy, config, front, tmp_path):
            host = "private.example.com"
            refused = get(port, host)
            assert refused.status == 401
            assert 'realm="private"' in refused.headers.get("www-authenticate", "")
            assert get(port, host, headers=basic("alice", "wrong")).status == 401
            assert get(port, host, headers=basic("bob", "wonderland")).status == 401
            assert get(port, host, headers=basic("alice", "wonderland")).status == 200
            assert get(port, host, headers=basic("bob", "builder")).status == 200


def test_allow_list_refuses_other_sources_with_403(
    haproxy: str, front: socket.socket, tmp_path: Path
) -> None:
    port = port_of(front)
    with backends("app") as members:
        config = compile_text(
            payload(service("inside", members, allow=["127.0.0.2/32", "fd00::/8"])),
            loopback_options(port),
        )
        with running_haproxy(haproxy, config, front, tmp_path):
            assert get(port, "inside.example.com", source="127.0.0.1").status == 403
            allowed = get(port, "inside.example.com", source="127.0.0.2")
            assert allowed.status == 200 and allowed.json()["name"] == "app"


def test_headers_reach_the_server_and_the_client(
    haproxy: str, front: socket.socket, tmp_path: Path
) -> None:
    port = port_of(front)
    tricky = 'a "quoted" 100% it\'s #not-a-comment %[src] $HOME'
    with backends("app") as members:
        headers = {
            "request": {"X-Env": tricky, "X-Forwarded-Proto": "https"},
            "response": {
                "Strict-Transport-Security": "max-age=31536000",
                "X-Frame-Options": "DENY",
            },
        }
        config = compile_text(
            payload(service("hdr", members, headers=headers)), loopback_options(port)
        )
        with running_haproxy(haproxy, config, front, tmp_path):
            answer = get(port, "hdr.example.com", headers={"X-Env": "from the client"})
    assert answer.status == 200
    seen = {name.lower(): value for name, value in answer.json()["headers"].items()}
    assert seen["x-env"] == tricky  # replaced, and literally: no expansion of % or $
    assert seen["x-forwarded-proto"] == "https"
    received = {name.lower(): value for name, value in answer.headers.items()}
    assert received["strict-transport-security"] == "max-age=31536000"
    assert received["x-frame-options"] == "DENY"


@pytest.mark.parametrize(
    "balance", ["roundrobin", "static-rr", "leastconn", "first", "source", "random"]
)
def test_timeouts_maxconn_and_balance_pass_haproxy_check(
    balance: str, assert_haproxy_accepts: Callable[[str], None]
) -> None:
    entry = {
        "serviceName": "slow",
        "predicate": "slow.example.com",
        "balance": balance,
        "maxconn": 50,
        "timeouts": {"connect": "2s", "server": "5m", "queue": "30s", "tunnel": "1h"},
        "containers": [{"id": "s1", "ip": "10.0.0.1:80", "weight": 0}],
    }
    config = compile_text(payload(entry), loopback_options(8080))
    for line in (
        f"balance {balance}",
        "timeout connect 2s",
        "timeout server 5m",
        "timeout queue 30s",
        "timeout tunnel 1h",
        "server s1 10.0.0.1:80 check weight 0 maxconn 50",
    ):
        assert f"    {line}\n" in config
    assert_haproxy_accepts(config)
