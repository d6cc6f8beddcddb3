"""Reading HAProxy's master: its log lines and process table (pure parts)."""

from __future__ import annotations

from cosmonaut.apply.container import _after, _last_worker, _reload_outcome
from cosmonaut.discovery.containers import config_path_of
from cosmonaut.discovery.engine import Process, parse_top

BEFORE = (
    "[NOTICE]   (1) : New worker (8) forked",
    "[NOTICE]   (1) : Loading success.",
)


def test_lines_after_the_mark() -> None:
    now = [*BEFORE, "[NOTICE]   (1) : Reloading HAProxy", "x"]
    assert _after(BEFORE, now) == ["[NOTICE]   (1) : Reloading HAProxy", "x"]
    assert _after((), ["a"]) == ["a"]
    # The same lines seen again later: the last occurrence is the mark.
    assert _after(("a",), ["a", "b", "a", "c"]) == ["c"]


def test_reload_outcome() -> None:
    assert _reload_outcome([], 8) is None
    assert _reload_outcome(["[NOTICE]   (1) : Reloading HAProxy"], 8) is None
    success = [
        "[NOTICE]   (1) : Reloading HAProxy",
        "[NOTICE]   (1) : New worker (27) forked",
        "[NOTICE]   (1) : Loading success.",
    ]
    assert _reload_outcome(success, 8) == 27
    assert _reload_outcome(success[:2], 8) is None  # forked, not loaded yet
    failure = [
        "[NOTICE]   (1) : Reloading HAProxy",
        "[ALERT]    (1) : Binding [cfg:22] for frontend http: cannot bind socket",
        "[WARNING]  (1) : Loading failure!",
    ]
    assert _reload_outcome(failure, 8) == "failure"
    # A line about the previous worker never counts as the new one.
    stale = ["[NOTICE]   (1) : Reloading HAProxy", *BEFORE]
    assert _reload_outcome(stale, 8) is None
    assert _last_worker(BEFORE) == 8
    assert _last_worker(()) is None


def test_top_of_docker_and_of_podman() -> None:
    docker = {
        "Titles": ["PID", "PPID", "COMMAND"],
        "Processes": [["4242", "4200", "haproxy -W -db -f /cfg"], ["4250", "4242", "haproxy -W"]],
    }
    podman = {
        "Titles": ["PID   PPID  COMMAND"],
        "Processes": [["1     0 haproxy -W -db -f /cfg"], ["8     1 haproxy -sf 7 -x sockpair@4"]],
    }
    assert parse_top(docker) == [
        Process(4242, 4200, "haproxy -W -db -f /cfg"),
        Process(4250, 4242, "haproxy -W"),
    ]
    assert parse_top(podman) == [
        Process(1, 0, "haproxy -W -db -f /cfg"),
        Process(8, 1, "haproxy -sf 7 -x sockpair@4"),
    ]
    assert parse_top({}) == []


def test_config_path_from_the_command_line() -> None:
    assert config_path_of(("haproxy", "-W", "-db", "-f", "/etc/h.cfg")) == "/etc/h.cfg"
    assert config_path_of(("docker-entrypoint.sh", "haproxy", "-f/x.cfg")) == "/x.cfg"
    assert config_path_of(("haproxy",)) == "/usr/local/etc/haproxy/haproxy.cfg"
