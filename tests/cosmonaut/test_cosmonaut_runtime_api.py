"""The runtime API client against a real HAProxy on loopback (its stats socket in tmp_path):
answers that mean success, refusals, an unreachable socket, and commands with a word out of
place (from a registry's config), which are never sent."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cosmonaut.apply.runtime_api import RuntimeApi, RuntimeApiError

CONFIG = """\
global
    stats socket {socket} mode 600 level admin

defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s

backend web
    cookie SID insert nocache
    server c1 127.0.0.1:9 cookie c1
    server slot-1 127.0.0.1:1 check cookie slot-1 disabled
"""


@pytest.fixture
def api(haproxy: str, tmp_path: Path) -> Iterator[RuntimeApi]:
    socket = tmp_path / "admin.sock"
    config = tmp_path / "haproxy.cfg"
    config.write_text(CONFIG.format(socket=socket))
    process = subprocess.Popen(
        [haproxy, "-db", "-f", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 10
        while not socket.exists():
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline, "haproxy did not open its stats socket"
            time.sleep(0.02)
        yield RuntimeApi(str(socket))
    finally:
        process.terminate()
        process.wait(timeout=10)


def state(api: RuntimeApi, server: str) -> tuple[str, str, str]:
    """(address, port, admin state) of ``web/<server>``."""
    for line in api.send("show servers state web").splitlines()[2:]:
        words = line.split()
        if len(words) > 18 and words[3] == server:
            return words[4], words[18], words[6]
    raise AssertionError(f"no server {server}")


def test_filling_and_emptying_a_slot(api: RuntimeApi) -> None:
    api.run(
        (
            "set server web/slot-1 addr 127.0.0.2 port 8080",
            "enable health web/slot-1",
            "set server web/slot-1 state ready",
        )
    )
    address, port, admin = state(api, "slot-1")
    assert (address, port) == ("127.0.0.2", "8080")
    assert int(admin) & 1 == 0  # out of forced maintenance
    api.run(("set server web/slot-1 state drain",))
    assert int(state(api, "slot-1")[2]) & 8  # draining
    api.run(("set server web/slot-1 state maint",))
    assert int(state(api, "slot-1")[2]) & 1


def test_a_refused_command_raises_with_what_haproxy_said(api: RuntimeApi) -> None:
    with pytest.raises(RuntimeApiError, match="'set server web/nowhere state ready': HAProxy said"):
        api.run(("set server web/nowhere state ready",))
    with pytest.raises(RuntimeApiError, match="HAProxy said 'Health check was not configured"):
        api.run(("enable health web/c1",))


@pytest.mark.parametrize(
    "command",
    [
        "set server web/c1 state maint; show info",
        "set server web/slot-1 addr 127.0.0.1;set server web/c1 state maint port 80",
        "set server web/slot-1 addr 127.0.0.2 port 80\nset server web/c1 state maint",
        "set server web/c1;set server web/c1 state maint",
        "set server web/slot-1 addr not-an-address port 80",
        "set server web/slot-1 addr fe80::1%lo port 80",
        "set server web/slot-1 addr 127.0.0.2 port 0",
        "set server web/slot-1 addr 127.0.0.2 port 65536",
        "set server web/c1 state stopping",
        "set server web/c1 weight 0",
        "shutdown sessions server web/c1",
        "disable server web/c1",
    ],
)
def test_a_command_with_a_word_out_of_place_is_never_sent(api: RuntimeApi, command: str) -> None:
    """Backend and server names must be identifiers, addresses IP addresses (``ipaddress``),
    ports numbers from 1 to 65535, and the command one Cosmonaut sends: otherwise nothing of
    the batch is sent, not even its good commands."""
    before = state(api, "c1"), state(api, "slot-1")
    with pytest.raises(RuntimeApiError, match="not sent"):
        api.run(("set server web/slot-1 addr 127.0.0.3 port 81", command))
    assert (state(api, "c1"), state(api, "slot-1")) == before


def test_an_unreachable_socket_raises(tmp_path: Path) -> None:
    with pytest.raises(RuntimeApiError, match="runtime API"):
        RuntimeApi(str(tmp_path / "missing.sock")).run(("show info",))


def test_status_shows_the_last_changes_path() -> None:
    from cosmonaut.state import status_text

    base = {"table": "t", "registry": "local", "haproxy_container": "haproxy"}
    runtime = status_text({**base, "change_path": {"path": "runtime", "reason": None}})
    assert "last change: runtime" in runtime.splitlines()
    reload = status_text(
        {**base, "change_path": {"path": "reload", "reason": "backend(s) web need more slots"}}
    )
    assert "last change: reload (backend(s) web need more slots)" in reload.splitlines()
    assert "last change" not in status_text({**base, "change_path": None})
